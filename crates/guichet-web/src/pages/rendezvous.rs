//! `/rendez-vous/{token}`: a proposed phone-call slot. Opening the link only shows it
//! (link scanners may open it); the button confirms it, once, whatever the clicks.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use guichet_core::desk::{CallSlot, Confirmation};
use guichet_core::token::PlainToken;

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
    state: SlotState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Open,
    Confirmed,
    Unavailable,
}

fn unknown() -> ErrorPage {
    ErrorPage::new(
        StatusCode::NOT_FOUND,
        "Lien inconnu",
        "Ce lien de rendez-vous n'existe pas ou plus. Écrivez à l'assistance en rappelant la référence de votre demande.",
    )
}

fn state_of(slot: &CallSlot, now: guichet_core::Timestamp) -> SlotState {
    if slot.confirmed_at.is_some() {
        SlotState::Confirmed
    } else if slot.withdrawn_at.is_some() || slot.starts_at <= now {
        SlotState::Unavailable
    } else {
        SlotState::Open
    }
}

async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Some(plain) = PlainToken::from_presented(&token) else { return Err(WebError::Page(unknown())) };
    let Some((slot, request)) = state.store.find_slot(&plain.hash()).await? else {
        return Err(WebError::Page(unknown()));
    };
    let zone = &state.settings.time_zone;
    let page = SlotPage {
        layout: Layout::for_visitor(&state, &visitor),
        token,
        when: guichet_core::french::slot(slot.starts_at, slot.ends_at, zone),
        reference: request.reference,
        state: state_of(&slot, state.clock.now()),
    };
    render(StatusCode::OK, &page)
}

async fn confirm(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let Some(confirmation) = state.desk.confirm_slot(&token).await? else { return Err(WebError::Page(unknown())) };
    let (slot, status) = match confirmation {
        Confirmation::Confirmed(slot) => {
            state.postman.wake();
            (slot, StatusCode::OK)
        }
        Confirmation::AlreadyConfirmed(slot) => (slot, StatusCode::OK),
        Confirmation::Unavailable(slot) => (slot, StatusCode::CONFLICT),
    };
    let request = state.store.find_request(slot.request_id).await?.map(|r| r.reference).unwrap_or_default();
    let zone = &state.settings.time_zone;
    let page = SlotPage {
        layout: Layout::for_visitor(&state, &visitor),
        token,
        when: guichet_core::french::slot(slot.starts_at, slot.ends_at, zone),
        reference: request,
        state: state_of(&slot, state.clock.now()),
    };
    render(status, &page)
}
