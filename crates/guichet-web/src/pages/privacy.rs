//! Personal data: the privacy notice (`/confidentialite`, with the retention periods in
//! force), and in Mon espace what the RGPD gives members — a copy of their data
//! (`/me/export`, `/me/export.json`), correcting their name and address (`/me/details`,
//! `/me/name`, `/me/email`, confirmed at `/me/email/confirm`), and erasure (`/me/erase`,
//! cancelled at `/me/erase/cancel`). Staff produce a member's data and ask for an
//! erasure from the console (see [`staff_export`], [`staff_erase`]).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Redirect, Response};
use axum::routing::{get, post};
use guichet_core::account::{Account, AccountId, NameParts};
use guichet_core::audit::AuditKind;
use guichet_core::french;
use guichet_core::hashing::HashError;
use guichet_core::mail::MailKind;
use guichet_core::me::{ChangeError, EmailChangeError};
use guichet_core::personal_data::{ErasureRefused, Field, PersonalData};
use guichet_core::retention::Kept;
use secrecy::SecretString;
use serde::Deserialize;

use crate::client::Client;
use crate::error::{ErrorPage, WebError, busy};
use crate::pages::me::{CodeForm, CodePage, Confirming};
use crate::pages::{Form, Layout, SignedIn, Staff, clear_session_cookies, render, secret, sentence};
use crate::state::AppState;
use crate::visitor::Visitor;

/// The routes (the console's two are in its own table).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/confidentialite", get(notice))
        .route("/me/export", get(export_page))
        .route("/me/export.json", get(export_json))
        .route("/me/details", get(show_details))
        .route("/me/name", post(rename))
        .route("/me/email", post(propose_email))
        .route("/me/email/confirm", get(show_email_confirm).post(confirm_email))
        .route("/me/erase", get(show_erase).post(ask_erasure))
        .route("/me/erase/cancel", post(cancel_erasure))
}

/// A retention period, as the notice lists it.
struct Period {
    what: &'static str,
    how_long: String,
}

#[derive(Template)]
#[template(path = "privacy.html")]
struct NoticePage {
    layout: Layout,
    controller: String,
    contact: Option<String>,
    periods: Vec<Period>,
    erasure_delay: String,
    relay: Option<String>,
    session_max: String,
}

async fn notice(State(state): State<AppState>, visitor: Visitor) -> Result<Response, WebError> {
    let privacy = &state.settings.privacy;
    let periods = Kept::ALL
        .iter()
        .map(|kind| Period { what: kind.french(), how_long: french::duration(kind.period(&privacy.retention)) })
        .collect();
    let page = NoticePage {
        layout: Layout::for_visitor(&state, &visitor),
        controller: privacy.controller.clone().unwrap_or_else(|| state.settings.site_name.clone()),
        contact: privacy.contact.clone(),
        periods,
        erasure_delay: french::duration(privacy.erasure_delay),
        relay: privacy.relay.clone(),
        session_max: french::duration(state.sessions.policy().max),
    };
    render(StatusCode::OK, &page)
}

/// One table of the export, for people.
struct SectionView {
    title: &'static str,
    columns: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

/// The readable name of a table of the export.
fn section_title(table: &str) -> &'static str {
    match table {
        "accounts" => "Votre compte",
        "group_members" => "Vos groupes",
        "sessions" => "Vos sessions ouvertes",
        "audit_events" => "Journal de sécurité de votre compte",
        "assistance_requests" => "Vos demandes d'assistance",
        "request_notes" => "Notes de l'équipe sur vos demandes",
        "call_slots" => "Rendez-vous téléphoniques proposés",
        "outbox" => "Messages qui vous ont été envoyés",
        "mail_attempts" => "Tentatives d'envoi de ces messages",
        "recovery_codes" => "Codes envoyés (mot de passe oublié, invitation)",
        "device_attempts" => "Essais de connexion comptés pour vos navigateurs",
        "oidc_session_clients" => "Applications ouvertes depuis vos sessions",
        "oidc_codes" => "Connexions données aux applications",
        "oidc_grants" => "Accès en cours des applications",
        "oidc_refresh_tokens" => "Accès prolongés des applications",
        "oidc_logouts" => "Déconnexions transmises aux applications",
        "totp_secrets" => "Application d'authentification (second facteur)",
        "upstream_links" => "Connexions par un service d'identité (Pro Santé Connect)",
        "second_factor_recovery_codes" => "Codes de récupération du second facteur",
        "webauthn_credentials" => "Clés de sécurité et clés d'accès",
        "webauthn_ceremonies" => "Ajouts de clé en cours",
        "upstream_requests" => "Connexions par un service d'identité en cours",
        "upstream_refusals" => "Services d'identité que vous avez retirés",
        _ => "Autres données",
    }
}

/// The readable name of a column of the export.
fn column_label(column: &str) -> &'static str {
    match column {
        "identifier" => "Identifiant",
        "email" => "Adresse électronique",
        "display_name" => "Nom affiché",
        "given_name" => "Prénom",
        "family_name" => "Nom de famille",
        "role" => "Rôle",
        "created_at" => "Créé le",
        "updated_at" => "Modifié le",
        "last_login_at" => "Dernière connexion",
        "locked_until" => "Suspendu jusqu'au",
        "disabled_at" => "Désactivé le",
        "must_change_password" => "Mot de passe à changer",
        "password_set" => "Mot de passe choisi",
        "temporary_password_until" => "Mot de passe temporaire valable jusqu'au",
        "recovery_email" => "Adresse de secours",
        "recovery_email_pending" => "Adresse de secours à confirmer",
        "email_pending" => "Nouvelle adresse à confirmer",
        "erase_at" => "Effacement prévu le",
        "group_name" => "Groupe",
        "description" => "Description",
        "idle_expires_at" => "Fermée sans activité le",
        "expires_at" => "Expire le",
        "address" => "Adresse réseau",
        "user_agent" => "Navigateur",
        "factors" => "Façon de se connecter",
        "at" => "Date",
        "kind" => "Quoi",
        "actor_kind" => "Par",
        "detail" => "Détail",
        "reference" | "request" => "Demande",
        "name" => "Nom",
        "phone" => "Téléphone",
        "message" => "Message",
        "wants" => "Souhait",
        "origin" => "Origine",
        "state" => "État",
        "body" => "Note",
        "starts_at" => "Début",
        "ends_at" => "Fin",
        "confirmed_at" => "Confirmé le",
        "withdrawn_at" => "Retiré le",
        "recipient" => "Destinataire",
        "attempts" => "Essais",
        "finished_at" => "Terminé le",
        "last_answer" | "answer" => "Réponse du serveur",
        "outcome" => "Résultat",
        "purpose" => "Usage",
        "used_at" => "Utilisé le",
        "voided_at" => "Annulé le",
        "window_start" => "Depuis",
        "client_id" => "Application (identifiant)",
        "application" => "Application",
        "scope" => "Portée",
        "auth_time" => "Connexion du",
        "revoked_at" => "Révoqué le",
        "ended_at" => "Session terminée le",
        "last_used_at" => "Dernière utilisation",
        "rpps" => "Numéro RPPS",
        "upstream" => "Service d'identité",
        "subject" => "Identifiant chez ce service",
        _ => "Autre",
    }
}

/// One value, for people: dates in the site's zone, kinds in French, yes and no.
fn shown(table: &str, column: &str, field: &Field, zone: &jiff::tz::TimeZone) -> String {
    match field {
        Field::Empty => "—".to_owned(),
        Field::Time(at) => french::date_time(*at, zone),
        Field::Number(n) if matches!(column, "must_change_password" | "password_set") => {
            if *n == 0 {
                "non".to_owned()
            } else {
                "oui".to_owned()
            }
        }
        Field::Number(n) => n.to_string(),
        Field::Text(text) if column == "kind" && table == "audit_events" => {
            AuditKind::parse(text).map_or_else(|| text.clone(), |kind| crate::wording::event(kind).to_owned())
        }
        Field::Text(text) if column == "kind" => {
            MailKind::parse(text).map_or_else(|| text.clone(), |kind| kind.label_fr().to_owned())
        }
        Field::Text(text) if column == "user_agent" => crate::wording::browser(text),
        Field::Text(text) => text.clone(),
    }
}

fn sections(data: &PersonalData, zone: &jiff::tz::TimeZone) -> Vec<SectionView> {
    data.sections
        .iter()
        .map(|section| {
            let columns = section
                .rows
                .first()
                .map(|row| row.iter().map(|(name, _)| column_label(name)).collect())
                .unwrap_or_default();
            let rows = section
                .rows
                .iter()
                .map(|row| row.iter().map(|(name, field)| shown(section.table, name, field, zone)).collect())
                .collect();
            SectionView { title: section_title(section.table), columns, rows }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "me_export.html")]
struct ExportPage {
    layout: Layout,
    /// Whose data, for a staff export.
    whose: Option<String>,
    json_link: Option<String>,
    generated_at: String,
    sections: Vec<SectionView>,
}

fn export_response(
    state: &AppState,
    layout: Layout,
    data: &PersonalData,
    whose: Option<String>,
) -> Result<Response, WebError> {
    let zone = &state.settings.time_zone;
    let json_link = whose.is_none().then(|| "/me/export.json".to_owned());
    let page = ExportPage {
        layout,
        whose,
        json_link,
        generated_at: french::date_time(data.generated_at, zone),
        sections: sections(data, zone),
    };
    let mut response = render(StatusCode::OK, &page)?;
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(response)
}

fn json_response(state: &AppState, data: &PersonalData, account: &Account) -> Response {
    let body = serde_json::to_string_pretty(&data.to_json(&state.settings.site_name)).unwrap_or_default();
    let file: String =
        account.identifier.as_str().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let disposition = format!("attachment; filename=\"donnees-{file}.json\"");
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

async fn own_data(state: &AppState, account: &Account) -> Result<PersonalData, WebError> {
    let data = state.privacy.own_data(account.id, state.clock.now()).await?;
    data.ok_or(WebError::Store(guichet_core::ports::StoreError::Changed))
}

async fn export_page(State(state): State<AppState>, signed_in: SignedIn) -> Result<Response, WebError> {
    let data = own_data(&state, &signed_in.account).await?;
    export_response(&state, signed_in.layout, &data, None)
}

async fn export_json(State(state): State<AppState>, signed_in: SignedIn) -> Result<Response, WebError> {
    let data = own_data(&state, &signed_in.account).await?;
    Ok(json_response(&state, &data, &signed_in.account))
}

#[derive(Template)]
#[template(path = "me_details.html")]
struct DetailsPage {
    layout: Layout,
    email: String,
    email_pending: Option<String>,
    given_name: String,
    family_name: String,
    name_error: Option<String>,
    email_typed: String,
    email_error: Option<String>,
    password_error: Option<String>,
}

fn details_page(signed_in: SignedIn) -> DetailsPage {
    let SignedIn { account, layout, .. } = signed_in;
    let (given, family) = if account.names.is_empty() {
        // Known only as a whole: shown as the family name, for the member to split.
        (String::new(), account.display_name.as_str().to_owned())
    } else {
        (account.names.given.as_str().to_owned(), account.names.family.as_str().to_owned())
    };
    DetailsPage {
        layout,
        email: account.email.to_string(),
        email_pending: account.email_pending.as_ref().map(ToString::to_string),
        given_name: given,
        family_name: family,
        name_error: None,
        email_typed: String::new(),
        email_error: None,
        password_error: None,
    }
}

async fn show_details(signed_in: SignedIn) -> Result<Response, WebError> {
    render(StatusCode::OK, &details_page(signed_in))
}

#[derive(Deserialize)]
struct NameForm {
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
}

async fn rename(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Form(form): Form<NameForm>,
) -> Result<Response, WebError> {
    let Ok(names) = NameParts::parse(&form.given_name, &form.family_name) else {
        let mut page = details_page(signed_in);
        page.given_name = form.given_name.chars().take(200).collect();
        page.family_name = form.family_name.chars().take(200).collect();
        page.name_error = Some("Un nom tient en 120 caractères au plus, sans retour à la ligne.".to_owned());
        return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let changed = state.me.rename(&signed_in.account, &names, &context).await?;
    Ok(Redirect::to(if changed { "/me?done=name" } else { "/me" }).into_response())
}

#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    email: String,
    #[serde(default, deserialize_with = "secret")]
    password: SecretString,
}

async fn propose_email(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Form(form): Form<EmailForm>,
) -> Result<Response, WebError> {
    let proposed =
        state.me.propose_email(&signed_in.account, &signed_in.session, &form.email, form.password, &context).await;
    let (email_error, password_error) = match proposed {
        Ok(_) => return Ok(Redirect::to("/me/email/confirm").into_response()),
        Err(EmailChangeError::Store(error)) => return Err(error.into()),
        Err(EmailChangeError::Password(ChangeError::Hash(HashError::Busy))) => return Ok(busy().into_response()),
        Err(EmailChangeError::Password(ChangeError::Hash(error))) => return Err(error.into()),
        Err(EmailChangeError::Password(error @ ChangeError::TooManyWrong)) => {
            let page = ErrorPage::new(StatusCode::UNAUTHORIZED, "Session fermée", error.to_string());
            let mut response = page.into_response();
            clear_session_cookies(&state, &mut response);
            return Ok(response);
        }
        Err(EmailChangeError::Password(error)) => (None, Some(sentence(error))),
        Err(error) => (Some(sentence(error)), None),
    };
    let mut page = details_page(signed_in);
    page.email_typed = form.email.trim().chars().take(254).collect();
    page.email_error = email_error;
    page.password_error = password_error;
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

async fn show_email_confirm(signed_in: SignedIn, Query(query): Query<CodeForm>) -> Result<Response, WebError> {
    render(StatusCode::OK, &CodePage::new(Confirming::OwnAddress, signed_in, &query.code, None))
}

async fn confirm_email(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Form(form): Form<CodeForm>,
) -> Result<Response, WebError> {
    let error = match state.me.confirm_email(&signed_in.account, &form.code, &context).await {
        Ok(Ok(_)) => return Ok(Redirect::to("/me?done=email").into_response()),
        Ok(Err(why)) => sentence(why),
        Err(guichet_core::ports::StoreError::Conflict(_)) => {
            "Cette adresse ne peut pas être celle de votre compte. Choisissez-en une autre, ou écrivez à l'assistance."
                .to_owned()
        }
        Err(error) => return Err(error.into()),
    };
    let page = CodePage::new(Confirming::OwnAddress, signed_in, &form.code, Some(error));
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(Template)]
#[template(path = "me_erase.html")]
struct ErasePage {
    layout: Layout,
    erase_at: Option<String>,
    delay: String,
    /// What was wrong with the password typed.
    error: Option<String>,
    /// Why the erasure cannot be asked for (the password was right).
    refused: Option<String>,
    asked: bool,
}

#[derive(Deserialize)]
struct EraseQuery {
    #[serde(default)]
    done: String,
}

fn erase_page(state: &AppState, signed_in: SignedIn, error: Option<String>, asked: bool) -> ErasePage {
    let zone = &state.settings.time_zone;
    ErasePage {
        layout: signed_in.layout,
        erase_at: signed_in.account.erase_at.map(|at| french::date_time(at, zone)),
        delay: french::duration(state.privacy.delay()),
        error,
        refused: None,
        asked,
    }
}

async fn show_erase(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<EraseQuery>,
) -> Result<Response, WebError> {
    render(StatusCode::OK, &erase_page(&state, signed_in, None, query.done == "asked"))
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default, deserialize_with = "secret")]
    password: SecretString,
}

async fn ask_erasure(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    let confirmed = state.me.confirm_password(&signed_in.account, &signed_in.session, form.password, &context).await;
    let error = match confirmed {
        Ok(confirmed) => match state.privacy.request_own_erasure(&confirmed, &context, state.clock.now()).await? {
            Ok(_) => {
                state.postman.signal().notify_one();
                return Ok(Redirect::to("/me/erase?done=asked").into_response());
            }
            Err(_) => {
                let mut page = erase_page(&state, signed_in, None, false);
                page.refused = Some(guichet_core::catalogue::OWN_ERASURE_LAST_ADMINISTRATOR.to_owned());
                return render(StatusCode::CONFLICT, &page);
            }
        },
        Err(ChangeError::Store(error)) => return Err(error.into()),
        Err(ChangeError::Hash(HashError::Busy)) => return Ok(busy().into_response()),
        Err(ChangeError::Hash(error)) => return Err(error.into()),
        Err(error @ ChangeError::TooManyWrong) => {
            let page = ErrorPage::new(StatusCode::UNAUTHORIZED, "Session fermée", error.to_string());
            let mut response = page.into_response();
            clear_session_cookies(&state, &mut response);
            return Ok(response);
        }
        Err(error) => sentence(error),
    };
    render(StatusCode::UNPROCESSABLE_ENTITY, &erase_page(&state, signed_in, Some(error), false))
}

async fn cancel_erasure(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Client(context): Client,
) -> Result<Response, WebError> {
    let cancelled = state.privacy.cancel_own_erasure(signed_in.account.id, &context, state.clock.now()).await?;
    Ok(Redirect::to(if cancelled { "/me?done=erase-cancelled" } else { "/me" }).into_response())
}

fn not_found() -> WebError {
    WebError::Page(ErrorPage::new(StatusCode::NOT_FOUND, "Compte introuvable", "Ce compte n'existe pas ou plus."))
}

fn denied(why: impl std::fmt::Display) -> WebError {
    WebError::Page(ErrorPage::new(StatusCode::FORBIDDEN, "Action refusée", format!("Action refusée : {why}.")))
}

#[derive(Deserialize)]
pub struct ExportForm {
    #[serde(default)]
    format: String,
}

/// "Données personnelles" in the console: everything held about the member, for staff
/// answering their request at the desk (audited on the member's account).
pub async fn staff_export(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
    Form(form): Form<ExportForm>,
) -> Result<Response, WebError> {
    // What the form may ask, parsed before anything is read or audited.
    let json = match form.format.as_str() {
        "" | "html" => false,
        "json" => true,
        _ => {
            return Err(WebError::Page(ErrorPage::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Format inconnu",
                "Les données se voient en page ou se téléchargent en JSON : utilisez les boutons de la page du compte.",
            )));
        }
    };
    let found = state.privacy.data_for_staff(&staff.actor, id, &context, state.clock.now()).await?;
    let (account, data) = found.ok_or_else(not_found)?.map_err(denied)?;
    if json {
        return Ok(json_response(&state, &data, &account));
    }
    export_response(&state, staff.layout, &data, Some(account.identifier.to_string()))
}

#[derive(Deserialize)]
pub struct EraseForm {
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    cancel: String,
}

/// "Effacer ce compte" in the console (administrators): asks for the erasure, done after
/// the stated delay unless cancelled; or cancels it.
pub async fn staff_erase(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Path(id): Path<AccountId>,
    Form(form): Form<EraseForm>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let back = |done: &str| Redirect::to(&format!("/admin/members/{}?done={done}", id.get())).into_response();
    if form.cancel == "yes" {
        let cancelled = state.privacy.cancel_erasure_for(&staff.actor, id, &context, now).await?.map_err(denied)?;
        return Ok(if cancelled {
            back("erase-cancelled")
        } else {
            Redirect::to(&format!("/admin/members/{}", id.get())).into_response()
        });
    }
    if form.confirm != "yes" {
        return Err(WebError::Page(ErrorPage::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Effacement à confirmer",
            "Rien n'a changé : confirmez l'effacement avec le bouton « Oui, effacer ce compte » de la page du compte.",
        )));
    }
    match state.privacy.request_erasure_for(&staff.actor, id, &context, now).await {
        Err(guichet_core::ports::StoreError::Changed) => Err(not_found()),
        Err(error) => Err(error.into()),
        Ok(answer) => match answer {
            Ok(_) => {
                state.postman.signal().notify_one();
                Ok(back("erase"))
            }
            Err(ErasureRefused::Denied(why)) => Err(denied(why)),
            Err(refused) => Err(denied(refused)),
        },
    }
}
