//! "Mon espace": `GET /me`, the password change at `/me/password` (also the forced
//! change after a temporary password), ending one's other sessions, and the secours
//! address (`/me/recovery-email`, confirmed at `/me/recovery-email/confirm`).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse as _, Redirect, Response};
use axum::routing::{get, post};
use guichet_core::audit::AuditEvent;
use guichet_core::french as format;
use guichet_core::hashing::HashError;
use guichet_core::me::{ChangeError, RecoveryEmailChange, RecoveryEmailError};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::client::Client;
use crate::cookies::Cookie;
use crate::error::{WebError, busy};
use crate::pages::{
    Form, Layout, SignedIn, SignedInAnyway, allow_form_destination, form_destination, next_in_query, render, secret,
    see_other, sentence,
};
use crate::state::AppState;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(show))
        .route("/me/password", get(show_password).post(change_password))
        .route("/me/sessions", get(show_sessions))
        .route("/me/sessions/{handle}/end", post(end_session))
        .route("/me/sessions/end-others", post(end_other_sessions))
        .route("/me/recovery-email", post(set_recovery_email))
        .route("/me/recovery-email/confirm", get(show_confirm).post(confirm))
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
            what: crate::wording::event(event.kind),
            address: event.context.address.map(|a| a.to_string()).unwrap_or_default(),
            browser: event.context.user_agent.as_deref().map(crate::wording::browser).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "me.html")]
struct MePage {
    layout: Layout,
    identifier: String,
    name: String,
    /// Given and family names, when kept apart (as the applications receive them).
    given_name: String,
    family_name: String,
    email: String,
    greeting: String,
    signed_in_at: String,
    logins: Vec<Activity>,
    failures: Vec<Activity>,
    /// The confirmed secours address.
    recovery_email: Option<String>,
    /// One waiting for its code.
    recovery_pending: Option<String>,
    /// What the secours form had typed, when it is shown again.
    recovery_typed: String,
    recovery_error: Option<String>,
    /// The session's login is not recent: the secours form asks for the password.
    recovery_needs_password: bool,
    /// When the member's address last refused guichet's mail, if it refuses it now.
    mail_refused: Option<String>,
    /// When the account's asked erasure will be done.
    erase_at: Option<String>,
    /// The upstream identities linked to the account: provider id, name, subject,
    /// linked on, last used on.
    upstream_links: Vec<UpstreamRow>,
    /// The providers not linked yet: id and name.
    linkable: Vec<(String, String)>,
    /// What just happened.
    done: Option<String>,
}

/// An upstream link as Mon espace lists it.
struct UpstreamRow {
    id: String,
    name: String,
    subject: String,
    linked_at: String,
    used_at: String,
}

impl MePage {
    /// "3 essais ont échoué", agreed.
    fn failures_said(&self) -> String {
        match self.failures.len() {
            1 => "Un essai a échoué.".to_owned(),
            n => format!("{n} essais ont échoué."),
        }
    }
}

#[derive(Deserialize)]
struct Done {
    #[serde(default)]
    done: String,
    #[serde(default)]
    n: u64,
}

/// What the page confirms after an action (`?done=…`).
fn done_message(done: &Done) -> Option<String> {
    Some(match done.done.as_str() {
        "password" => {
            "Votre mot de passe est changé. Vos autres sessions ont été fermées, et un message vous le confirme."
                .to_owned()
        }
        "sessions" => match done.n {
            0 => "Aucune autre session n'était ouverte.".to_owned(),
            1 => "Votre autre session a été fermée.".to_owned(),
            n => format!("Vos {n} autres sessions ont été fermées."),
        },
        "secours" => "Votre adresse de secours est confirmée : les messages de secours y partiront aussi.".to_owned(),
        "secours-removed" => "Votre adresse de secours est retirée.".to_owned(),
        "email" => "Votre nouvelle adresse est enregistrée : les messages du site y partent désormais. L'ancienne adresse est prévenue.".to_owned(),
        "name" => "Votre nom est corrigé.".to_owned(),
        "erase-cancelled" => "L'effacement de votre compte est annulé : il reste ouvert.".to_owned(),
        "upstream" => "Le service d'identité est associé à votre compte : il vous fera entrer sans mot de passe. Un message vous le confirme.".to_owned(),
        "upstream-removed" => "Le service d'identité est retiré : il n'ouvre plus votre compte.".to_owned(),
        _ => return None,
    })
}

async fn me_page(state: &AppState, signed_in: SignedIn, done: Option<String>) -> Result<MePage, WebError> {
    let SignedIn { account, session, layout } = signed_in;
    let zone = &state.settings.time_zone;
    let activity = state.me.activity(account.id).await?;
    let logins: Vec<Activity> = activity.logins().take(10).map(|e| Activity::of(e, zone)).collect();
    // Failed attempts since the login before this session's: what happened while away.
    let failures =
        activity.failures_while_away(session.created_at).into_iter().take(20).map(|e| Activity::of(e, zone)).collect();
    // Read only where a provider is configured: most sites have none.
    let links =
        if state.upstreams.providers().is_empty() { Vec::new() } else { state.upstreams.links(account.id).await? };
    let upstream_links: Vec<UpstreamRow> = links
        .into_iter()
        .map(|link| UpstreamRow {
            name: state.upstreams.name_of(&link.upstream),
            id: link.upstream,
            subject: link.subject,
            linked_at: format::date_time(link.created_at, zone),
            used_at: link.last_used_at.map_or_else(|| "jamais".to_owned(), |at| format::date_time(at, zone)),
        })
        .collect();
    let linkable = state
        .upstreams
        .providers()
        .into_iter()
        .filter(|p| !upstream_links.iter().any(|l| l.id == p.id))
        .map(|p| (p.id, p.name))
        .collect();
    Ok(MePage {
        upstream_links,
        linkable,
        layout,
        identifier: account.identifier.to_string(),
        name: account.display_name.as_str().to_owned(),
        given_name: account.names.given.as_str().to_owned(),
        family_name: account.names.family.as_str().to_owned(),
        email: account.email.to_string(),
        greeting: account.greeting_name().to_owned(),
        signed_in_at: format::date_time(session.created_at, zone),
        logins,
        failures,
        recovery_email: account.recovery_email.as_ref().map(ToString::to_string),
        recovery_pending: account.recovery_email_pending.as_ref().map(ToString::to_string),
        recovery_typed: String::new(),
        recovery_error: None,
        recovery_needs_password: !state.me.recently_authenticated(&session),
        mail_refused: state.me.mail_refused(&account).await?.map(|at| format::date_time(at, zone)),
        erase_at: account.erase_at.map(|at| format::date_time(at, zone)),
        done,
    })
}

async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let page = me_page(&state, signed_in, done_message(&done)).await?;
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
        forced: signed_in.session.must_change_password,
        current_error: None,
        new_error: None,
        min_length: state.me.password_policy().min_length,
    };
    Ok(allow_form_destination(render(StatusCode::OK, &page)?, destination.as_ref()))
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
    let forced = session.must_change_password;
    let next = state.settings.return_hosts.accept(&form.next);
    // In a forced change (after a temporary password) the current one is not asked.
    let result = state
        .me
        .change_password(
            &account,
            &session,
            form.current_password,
            form.new_password,
            &form.new_password_confirm,
            &context,
        )
        .await;
    let (current_error, new_error) = match result {
        Ok(()) => {
            let mut response = see_other(next.as_deref().unwrap_or("/me?done=password"), "/me");
            if forced {
                // The session opened with a temporary password is replaced by a fresh one
                // (ASVS 7.2.4): whoever saw the old token has nothing.
                let (token, _) =
                    state.sessions.open(account.id, context, Some(&session.token_hash), false, session.factors).await?;
                let jar = &state.settings.cookies;
                response.headers_mut().append(axum::http::header::SET_COOKIE, jar.set(Cookie::Session, token.expose()));
                if jar.shares_a_pass() {
                    let pass = jar.set(Cookie::Pass, &state.sessions.pass(&token));
                    response.headers_mut().append(axum::http::header::SET_COOKIE, pass);
                }
            }
            return Ok(response);
        }
        Err(ChangeError::WrongCurrent) => (Some(ChangeError::WrongCurrent.to_string()), None),
        Err(error @ ChangeError::TooManyWrong) => {
            let page = crate::error::ErrorPage::new(StatusCode::UNAUTHORIZED, "Session fermée", error.to_string());
            let mut response = page.into_response();
            crate::pages::clear_session_cookies(&state, &mut response);
            return Ok(response);
        }
        Err(error @ ChangeError::TemporaryGone) => (None, Some(error.to_string())),
        Err(ChangeError::Password(error)) => (None, Some(sentence(error))),
        Err(ChangeError::Hash(HashError::Busy)) => return Ok(busy().into_response()),
        Err(ChangeError::Hash(error)) => return Err(error.into()),
        Err(ChangeError::Store(error)) => return Err(error.into()),
    };
    let min_length = state.me.password_policy().min_length;
    let next = next.unwrap_or_default();
    let destination = form_destination(&state, &next).await;
    let page = PasswordPage { layout, forced, current_error, new_error, min_length, next };
    Ok(allow_form_destination(render(StatusCode::UNPROCESSABLE_ENTITY, &page)?, destination.as_ref()))
}

/// A session as its list shows it.
struct Listed {
    handle: String,
    current: bool,
    browser: String,
    address: String,
    started: String,
    last_active: String,
    how: String,
}

#[derive(Template)]
#[template(path = "me_sessions.html")]
struct SessionsPage {
    layout: Layout,
    sessions: Vec<Listed>,
    ended: bool,
}

#[derive(Deserialize)]
struct SessionsQuery {
    #[serde(default)]
    done: Option<String>,
}

async fn show_sessions(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<SessionsQuery>,
) -> Result<Response, WebError> {
    let zone = &state.settings.time_zone;
    let idle = state.sessions.policy().idle;
    let sessions = state
        .me
        .sessions(signed_in.account.id)
        .await?
        .into_iter()
        .map(|open| {
            let session = &open.session;
            // The idle expiry is pushed back at each request (within a minute): the last
            // one was about one idle time before it.
            let active = (session.idle_expires_at - idle).max(session.created_at);
            Listed {
                handle: state.sessions.handle(&session.token_hash),
                current: session.token_hash == signed_in.session.token_hash,
                browser: open.user_agent.as_deref().map(crate::wording::browser).unwrap_or_default(),
                address: open.address.unwrap_or_default(),
                started: format::date_time(session.created_at, zone),
                last_active: format::date_time(active, zone),
                how: match session.factors.upstream {
                    Some(vouched) => state.upstreams.name_of(vouched.by.as_str()),
                    None => crate::wording::factors(session.factors, session.must_change_password).to_owned(),
                },
            }
        })
        .collect();
    let ended = query.done.as_deref() == Some("ended");
    render(StatusCode::OK, &SessionsPage { layout: signed_in.layout, sessions, ended })
}

/// Ends one of the member's other sessions, named by its handle in the list.
async fn end_session(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    axum::extract::Path(handle): axum::extract::Path<String>,
) -> Result<Response, WebError> {
    let is_target = |hash: &guichet_core::token::TokenHash| state.sessions.handle(hash) == handle;
    let ended = state.me.end_session(signed_in.account.id, &signed_in.session, is_target, &context).await?;
    if ended {
        state.messenger.signal().notify_one();
        return Ok(Redirect::to("/me/sessions?done=ended").into_response());
    }
    // Gone already (ended elsewhere, expired) or never one of the member's: the list again.
    Ok(Redirect::to("/me/sessions").into_response())
}

async fn end_other_sessions(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
) -> Result<Response, WebError> {
    let ended = state.me.end_other_sessions(signed_in.account.id, &signed_in.session, &context).await?;
    Ok(Redirect::to(&format!("/me?done=sessions&n={ended}")).into_response())
}

#[derive(Deserialize)]
struct RecoveryEmailForm {
    #[serde(default)]
    email: String,
    /// Asked when the session's login is not recent.
    #[serde(default, deserialize_with = "secret")]
    current_password: SecretString,
}

async fn set_recovery_email(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Form(form): Form<RecoveryEmailForm>,
) -> Result<Response, WebError> {
    let current = Some(form.current_password).filter(|p| !p.expose_secret().is_empty());
    let changed = state.me.set_recovery_email(&signed_in.account, &signed_in.session, &form.email, current, &context);
    let error = match changed.await {
        Ok(RecoveryEmailChange::Proposed(_)) => {
            return Ok(Redirect::to("/me/recovery-email/confirm").into_response());
        }
        Ok(RecoveryEmailChange::Removed) => {
            return Ok(Redirect::to("/me?done=secours-removed").into_response());
        }
        Ok(RecoveryEmailChange::Unchanged) => return Ok(Redirect::to("/me").into_response()),
        Err(RecoveryEmailError::Store(error)) => return Err(error.into()),
        Err(RecoveryEmailError::Hash(HashError::Busy)) => return Ok(busy().into_response()),
        Err(RecoveryEmailError::Hash(error)) => return Err(error.into()),
        Err(error) => error.to_string(),
    };
    let mut page = me_page(&state, signed_in, None).await?;
    page.recovery_typed = form.email.trim().chars().take(254).collect();
    page.recovery_error = Some(sentence(&error));
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

/// What a code confirms: a secours address, or a new own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirming {
    /// `/me/recovery-email/confirm`.
    Secours,
    /// `/me/email/confirm`.
    OwnAddress,
}

/// The form for a code mailed to an address waiting for confirmation; opening the
/// mailed link fills it in and changes nothing.
#[derive(Template)]
#[template(path = "me_code_confirm.html")]
pub(crate) struct CodePage {
    layout: Layout,
    title: &'static str,
    action: &'static str,
    /// Said when no address waits, with where to propose one.
    nothing: &'static str,
    elsewhere: (&'static str, &'static str),
    pending: Option<String>,
    code: String,
    error: Option<String>,
}

impl CodePage {
    /// The page for `signed_in`'s address waiting for `what`, with what was typed.
    pub(crate) fn new(what: Confirming, signed_in: SignedIn, typed: &str, error: Option<String>) -> Self {
        let SignedIn { account, layout, .. } = signed_in;
        let code = typed.trim().chars().take(64).collect();
        let pending = match what {
            Confirming::Secours => account.recovery_email_pending.as_ref(),
            Confirming::OwnAddress => account.email_pending.as_ref(),
        }
        .map(ToString::to_string);
        let (title, action, nothing, elsewhere) = match what {
            Confirming::Secours => (
                "Confirmer l'adresse de secours",
                "/me/recovery-email/confirm",
                "Aucune adresse de secours n'attend de confirmation.",
                ("/me#secours", "Indiquer une adresse de secours"),
            ),
            Confirming::OwnAddress => (
                "Confirmer la nouvelle adresse",
                "/me/email/confirm",
                "Aucune nouvelle adresse n'attend de confirmation.",
                ("/me/details", "Changer mon adresse"),
            ),
        };
        Self { layout, title, action, nothing, elsewhere, pending, code, error }
    }
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    #[serde(default)]
    pub(crate) code: String,
}

async fn show_confirm(signed_in: SignedIn, Query(query): Query<CodeForm>) -> Result<Response, WebError> {
    render(StatusCode::OK, &CodePage::new(Confirming::Secours, signed_in, &query.code, None))
}

async fn confirm(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Form(form): Form<CodeForm>,
) -> Result<Response, WebError> {
    match state.me.confirm_recovery_email(&signed_in.account, &form.code, &context).await? {
        Ok(_) => Ok(Redirect::to("/me?done=secours").into_response()),
        Err(why) => {
            let page = CodePage::new(Confirming::Secours, signed_in, &form.code, Some(sentence(why)));
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}
