//! The second factor: the login's second step and the step up (`/login/second-factor`),
//! and the member's own page (`/me/second-factor`): enrolment with a QR code, backup
//! codes shown once, removal with the password typed again.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse as _, Redirect, Response};
use axum::routing::{get, post};
use guichet_core::codes::BackupCode;
use guichet_core::french as format;
use guichet_core::hashing::HashError;
use guichet_core::login::{PendingLogin, SECOND_STEP_FOR};
use guichet_core::me::ChangeError;
use guichet_core::second_factor::{Factors, SecondFactorError, Step, TotpEnrolment, TotpState, Typed};
use secrecy::SecretString;
use serde::Deserialize;

use crate::client::Client;
use crate::cookies::Cookie;
use crate::error::{WebError, busy};
use crate::pages::{Form, Layout, SignedIn, next_in_query, render, secret, see_other, sentence};
use crate::state::AppState;
use crate::visitor::Visitor;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login/second-factor", get(show_step).post(submit_step))
        .route("/me/second-factor", get(show_mine).post(confirm))
        .route("/me/second-factor/backup-codes", post(renew_codes))
        .route("/me/second-factor/remove", post(remove))
}

/// Who the second step is for: a login waiting for it, or a signed-in session that must
/// give it now (the console, an application or a prefix that requires one).
pub(crate) enum Stepping {
    Login(PendingLogin),
    StepUp(Box<guichet_core::session::Session>),
}

/// Why the code form is shown again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StepProblem {
    /// Wrong, used, or not a code.
    Wrong,
    /// Locked (until then, when known).
    Locked(Option<String>),
}

#[derive(Template)]
#[template(path = "login_second_factor.html")]
struct StepPage {
    layout: Layout,
    next: String,
    /// `next`, percent-encoded for the links between the two forms.
    next_encoded: String,
    problem: Option<StepProblem>,
    /// Shows the backup-code field first (the member asked for it).
    backup: bool,
    threshold: u32,
    lock_duration: String,
    step_up: bool,
    /// The account has a TOTP: the code form (and the backup codes).
    totp: bool,
    /// The account has keys, and keys are on: the key button.
    keys: bool,
}

pub(crate) async fn stepping(
    state: &AppState,
    visitor: &Visitor,
    headers: &HeaderMap,
) -> Result<Option<Stepping>, WebError> {
    let jar = &state.settings.cookies;
    if let Some(pending) =
        jar.read(Cookie::SecondStep, headers).and_then(|c| state.authenticator.pending_login(&c, &visitor.csrf_token))
    {
        return Ok(Some(Stepping::Login(pending)));
    }
    let Some(session) = &visitor.session else { return Ok(None) };
    if session.must_change_password || session.factors.has_second() {
        return Ok(None);
    }
    if !state.second_factors.status(session.account_id).await?.has_second() {
        return Ok(None);
    }
    Ok(Some(Stepping::StepUp(Box::new(session.clone()))))
}

/// The second step's page for `account`: the forms its factors call for.
async fn step_page(
    state: &AppState,
    visitor: &Visitor,
    account: guichet_core::account::AccountId,
    next: String,
    step_up: bool,
) -> Result<StepPage, WebError> {
    let status = state.second_factors.status(account).await?;
    let policy = state.authenticator.lockout_policy();
    Ok(StepPage {
        layout: Layout::for_visitor(state, visitor),
        next_encoded: form_urlencoded::byte_serialize(next.as_bytes()).collect(),
        next,
        problem: None,
        backup: false,
        threshold: policy.threshold,
        lock_duration: format::duration(policy.duration),
        step_up,
        totp: matches!(status.totp, TotpState::Active(_)),
        keys: status.keys > 0 && state.passkeys.is_some(),
    })
}

/// Renders the second step's page, with the key button's script when it has one.
fn render_step(status: StatusCode, page: &StepPage) -> Result<Response, WebError> {
    let response = render(status, page)?;
    Ok(if page.keys { crate::headers::allow_script(response) } else { response })
}

async fn show_step(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, WebError> {
    let next = next_in_query(&state, &uri).unwrap_or_default();
    let backup = query_value(&uri, "backup").is_some();
    let (account, step_up) = match stepping(&state, &visitor, &headers).await? {
        Some(Stepping::Login(pending)) => (pending.account, false),
        Some(Stepping::StepUp(session)) => (session.account_id, true),
        // Nothing waits: the login form (or straight on, for a session that needs nothing).
        None if visitor.session.is_some() => return Ok(see_other(if next.is_empty() { "/me" } else { &next }, "/me")),
        None => return Ok(Redirect::to("/login").into_response()),
    };
    let page = StepPage { backup, ..step_page(&state, &visitor, account, next, step_up).await? };
    render_step(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct StepForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    recovery_code: String,
    #[serde(default)]
    next: String,
}

async fn submit_step(
    State(state): State<AppState>,
    visitor: Visitor,
    Client(context): Client,
    headers: HeaderMap,
    Form(form): Form<StepForm>,
) -> Result<Response, WebError> {
    let next = state.settings.return_hosts.accept(&form.next);
    let jar = &state.settings.cookies;
    let stepping = stepping(&state, &visitor, &headers).await?;
    let (account, step) = match &stepping {
        Some(Stepping::Login(pending)) => (pending.account, pending.step()),
        // A step up from a live session is never let through a lock.
        Some(Stepping::StepUp(session)) => (session.account_id, Step::StepUp),
        None => {
            // The five minutes passed, or the cookie went: the password again.
            let mut response = Redirect::to("/login").into_response();
            response.headers_mut().append(SET_COOKIE, jar.clear(Cookie::SecondStep));
            return Ok(response);
        }
    };
    let typed =
        if form.recovery_code.trim().is_empty() { Typed::Code(&form.code) } else { Typed::Backup(&form.recovery_code) };
    let step_up = matches!(stepping, Some(Stepping::StepUp(_)));
    let problem = match state.second_factors.verify(account, typed, step, &context).await {
        Ok(factor) => {
            return match stepping {
                Some(Stepping::Login(pending)) => {
                    let factors = Factors::PASSWORD.and(factor);
                    let forced = pending.must_change_password;
                    let cookies =
                        session_cookies(&state, &visitor, &headers, pending.account, factors, forced, context).await?;
                    let mut response = see_other(&crate::pages::login::after_login(next.as_deref(), forced), "/me");
                    for cookie in cookies {
                        response.headers_mut().append(SET_COOKIE, cookie);
                    }
                    Ok(response)
                }
                Some(Stepping::StepUp(session)) => {
                    state.sessions.add_factor(&session, factor).await?;
                    Ok(see_other(next.as_deref().unwrap_or("/me"), "/me"))
                }
                None => Ok(Redirect::to("/login").into_response()),
            };
        }
        Err(SecondFactorError::Wrong { locked: None }) => StepProblem::Wrong,
        Err(SecondFactorError::Wrong { locked: Some(until) } | SecondFactorError::Locked { until: Some(until) }) => {
            StepProblem::Locked(Some(format::date_time(until, &state.settings.time_zone)))
        }
        Err(SecondFactorError::Locked { until: None }) => StepProblem::Locked(None),
        Err(SecondFactorError::NoFactor | SecondFactorError::StepUpFirst) => {
            // The factor was reset, or the password changed, meanwhile: the password again.
            let mut response = Redirect::to("/login").into_response();
            response.headers_mut().append(SET_COOKIE, jar.clear(Cookie::SecondStep));
            return Ok(response);
        }
        Err(SecondFactorError::Store(error)) => return Err(error.into()),
    };
    let status = match problem {
        StepProblem::Wrong => StatusCode::UNAUTHORIZED,
        StepProblem::Locked(_) => StatusCode::FORBIDDEN,
    };
    let page = StepPage {
        problem: Some(problem),
        backup: !form.recovery_code.trim().is_empty(),
        ..step_page(&state, &visitor, account, next.unwrap_or_default(), step_up).await?
    };
    render_step(status, &page)
}

/// The cookies of the session a second step (or a passkey alone) just completed: a fresh
/// token, the device's mark, the pass; the pending login's cookie goes.
pub(crate) async fn session_cookies(
    state: &AppState,
    visitor: &Visitor,
    headers: &HeaderMap,
    account: guichet_core::account::AccountId,
    factors: Factors,
    forced: bool,
    context: guichet_core::audit::RequestContext,
) -> Result<Vec<axum::http::HeaderValue>, WebError> {
    let jar = &state.settings.cookies;
    let replacing = visitor.session.as_ref().map(|s| &s.token_hash);
    let (token, _) = state.sessions.open(account, context, replacing, forced, factors).await?;
    let device = jar.read(Cookie::Device, headers);
    let device_cookie = state.authenticator.mark_device(device.as_deref(), account);
    let lifetime = guichet_core::device::LIFETIME.as_secs();
    let mut cookies = vec![
        jar.set(Cookie::Session, token.expose()),
        jar.set_lasting(Cookie::Device, &device_cookie, lifetime),
        jar.clear(Cookie::SecondStep),
    ];
    if jar.shares_a_pass() {
        cookies.push(jar.set(Cookie::Pass, &state.sessions.pass(&token)));
    }
    Ok(cookies)
}

/// The pending login's cookie, set after a right password for an account with a
/// second factor.
pub fn pending_cookie(state: &AppState, visitor: &Visitor, pending: &PendingLogin) -> axum::http::HeaderValue {
    let value = state.authenticator.pending_cookie(pending, &visitor.csrf_token);
    let lifetime = SECOND_STEP_FOR.as_secs();
    state.settings.cookies.set_lasting(Cookie::SecondStep, &value, lifetime)
}

#[derive(Template)]
#[template(path = "me_second_factor.html")]
struct MinePage {
    layout: Layout,
    /// Enrolment in progress: what to scan or type.
    enrolment: Option<TotpEnrolment>,
    /// Active since then.
    active_since: Option<String>,
    backup_codes_left: u32,
    /// Codes to show once (just made).
    codes: Vec<String>,
    /// Staff required to have one: said on the page.
    required: bool,
    next: String,
    code_error: Option<String>,
    password_error: Option<String>,
    removed: bool,
    /// The account's keys.
    keys: Vec<KeyLine>,
    /// Keys are on: the button to add one.
    passkeys: bool,
    /// What was just done to a key.
    key_notice: Option<&'static str>,
}

/// A key as the page lists it.
struct KeyLine {
    id: String,
    name: String,
    added: String,
    used: Option<String>,
}

/// The first value of `name` in the page's query.
fn query_value(uri: &Uri, name: &str) -> Option<String> {
    let query = uri.query().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// Where a session goes that must give the account's second factor before changing it.
const STEP_UP_FIRST: &str = "/login/second-factor?next=%2Fme%2Fsecond-factor";

/// A refused change to the factors, as the page's answer.
fn factor_error(error: SecondFactorError) -> WebError {
    match error {
        SecondFactorError::Store(error) => error.into(),
        SecondFactorError::StepUpFirst => WebError::GoFirst(STEP_UP_FIRST),
        _ => WebError::GoFirst("/me/second-factor"),
    }
}

async fn mine_page(state: &AppState, signed_in: SignedIn, next: String) -> Result<MinePage, WebError> {
    let status = state.second_factors.status(signed_in.account.id).await?;
    if status.has_second() && !signed_in.session.factors.has_second() {
        // A session without the account's second factor sees nothing of it to change.
        return Err(WebError::GoFirst(STEP_UP_FIRST));
    }
    let zone = &state.settings.time_zone;
    let (enrolment, active_since) = match status.totp {
        TotpState::Active(since) => (None, Some(format::date_time(since, zone))),
        TotpState::None | TotpState::Pending => {
            let begun = state.second_factors.begin_totp(&signed_in.account, &signed_in.session).await;
            (begun.map_err(factor_error)?, None)
        }
    };
    let required = signed_in.account.role.is_staff() && state.console.staff_rule_requires();
    let keys = match &state.passkeys {
        Some(passkeys) => passkeys.list(signed_in.account.id).await?,
        None => Vec::new(),
    };
    let keys = keys
        .into_iter()
        .map(|k| KeyLine {
            id: k.id,
            name: k.name,
            added: format::date_time(k.created_at, zone),
            used: k.last_used_at.map(|at| format::date_time(at, zone)),
        })
        .collect();
    Ok(MinePage {
        layout: signed_in.layout,
        enrolment,
        active_since,
        backup_codes_left: status.backup_codes_left,
        codes: Vec::new(),
        required,
        next,
        code_error: None,
        password_error: None,
        removed: false,
        keys,
        passkeys: state.passkeys.is_some(),
        key_notice: None,
    })
}

async fn show_mine(State(state): State<AppState>, signed_in: SignedIn, uri: Uri) -> Result<Response, WebError> {
    let next = next_in_query(&state, &uri).unwrap_or_default();
    let done = query_value(&uri, "done");
    let key_notice = match done.as_deref() {
        Some("key") => Some("La clé est ajoutée : elle vous servira à la prochaine connexion."),
        Some("key-removed") => {
            Some("La clé est retirée : elle n'ouvre plus votre compte. Un message vous le confirme.")
        }
        Some("key-password") => Some("La clé n'a pas été retirée : le mot de passe saisi n'est pas le bon."),
        _ => None,
    };
    let page = MinePage {
        removed: done.as_deref() == Some("removed"),
        key_notice,
        ..mine_page(&state, signed_in, next).await?
    };
    render_mine(StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

/// The first code confirms the enrolment: the session counts as signed in with the
/// second factor (the member just proved they hold it), and the backup codes are shown.
async fn confirm(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, WebError> {
    let next = state.settings.return_hosts.accept(&form.next).unwrap_or_default();
    match state.second_factors.confirm_totp(&signed_in.session, &form.code, &context).await {
        Ok(codes) => {
            let mut signed_in = signed_in;
            if !signed_in.session.factors.has_second() {
                // The account's first factor: this session just proved it holds it.
                let totp = guichet_core::second_factor::SecondFactor::Totp;
                signed_in.session.factors = state.sessions.add_factor(&signed_in.session, totp).await?;
            }
            let page = MinePage { codes: grouped(&codes), ..mine_page(&state, signed_in, next).await? };
            render_mine(StatusCode::OK, &page)
        }
        Err(SecondFactorError::Wrong { .. }) => {
            let error = "Ce code ne correspond pas. Vérifiez l'heure du téléphone et tapez le code affiché maintenant.";
            let page = MinePage { code_error: Some(error.to_owned()), ..mine_page(&state, signed_in, next).await? };
            render_mine(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        // Confirmed already (a form sent twice): the page as it is.
        Err(error) => Err(factor_error(error)),
    }
}

/// Renders Mon espace's page, with the key button's script when keys are on.
fn render_mine(status: StatusCode, page: &MinePage) -> Result<Response, WebError> {
    let response = render(status, page)?;
    Ok(if page.passkeys { crate::headers::allow_script(response) } else { response })
}

fn grouped(codes: &[BackupCode]) -> Vec<String> {
    codes.iter().map(BackupCode::grouped).collect()
}

async fn renew_codes(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
) -> Result<Response, WebError> {
    match state.second_factors.renew_backup_codes(&signed_in.session, &context).await {
        Ok(codes) => {
            let page = MinePage { codes: grouped(&codes), ..mine_page(&state, signed_in, String::new()).await? };
            render_mine(StatusCode::OK, &page)
        }
        Err(error) => Err(factor_error(error)),
    }
}

/// The form of what weakens the account: the current password typed again.
#[derive(Deserialize)]
pub(crate) struct RemoveForm {
    #[serde(default, deserialize_with = "secret")]
    pub(crate) current_password: SecretString,
}

/// The current password typed again: the proof, or what to answer instead (`Err`): the
/// session ended after too many wrong ones, the hasher busy, or the reason it was refused.
pub(crate) async fn retyped(
    state: &AppState,
    signed_in: &SignedIn,
    password: SecretString,
    context: &guichet_core::audit::RequestContext,
) -> Result<Result<guichet_core::me::PasswordConfirmed, Result<Response, String>>, WebError> {
    match state.me.confirm_password(&signed_in.account, &signed_in.session, password, context).await {
        Ok(confirmed) => Ok(Ok(confirmed)),
        Err(ChangeError::TooManyWrong) => {
            let mut response = Redirect::to("/login").into_response();
            crate::pages::clear_session_cookies(state, &mut response);
            Ok(Err(Ok(response)))
        }
        Err(ChangeError::Hash(HashError::Busy)) => Ok(Err(Ok(busy().into_response()))),
        Err(ChangeError::Hash(error)) => Err(error.into()),
        Err(ChangeError::Store(error)) => Err(error.into()),
        Err(error) => Ok(Err(Err(sentence(error.to_string())))),
    }
}

async fn remove(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Form(form): Form<RemoveForm>,
) -> Result<Response, WebError> {
    let error = match retyped(&state, &signed_in, form.current_password, &context).await? {
        Ok(confirmed) => {
            let removed =
                state.second_factors.remove_own(confirmed, &signed_in.session, &context).await.map_err(factor_error)?;
            // Nothing to remove (a form sent twice): the page as it is, no notice.
            let to = if removed { "/me/second-factor?done=removed" } else { "/me/second-factor" };
            return Ok(Redirect::to(to).into_response());
        }
        Err(Ok(answer)) => return Ok(answer),
        Err(Err(error)) => error,
    };
    let page = MinePage { password_error: Some(error), ..mine_page(&state, signed_in, String::new()).await? };
    render_mine(StatusCode::UNPROCESSABLE_ENTITY, &page)
}
