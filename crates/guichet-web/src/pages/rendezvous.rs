//! `/rendez-vous/{token}`: a proposed phone-call slot. Opening the link only shows it
//! (link scanners may open it); the button confirms it, once, whatever the clicks.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use guichet_core::desk::{Confirmation, SlotState, SlotView};

use crate::error::{ErrorPage, WebError};
use crate::pages::{Layout, render};
use crate::state::AppState;
use crate::visitor::Visitor;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/rendez-vous/{token}", get(show).post(confirm))
}

#[derive(Template)]
#[template(path = "rendezvous.html")]
struct SlotPage {
    layout: Layout,
    token: String,
    when: String,
    reference: String,
    phone: String,
    mailed: bool,
    state: SlotState,
}

fn unknown() -> ErrorPage {
    ErrorPage::new(
        StatusCode::NOT_FOUND,
        "Lien inconnu",
        "Ce lien de rendez-vous n'existe pas ou plus. Écrivez à l'assistance en rappelant la référence de votre demande.",
    )
}

fn page(state: &AppState, visitor: &Visitor, token: String, view: SlotView) -> SlotPage {
    SlotPage {
        layout: Layout::for_visitor(state, visitor),
        token,
        when: guichet_core::french::slot(view.slot.starts_at, view.slot.ends_at, &state.settings.time_zone),
        reference: view.reference,
        phone: view.phone,
        mailed: view.mailed,
        state: view.state,
    }
}

async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let view = state.desk.slot_by_link(&token).await?.ok_or(WebError::Page(unknown()))?;
    render(StatusCode::OK, &page(&state, &visitor, token, view))
}

async fn confirm(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let (confirmation, view) = state.desk.confirm_slot(&token).await?.ok_or(WebError::Page(unknown()))?;
    let status = match confirmation {
        Confirmation::Confirmed(_) => StatusCode::OK,
        Confirmation::AlreadyConfirmed(_) => StatusCode::OK,
        Confirmation::Unavailable(_) => StatusCode::CONFLICT,
    };
    render(status, &page(&state, &visitor, token, view))
}
