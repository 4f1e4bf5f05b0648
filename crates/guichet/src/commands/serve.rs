//! `guichet serve`.

use std::sync::Arc;

use anyhow::Context as _;
use guichet_core::account::Role;
use guichet_core::audit::{Actor, RequestContext};
use guichet_core::clock::Clock;
use guichet_core::codes::CodePurpose;
use guichet_core::members::AddMember;
use tokio::net::TcpListener;

use crate::app::Application;
use crate::config::Settings;

/// Migrates, makes sure an administrator can get in, then serves until Ctrl-C or SIGTERM.
pub async fn run(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    if let Some(address) = settings.metrics_listen {
        serve_metrics(address).await?;
    }
    let app = Application::build(settings, Arc::clone(&clock)).await?;
    tracing::info!(database = %settings.database_url, "database ready");
    first_administrator(&app, settings, clock.as_ref()).await?;
    let listener =
        TcpListener::bind(settings.listen).await.with_context(|| format!("could not listen on {}", settings.listen))?;
    let address = listener.local_addr().unwrap_or(settings.listen);
    tracing::info!(%address, public_url = %settings.public_url, "guichet is serving");
    app.serve(listener, shutdown_signal()).await
}

/// Installs the Prometheus recorder and serves `/metrics` on `address`, a listener of its
/// own: never on the public one.
async fn serve_metrics(address: std::net::SocketAddr) -> anyhow::Result<()> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        .context("metrics buckets")?
        .install_recorder()
        .context("could not install the metrics recorder")?;
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("GUICHET_METRICS_LISTEN: could not listen on {address}"))?;
    describe_metrics();
    let process = metrics_process::Collector::default();
    process.describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            // The process's own figures, read at each scrape.
            process.collect();
            std::future::ready(handle.render())
        }),
    );
    tracing::info!(%address, "metrics are served on /metrics");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// Every family with its `# HELP`, and every series whose labels are known in advance at
/// zero from the start, so that alerts and `absent()` behave after a restart.
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("guichet_build_info", "guichet's version, as a label (always 1)");
    metrics::gauge!("guichet_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    describe_counter!("guichet_logins_total", "Login attempts by outcome (locked: the account was locked)");
    for outcome in guichet_core::login::LOGIN_OUTCOMES {
        metrics::counter!("guichet_logins_total", "outcome" => outcome).absolute(0);
    }
    describe_counter!("guichet_lockouts_total", "Accounts locked after repeated failures");
    metrics::counter!("guichet_lockouts_total").absolute(0);
    describe_counter!("guichet_throttled_total", "Requests refused by an address throttle, by form");
    for what in ["forgot", "assistance"] {
        metrics::counter!("guichet_throttled_total", "what" => what).absolute(0);
    }
    describe_gauge!("guichet_hash_queue_depth", "Password checks waiting for a hashing thread");
    metrics::gauge!("guichet_hash_queue_depth").set(0.0);
    describe_histogram!(
        "guichet_hash_wait_seconds",
        Unit::Seconds,
        "Time a password check waited for a hashing thread"
    );
    describe_counter!("guichet_hash_refused_total", "Password checks refused with 503: the hashing queue was full");
    metrics::counter!("guichet_hash_refused_total").absolute(0);
    describe_gauge!(
        "guichet_outbox_pending",
        "Messages waiting to leave, in the whole database: every instance reports the same figure (take max, not sum)"
    );
    metrics::gauge!("guichet_outbox_pending").set(0.0);
    describe_gauge!(
        "guichet_outbox_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest waiting message, in the whole database (take max, not sum)"
    );
    metrics::gauge!("guichet_outbox_oldest_pending_seconds").set(0.0);
    describe_counter!("guichet_mail_total", "Messages handled by the postman, by result");
    for result in ["sent", "retry", "failed", "skipped"] {
        metrics::counter!("guichet_mail_total", "result" => result).absolute(0);
    }
    describe_counter!("guichet_http_requests_total", "HTTP requests by route template, method and status");
    describe_histogram!(
        "guichet_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request durations by route template"
    );
}

/// On an empty database, creates the administrator `admin`; while no administrator has
/// a password, prints a one-time link to set one (a fresh one at each start).
async fn first_administrator(app: &Application, settings: &Settings, clock: &dyn Clock) -> anyhow::Result<()> {
    let members = &app.state.members;
    if members.is_empty().await? {
        let email =
            settings.assistance_email.as_ref().map_or_else(|| "admin@guichet.invalid".to_owned(), ToString::to_string);
        let request = AddMember {
            identifier: "admin".into(),
            email,
            name: "Administrateur".into(),
            given_name: String::new(),
            family_name: String::new(),
            role: Role::Admin,
            password: None,
            invite: false,
            rpps: String::new(),
        };
        members
            .add(request, Actor::System, RequestContext::default())
            .await
            .context("could not create the first administrator")?;
        say!("The database was empty: created the administrator account `admin`.");
    }
    let admins: Vec<_> = members.list(false).await?.into_iter().filter(|a| a.role == Role::Admin).collect();
    if admins.iter().any(|a| a.password_hash.is_some()) {
        return Ok(());
    }
    let Some(admin) = admins.first() else { return Ok(()) };
    // Only the newest link works: links printed at earlier starts may sit in old logs.
    let (code, expires_at) = app
        .state
        .postman
        .replace_codes(admin, CodePurpose::Invitation, clock.now())
        .await?
        .context("the administrator's address changed while the link was being made: start again")?;
    let link = format!("{}/reset-password?code={}", settings.public_url, code.grouped().replace('-', ""));
    let until = expires_at.to_zoned_datetime(settings.time_zone.clone()).strftime("%Y-%m-%d %H:%M %Z");
    say!(
        "No administrator has a password yet. To set the password of `{}`, open this one-time link (valid until {until}):\n\n  {link}\n\n\
         Then change its email address, or create your own administrator with `guichet member add`.",
        admin.identifier
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
