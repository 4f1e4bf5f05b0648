//! "Mon espace": `GET /me`, the password change at `/me/password` (also the forced
//! change after a temporary password), and ending one's other sessions.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse as _, Redirect, Response};
use axum::routing::{get, post};
use guichet_core::audit::AuditEvent;
use guichet_core::french as format;
use guichet_core::hashing::HashError;
use guichet_core::me::ChangeError;
use secrecy::SecretString;
use serde::Deserialize;

use crate::client::Client;
use crate::error::{WebError, busy};
use crate::pages::{
    Form, Layout, SignedIn, SignedInAnyway, allow_form_destination, form_destination, next_in_query, render, secret,
    see_other,
};
use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(show))
        .route("/me/password", get(show_password).post(change_password))
        .route("/me/sessions/end-others", post(end_other_sessions))
}

/// A line of the recent activity.
struct Activity {
    at: String,
    what: &'static str,
    address: String,
    browser: String,
}

impl Activity {
    fn of(event: &AuditEvent, zone: &jiff::tz::TimeZone) -> Self {
        Self {
            at: format::date_time(event.at, zone),
            what: event.kind.label_fr(),
            address: event.context.address.map(|a| a.to_string()).unwrap_or_default(),
            browser: event.context.user_agent.clone().unwrap_or_default(),
        }
    }
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
    logins: Vec<Activity>,
    failures: Vec<Activity>,
}

async fn show(State(state): State<AppState>, signed_in: SignedIn) -> Result<Response, WebError> {
    let SignedIn { account, session, layout } = signed_in;
    let zone = &state.settings.time_zone;
    let activity = state.me.activity(account.id).await?;
    let logins: Vec<Activity> = activity.logins().take(10).map(|e| Activity::of(e, zone)).collect();
    // Failed attempts since the login before this one: what happened while away.
    let failures = activity.failures_since_login(1).into_iter().take(20).map(|e| Activity::of(e, zone)).collect();
    let page = MePage {
        layout,
        identifier: account.identifier.to_string(),
        name: account.display_name.as_str().to_owned(),
        email: account.email.to_string(),
        greeting: account.greeting_name().to_owned(),
        signed_in_at: format::date_time(session.created_at, zone),
        logins,
        failures,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "me_password.html")]
struct PasswordPage {
    layout: Layout,
    forced: bool,
    current_error: Option<String>,
    new_error: Option<String>,
    min_length: usize,
    /// Where to go once the password is changed (already checked).
    next: String,
}

async fn show_password(
    State(state): State<AppState>,
    SignedInAnyway(signed_in): SignedInAnyway,
    uri: Uri,
) -> Result<Response, WebError> {
    let next = next_in_query(&state, &uri).unwrap_or_default();
    let destination = form_destination(&state, &next).await;
    let page = PasswordPage {
        next,
        layout: signed_in.layout,
        forced: signed_in.account.must_change_password,
        current_error: None,
        new_error: None,
        min_length: state.me.password_policy().min_length,
    };
    Ok(allow_form_destination(render(StatusCode::OK, &page)?, destination.as_deref()))
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default, deserialize_with = "secret")]
    current_password: SecretString,
    #[serde(default, deserialize_with = "secret")]
    new_password: SecretString,
    #[serde(default, deserialize_with = "secret")]
    new_password_confirm: SecretString,
    #[serde(default)]
    next: String,
}

async fn change_password(
    State(state): State<AppState>,
    signed_in: SignedInAnyway,
    Client(context): Client,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    let SignedInAnyway(SignedIn { account, session, layout }) = signed_in;
    let forced = account.must_change_password;
    let next = state.settings.return_hosts.accept(&form.next);
    // In a forced change (after a temporary password) the current one is not asked.
    let current = (!forced).then_some(form.current_password);
    let result = state
        .me
        .change_password(&account, &session, current, form.new_password, &form.new_password_confirm, &context)
        .await;
    let (current_error, new_error) = match result {
        Ok(()) => {
            state.postman.wake();
            return Ok(see_other(next.as_deref().unwrap_or("/me"), "/me"));
        }
        Err(ChangeError::WrongCurrent) => (Some(ChangeError::WrongCurrent.to_string()), None),
        Err(ChangeError::Password(error)) => (None, Some(error.to_string())),
        Err(ChangeError::Hash(HashError::Busy)) => return Ok(busy().into_response()),
        Err(ChangeError::Hash(error)) => return Err(error.into()),
        Err(ChangeError::Store(error)) => return Err(error.into()),
    };
    let min_length = state.me.password_policy().min_length;
    let next = next.unwrap_or_default();
    let destination = form_destination(&state, &next).await;
    let page = PasswordPage { layout, forced, current_error, new_error, min_length, next };
    Ok(allow_form_destination(render(StatusCode::UNPROCESSABLE_ENTITY, &page)?, destination.as_deref()))
}

async fn end_other_sessions(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
) -> Result<Response, WebError> {
    state.me.end_other_sessions(signed_in.account.id, &signed_in.session, &context).await?;
    Ok(Redirect::to("/me").into_response())
}
