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
mod wording;

pub use client::TrustedProxies;
pub use cookies::Cookies;
pub use pages::admin::ROUTES as ADMIN_ROUTES;
pub use server::ServeOptions;
pub use state::{AppState, Inner as AppParts, MailHelp, PrivacyNotice, WebSettings};

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
        .merge(pages::privacy::routes())
        .merge(pages::second_factor::routes())
        .merge(pages::passkeys::routes())
        .merge(pages::upstream::routes())
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
    let app = Router::new()
        .merge(pages::health::routes())
        .merge(pages::gate::routes())
        .merge(pages::oidc::api_routes())
        .merge(pages::upstream::api_routes())
        .merge(pages::assets::routes())
        .merge(pages)
        .layer(middleware::from_fn_with_state(state.clone(), error::render_error_pages));
    with_access_log(app, state.settings.trusted_proxies.clone())
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

/// One line per request, through tower-http's trace layer: method, route template (never
/// the path: a call slot's link is a secret), status, duration, a request id and the
/// client's address (as the trusted proxies tell it). No header, cookie, query or body.
fn with_access_log(router: Router<AppState>, proxies: client::TrustedProxies) -> Router<AppState> {
    let layer = tower_http::trace::TraceLayer::new_for_http()
        .make_span_with(move |request: &axum::http::Request<axum::body::Body>| {
            let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("(none)", |m| m.as_str());
            let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
            let forwarded = request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
            let client = peer.map(|peer| proxies.client_address(peer, forwarded).to_string()).unwrap_or_default();
            let id = guichet_core::token::hex(&guichet_core::token::random_bytes::<8>());
            tracing::info_span!("request", method = %request.method(), route, request_id = %id, client = %client)
        })
        .on_request(())
        .on_response(
            |response: &axum::http::Response<axum::body::Body>, latency: std::time::Duration, _: &tracing::Span| {
                let duration_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
                tracing::info!(target: "guichet::access", status = response.status().as_u16(), duration_ms, "request");
            },
        )
        .on_body_chunk(())
        .on_eos(())
        .on_failure(());
    router.layer(middleware::from_fn(count_request)).layer(layer)
}

/// Counts the request by route template and status, with its duration (Prometheus,
/// when `GUICHET_METRICS_LISTEN` installed a recorder; nothing otherwise).
async fn count_request(request: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(none)".to_owned(), |m| m.as_str().to_owned());
    let method = method_label(request.method());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("guichet_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("guichet_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// While a newer guichet's schema is in the database, no form but logout: every other
/// `POST` gets a calm `503` (this instance would write with yesterday's rules). Pages
/// still read, and a session's idle time still moves.
fn paused_write(state: &AppState, request: &axum::extract::Request) -> Option<error::ErrorPage> {
    if !state.writes_paused.load(std::sync::atomic::Ordering::Acquire) {
        return None;
    }
    let reading =
        matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS);
    // Logging out ends a session on a shared computer: never refused.
    if reading || request.uri().path() == "/logout" {
        return None;
    }
    Some(
        error::ErrorPage::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "Mise à jour en cours",
            "Le service est en cours de mise à jour et ne peut pas enregistrer votre demande pour l'instant. \
             Réessayez dans quelques minutes.",
        )
        .retry_after(60),
    )
}

/// Whether a newer guichet migrated the database: sets or lifts the pause on writes
/// ([`AppState`]'s `writes_paused`), saying so once each way.
pub async fn check_schema(state: &AppState) {
    use std::sync::atomic::Ordering;
    let Ok(schema) = state.members.schema().await else { return };
    let ahead = schema == guichet_core::ports::Schema::Ahead;
    let was = state.writes_paused.swap(ahead, Ordering::AcqRel);
    if ahead && !was {
        tracing::error!(
            "the database is newer than this binary: a newer guichet migrated it; this instance takes no more writes until it is upgraded"
        );
    } else if was && !ahead {
        tracing::info!("the database schema is this binary's again: writes resume");
    }
}

/// The request method as a metric label: a closed set, so that made-up methods cannot
/// grow the registry (one series each, never released).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
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
