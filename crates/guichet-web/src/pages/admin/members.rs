//! Members in the console: search, a member's page, and the desk's actions on it.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Redirect, Response};
use guichet_core::account::AccountState;
use guichet_core::account::{Account, AccountId, Role};
use guichet_core::audit::{Actor, AuditEvent};
use guichet_core::console::{AccountFilters, ConsoleAction, ConsoleError, MemberFile};
use guichet_core::french;
use guichet_core::groups::GroupName;
use guichet_core::mail::MailLogEntry;
use guichet_core::members::AddMemberError;
use guichet_core::ports::Conflict;
use serde::Deserialize;

use crate::client::Client;
use crate::error::{ErrorPage, WebError};
use crate::pages::{Form, Layout, Staff, render};
use crate::state::AppState;
use crate::wording;

/// The list's filters as the URL carries them; each left empty selects everyone.
#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    mail: String,
    #[serde(default)]
    page: String,
}

/// An account as listed.
pub struct ListedAccount {
    id: i64,
    identifier: String,
    name: String,
    /// HTML ([`wording::breakable`]).
    email: String,
    role: &'static str,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "admin_members.html")]
struct ListPage {
    layout: Layout,
    query: ListQuery,
    roles: [(&'static str, &'static str); 3],
    states: Vec<(&'static str, &'static str)>,
    groups: Vec<String>,
    accounts: Vec<ListedAccount>,
    total: u64,
    page: u64,
    pages: u64,
    /// The filters as a query string, to which the paging links add their page.
    filters: String,
    filtered: bool,
}

/// An account's state in the list.
fn state_label(state: AccountState) -> &'static str {
    match state {
        AccountState::Active => "actif",
        AccountState::Locked => "suspendu",
        AccountState::Disabled => "désactivé",
        AccountState::NeverSignedIn => "jamais connecté",
    }
}

fn unknown_filter() -> WebError {
    WebError::Page(ErrorPage::new(
        StatusCode::BAD_REQUEST,
        "Filtre inconnu",
        "Ce filtre n'existe pas. Choisissez-en un dans les listes de la page des comptes.",
    ))
}

/// The accounts, filtered and a page at a time. A filter the form does not offer is
/// refused (400), never read as "everyone".
pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let role = match query.role.as_str() {
        "" => None,
        raw => Some(Role::parse(raw).map_err(|_| unknown_filter())?),
    };
    let account_state = match query.state.as_str() {
        "" => None,
        raw => Some(AccountState::parse(raw).ok_or_else(unknown_filter)?),
    };
    let group = match query.group.as_str() {
        "" => None,
        raw => Some(GroupName::parse(raw).map_err(|_| unknown_filter())?),
    };
    let refused_mail = match query.mail.as_str() {
        "" => false,
        "refused" => true,
        _ => return Err(unknown_filter()),
    };
    let page = match query.page.as_str() {
        "" => 1,
        raw => raw.parse::<u64>().ok().filter(|p| (1..=1_000_000).contains(p)).ok_or_else(unknown_filter)?,
    };
    let filters = AccountFilters { text: query.q.clone(), role, state: account_state, group, refused_mail };
    let list = state.console.browse(filters, page).await?;
    let groups = state.groups.list().await?.into_iter().map(|g| g.name.to_string()).collect();
    let accounts = list
        .accounts
        .iter()
        .map(|(account, account_state)| ListedAccount {
            id: account.id.get(),
            identifier: account.identifier.to_string(),
            name: account.display_name.as_str().to_owned(),
            email: wording::breakable(account.email.as_str()),
            role: account.role.label_fr(),
            state: state_label(*account_state),
        })
        .collect();
    let mut filters = form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("q", &query.q),
        ("role", &query.role),
        ("state", &query.state),
        ("group", &query.group),
        ("mail", &query.mail),
    ] {
        if !value.is_empty() {
            filters.append_pair(key, value);
        }
    }
    let filters = filters.finish();
    let page = ListPage {
        layout: staff.layout,
        filtered: !filters.is_empty(),
        filters,
        roles: [Role::Member, Role::Assistance, Role::Admin].map(|r| (r.as_str(), r.label_fr())),
        states: AccountState::ALL.into_iter().map(|s| (s.as_str(), state_label(s))).collect(),
        groups,
        accounts,
        total: list.total,
        page: list.page,
        pages: list.pages,
        query,
    };
    render(StatusCode::OK, &page)
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
    fn of(event: &AuditEvent, zone: &jiff::tz::TimeZone, staff: &std::collections::HashMap<AccountId, String>) -> Self {
        Self {
            at: french::date_time(event.at, zone),
            what: wording::event(event.kind),
            by: wording::actor(event.actor, |id| staff.get(&id).cloned()),
            address: event.context.address.map(|a| a.to_string()).unwrap_or_default(),
            browser: event.context.user_agent.as_deref().map(wording::browser).unwrap_or_default(),
            detail: event.detail.as_ref().map(wording::detail).unwrap_or_default(),
        }
    }
}

/// A mail log line. `to` is HTML ([`wording::breakable`]).
pub struct MailLine {
    at: String,
    what: &'static str,
    to: String,
    state: &'static str,
    attempts: u32,
    answer: String,
}

impl MailLine {
    /// Mail to anything but the account's own address (its secours address) shows masked.
    fn of(entry: &MailLogEntry, zone: &jiff::tz::TimeZone, account: &Account) -> Self {
        Self {
            at: french::date_time(entry.created_at, zone),
            what: entry.kind.label_fr(),
            to: wording::breakable(&if entry.recipient == account.email {
                entry.recipient.to_string()
            } else {
                entry.recipient.masked()
            }),
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

/// Which actions the page offers: those the core allows this actor on this account.
#[derive(Debug, Clone, Copy, Default)]
struct Offers {
    unlock: bool,
    send_identifier: bool,
    send_reset_code: bool,
    temporary_password: bool,
    details: bool,
    disable: bool,
    enable: bool,
    role: bool,
    groups: bool,
    end_sessions: bool,
    reset_second_factor: bool,
    export: bool,
    erase: bool,
    unlink_upstream: bool,
}

impl Offers {
    fn of(allowed: &[ConsoleAction]) -> Self {
        let may = |action| allowed.contains(&action);
        Self {
            unlock: may(ConsoleAction::Unlock),
            send_identifier: may(ConsoleAction::SendIdentifier),
            send_reset_code: may(ConsoleAction::SendResetCode),
            temporary_password: may(ConsoleAction::IssueTemporaryPassword),
            details: may(ConsoleAction::ChangeDetails),
            disable: may(ConsoleAction::Disable),
            enable: may(ConsoleAction::Enable),
            role: allowed.iter().any(|a| matches!(a, ConsoleAction::ChangeRole(_))),
            groups: may(ConsoleAction::ChangeGroups),
            end_sessions: may(ConsoleAction::EndSessions),
            reset_second_factor: may(ConsoleAction::ResetSecondFactor),
            export: may(ConsoleAction::ExportData),
            erase: may(ConsoleAction::Erase),
            unlink_upstream: may(ConsoleAction::UnlinkUpstream),
        }
    }

    fn any(&self) -> bool {
        self.unlock || self.send_identifier || self.send_reset_code || self.temporary_password || self.disable
    }
}

#[derive(Template)]
#[template(path = "admin_member.html")]
struct MemberPage {
    layout: Layout,
    account: Account,
    offers: Offers,
    locked_until: Option<String>,
    disabled: bool,
    last_login: Option<String>,
    pending_codes: u64,
    temporary_until: Option<String>,
    /// What the temporary-password form says the page showed (see
    /// [`guichet_core::console::Console::hand_temporary_password`]).
    temporary_seen: String,
    recovery_email: Option<String>,
    /// The account's second factors, said for staff; `None` when it has none.
    second_factor: Option<String>,
    failures: Vec<EventLine>,
    events: Vec<EventLine>,
    mail: Vec<MailLine>,
    groups: Vec<String>,
    joinable: Vec<String>,
    done: Option<&'static str>,
    error: Option<String>,
    /// When the account's asked erasure will be done.
    erase_at: Option<String>,
    /// Between an erasure asked for and done.
    erasure_delay: String,
    /// The upstream identities linked: provider id, name, subject, linked on, last used.
    upstream_links: Vec<(String, String, String, String, String)>,
}

#[derive(Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
}

fn done_message(done: &str) -> Option<&'static str> {
    Some(match done {
        "unlock" => "Suspension levée : le membre peut se connecter dès maintenant avec son mot de passe.",
        "upstream-removed" => {
            "Le service d'identité est retiré du compte : il ne l'ouvre plus, les sessions ouvertes par lui sont fermées, et le numéro RPPS ne l'associe plus de lui-même."
        }
        "upstream-none" => "Ce service d'identité n'était plus associé au compte : rien n'a changé.",
        "identifier" => "L'identifiant part vers l'adresse du compte.",
        "reset" => "Un code pour choisir un nouveau mot de passe part vers l'adresse du compte.",
        "temporary" => {
            "Un mot de passe temporaire part vers l'adresse du compte, avec l'identifiant. Personne d'autre ne le voit. Si les messages n'arrivent pas au membre, créez-en plutôt un à lui transmettre vous-même."
        }
        "created-invited" => {
            "Compte créé. L'invitation part vers son adresse : le membre y trouvera un code pour choisir son mot de passe."
        }
        "created" => {
            "Compte créé, sans mot de passe pour l'instant : remettez au membre un mot de passe temporaire, ou envoyez-lui un code."
        }
        "details" => "Coordonnées enregistrées.",
        "erase" => "Effacement demandé : un message prévient la personne, qui peut encore l'annuler depuis Mon espace.",
        "erase-cancelled" => "L'effacement du compte est annulé.",
        "disable" => "Compte désactivé ; ses sessions sont fermées.",
        "sessions" => {
            "Toutes les sessions du compte sont terminées, et les applications qu'elles avaient ouvertes en sont averties."
        }
        "second-factor" => {
            "Second facteur retiré : la personne se connecte avec son mot de passe seul, et peut en activer un nouveau dans Mon espace. Ses sessions sont terminées et un message l'en avertit."
        }
        "enable" => "Compte rouvert après sa désactivation : le membre peut de nouveau se connecter.",
        "role" => "Rôle modifié.",
        "groups" => "Groupes modifiés.",
        _ => return None,
    })
}

fn not_found() -> WebError {
    WebError::Page(ErrorPage::new(StatusCode::NOT_FOUND, "Compte introuvable", "Ce compte n'existe pas ou plus."))
}

/// A console action's refusal or failure, as a page.
fn refused(error: ConsoleError) -> WebError {
    match error {
        ConsoleError::NotFound => not_found(),
        ConsoleError::UnknownGroup => WebError::Page(ErrorPage::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Groupe inconnu",
            "Ce groupe n'existe pas. Choisissez un groupe de la liste.",
        )),
        ConsoleError::Denied(why) => {
            let message = format!("Action refusée : {why}.");
            WebError::Page(ErrorPage::new(StatusCode::FORBIDDEN, "Action refusée", message))
        }
        ConsoleError::Unverified => WebError::Page(ErrorPage::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Vérification manquante",
            crate::pages::sentence(ConsoleError::Unverified),
        )),
        ConsoleError::Stale => WebError::Page(ErrorPage::new(
            StatusCode::CONFLICT,
            "Page périmée",
            crate::pages::sentence(ConsoleError::Stale),
        )),
        ConsoleError::Invalid(error) => {
            WebError::Page(ErrorPage::new(StatusCode::UNPROCESSABLE_ENTITY, "Saisie refusée", describe(&error)))
        }
        ConsoleError::Store(error) => error.into(),
    }
}

/// What a refused detail says, with its reason.
fn describe(error: &AddMemberError) -> String {
    match error {
        AddMemberError::Taken(Conflict::Email) => "cette adresse est déjà celle d'un autre compte".to_owned(),
        other => other.to_string() + &std::error::Error::source(other).map(|s| format!(" : {s}")).unwrap_or_default(),
    }
}

async fn member_page(
    state: &AppState,
    staff: &Staff,
    id: AccountId,
    done: Option<&'static str>,
    error: Option<String>,
) -> Result<MemberPage, WebError> {
    let zone = &state.settings.time_zone;
    let file = state.console.member_file(&staff.actor, id).await.map_err(refused)?;
    let MemberFile { account, locked, activity, mail, pending_codes, allowed, groups, all_groups, factors } = file;
    let joinable = all_groups.iter().filter(|g| !groups.contains(g)).map(ToString::to_string).collect();
    // Staff named in the journal by their name and identifier.
    let mut staff_names = std::collections::HashMap::new();
    for event in activity.events() {
        if let Actor::Staff(id) = event.actor
            && !staff_names.contains_key(&id)
            && let Some(who) = state.members.find_by_id(id).await?
        {
            staff_names.insert(id, format!("{} ({})", who.greeting_name(), who.identifier));
        }
    }
    let upstream_links = state
        .upstreams
        .links(account.id)
        .await?
        .into_iter()
        .map(|link| {
            let used = link.last_used_at.map_or_else(|| "jamais".to_owned(), |at| french::date_time(at, zone));
            let name = state.upstreams.name_of(&link.upstream);
            (link.upstream, name, link.subject, french::date_time(link.created_at, zone), used)
        })
        .collect();
    Ok(MemberPage {
        upstream_links,
        layout: staff.layout.clone(),
        offers: Offers::of(&allowed),
        locked_until: account.locked_until.filter(|_| locked).map(|u| french::date_time(u, zone)),
        disabled: account.disabled_at.is_some(),
        last_login: account.last_login_at.map(|at| french::date_time(at, zone)),
        pending_codes,
        temporary_until: account.pending_temporary_until().map(|at| french::date_time(at, zone)),
        temporary_seen: account.pending_temporary_until().map(|at| at.as_millisecond().to_string()).unwrap_or_default(),
        recovery_email: account.recovery_email.as_ref().map(guichet_core::account::EmailAddress::masked),
        second_factor: factors.has_second().then(|| {
            let app = match factors.totp {
                guichet_core::second_factor::TotpState::Active(since) => {
                    Some(format!("application de codes depuis le {}", french::date_time(since, zone)))
                }
                _ => None,
            };
            let keys = (factors.keys > 0)
                .then(|| french::count(usize::try_from(factors.keys).unwrap_or(usize::MAX), "clé", "clés"));
            app.into_iter().chain(keys).collect::<Vec<_>>().join(", ")
        }),
        failures: activity
            .failures_since_last_login()
            .into_iter()
            .map(|e| EventLine::of(e, zone, &staff_names))
            .collect(),
        events: activity.events().iter().map(|e| EventLine::of(e, zone, &staff_names)).collect(),
        mail: mail.iter().map(|m| MailLine::of(m, zone, &account)).collect(),
        groups: groups.iter().map(ToString::to_string).collect(),
        joinable,
        done,
        error,
        erase_at: account.erase_at.map(|at| french::date_time(at, zone)),
        erasure_delay: french::duration(state.privacy.delay()),
        account,
    })
}

pub async fn show(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<AccountId>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let page = member_page(&state, &staff, id, done_message(&done.done), None).await?;
    render(StatusCode::OK, &page)
}

fn back(id: AccountId, done: &str) -> Response {
    Redirect::to(&format!("/admin/members/{}?done={done}", id.get())).into_response()
}

/// The console's actions on a member that take a click and nothing else. Who may do
/// which to whom is the core's decision; each says on the member's page that it went
/// through ([`done_message`]).
#[derive(Debug, Clone, Copy)]
pub enum Click {
    /// Lift a suspension.
    Unlock,
    /// Mail the identifier.
    SendIdentifier,
    /// Mail a reset code.
    SendResetCode,
    /// Mail a temporary password.
    TemporaryPassword,
    /// Re-enable it.
    Enable,
}

impl Click {
    /// Its `?done=` word.
    fn done(self) -> &'static str {
        match self {
            Self::Unlock => "unlock",
            Self::SendIdentifier => "identifier",
            Self::SendResetCode => "reset",
            Self::TemporaryPassword => "temporary",
            Self::Enable => "enable",
        }
    }
}

/// One handler for every [`Click`].
pub async fn click(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
    action: Click,
) -> Result<Response, WebError> {
    let (console, actor) = (&state.console, &staff.actor);
    match action {
        Click::Unlock => console.unlock(actor, id, &context).await.map(|_| ()),
        Click::SendIdentifier => console.send_identifier(actor, id, &context).await,
        Click::SendResetCode => console.send_reset_code(actor, id, &context).await,
        Click::TemporaryPassword => console.issue_temporary_password(actor, id, &context).await,
        Click::Enable => console.set_disabled(actor, id, false, &context).await,
    }
    .map_err(refused)?;
    Ok(back(id, action.done()))
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    confirm: String,
}

/// Disabling takes a confirmation (`confirm=yes`, the second button of the page's
/// disclosure): a click on the wrong line must not lock a member out.
/// "Terminer toutes les sessions": the core decides who may, on whom.
pub async fn end_sessions(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
) -> Result<Response, WebError> {
    let current = Some(&staff.session.token_hash);
    state.console.end_sessions(&staff.actor, id, current, &context).await.map_err(refused)?;
    state.messenger.signal().notify_one();
    Ok(back(id, "sessions"))
}

#[derive(Deserialize)]
pub struct VerifiedForm {
    #[serde(default)]
    verified: String,
}

#[derive(Deserialize)]
pub struct UnlinkForm {
    #[serde(default)]
    upstream: String,
    #[serde(default)]
    subject: String,
}

/// Removes an upstream identity linked to the account: the core decides who may, on whom.
pub async fn unlink_upstream(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
    Form(form): Form<UnlinkForm>,
) -> Result<Response, WebError> {
    let name = state.upstreams.name_of(&form.upstream);
    let console = &state.console;
    let removed = console
        .unlink_upstream(&staff.actor, id, &form.upstream, &form.subject, &name, &context)
        .await
        .map_err(refused)?;
    if removed {
        state.messenger.signal().notify_one();
    }
    Ok(back(id, if removed { "upstream-removed" } else { "upstream-none" }))
}

/// Resets the second factor, once staff said how they checked who asks.
pub async fn reset_second_factor(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
    Form(form): Form<VerifiedForm>,
) -> Result<Response, WebError> {
    state.console.reset_second_factor(&staff.actor, id, &form.verified, &context).await.map_err(refused)?;
    state.messenger.signal().notify_one();
    Ok(back(id, "second-factor"))
}

pub async fn disable(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, WebError> {
    if form.confirm != "yes" {
        return Err(WebError::Page(ErrorPage::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Désactivation à confirmer",
            "Rien n'a changé : confirmez la désactivation avec le bouton « Oui, désactiver » de la page du compte.",
        )));
    }
    state.console.set_disabled(&staff.actor, id, true, &context).await.map_err(refused)?;
    Ok(back(id, "disable"))
}

#[derive(Deserialize)]
pub struct SeenForm {
    #[serde(default)]
    seen: String,
}

#[derive(Template)]
#[template(path = "admin_temporary.html")]
struct HandedPage {
    layout: Layout,
    id: i64,
    identifier: String,
    password: String,
    spelled: Vec<String>,
    until: String,
    login_url: String,
    /// A ready French text to paste into a message from the desk's own mailbox.
    letter: String,
}

/// Makes a temporary password for the staff member to hand over themselves, and shows it
/// this once (the page is never cached; the password is stored only as a hash).
pub async fn hand_temporary_password(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
    Form(form): Form<SeenForm>,
) -> Result<Response, WebError> {
    // What the page showed: a number of milliseconds, or nothing for "none".
    let seen = match form.seen.as_str() {
        "" => None,
        raw => Some(raw.parse().ok().and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()).ok_or_else(|| {
            WebError::Page(ErrorPage::new(
                StatusCode::BAD_REQUEST,
                "Formulaire illisible",
                "Rechargez la page du compte.",
            ))
        })?),
    };
    let handed = state.console.hand_temporary_password(&staff.actor, id, seen, &context).await.map_err(refused)?;
    let until = french::date_time(handed.expires_at, &state.settings.time_zone);
    let login_url = format!("{}/login", state.settings.public_url);
    let identifier = handed.account.identifier.to_string();
    let password = handed.password.grouped();
    let greeting = handed.account.display_name.as_str().to_owned();
    let letter = format!(
        "Bonjour{},\n\nVoici de quoi vous connecter à {} :\n\nIdentifiant : {identifier}\nMot de passe temporaire : {password}\n\n\
         Connectez-vous sur {login_url} avec ce mot de passe (majuscules, espaces et tirets n'ont pas d'importance), \
         puis choisissez votre propre mot de passe : la page vous y mène d'elle-même.\n\n\
         Ce mot de passe temporaire fonctionne jusqu'au {until}, tant que vous n'avez pas choisi le vôtre. \
         Votre ancien mot de passe, si vous le retrouvez, fonctionne toujours.\n\n\
         Bien cordialement,\nL'assistance {}",
        if greeting.is_empty() { String::new() } else { format!(" {greeting}") },
        state.settings.site_name,
        french::of(&state.settings.site_name),
    );
    let page = HandedPage {
        layout: staff.layout.clone(),
        id: id.get(),
        identifier,
        spelled: handed.password.spelled_fr(),
        password,
        until,
        login_url,
        // In a textarea, which the page's typography leaves alone: set here.
        letter: guichet_core::typography::text(&letter),
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct DetailsForm {
    #[serde(default)]
    email: String,
    /// The display name as it is: only for an account without given or family name.
    #[serde(default)]
    name: String,
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
    /// The RPPS number: absent, unchanged; empty, removed.
    #[serde(default)]
    rpps: Option<String>,
}

pub async fn details(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
    Form(form): Form<DetailsForm>,
) -> Result<Response, WebError> {
    // Once a given or family name is typed, the display name is theirs (the page shows
    // the former one only while the account has neither).
    let parts_typed = !form.given_name.trim().is_empty() || !form.family_name.trim().is_empty();
    let name = if parts_typed { "" } else { form.name.as_str() };
    let names = (name, form.given_name.as_str(), form.family_name.as_str());
    let rpps = form.rpps.as_deref();
    let error = match state.console.change_details(&staff.actor, id, &form.email, names, rpps, &context).await {
        Ok(()) => return Ok(back(id, "details")),
        Err(ConsoleError::Invalid(error)) => describe(&error),
        Err(other) => return Err(refused(other)),
    };
    let page = member_page(&state, &staff, id, None, Some(error)).await?;
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

/// Who may change which role is the core's decision (administrators only, never their
/// own admin role, never the last administrator's).
pub async fn role(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
    Form(form): Form<RoleForm>,
) -> Result<Response, WebError> {
    let role = Role::parse(&form.role)
        .map_err(|e| WebError::Page(ErrorPage::new(StatusCode::UNPROCESSABLE_ENTITY, "Rôle inconnu", e.to_string())))?;
    state.console.set_role(&staff.actor, id, role, &context).await.map_err(refused)?;
    Ok(back(id, "role"))
}

#[derive(Deserialize)]
pub struct GroupForm {
    #[serde(default)]
    group: String,
}

/// Who may change groups is the core's decision (administrators only); `join` or leave.
pub async fn change_group(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
    Form(form): Form<GroupForm>,
    join: bool,
) -> Result<Response, WebError> {
    state.console.change_group(&staff.actor, id, &form.group, join, &context).await.map_err(refused)?;
    Ok(back(id, "groups"))
}
