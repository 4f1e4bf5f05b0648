//! guichet's web face: server-rendered French pages that work without JavaScript.
//!
//! One router per page family, merged in [`router`]. Cross-cutting rules are layers,
//! not `if`s in handlers: [`visitor`] resolves the session and checks the CSRF token of
//! every POST, [`headers`] adds the security headers.

mod client;
mod cookies;
mod error;

mod headers;
mod pages;
#[cfg(test)]
mod properties;
pub mod server;
mod state;
mod visitor;

pub use client::TrustedProxies;
pub use cookies::Cookies;
pub use pages::admin::ROUTES as ADMIN_ROUTES;
pub use server::ServeOptions;
pub use state::{AppState, Inner as AppParts, MailHelp, WebSettings};

use axum::Router;
use axum::middleware;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// The largest request body accepted: forms are small.
const BODY_LIMIT: usize = 64 * 1024;

/// Every route of the application, with its layers.
pub fn router(state: AppState) -> Router {
    let pages = Router::new()
        .merge(pages::login::routes())
        .merge(pages::me::routes())
        .merge(pages::forgot::routes())
        .merge(pages::help::routes())
        .merge(pages::assistance::routes())
        .merge(pages::rendezvous::routes())
        .merge(pages::oidc::routes())
        // The console's address with a trailing slash, as people type it.
        .route("/admin/", axum::routing::get(|| async { axum::response::Redirect::permanent("/admin") }))
        .nest(
            "/admin",
            pages::admin::routes().route_layer(middleware::from_fn_with_state(state.clone(), pages::require_staff)),
        )
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), visitor::resolve));
    Router::new()
        .merge(pages::health::routes())
        .merge(pages::gate::routes())
        .merge(pages::oidc::api_routes())
        .merge(pages::assets::routes())
        .merge(pages)
        .layer(middleware::from_fn_with_state(state.clone(), error::render_error_pages))
        .layer(middleware::from_fn_with_state(state.clone(), headers::security_headers))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        // Slow clients (and slowloris) are cut off; a login waiting for the hashing
        // queue finishes well within this.
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(30),
        ))
        .with_state(state)
}

/// Serves the application on `listener` until `shutdown` completes (see [`server`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    server::serve(listener, router(state), shutdown, options).await
}
