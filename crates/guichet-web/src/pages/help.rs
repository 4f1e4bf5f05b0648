//! `/aide/messagerie`: for a member's hospital IT department — who sends guichet's
//! mail, what to allowlist, and a text to forward. Written from the configuration.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::error::WebError;
use crate::pages::{Layout, render};
use crate::state::AppState;
use crate::visitor::Visitor;

/// The route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/aide/messagerie", get(show))
}

#[derive(Template)]
#[template(path = "help_mail.html")]
struct HelpPage {
    layout: Layout,
    from_address: String,
    from_domain: String,
    dkim: Option<(String, String)>,
    site_host: String,
    public_url: String,
    relay: Option<(String, Vec<String>)>,
    subjects: Vec<String>,
    assistance: Option<String>,
}

async fn show(State(state): State<AppState>, visitor: Visitor) -> Result<Response, WebError> {
    let help = &state.settings.mail_help;
    let public_url = state.settings.public_url.clone();
    let site_host =
        public_url.split("://").nth(1).unwrap_or(&public_url).split(['/', ':']).next().unwrap_or_default().to_owned();
    let page = HelpPage {
        layout: Layout::for_visitor(&state, &visitor),
        from_address: help.from_address.clone(),
        from_domain: help.from_domain.clone(),
        dkim: help.dkim.clone(),
        site_host,
        public_url,
        relay: help.relay.clone(),
        subjects: help.subjects.clone(),
        assistance: help.assistance.clone(),
    };
    render(StatusCode::OK, &page)
}
