//! `guichet serve`.

use std::sync::Arc;

use anyhow::Context as _;
use guichet_core::clock::Clock;
use tokio::net::TcpListener;

use crate::app::Application;
use crate::config::Settings;

/// Migrates, then serves until Ctrl-C or SIGTERM.
pub async fn run(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let app = Application::build(settings, clock).await?;
    tracing::info!(database = %settings.database_url, "database ready");
    if app.state.members.is_empty().await? {
        eprintln!(
            "No account yet. Create the first administrator with:\n  \
             guichet member add admin --email you@example.org --role admin --password-stdin"
        );
    }
    let listener =
        TcpListener::bind(settings.listen).await.with_context(|| format!("could not listen on {}", settings.listen))?;
    tracing::info!(address = %settings.listen, public_url = %settings.public_url, "guichet is serving");
    app.serve(listener, shutdown_signal()).await
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
