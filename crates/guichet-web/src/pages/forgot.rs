//! "Forgot identifier", "forgot password" and the code form.
//!
//! The requests answer the same page, with the same status, after the same work (one
//! row queued), whether or not the address belongs to an account: the postman matches
//! it to an account later, out of the request's sight.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use guichet_core::codes::CodeError;
use guichet_core::french;
use guichet_core::recovery::{RequestError, ResetError};
use secrecy::SecretString;
use serde::Deserialize;

use crate::client::Client;
use crate::cookies::Cookie;
use crate::error::{ErrorPage, WebError, busy};
use crate::pages::{Form, Layout, render, secret, sentence};
use crate::state::AppState;
use crate::visitor::Visitor;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/forgot-identifier", get(show_identifier).post(request_identifier))
        .route("/forgot-password", get(show_password).post(request_password))
        .route("/reset-password", get(show_reset).post(reset))
}

/// What people type is echoed back, but never more than this.
const ECHO_MAX: usize = 254;

fn echo(typed: &str) -> String {
    typed.trim().chars().take(ECHO_MAX).collect()
}

/// The two "forgot" pages: one form (an address), one answer for known and unknown
/// addresses alike; they differ in what they send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forgot {
    Identifier,
    Password,
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    layout: Layout,
    /// `/forgot-identifier` rather than `/forgot-password`.
    identifier: bool,
    email: String,
    error: Option<String>,
    /// The identifier's answer (the password's is the code form).
    sent: bool,
}

impl ForgotPage {
    fn new(forgot: Forgot, layout: Layout, email: String, error: Option<String>) -> Self {
        Self { layout, identifier: forgot == Forgot::Identifier, email, error, sent: false }
    }
}

#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    email: String,
    /// The "send me a new code" button of the code form sends the old code instead.
    #[serde(default)]
    code: String,
}

async fn show(state: AppState, visitor: Visitor, forgot: Forgot) -> Result<Response, WebError> {
    render(StatusCode::OK, &ForgotPage::new(forgot, Layout::for_visitor(&state, &visitor), String::new(), None))
}

async fn show_identifier(State(state): State<AppState>, visitor: Visitor) -> Result<Response, WebError> {
    show(state, visitor, Forgot::Identifier).await
}

async fn show_password(State(state): State<AppState>, visitor: Visitor) -> Result<Response, WebError> {
    show(state, visitor, Forgot::Password).await
}

/// A request's answer: `sent` when it went through (the same for any address), the
/// form again with why it was refused, or "too many".
fn answer(
    forgot: Forgot,
    layout: Layout,
    email: String,
    requested: Result<(), RequestError>,
    sent: impl FnOnce(Layout, String) -> Result<Response, WebError>,
) -> Result<Response, WebError> {
    match requested {
        Ok(()) => sent(layout, email),
        Err(RequestError::Email(error)) => {
            let page = ForgotPage::new(forgot, layout, email, Some(sentence(error)));
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(RequestError::TooMany) => Ok(too_many()),
        Err(RequestError::Store(error)) => Err(error.into()),
    }
}

async fn request_identifier(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    Form(form): Form<EmailForm>,
) -> Result<Response, WebError> {
    let layout = Layout::for_visitor(&state, &visitor);
    let requested = state.recovery.request_identifier(&form.email, &context).await;
    answer(Forgot::Identifier, layout, echo(&form.email), requested, |layout, email| {
        let page = ForgotPage { sent: true, ..ForgotPage::new(Forgot::Identifier, layout, email, None) };
        render(StatusCode::OK, &page)
    })
}

fn too_many() -> Response {
    ErrorPage::new(
        StatusCode::TOO_MANY_REQUESTS,
        "Trop de demandes",
        "Beaucoup de demandes sont parties de votre réseau dans l'heure. Réessayez plus tard, ou écrivez à l'assistance.",
    )
    .retry_after(3600)
    .into_response()
}

async fn request_password(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    Form(form): Form<EmailForm>,
) -> Result<Response, WebError> {
    let layout = Layout::for_visitor(&state, &visitor);
    let requested = if form.email.trim().is_empty() && !form.code.trim().is_empty() {
        match state.recovery.count_request(&context).await {
            Ok(()) => state.recovery.request_reset_from_code(&form.code).await.map_err(RequestError::from),
            Err(error) => Err(error),
        }
    } else {
        state.recovery.request_reset(&form.email, &context).await
    };
    answer(Forgot::Password, layout, echo(&form.email), requested, |layout, email| {
        let page = ResetPage::new(&state, layout, String::new(), Problem::None);
        render(StatusCode::OK, &ResetPage { just_sent: true, email, ..page })
    })
}

/// What went wrong with the code form.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    None,
    /// The code: invalid, used or expired.
    Code(CodeError),
    /// The new password.
    Password(String),
}

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPage {
    layout: Layout,
    code: String,
    problem: Problem,
    just_sent: bool,
    email: String,
    code_ttl: String,
    min_length: usize,
}

impl ResetPage {
    fn new(state: &AppState, layout: Layout, code: String, problem: Problem) -> Self {
        Self {
            layout,
            code,
            problem,
            just_sent: false,
            email: String::new(),
            code_ttl: french::duration(state.postman.policy().reset_code_ttl),
            min_length: state.recovery.password_policy().min_length,
        }
    }

    fn code_error(&self) -> Option<String> {
        match &self.problem {
            Problem::Code(error) => Some(sentence(error)),
            _ => None,
        }
    }

    fn password_error(&self) -> Option<&str> {
        match &self.problem {
            Problem::Password(message) => Some(message),
            _ => None,
        }
    }

    /// An expired code: the page offers a new one for it (a used one only leads to the
    /// request form, see `Recovery::request_reset_from_code`).
    fn offers_new_code(&self) -> bool {
        matches!(self.problem, Problem::Code(CodeError::Expired))
    }
}

#[derive(Deserialize)]
struct CodeQuery {
    #[serde(default)]
    code: String,
}

/// Opening the emailed link: the form with the code filled in. It reads nothing and
/// changes nothing, so link scanners and previews may open it as often as they like.
async fn show_reset(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<CodeQuery>,
) -> Result<Response, WebError> {
    let page = ResetPage::new(&state, Layout::for_visitor(&state, &visitor), echo(&query.code), Problem::None);
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    code: String,
    #[serde(default, deserialize_with = "secret")]
    new_password: SecretString,
    #[serde(default, deserialize_with = "secret")]
    new_password_confirm: SecretString,
}

async fn reset(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    Form(form): Form<ResetForm>,
) -> Result<Response, WebError> {
    let layout = Layout::for_visitor(&state, &visitor);
    let code = echo(&form.code);
    let problem = match state.recovery.reset(&form.code, form.new_password, &form.new_password_confirm, &context).await
    {
        Ok(account) => {
            // The login page after it names the account, for a member who forgot both.
            // The password is changed: a failed read only leaves the form empty.
            let identifier = match state.members.find_by_id(account).await {
                Ok(Some(account)) => form_urlencoded::byte_serialize(account.identifier.as_str().as_bytes()).collect(),
                Ok(None) => String::new(),
                Err(error) => {
                    tracing::warn!(%error, "the account was not read back after its reset");
                    String::new()
                }
            };
            let jar = &state.settings.cookies;
            let notice = jar.set(Cookie::Notice, &format!("password_changed:{identifier}"));
            let login = HeaderValue::from_static("/login");
            return Ok((StatusCode::SEE_OTHER, [(LOCATION, login), (SET_COOKIE, notice)]).into_response());
        }
        Err(ResetError::Code(error)) => Problem::Code(error),
        Err(ResetError::Password(error)) => Problem::Password(sentence(error)),
        Err(error @ ResetError::Disabled) => Problem::Password(error.to_string()),
        Err(ResetError::Hash(guichet_core::hashing::HashError::Busy)) => return Ok(busy().into_response()),
        Err(ResetError::Hash(error)) => return Err(error.into()),
        Err(ResetError::Store(error)) => return Err(error.into()),
    };
    render(StatusCode::UNPROCESSABLE_ENTITY, &ResetPage::new(&state, layout, code, problem))
}
