//! Wiring: from settings to a running application. The binary and the tests build it
//! the same way; tests only swap the clock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use guichet_core::clock::Clock;
use guichet_core::console::Console;
use guichet_core::desk::Desk;
use guichet_core::gate::Gate;
use guichet_core::groups::Groups;
use guichet_core::hashing::{Argon2Cost, Argon2Pool, PasswordHasher};
use guichet_core::housekeeping::Housekeeping;
use guichet_core::keys::ServerKey;
use guichet_core::lockout::{AddressThrottlePolicy, LockoutPolicy};
use guichet_core::login::Authenticator;
use guichet_core::mail::MailSender;
use guichet_core::me::MySpace;
use guichet_core::members::Members;
use guichet_core::oidc::{Messenger, Oidc};
use guichet_core::passkeys::Passkeys;
use guichet_core::password::PasswordPolicy;
use guichet_core::ports::Ports;
use guichet_core::postman::{MailPolicy, Postman};
use guichet_core::recovery::Recovery;
use guichet_core::second_factor::SecondFactors;
use guichet_core::session::{SessionPolicy, Sessions};
use guichet_mail::{MailSettings, Mailer, TransportSpec};
use guichet_store::SqlStore;
use guichet_web::{AppParts, AppState, Cookies, MailHelp, ServeOptions, WebSettings};
use tokio::net::TcpListener;

use crate::config::Settings;

/// A wired application, ready to serve.
#[derive(Debug, Clone)]
pub struct Application {
    /// What the web layer holds.
    pub state: AppState,
    /// The database.
    pub store: SqlStore,
    /// Connections held at once.
    pub max_connections: usize,
    /// `member import`.
    pub importer: guichet_core::import::Importer,
    /// The cleaning rounds.
    housekeeping: Housekeeping,
    /// Where the file transport writes messages (their bodies' retention).
    mail_transport: guichet_mail::TransportSpec,
}

impl Application {
    /// Connects, migrates and wires everything.
    pub async fn build(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = SqlStore::connect_and_migrate(&settings.database_url).await?;
        let hasher: Arc<dyn PasswordHasher> = Arc::new(Argon2Pool::sized_to_cores(Argon2Cost::RECOMMENDED));
        Self::wire(settings, clock, store, hasher).await
    }

    /// Like [`Application::build`], with a given password hasher (tests count its calls).
    pub async fn build_with_hasher(
        settings: &Settings,
        clock: Arc<dyn Clock>,
        hasher: Arc<dyn PasswordHasher>,
    ) -> anyhow::Result<Self> {
        let store = SqlStore::connect_and_migrate(&settings.database_url).await?;
        Self::wire(settings, clock, store, hasher).await
    }

    async fn wire(
        settings: &Settings,
        clock: Arc<dyn Clock>,
        store: SqlStore,
        hasher: Arc<dyn PasswordHasher>,
    ) -> anyhow::Result<Self> {
        let ports = Ports::of(Arc::new(store.clone()));
        let mailer: Arc<dyn MailSender> = Arc::new(Mailer::new(mail_settings(settings))?);
        let desk_address = settings.assistance_email.clone();
        let password_policy = PasswordPolicy { min_length: settings.password_min_length };
        let recovery = Recovery::new(&ports, Arc::clone(&hasher), Arc::clone(&clock), password_policy);
        let lockout = LockoutPolicy {
            threshold: settings.lockout_threshold,
            window: settings.lockout_window,
            duration: settings.lockout_duration,
        };
        let throttle = AddressThrottlePolicy {
            max_failures: settings.address_throttle_failures,
            window: settings.address_throttle_window,
        };
        let key = ports
            .keys
            .server_key("main", &ServerKey::generate(), clock.now())
            .await
            .context("could not read or store the server key")?;
        let postman =
            Postman::new(&ports, mailer, Arc::clone(&clock), mail_policy(settings), desk_address.clone(), key.clone());
        let authenticator =
            Authenticator::new(&ports, Arc::clone(&hasher), Arc::clone(&clock), (lockout, throttle), key.clone())
                .await
                .context("could not prepare password checking")?;
        let sessions = Sessions::new(
            &ports,
            Arc::clone(&clock),
            SessionPolicy { idle: settings.session_idle, max: settings.session_max },
            key.clone(),
        );
        let desk = Desk::new(&ports, Arc::clone(&clock), desk_address, key.clone());
        let me = MySpace::new(&ports, Arc::clone(&hasher), Arc::clone(&clock), password_policy, lockout);
        let members = Members::new(&ports, hasher, Arc::clone(&clock), password_policy);
        let console = Console::new(&ports, Arc::clone(&clock), settings.temporary_password_ttl)
            .with_staff_rule(settings.staff_second_factor);
        let second_factors =
            SecondFactors::new(&ports, Arc::clone(&clock), key.clone(), lockout, settings.site_name.clone());
        let passkeys =
            match Passkeys::new(&ports, Arc::clone(&clock), key.clone(), &settings.public_url, &settings.site_name) {
                Ok(passkeys) => Some(passkeys),
                Err(error) => {
                    // The default public URL (an address) says so at every start of `serve`.
                    tracing::info!(%error, "security keys and passkeys are off");
                    None
                }
            };
        let groups = Groups::new(&ports, Arc::clone(&clock));
        let gate = Gate::new(&ports, sessions.clone(), settings.access.clone(), Arc::clone(&clock));
        let oidc = Oidc::new(&ports, Arc::clone(&clock), key.clone(), &settings.public_url, sessions.clone())
            .map_err(|e| anyhow::anyhow!("GUICHET_PUBLIC_URL cannot be an OpenID Connect issuer: {e}"))?
            .with_offline_lifetime(settings.offline_token_ttl);
        let sender = crate::backchannel::HttpSender::new()?;
        let outbound = sender.client();
        let messenger = Messenger::new(oidc.clone(), Arc::new(sender), Arc::clone(&clock));
        let privacy = guichet_core::personal_data::Privacy::new(&ports, settings.erasure_delay);
        let providers = crate::upstream::Providers::new(&settings.upstreams, &settings.public_url, outbound)?;
        let upstreams = guichet_core::upstream::Upstreams::new(&ports, Arc::new(providers), Arc::clone(&clock));
        let housekeeping = Housekeeping::new(&ports, settings.retention, privacy.clone());
        let importer = guichet_core::import::Importer::of(&ports, Arc::clone(&clock));
        let web = WebSettings {
            site_name: settings.site_name.clone(),
            public_url: settings.public_url.clone(),
            cookies: Cookies { secure: settings.cookie_secure, domain: settings.cookie_domain.clone() },
            return_hosts: settings.return_hosts.clone().with(&public_host(&settings.public_url)),
            trusted_proxies: settings.trusted_proxies.clone(),
            time_zone: settings.time_zone.clone(),
            assistance_email: settings.assistance_email.as_ref().map(ToString::to_string),
            mail_help: mail_help(settings).await,
            privacy: guichet_web::PrivacyNotice {
                controller: settings.privacy_controller.clone(),
                contact: settings
                    .privacy_contact
                    .clone()
                    .or_else(|| settings.assistance_email.as_ref().map(ToString::to_string)),
                retention: settings.retention,
                erasure_delay: settings.erasure_delay,
                relay: guichet_mail::TransportSpec::new(settings.mail_transport.0.clone()).smtp_host(),
            },
        };
        let parts = AppParts {
            clock,
            authenticator,
            sessions,
            members,
            recovery,
            postman,
            desk,
            me,
            second_factors,
            passkeys,
            console,
            privacy,
            upstreams,
            groups,
            gate,
            oidc,
            messenger,
            settings: web,
            writes_paused: std::sync::atomic::AtomicBool::new(false),
        };
        let state = AppState::new(parts);
        let max_connections = settings.max_connections.map_or_else(connections_the_descriptors_allow, |n| n as usize);
        let mail_transport = guichet_mail::TransportSpec::new(settings.mail_transport.0.clone());
        Ok(Self { state, store, housekeeping, max_connections, importer, mail_transport })
    }

    /// Serves on `listener` until `shutdown` completes, with the postman (sending the
    /// outbox) and the housekeeping task.
    ///
    /// Stopping takes at most 35 s: at the signal the postman is told to stop at once,
    /// and within [`POSTMAN_GRACE`] finishes the message it is sending (recorded, so that
    /// no other instance sends it again) and gives the rest of its claim back, while the
    /// HTTP server gives the requests in flight its drain (30 s); the database closes
    /// last, within [`CLOSE_GRACE`]. The systemd unit's `TimeoutStopSec` is above it.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let postman = self.state.postman.clone();
        let store = self.store.clone();
        let mut sending = tokio::spawn(send_mail(postman.clone()));
        let (signalled, at_signal) = tokio::sync::oneshot::channel();
        let stopping = postman.clone();
        let shutdown = async move {
            shutdown.await;
            stopping.stop();
            let _ = signalled.send(tokio::time::Instant::now());
        };
        let served = self.serve_http(listener, shutdown).await;
        postman.stop();
        let since = at_signal.await.unwrap_or_else(|_| tokio::time::Instant::now());
        if tokio::time::timeout_at(since + POSTMAN_GRACE, &mut sending).await.is_err() {
            tracing::warn!("the postman did not finish its message in time; it may be sent again by another instance");
            sending.abort();
        }
        close(store).await;
        served
    }

    /// Serves without the background postman: tests send the outbox when they choose.
    pub async fn serve_without_postman(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.store.clone();
        let served = self.serve_http(listener, shutdown).await;
        close(store).await;
        served
    }

    /// Serves HTTP, with the housekeeping and the gate's watch, until `shutdown`.
    async fn serve_http(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let housekeeping = tokio::spawn(housekeeping(self.clone()));
        let logouts = tokio::spawn(deliver_logouts(self.state.messenger.clone()));
        let gate = tokio::spawn(watch_changes(self.state.gate.clone(), self.store.access_changes()));
        let schema = tokio::spawn(watch_schema(self.state.clone()));
        let options = ServeOptions {
            max_connections: self.max_connections,
            trusted_proxies: self.state.settings.trusted_proxies.clone(),
            ..ServeOptions::default()
        };
        let served = guichet_web::serve(listener, self.state.clone(), shutdown, options)
            .await
            .context("the HTTP server stopped");
        housekeeping.abort();
        logouts.abort();
        gate.abort();
        schema.abort();
        served
    }
}

/// Raises the soft limit on open files to the hard one, then leaves room for the
/// database pool, the mail connections and the files guichet opens: the rest may be
/// connections. Past it, the server closes the oldest idle connection for a new one.
fn connections_the_descriptors_allow() -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "could not read the open-files limit; holding at most 1,000 connections");
            return 1_000;
        }
    };
    let reserve = (limit / 8).clamp(32, 512);
    usize::try_from(limit.saturating_sub(reserve).max(16)).unwrap_or(usize::MAX)
}

/// How long a stopping process waits for the postman to finish the message it is
/// sending, from the signal.
const POSTMAN_GRACE: Duration = Duration::from_secs(15);
/// How long the database's connections are waited for, last.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Closes the database's connections, waiting at most [`CLOSE_GRACE`] for those in use.
async fn close(store: SqlStore) {
    if tokio::time::timeout(CLOSE_GRACE, store.close()).await.is_err() {
        tracing::warn!("database connections still in use at exit");
    }
}

/// The back-channel logout loop: a round when woken (a session ended here) and every
/// two seconds (sessions other instances or commands ended, retries come due). Stopping
/// aborts it: a logout being delivered stays claimed for a minute, then goes again
/// (an application told twice of the same logout ignores the second).
async fn deliver_logouts(messenger: guichet_core::oidc::Messenger) {
    let signal = messenger.signal();
    loop {
        if let Err(error) = messenger.deliver_due().await {
            tracing::warn!(%error, "could not deliver the back-channel logouts; trying again shortly");
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), signal.notified()).await;
    }
}

/// The sending loop: a round when woken (something was queued here) and every few
/// seconds (for what other instances queued, and retries that came due), until stopped.
async fn send_mail(postman: Postman) {
    let signal = postman.signal();
    while !postman.is_stopping() {
        if let Err(error) = postman.deliver_due().await {
            tracing::warn!(?error, "the outbox could not be read; trying again shortly");
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), signal.notified()).await;
    }
}

/// The host of the public URL (absolute `next` links back to guichet are followed too).
fn public_host(public_url: &str) -> String {
    let rest = public_url.split_once("://").map_or(public_url, |(_, rest)| rest);
    rest.split(['/', ':']).next().unwrap_or_default().to_owned()
}

/// The mailer's settings.
pub fn mail_settings(settings: &Settings) -> MailSettings {
    MailSettings {
        site_name: settings.site_name.clone(),
        public_url: settings.public_url.clone(),
        from: settings.mail_from.clone(),
        assistance_email: settings.assistance_email.as_ref().map(ToString::to_string),
        transport: TransportSpec::new(settings.mail_transport.0.clone()),
        dkim: settings.dkim.clone(),
        time_zone: settings.time_zone.clone(),
    }
}

/// The postman's policy.
pub fn mail_policy(settings: &Settings) -> MailPolicy {
    MailPolicy {
        reset_code_ttl: settings.recovery_code_ttl,
        invitation_ttl: settings.invitation_ttl,
        temporary_password_ttl: settings.temporary_password_ttl,
        ..MailPolicy::default()
    }
}

/// Who sends the mail, for `/aide/messagerie`: the SMTP relay's addresses are looked up
/// once, at start, and briefly (an unanswering resolver leaves them out).
async fn mail_help(settings: &Settings) -> MailHelp {
    let from = &settings.mail_from;
    let address = from.rsplit_once('<').map_or(from.as_str(), |(_, rest)| rest.trim_end_matches('>')).trim().to_owned();
    let domain = address.rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
    let mail = mail_settings(settings);
    let relay = match mail.transport.smtp_host() {
        Some(host) => {
            let lookup = tokio::net::lookup_host((host.as_str(), 25));
            let found = tokio::time::timeout(Duration::from_secs(2), lookup).await.ok().and_then(Result::ok);
            let mut addresses: Vec<String> = found.into_iter().flatten().map(|a| a.ip().to_string()).collect();
            addresses.sort();
            addresses.dedup();
            Some((host, addresses))
        }
        None => None,
    };
    MailHelp {
        from_address: address,
        from_domain: domain,
        dkim: settings.dkim.as_ref().map(|d| (d.domain.clone(), d.selector.clone())),
        relay,
        subjects: guichet_mail::member_subjects(&mail),
        assistance: settings.assistance_email.as_ref().map(ToString::to_string),
    }
}

/// How often the gate reads the database's change counter where the database does not
/// announce changes (SQLite, or PostgreSQL while the listening connection is down): a
/// change made elsewhere (another instance, the command line) reaches forward auth
/// within this.
const GATE_POLL: Duration = Duration::from_millis(50);

/// On PostgreSQL, how often the counter is read all the same: a listening connection
/// can die without a word (a firewall dropping an idle connection), and then this bounds
/// how long a change elsewhere can go unheard.
const GATE_SAFETY_POLL: Duration = Duration::from_secs(5);

/// Keeps the forward-auth gate's cache in step with the database: on PostgreSQL by its
/// notifications (no query while nothing changes but a read of the counter every
/// [`GATE_SAFETY_POLL`]), elsewhere by reading the counter every [`GATE_POLL`].
async fn watch_changes(gate: guichet_core::gate::Gate, changes: Option<guichet_store::AccessChanges>) {
    let Some(mut changes) = changes else { return poll_changes(gate).await };
    // The listening connection lives in a task of its own, never cancelled mid-read;
    // this loop hears from it through a channel.
    // One pending event is enough: each means "forget", and forgetting twice is once.
    let (heard, mut hear) = tokio::sync::mpsc::channel::<bool>(1);
    tokio::spawn(async move {
        let mut pause = GATE_POLL;
        loop {
            let result = changes.changed().await;
            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = heard.try_send(result.is_ok()) {
                return;
            }
            match result {
                Ok(()) if pause > GATE_POLL => {
                    tracing::info!("forward auth listens to the database's changes again");
                    pause = GATE_POLL;
                }
                Ok(()) => {}
                Err(error) => {
                    if pause == GATE_POLL {
                        tracing::warn!(
                            ?error,
                            "forward auth cannot listen to the database's changes; reading its counter until it can"
                        );
                    }
                    // Tried again at growing intervals, up to the safety poll's.
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(GATE_SAFETY_POLL);
                }
            }
        }
    });
    let mut safety = tokio::time::interval(GATE_SAFETY_POLL);
    safety.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = hear.recv() => {
                let Some(listening) = event else { return poll_changes(gate).await };
                gate.forget();
                if !listening {
                    let _ = gate.refresh().await;
                    continue;
                }
                // Many changes at once (a wave of logins) make one forgetting more, not
                // one each: what comes within a poll's time is forgotten together.
                tokio::time::sleep(GATE_POLL).await;
                let mut more = false;
                while hear.try_recv().is_ok() {
                    more = true;
                }
                if more {
                    gate.forget();
                }
            }
            _ = safety.tick() => {
                let _ = gate.refresh().await;
            }
        }
    }
}

/// Every 30 seconds (and at every readiness check), whether a newer guichet migrated
/// the database: then this instance stops taking writes and says so.
async fn watch_schema(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        guichet_web::check_schema(&state).await;
    }
}

/// Reads the change counter every [`GATE_POLL`].
async fn poll_changes(gate: guichet_core::gate::Gate) {
    let mut tick = tokio::time::interval(GATE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match gate.refresh().await {
            Ok(()) => failing = false,
            Err(error) if !failing => {
                failing = true;
                // Until it answers again, cached answers end within 30 seconds anyway.
                tracing::warn!(?error, "forward auth cannot read the database's change counter");
                gate.forget();
            }
            Err(_) => gate.forget(),
        }
    }
}

/// Forgets expired sessions, old counters and what is past its retention period every
/// ten minutes.
async fn housekeeping(application: Application) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        if let Err(error) = application.housekeeping_round().await {
            tracing::warn!(
                error = format!("{error:#}"),
                "housekeeping could not finish its round; trying again in ten minutes"
            );
        }
    }
}

impl Application {
    /// The instant before which the file transport's messages go.
    fn message_files_cutoff(&self) -> std::time::SystemTime {
        let now = self.state.clock.now();
        let period = self.housekeeping.retention().message_bodies;
        let before = now.saturating_sub(period).unwrap_or(now).as_millisecond();
        std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(before).unwrap_or(0))
    }

    /// The file transport's messages written before their period's end: counted, and
    /// removed with `remove`, on a blocking thread (a folder is read file by file).
    async fn message_files(&self, remove: bool) -> anyhow::Result<u64> {
        let (transport, before) = (self.mail_transport.clone(), self.message_files_cutoff());
        tokio::task::spawn_blocking(move || transport.forget_written(before, remove))
            .await
            .context("the message folder's task stopped")?
            .context("could not read or clean the message folder")
    }

    /// One housekeeping round now (what `serve` does every ten minutes), the file
    /// transport's old messages included.
    pub async fn housekeeping_round(&self) -> anyhow::Result<guichet_core::housekeeping::Forgotten> {
        let files = self.message_files(true).await;
        let mut forgotten = self.housekeeping.round(self.state.clock.now()).await?;
        forgotten.swept.message_bodies = files?;
        Ok(forgotten)
    }

    /// What the next round will remove, by kind, and how many asked erasures are due.
    pub async fn retention_preview(&self) -> anyhow::Result<(guichet_core::retention::Swept, u64)> {
        let (mut swept, due) = self.housekeeping.preview(self.state.clock.now()).await?;
        swept.message_bodies = self.message_files(false).await?;
        Ok((swept, due))
    }

    /// The retention periods in force.
    pub fn retention(&self) -> &guichet_core::retention::Retention {
        self.housekeeping.retention()
    }
}
