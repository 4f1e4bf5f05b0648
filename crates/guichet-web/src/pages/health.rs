//! Health, for load balancers, orchestrators and monitoring:
//! - `GET /healthz` (liveness): the process serves and the database answers a query.
//!   Restarting guichet does not mend a full disk: orchestrators should restart on this
//!   one only.
//! - `GET /readyz` (readiness): this instance can do its work: its schema is the
//!   database's, and the database commits a write. Load balancers send traffic on this one.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::state::AppState;

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(health)).route("/readyz", get(ready))
}

async fn health(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.members.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(error) => {
            tracing::error!(?error, "health check: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

async fn ready(State(state): State<AppState>) -> (StatusCode, String) {
    crate::check_schema(&state).await;
    match state.members.readiness().await {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(why) => {
            tracing::warn!(%why, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, why.to_string())
        }
    }
}
