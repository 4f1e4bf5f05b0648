//! `GET /me`: "Mon espace".

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use guichet_core::audit::AuditKind;

use crate::error::WebError;
use crate::pages::{Layout, SignedIn, render};
use crate::state::AppState;
use guichet_core::french as format;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/me", get(show))
}

#[derive(Template)]
#[template(path = "me.html")]
struct MePage {
    layout: Layout,
    identifier: String,
    name: String,
    email: String,
    greeting: String,
    signed_in_at: String,
    previous_login: Option<String>,
}

async fn show(State(state): State<AppState>, signed_in: SignedIn) -> Result<Response, WebError> {
    let SignedIn { account, session, layout } = signed_in;
    let zone = &state.settings.time_zone;
    let events = state.store.account_events(account.id, 50).await?;
    // The newest success is this session's own login; the one before is the previous.
    let previous_login = events
        .iter()
        .filter(|e| e.kind == AuditKind::LoginSucceeded && e.at < session.created_at)
        .map(|e| format::date_time(e.at, zone))
        .next();
    let page = MePage {
        layout,
        identifier: account.identifier.to_string(),
        name: account.display_name.as_str().to_owned(),
        email: account.email.to_string(),
        greeting: account.greeting_name().to_owned(),
        signed_in_at: format::date_time(session.created_at, zone),
        previous_login,
    };
    render(StatusCode::OK, &page)
}
