//! `GET/POST /login` and `POST /logout`.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse as _, Redirect, Response};
use axum::routing::{get, post};
use guichet_core::login::{LoggedIn, LoginError};
use secrecy::SecretString;
use serde::Deserialize;

use crate::client::Client;
use crate::cookies::Cookie;
use crate::error::{WebError, busy};
use crate::pages::{Form, Layout, render, secret};
use crate::state::AppState;
use crate::visitor::Visitor;
use guichet_core::french as format;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/login", get(show).post(submit)).route("/logout", post(logout))
}

/// Why the form is shown again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// Any failed login: one message for all.
    Failed,
    /// Too many failures from this address.
    Throttled(String),
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    identifier: String,
    problem: Option<Problem>,
    threshold: u32,
    lock_duration: String,
    password_changed: bool,
}

impl LoginPage {
    fn new(state: &AppState, visitor: &Visitor, identifier: String, problem: Option<Problem>) -> Self {
        let policy = state.authenticator.lockout_policy();
        Self {
            layout: Layout::for_visitor(state, visitor),
            identifier,
            problem,
            threshold: policy.threshold,
            lock_duration: format::duration(policy.duration),
            password_changed: false,
        }
    }
}

async fn show(State(state): State<AppState>, visitor: Visitor, headers: HeaderMap) -> Result<Response, WebError> {
    if visitor.session.is_some() {
        return Ok(Redirect::to("/me").into_response());
    }
    let secure = state.settings.cookie_secure;
    let notice = Cookie::Notice.read(&headers, secure);
    let page = LoginPage {
        password_changed: notice.as_deref() == Some("password_changed"),
        ..LoginPage::new(&state, &visitor, String::new(), None)
    };
    let mut response = render(StatusCode::OK, &page)?;
    if notice.is_some() {
        response.headers_mut().append(SET_COOKIE, Cookie::Notice.clear(secure));
    }
    Ok(response)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    identifier: String,
    #[serde(default, deserialize_with = "secret")]
    password: SecretString,
}

async fn submit(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    // Kept in the form when it is shown again; cut so that a pasted novel is not echoed.
    let typed: String = form.identifier.trim().chars().take(100).collect();
    let secure = state.settings.cookie_secure;
    let device = Cookie::Device.read(&headers, secure);
    match state.authenticator.login(&form.identifier, form.password, device.as_deref(), &context).await {
        Ok(LoggedIn { account, device_cookie }) => {
            let replacing = visitor.session.as_ref().map(|s| &s.token_hash);
            let (token, _) = state.sessions.open(account.id, context, replacing).await?;
            let target = if account.must_change_password { "/me/password" } else { "/me" };
            let session = Cookie::Session.set(token.expose(), secure);
            let lifetime = guichet_core::device::LIFETIME.as_secs();
            let device = Cookie::Device.set_lasting(&device_cookie, secure, lifetime);
            let cookies = AppendHeaders([(SET_COOKIE, session), (SET_COOKIE, device)]);
            Ok((StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static(target))], cookies).into_response())
        }
        Err(LoginError::InvalidCredentials) => {
            render(StatusCode::UNAUTHORIZED, &LoginPage::new(&state, &visitor, typed, Some(Problem::Failed)))
        }
        Err(LoginError::Throttled { retry_after }) => {
            let wait = format::duration(retry_after);
            let page = LoginPage::new(&state, &visitor, typed, Some(Problem::Throttled(wait)));
            let mut response = render(StatusCode::TOO_MANY_REQUESTS, &page)?;
            let seconds = u64::try_from(retry_after.as_secs()).unwrap_or(1).max(1);
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
            Ok(response)
        }
        Err(LoginError::Busy) => Ok(busy().into_response()),
        Err(LoginError::Store(error)) => Err(error.into()),
        Err(LoginError::Hash(error)) => Err(error.into()),
    }
}

async fn logout(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
) -> Result<Response, WebError> {
    if let Some(session) = &visitor.session {
        state.sessions.log_out(session, context).await?;
    }
    let clear = Cookie::Session.clear(state.settings.cookie_secure);
    Ok((StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static("/login")), (SET_COOKIE, clear)]).into_response())
}
