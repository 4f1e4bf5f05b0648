//! The login use case: recognise the member's usual browser (device cookie), otherwise
//! throttle by address and refuse locked accounts without looking at the password;
//! verify, count failures, lock — and answer every failure the same way, in the same time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret as _, SecretString};

use crate::account::{Account, Identifier};
use crate::audit::{Actor, AuditDetail, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::codes::TemporaryPassword;
use crate::credentials::{Admitted, Credentials};
use crate::device::DeviceCookie;
use crate::hashing::{HashError, PasswordHasher, Verification};
use crate::keys::ServerKey;
use crate::lockout::{AddressThrottlePolicy, LockoutPolicy, ThrottleKey, throttle_key};
use crate::password::PasswordHash;
use crate::ports::{AccountStore, AuditStore, DeviceStore, FailureOutcome, Ports, Proof, StoreError, ThrottleStore};
use crate::token::PlainToken;

/// Why a login did not go through.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown identifier, wrong password, locked or password-less account: one answer
    /// for all, so that nobody learns which.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failures from this address: slow down.
    #[error("too many failed logins from this address")]
    Throttled {
        /// When to try again.
        retry_after: SignedDuration,
    },
    /// The hashing queue is full: the server is flooded with logins.
    #[error("too many logins at once")]
    Busy,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(HashError),
}

impl From<HashError> for LoginError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => Self::Busy,
            other => Self::Hash(other),
        }
    }
}

/// A login that went through. `Debug` leaves out the device cookie.
#[derive(Clone)]
pub struct LoggedIn {
    /// The account, as it was before this login.
    pub account: Account,
    /// The browser's device cookie, with a fresh mark for this account: to set.
    pub device_cookie: String,
    /// The login used a temporary password: the session must choose a new one first.
    pub must_change_password: bool,
    /// The account has a second factor: no session opens before it is given
    /// ([`crate::second_factor::SecondFactors::verify`]).
    pub second_step: Option<SecondStep>,
}

/// A login waiting for its second factor, as its cookie carries it (signed under the
/// server key and bound to the browser's form token: see [`Authenticator::pending_cookie`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// Whose.
    pub account: crate::account::AccountId,
    /// The nonce of the browser's device mark, when the password came from the member's
    /// usual browser.
    pub device: Option<String>,
    /// What the password step checked ([`crate::second_factor::proof_of`]).
    pub proof: String,
    /// It was the desk's temporary password: a new one is chosen after the second step.
    pub must_change_password: bool,
}

impl PendingLogin {
    /// Who gives the second factor, for [`crate::second_factor::SecondFactors::verify`].
    pub fn step(&self) -> crate::second_factor::Step<'_> {
        crate::second_factor::Step::Login { device: self.device.as_deref(), proof: &self.proof }
    }
}

/// How long a right password waits for its second factor.
pub const SECOND_STEP_FOR: SignedDuration = SignedDuration::from_mins(5);

/// A login whose password was right, waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondStep {
    /// The nonce of the browser's device mark, when the password came from the member's
    /// usual browser.
    pub device: Option<String>,
    /// What the password step checked ([`crate::second_factor::proof_of`]).
    pub proof: String,
}

impl std::fmt::Debug for LoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedIn")
            .field("account", &self.account.id)
            .field("must_change_password", &self.must_change_password)
            .field("second_step", &self.second_step)
            .finish_non_exhaustive()
    }
}

/// Checks identifiers and passwords.
#[derive(Debug, Clone)]
pub struct Authenticator {
    accounts: Arc<dyn AccountStore>,
    credentials: Credentials,
    counts: Arc<dyn ThrottleStore>,
    devices: Arc<dyn DeviceStore>,
    audit: Arc<dyn AuditStore>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    lockout: LockoutPolicy,
    throttle: AddressThrottlePolicy,
    key: ServerKey,
    /// Verified against when there is no real hash to check, so that every failure
    /// costs one hash.
    dummy_hash: PasswordHash,
    /// One check at a time per identifier, for accounts with a costly stored hash.
    turns: Arc<Turns>,
}

/// Login attempts on one identifier of a costly account wait for each other (on this
/// instance): ten parallel guesses cost one costly check at a time, and the account's
/// lock applies to the guesses that come after the fifth failure instead of racing it.
#[derive(Debug, Default)]
struct Turns(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

/// The right to check one account's password; the account's entry goes when nobody
/// else waits.
struct Turn<'a> {
    turns: &'a Turns,
    account: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// Attempts that may wait for their turn on one identifier; past this, `Busy`.
const MAX_WAITING: usize = 64;
/// Past this many identifiers in the map, those nobody waits for are dropped (an
/// attempt cancelled while waiting leaves its entry behind).
const MAX_LANES: usize = 10_000;

impl Turns {
    async fn take(&self, account: String) -> Result<Turn<'_>, LoginError> {
        let lane = {
            let mut lanes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if lanes.len() >= MAX_LANES {
                lanes.retain(|_, lane| Arc::strong_count(lane) > 1);
            }
            let lane = lanes.entry(account.clone()).or_default();
            if Arc::strong_count(lane) > MAX_WAITING {
                return Err(LoginError::Busy);
            }
            Arc::clone(lane)
        };
        Ok(Turn { turns: self, account, guard: Some(lane.lock_owned().await) })
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut lanes = self.turns.0.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.guard.take());
        // Only the map holds it now: nobody waits.
        if lanes.get(&self.account).is_some_and(|lane| Arc::strong_count(lane) == 1) {
            lanes.remove(&self.account);
        }
    }
}

tokio::task_local! {
    /// Set when the attempt met a locked account: the metric's outcome, never the answer.
    static LOCKED: std::cell::Cell<bool>;
}

/// The outcomes `guichet_logins_total` counts, for the metrics to start at zero.
pub const LOGIN_OUTCOMES: [&str; 8] =
    ["success", "temporary", "second_step", "failure", "locked", "throttled", "busy", "error"];

/// The account's pending temporary password, when what was typed is it (a SHA-256, no
/// Argon2id).
fn typed_temporary<'a>(
    account: &'a Account,
    password: &SecretString,
    now: Timestamp,
) -> Option<&'a crate::token::TokenHash> {
    account.temporary_password_at(now).filter(|temporary| {
        TemporaryPassword::parse(password.expose_secret()).is_some_and(|typed| typed.matches(temporary))
    })
}

/// The counts an untrusted attempt made, to give back if it succeeds.
type Counted = Vec<(ThrottleKey, Timestamp)>;

/// How long a successful login from a network keeps the account's way in through that
/// network's ceiling: throttle counts are kept a day (see [`crate::housekeeping`]).
const KNOWN_FOR: SignedDuration = SignedDuration::from_hours(20);

impl Authenticator {
    /// Wires the use case; hashes a random password once for the dummy hash.
    pub async fn new(
        ports: &Ports,
        hasher: Arc<dyn PasswordHasher>,
        clock: Arc<dyn Clock>,
        policies: (LockoutPolicy, AddressThrottlePolicy),
        key: ServerKey,
    ) -> Result<Self, HashError> {
        let dummy_hash = hasher.hash(SecretString::from(PlainToken::generate().expose().to_owned())).await?;
        let (lockout, throttle) = policies;
        Ok(Self {
            accounts: Arc::clone(&ports.accounts),
            credentials: Credentials::of(ports),
            counts: Arc::clone(&ports.throttle),
            devices: Arc::clone(&ports.devices),
            audit: Arc::clone(&ports.audit),
            hasher,
            clock,
            lockout,
            throttle,
            key,
            dummy_hash,
            turns: Arc::default(),
        })
    }

    /// The cookie of a login waiting for its second factor, bound to `binding` (the
    /// browser's form token), good for [`SECOND_STEP_FOR`]. It opens nothing by itself:
    /// it only lets the second step be asked.
    pub fn pending_cookie(&self, pending: &PendingLogin, binding: &str) -> String {
        let flags = u8::from(pending.must_change_password);
        let device = URL_SAFE_NO_PAD.encode(pending.device.as_deref().unwrap_or_default());
        let body =
            format!("{}.{}.{flags}.{device}.{}", pending.account.get(), self.clock.now().as_second(), pending.proof);
        let mac = self.key.mac(crate::keys::Purpose::SecondStep, format!("{body}|{binding}").as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The login a cookie made by [`Self::pending_cookie`] for this `binding` waits for,
    /// while it is fresh.
    pub fn pending_login(&self, cookie: &str, binding: &str) -> Option<PendingLogin> {
        let (body, mac) = cookie.rsplit_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if !self.key.verify(crate::keys::Purpose::SecondStep, format!("{body}|{binding}").as_bytes(), &mac) {
            return None;
        }
        let mut parts = body.split('.');
        let account = crate::account::AccountId::from_stored(parts.next()?.parse().ok()?);
        let issued = Timestamp::from_second(parts.next()?.parse().ok()?).ok()?;
        let flags: u8 = parts.next()?.parse().ok()?;
        let device = String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
        let proof = parts.next()?.to_owned();
        let age = self.clock.now().duration_since(issued);
        (age >= SignedDuration::ZERO && age <= SECOND_STEP_FOR).then_some(PendingLogin {
            account,
            device: Some(device).filter(|d| !d.is_empty()),
            proof,
            must_change_password: flags & 1 != 0,
        })
    }

    /// The browser's device cookie with a fresh mark for `account`: given once the
    /// login is complete (after the second step, for an account with one).
    pub fn mark_device(&self, device_cookie: Option<&str>, account: crate::account::AccountId) -> String {
        let now = self.clock.now();
        DeviceCookie::parse(device_cookie.unwrap_or_default(), &self.key, now)
            .with_fresh_mark(account, now)
            .encode(&self.key)
    }

    /// Whether the browser's device cookie holds a mark for `account` issued since its
    /// marks were last voided: the member's usual browser, which a lock does not stop.
    /// Counts nothing (for logins that guess nothing, like an upstream provider's).
    pub fn usual_browser(&self, device_cookie: Option<&str>, account: &crate::account::Account) -> bool {
        let cookie = DeviceCookie::parse(device_cookie.unwrap_or_default(), &self.key, self.clock.now());
        live_mark(&cookie, account).is_some()
    }

    /// The lockout policy in force.
    pub fn lockout_policy(&self) -> LockoutPolicy {
        self.lockout
    }

    /// Logs in. `device_cookie` is the browser's device cookie, if it sent one. Counted in
    /// the metrics by outcome (`guichet_logins_total`).
    pub async fn login(
        &self,
        identifier: &str,
        password: SecretString,
        device_cookie: Option<&str>,
        context: &RequestContext,
    ) -> Result<LoggedIn, LoginError> {
        let (result, locked) = LOCKED
            .scope(std::cell::Cell::new(false), async {
                let result = self.log_in(identifier, password, device_cookie, context).await;
                (result, LOCKED.with(std::cell::Cell::get))
            })
            .await;
        let outcome = match &result {
            Ok(logged) if logged.second_step.is_some() => "second_step",
            Ok(logged) if logged.must_change_password => "temporary",
            Ok(_) => "success",
            Err(LoginError::InvalidCredentials) if locked => "locked",
            Err(LoginError::InvalidCredentials) => "failure",
            Err(LoginError::Throttled { .. }) => "throttled",
            Err(LoginError::Busy) => "busy",
            Err(_) => "error",
        };
        metrics::counter!("guichet_logins_total", "outcome" => outcome).increment(1);
        result
    }

    async fn log_in(
        &self,
        identifier: &str,
        password: SecretString,
        device_cookie: Option<&str>,
        context: &RequestContext,
    ) -> Result<LoggedIn, LoginError> {
        let password = crate::password::normalised(&password);
        let now = self.clock.now();
        let cookie = DeviceCookie::parse(device_cookie.unwrap_or_default(), &self.key, now);
        let account = match Identifier::parse(identifier) {
            Ok(identifier) => self.accounts.find_account_by_identifier(&identifier).await?,
            Err(_) => None,
        };
        let trusted = match &account {
            Some(account) => self.trusted_mark(&cookie, account, now).await?,
            None => None,
        };
        // For an account whose stored hash is costly (an import), one check at a time
        // per identifier (after the address's throttle, which costs no hash), the
        // account read again in its turn: the lock an earlier attempt's failure set
        // applies to this one, and a robot's guesses cost one costly check at a time.
        // Ordinary accounts are checked in parallel, as many at once as the threads allow.
        let costly = account
            .as_ref()
            .and_then(|a| a.password_hash.as_ref())
            .is_some_and(|hash| crate::hashing::is_costly(crate::hashing::Argon2Cost::RECOMMENDED, hash));
        let key = costly.then(|| identifier.trim().to_lowercase());
        let device = trusted.clone();
        let (account, proof, admitted) = match trusted {
            Some(nonce) => {
                let (_turn, account) = self.take_turn(key, account).await?;
                self.attempt(account, password, Some(&nonce), &[], context).await?
            }
            None => {
                // The desk's temporary password, typed right, is a bearer secret of its
                // own: it is let through a busy address like a known member.
                let temporary = account.as_ref().and_then(|a| typed_temporary(a, &password, now)).is_some();
                let (counted, exempted) = self.count_attempt(identifier, temporary, context, now).await?;
                let result = async {
                    let (_turn, account) = self.take_turn(key, account).await?;
                    self.attempt(account, password, None, &counted, context).await
                }
                .await;
                if matches!(result, Err(LoginError::Busy | LoginError::Hash(_) | LoginError::Store(_))) {
                    // Only failures count: our own failure gives the counts back (a
                    // success gave them back with its own transaction).
                    for (key, at) in &counted {
                        self.counts.uncount(key, *at).await?;
                    }
                }
                // Past the ceiling, an exempted attempt that fails is answered like every
                // other there, so that a robot cannot learn who logged in from it.
                if let (Some(retry_after), Err(LoginError::InvalidCredentials)) = (exempted, &result) {
                    return Err(LoginError::Throttled { retry_after });
                }
                result?
            }
        };
        if let Some(address) = context.address.map(throttle_key) {
            // Remembered so that this account may still try from this network when the
            // network is over its ceiling (a hospital's shared address).
            // Written once per period and network, read otherwise: a login adds a read.
            let known = ThrottleKey::known_on(&address, identifier);
            let now = self.clock.now();
            let remembered = match self.counts.peek(&known, KNOWN_FOR / 2, now).await {
                Ok(0) => self.counts.count(&known, KNOWN_FOR, now).await.map(|_| ()),
                other => other.map(|_| ()),
            };
            if let Err(error) = remembered {
                // The login itself went through; only this convenience is lost.
                tracing::warn!(?error, "could not remember the network of a successful login");
            }
        }
        let device_cookie = cookie.with_fresh_mark(account.id, self.clock.now()).encode(&self.key);
        let must_change_password = matches!(proof, Proof::Temporary(_));
        let second_step = (admitted == Admitted::SecondStep)
            .then(|| SecondStep { device, proof: crate::second_factor::proof_of(&account) });
        Ok(LoggedIn { account, device_cookie, must_change_password, second_step })
    }

    /// Waits for the identifier's turn when there is one to take (`key`: a costly
    /// account), then reads the account again: attempts ahead of this one may have
    /// locked it. Without a key, nothing waits and the account is as read.
    async fn take_turn(
        &self,
        key: Option<String>,
        account: Option<Account>,
    ) -> Result<(Option<Turn<'_>>, Option<Account>), LoginError> {
        let Some(key) = key else { return Ok((None, account)) };
        let turn = self.turns.take(key).await?;
        let account = match account {
            Some(account) => self.accounts.find_account(account.id).await?,
            None => None,
        };
        Ok((Some(turn), account))
    }

    /// The nonce of the browser's mark for `account`, when it holds a valid one issued
    /// since the password last changed, and the mark has attempts left (this one is counted).
    async fn trusted_mark(
        &self,
        cookie: &DeviceCookie,
        account: &Account,
        now: Timestamp,
    ) -> Result<Option<String>, LoginError> {
        let Some(mark) = live_mark(cookie, account) else { return Ok(None) };
        let attempts = self.devices.count_device_attempt(mark.nonce(), account.id, self.lockout.duration, now).await?;
        Ok((attempts <= self.lockout.threshold).then(|| mark.nonce().to_owned()))
    }

    /// Counts an attempt without a device cookie against its address, before the
    /// password is checked (see [`crate::lockout`]); `Err(Throttled)` when the address
    /// may not try (nothing stays counted then). Past the address's ceiling, only an
    /// identifier that logged in from this network within [`KNOWN_FOR`], or a pending
    /// temporary password typed right, may still try (within the per-identifier limit).
    async fn count_attempt(
        &self,
        identifier: &str,
        temporary: bool,
        context: &RequestContext,
        now: Timestamp,
    ) -> Result<(Counted, Option<SignedDuration>), LoginError> {
        let Some(address) = context.address.map(throttle_key) else { return Ok((Vec::new(), None)) };
        let window = self.throttle.window;
        let all = ThrottleKey::FailedLogins(address.clone());
        let (failures, oldest) = self.counts.count(&all, window, now).await?;
        let mut counted = vec![(all, now)];
        if failures <= u64::from(self.throttle.max_failures) {
            return Ok((counted, None));
        }
        let refused = |oldest: Option<Timestamp>| {
            let frees_at = oldest.unwrap_or(now).saturating_add(window).unwrap_or(now);
            LoginError::Throttled { retry_after: frees_at.duration_since(now).max(SignedDuration::from_secs(1)) }
        };
        let past_ceiling = failures > self.throttle.ceiling();
        let exempted = match past_ceiling.then(|| refused(oldest)) {
            Some(LoginError::Throttled { retry_after }) => Some(retry_after),
            _ => None,
        };
        let verdict = if past_ceiling && !temporary && !self.known_on(&address, identifier, now).await? {
            tracing::warn!(address, failures, "address refused after very many failed logins");
            Err(refused(oldest))
        } else {
            let on = ThrottleKey::failed_logins_on(&address, identifier);
            let (tries, oldest_on) = self.counts.count(&on, window, now).await?;
            counted.push((on, now));
            if tries > AddressThrottlePolicy::PER_IDENTIFIER {
                tracing::info!(address, failures, "identifier tried too often from an address over its limit");
                Err(refused(oldest_on))
            } else {
                Ok(())
            }
        };
        if let Err(refusal) = verdict {
            for (key, at) in counted {
                self.counts.uncount(&key, at).await?;
            }
            return Err(refusal);
        }
        Ok((counted, exempted))
    }

    /// Whether `identifier` logged in from the network `address` within [`KNOWN_FOR`].
    async fn known_on(&self, address: &str, identifier: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.counts.peek(&ThrottleKey::known_on(address, identifier), KNOWN_FOR, now).await? > 0)
    }

    /// Checks the password of `account` (or spends one hash when there is none). From
    /// the member's usual browser (`device` is its mark's nonce) the account's lock does
    /// not apply and a wrong password counts against the mark only; elsewhere a wrong
    /// password counts toward the lock, and a success gives back the address's `counted`.
    /// A pending temporary password is tried first when what was typed has its shape:
    /// its check costs a SHA-256, and when it does not match the password is checked as
    /// usual, so that every failure still costs exactly one Argon2id.
    async fn attempt(
        &self,
        account: Option<Account>,
        password: SecretString,
        device: Option<&str>,
        counted: &[(ThrottleKey, Timestamp)],
        context: &RequestContext,
    ) -> Result<(Account, Proof, Admitted), LoginError> {
        let now = self.clock.now();
        let Some(account) = account else {
            self.spend_one_hash(password).await?;
            self.audit
                .record_event(NewAuditEvent {
                    at: now,
                    account_id: None,
                    kind: AuditKind::LoginFailed,
                    actor: Actor::Member,
                    context: context.clone(),
                    detail: Some(AuditDetail::UnknownIdentifier),
                })
                .await?;
            return Err(LoginError::InvalidCredentials);
        };
        if let Some(temporary) = typed_temporary(&account, &password, now) {
            let proof = Proof::Temporary(temporary.clone());
            let admitted =
                self.credentials.record_login_success(account.id, &proof, None, true, counted, context, now).await?;
            if admitted == Admitted::No {
                return Err(LoginError::InvalidCredentials);
            }
            return Ok((account, proof, admitted));
        }
        let may = if device.is_some() { account.may_log_in_despite_lock() } else { account.may_log_in_at(now) };
        let hash = match &account.password_hash {
            Some(hash) if may => hash.clone(),
            _ => {
                if account.is_locked_at(now) {
                    let _ = LOCKED.try_with(|locked| locked.set(true));
                }
                self.spend_one_hash(password).await?;
                self.audit.record_event(uncounted(account.id, AuditKind::LoginRefusedLocked, context, now)).await?;
                return Err(LoginError::InvalidCredentials);
            }
        };
        match self.hasher.verify(password, hash.clone()).await? {
            Verification::Mismatch if device.is_some() => {
                let now = self.clock.now();
                self.audit.record_event(uncounted(account.id, AuditKind::LoginFailedOnDevice, context, now)).await?;
                Err(LoginError::InvalidCredentials)
            }
            Verification::Mismatch => {
                let outcome =
                    self.credentials.record_login_failure(account.id, &self.lockout, context, self.clock.now()).await?;
                if let FailureOutcome::Locked { until } = outcome {
                    let identifier = account.identifier.as_str();
                    tracing::info!(account = account.id.get(), identifier, %until, "account locked after repeated failures");
                    metrics::counter!("guichet_lockouts_total").increment(1);
                }
                Err(LoginError::InvalidCredentials)
            }
            Verification::Match { upgraded } => {
                let despite_lock = device.is_some();
                let now = self.clock.now();
                let proof = Proof::Password(hash.clone());
                // A hash with older parameters, or brought over from the old site, is
                // replaced in the same statement as the success.
                let rehash = upgraded.as_ref();
                let admitted = self
                    .credentials
                    .record_login_success(account.id, &proof, rehash, despite_lock, counted, context, now)
                    .await?;
                if admitted == Admitted::No {
                    // Locked (or changed) by a concurrent request while this password was checked.
                    return Err(LoginError::InvalidCredentials);
                }
                // Cleared once the login is complete: a second step still to give keeps
                // counting against the mark (see `SecondFactors::verify`).
                if let Some(nonce) = device
                    && admitted == Admitted::In
                {
                    self.devices.clear_device_attempts(nonce).await?;
                }
                Ok((account, proof, admitted))
            }
        }
    }

    /// Costs what a real check costs, and throws the answer away.
    async fn spend_one_hash(&self, password: SecretString) -> Result<(), LoginError> {
        let _ = self.hasher.verify(password, self.dummy_hash.clone()).await?;
        Ok(())
    }
}

/// A login that counts toward no lock: refused without a password check
/// (`login_refused_locked`), or a wrong password from the member's usual browser
/// (`login_failed_on_device`).
fn uncounted(
    account: crate::account::AccountId,
    kind: AuditKind,
    context: &RequestContext,
    at: Timestamp,
) -> NewAuditEvent {
    NewAuditEvent { at, account_id: Some(account), kind, actor: Actor::Member, context: context.clone(), detail: None }
}

/// The cookie's mark for `account`, when it was issued since the account's marks were last
/// voided (a password changed, "forget my browsers").
fn live_mark<'c>(cookie: &'c DeviceCookie, account: &crate::account::Account) -> Option<&'c crate::device::DeviceMark> {
    cookie.mark_for(account.id).filter(|mark| mark.issued_at() > account.devices_trusted_after)
}
