//! The stylesheet, built into the binary.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/static/guichet.css", get(stylesheet))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")],
        include_str!("../../static/guichet.css"),
    )
}
