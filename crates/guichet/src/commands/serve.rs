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
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let router = axum::Router::new().route("/metrics", axum::routing::get(move || std::future::ready(handle.render())));
    tracing::info!(%address, "metrics are served on /metrics");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
    Ok(())
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
            role: Role::Admin,
            password: None,
            invite: false,
        };
        members
            .add(request, Actor::System, RequestContext::default())
            .await
            .context("could not create the first administrator")?;
        println!("The database was empty: created the administrator account `admin`.");
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
    println!(
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
