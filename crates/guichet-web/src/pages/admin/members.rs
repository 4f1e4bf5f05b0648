//! Members in the console: search, a member's page, and the desk's actions on it.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Redirect, Response};
use guichet_core::account::{Account, AccountId, Role};
use guichet_core::audit::{Actor, AuditEvent, AuditKind, RequestContext};
use guichet_core::french;
use guichet_core::mail::{MailKind, MailLogEntry};
use guichet_core::members::AddMemberError;
use guichet_core::ports::Conflict;
use serde::Deserialize;

use crate::client::Client;
use crate::error::{ErrorPage, WebError};
use crate::pages::{Admin, Form, Layout, Staff, render};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

#[derive(Template)]
#[template(path = "admin_members.html")]
struct SearchPage {
    layout: Layout,
    query: String,
    results: Vec<Account>,
    searched: bool,
}

pub async fn search(
    State(state): State<AppState>,
    Staff(staff): Staff,
    Query(query): Query<SearchQuery>,
) -> Result<Response, WebError> {
    let q: String = query.q.trim().chars().take(100).collect();
    let results = if q.is_empty() { Vec::new() } else { state.store.search_accounts(&q, 50).await? };
    render(StatusCode::OK, &SearchPage { layout: staff.layout, searched: !q.is_empty(), query: q, results })
}

/// An audit line as staff read it.
pub struct EventLine {
    at: String,
    what: &'static str,
    by: String,
    address: String,
    browser: String,
    detail: String,
}

impl EventLine {
    fn of(event: &AuditEvent, zone: &jiff::tz::TimeZone) -> Self {
        Self {
            at: french::date_time(event.at, zone),
            what: event.kind.label_fr(),
            by: match event.actor {
                Actor::Member => "le membre".into(),
                Actor::Staff(id) => format!("équipe n° {}", id.get()),
                Actor::Operator => "l'exploitant (ligne de commande)".into(),
                Actor::System => "guichet".into(),
            },
            address: event.context.address.map(|a| a.to_string()).unwrap_or_default(),
            browser: event.context.user_agent.clone().unwrap_or_default(),
            detail: event.detail.clone().unwrap_or_default(),
        }
    }
}

/// A mail log line.
pub struct MailLine {
    at: String,
    what: &'static str,
    to: String,
    state: &'static str,
    attempts: u32,
    answer: String,
}

impl MailLine {
    fn of(entry: &MailLogEntry, zone: &jiff::tz::TimeZone) -> Self {
        Self {
            at: french::date_time(entry.created_at, zone),
            what: entry.kind.label_fr(),
            to: entry.recipient.to_string(),
            state: match entry.state {
                guichet_core::mail::MailState::Pending => "en attente",
                guichet_core::mail::MailState::Sent => "remis au serveur",
                guichet_core::mail::MailState::Failed => "abandonné",
                guichet_core::mail::MailState::Skipped => "non envoyé",
            },
            attempts: entry.attempts,
            answer: entry.last_answer.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_member.html")]
struct MemberPage {
    layout: Layout,
    account: Account,
    is_admin: bool,
    locked_until: Option<String>,
    disabled: bool,
    last_login: Option<String>,
    pending_codes: u64,
    temporary_until: Option<String>,
    failures: Vec<EventLine>,
    events: Vec<EventLine>,
    mail: Vec<MailLine>,
    done: Option<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
}

fn done_message(done: &str) -> Option<&'static str> {
    Some(match done {
        "unlock" => "Compte réactivé.",
        "identifier" => "L'identifiant part vers l'adresse du compte.",
        "reset" => "Un code pour choisir un nouveau mot de passe part vers l'adresse du compte.",
        "temporary" => {
            "Un mot de passe temporaire part vers l'adresse du compte, avec l'identifiant. Personne d'autre ne le voit."
        }
        "details" => "Coordonnées enregistrées.",
        "disable" => "Compte désactivé ; ses sessions sont fermées.",
        "enable" => "Compte réactivé.",
        "role" => "Rôle modifié.",
        _ => return None,
    })
}

async fn account(state: &AppState, id: i64) -> Result<Account, WebError> {
    state.store.find_account(AccountId::from_stored(id)).await?.ok_or_else(|| {
        WebError::Page(ErrorPage::new(StatusCode::NOT_FOUND, "Compte introuvable", "Ce compte n'existe pas ou plus."))
    })
}

async fn member_page(
    state: &AppState,
    layout: Layout,
    is_admin: bool,
    account: Account,
    done: Option<&'static str>,
    error: Option<String>,
) -> Result<MemberPage, WebError> {
    let zone = &state.settings.time_zone;
    let now = state.clock.now();
    let events = state.store.account_events(account.id, 100).await?;
    let failures = events
        .iter()
        .take_while(|e| !matches!(e.kind, AuditKind::LoginSucceeded | AuditKind::AccountUnlocked))
        .filter(|e| matches!(e.kind, AuditKind::LoginFailed | AuditKind::LoginRefusedLocked))
        .map(|e| EventLine::of(e, zone))
        .collect();
    let mail = state.store.account_mail(account.id, 30).await?.iter().map(|m| MailLine::of(m, zone)).collect();
    Ok(MemberPage {
        layout,
        is_admin,
        locked_until: account.locked_until.filter(|u| *u > now).map(|u| french::date_time(u, zone)),
        disabled: account.disabled_at.is_some(),
        last_login: account.last_login_at.map(|at| french::date_time(at, zone)),
        pending_codes: state.store.pending_codes(account.id, now).await?,
        temporary_until: account.password_expires_at.map(|at| french::date_time(at, zone)),
        failures,
        events: events.iter().map(|e| EventLine::of(e, zone)).collect(),
        mail,
        done,
        error,
        account,
    })
}

pub async fn show(
    State(state): State<AppState>,
    Staff(staff): Staff,
    Path(id): Path<i64>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let account = account(&state, id).await?;
    let is_admin = staff.account.role == Role::Admin;
    let page = member_page(&state, staff.layout, is_admin, account, done_message(&done.done), None).await?;
    render(StatusCode::OK, &page)
}

fn back(id: i64, done: &str) -> Response {
    Redirect::to(&format!("/admin/members/{id}?done={done}")).into_response()
}

pub async fn unlock(
    State(state): State<AppState>,
    Staff(staff): Staff,
    Client(context): Client,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let account = account(&state, id).await?;
    state.members.unlock(account.identifier.as_str(), Actor::Staff(staff.account.id), context).await.map_err(|e| {
        match e {
            guichet_core::members::MemberError::Store(error) => WebError::Store(error),
            guichet_core::members::MemberError::Unknown(_) => WebError::Internal("the account vanished"),
        }
    })?;
    Ok(back(id, "unlock"))
}

async fn send(
    state: &AppState,
    staff: &Account,
    context: &RequestContext,
    id: i64,
    kind: MailKind,
    done: &str,
) -> Result<Response, WebError> {
    let account = account(state, id).await?;
    state.desk.send(&account, kind, Actor::Staff(staff.id), context).await?;
    state.postman.wake();
    Ok(back(id, done))
}

pub async fn send_identifier(
    State(state): State<AppState>,
    Staff(staff): Staff,
    Client(context): Client,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    send(&state, &staff.account, &context, id, MailKind::ForgotIdentifier, "identifier").await
}

pub async fn send_reset_code(
    State(state): State<AppState>,
    Staff(staff): Staff,
    Client(context): Client,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    send(&state, &staff.account, &context, id, MailKind::PasswordReset, "reset").await
}

pub async fn temporary_password(
    State(state): State<AppState>,
    Staff(staff): Staff,
    Client(context): Client,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    send(&state, &staff.account, &context, id, MailKind::TemporaryPassword, "temporary").await
}

#[derive(Deserialize)]
pub struct DetailsForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
}

pub async fn details(
    State(state): State<AppState>,
    Staff(staff): Staff,
    Client(context): Client,
    Path(id): Path<i64>,
    Form(form): Form<DetailsForm>,
) -> Result<Response, WebError> {
    let account = account(&state, id).await?;
    let error = match state.desk.update_details(&account, &form.email, &form.name, staff.account.id, &context).await {
        Ok(()) => return Ok(back(id, "details")),
        Err(AddMemberError::Taken(Conflict::Email)) => "cette adresse est déjà celle d'un autre compte".to_owned(),
        Err(AddMemberError::Store(error)) => return Err(error.into()),
        Err(other) => {
            other.to_string() + &std::error::Error::source(&other).map(|s| format!(" : {s}")).unwrap_or_default()
        }
    };
    let is_admin = staff.account.role == Role::Admin;
    let page = member_page(&state, staff.layout, is_admin, account, None, Some(error)).await?;
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

pub async fn disable(
    State(state): State<AppState>,
    Staff(staff): Staff,
    Client(context): Client,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let account = account(&state, id).await?;
    state.desk.set_disabled(account.id, true, staff.account.id, &context).await?;
    Ok(back(id, "disable"))
}

pub async fn enable(
    State(state): State<AppState>,
    Staff(staff): Staff,
    Client(context): Client,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let account = account(&state, id).await?;
    state.desk.set_disabled(account.id, false, staff.account.id, &context).await?;
    Ok(back(id, "enable"))
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// Only administrators manage roles: the `Admin` extractor refuses the others.
pub async fn role(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Client(context): Client,
    Path(id): Path<i64>,
    Form(form): Form<RoleForm>,
) -> Result<Response, WebError> {
    let account = account(&state, id).await?;
    let role = Role::parse(&form.role)
        .map_err(|e| WebError::Page(ErrorPage::new(StatusCode::UNPROCESSABLE_ENTITY, "Rôle inconnu", e.to_string())))?;
    state.desk.set_role(&account, role, admin.account.id, &context).await?;
    Ok(back(id, "role"))
}
