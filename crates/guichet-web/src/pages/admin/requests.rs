//! The queue of assistance requests: states, notes, assignment, a linked account, and
//! phone-call slots.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Redirect, Response};
use guichet_core::account::Account;
use guichet_core::desk::{
    AssistanceRequest, CallSlotId, Confirmation, LinkError, RequestChange, RequestError, RequestFile, RequestId,
    RequestOrigin, RequestState, SlotState,
};
use guichet_core::french;
use jiff::SignedDuration;
use serde::Deserialize;

use crate::error::{ErrorPage, WebError};
use crate::pages::{Form, Layout, Staff, render};
use crate::state::AppState;

/// A request as listed.
pub struct RequestLine {
    pub(super) id: i64,
    pub(super) reference: String,
    /// Who wrote, or "guichet" for undelivered mail.
    pub(super) name: String,
    pub(super) email: String,
    pub(super) state: &'static str,
    pub(super) at: String,
}

impl RequestLine {
    pub(super) fn of(request: &AssistanceRequest, zone: &jiff::tz::TimeZone) -> Self {
        Self {
            id: request.id.get(),
            reference: request.reference.clone(),
            name: match request.origin {
                RequestOrigin::Member => request.name.clone(),
                RequestOrigin::Undelivered => format!("guichet, pour {}", request.name),
            },
            email: crate::wording::breakable(request.email.as_str()),
            state: request.state.label_fr(),
            at: french::date_time(request.created_at, zone),
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

#[derive(Template)]
#[template(path = "admin_requests.html")]
struct ListPage {
    layout: Layout,
    requests: Vec<RequestLine>,
    all: bool,
}

pub async fn list(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let zone = &state.settings.time_zone;
    let requests = state.desk.queue(!query.all, 200).await?.iter().map(|r| RequestLine::of(r, zone)).collect();
    render(StatusCode::OK, &ListPage { layout: staff.layout, requests, all: query.all })
}

struct SlotLine {
    id: i64,
    when: String,
    status: &'static str,
    /// Still waiting for the member: the desk may confirm it for them.
    open: bool,
    /// Its link, to pass on (an open slot's, when it can be shown).
    link: Option<String>,
}

/// The latest message to the request's address that its server refused.
struct Refused {
    at: String,
    answer: String,
}

struct NoteLine {
    at: String,
    by: String,
    body: String,
}

#[derive(Template)]
#[template(path = "admin_request.html")]
struct RequestPage {
    layout: Layout,
    request: AssistanceRequest,
    state_label: &'static str,
    states: Vec<(&'static str, &'static str, bool)>,
    account: Option<Account>,
    assignee: Option<String>,
    is_mine: bool,
    notes: Vec<NoteLine>,
    slots: Vec<SlotLine>,
    refused: Option<Refused>,
    /// What the desk can send from its own mailbox, or read out on the phone: the open
    /// slots with their links.
    by_hand: Option<String>,
    at: String,
    error: Option<String>,
    /// The linked account's other requests.
    others: Vec<RequestLine>,
    undelivered: bool,
}

async fn request(state: &AppState, id: RequestId) -> Result<RequestFile, WebError> {
    state.desk.file(id).await?.ok_or_else(|| {
        WebError::Page(ErrorPage::new(
            StatusCode::NOT_FOUND,
            "Demande introuvable",
            "Cette demande n'existe pas ou plus.",
        ))
    })
}

async fn request_page(
    state: &AppState,
    staff: &Staff,
    file: RequestFile,
    error: Option<String>,
) -> Result<RequestPage, WebError> {
    let zone = &state.settings.time_zone;
    let RequestFile { request, account, assignee, notes, slots, refused } = file;
    let notes = notes
        .into_iter()
        .map(|(note, author)| NoteLine {
            at: french::date_time(note.at, zone),
            by: author.map_or_else(|| "guichet".to_owned(), |a| a.to_string()),
            body: note.body,
        })
        .collect();
    let slots: Vec<SlotLine> = slots
        .iter()
        .map(|s| SlotLine {
            id: s.slot.id.get(),
            when: french::slot(s.slot.starts_at, s.slot.ends_at, zone),
            status: s.state.label_fr(),
            open: s.state == SlotState::Open,
            link: s.link.as_ref().map(|token| {
                format!("{}/rendez-vous/{}", state.settings.public_url.trim_end_matches('/'), token.expose())
            }),
        })
        .collect();
    let refused = refused
        .map(|m| Refused { at: french::date_time(m.created_at, zone), answer: m.last_answer.unwrap_or_default() });
    let by_hand = by_hand(&state.settings.site_name, &request, &slots);
    let others = match request.account_id {
        Some(account) => state.desk.requests_of(account, 20).await?,
        None => Vec::new(),
    };
    let others = others.iter().filter(|r| r.id != request.id).map(|r| RequestLine::of(r, zone)).collect();
    Ok(RequestPage {
        others,
        undelivered: request.origin == RequestOrigin::Undelivered,
        layout: staff.layout.clone(),
        state_label: request.state.label_fr(),
        states: RequestState::ALL.iter().map(|s| (s.as_str(), s.label_fr(), *s == request.state)).collect(),
        is_mine: request.assignee_id == Some(staff.account.id),
        at: french::date_time(request.created_at, zone),
        assignee: assignee.map(|a| a.to_string()),
        account,
        notes,
        slots,
        refused,
        by_hand,
        error,
        request,
    })
}

/// The message the desk can send from its own mailbox (which the member's filter may let
/// through) or read out: the open slots, each with its link. `None` without open slots.
fn by_hand(site: &str, request: &AssistanceRequest, slots: &[SlotLine]) -> Option<String> {
    let open: Vec<(&SlotLine, &String)> = slots.iter().filter_map(|s| s.link.as_ref().map(|l| (s, l))).collect();
    if open.is_empty() {
        return None;
    }
    let mut text = format!(
        "Bonjour,\n\nSuite à votre demande {} à l'assistance de {site}, nous vous proposons \
         de vous appeler au {} à l'un de ces moments. Ouvrez le lien du créneau qui vous \
         convient, puis confirmez :\n",
        request.reference, request.phone
    );
    for (slot, link) in open {
        text.push_str(&format!("\n{}\n{link}\n", slot.when));
    }
    text.push_str("\nVous pouvez aussi nous répondre simplement à ce message.\n\nL'assistance");
    // In a textarea, which the page's typography leaves alone: set here.
    Some(guichet_core::typography::text(&text))
}

pub async fn show(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<RequestId>,
) -> Result<Response, WebError> {
    let file = request(&state, id).await?;
    render(StatusCode::OK, &request_page(&state, &staff, file, None).await?)
}

fn back(id: RequestId) -> Response {
    Redirect::to(&format!("/admin/requests/{}", id.get())).into_response()
}

#[derive(Deserialize)]
pub struct StateForm {
    #[serde(default)]
    state: String,
}

pub async fn state(
    State(app): State<AppState>,
    staff: Staff,
    Path(id): Path<RequestId>,
    Form(form): Form<StateForm>,
) -> Result<Response, WebError> {
    let file = request(&app, id).await?;
    let Some(new_state) = RequestState::parse(&form.state) else {
        return Err(WebError::Page(ErrorPage::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "État inconnu",
            "Choisissez un état de la liste.",
        )));
    };
    app.desk.change_request(file.request.id, RequestChange::State(new_state), &staff.account).await?;
    Ok(back(id))
}

#[derive(Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    body: String,
}

pub async fn note(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<RequestId>,
    Form(form): Form<NoteForm>,
) -> Result<Response, WebError> {
    let file = request(&state, id).await?;
    match state.desk.add_note(file.request.id, &staff.account, &form.body).await {
        Ok(()) => Ok(back(id)),
        Err(RequestError::Invalid { message, .. }) => {
            let page = request_page(&state, &staff, file, Some(message.to_owned())).await?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(RequestError::Store(error)) => Err(error.into()),
        Err(RequestError::TooMany | RequestError::Form(_) | RequestError::Denied(_)) => {
            Err(WebError::Internal("a note is refused only when empty"))
        }
    }
}

#[derive(Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    to: String,
}

pub async fn assign(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<RequestId>,
    Form(form): Form<AssignForm>,
) -> Result<Response, WebError> {
    let file = request(&state, id).await?;
    let who = (form.to == "me").then_some(staff.account.id);
    state.desk.change_request(file.request.id, RequestChange::Assignee(who), &staff.account).await?;
    Ok(back(id))
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    identifier: String,
}

pub async fn link(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<RequestId>,
    Form(form): Form<LinkForm>,
) -> Result<Response, WebError> {
    let file = request(&state, id).await?;
    let error = match state.desk.link_request(file.request.id, &form.identifier, &staff.actor, &staff.account).await {
        Ok(()) => return Ok(back(id)),
        Err(LinkError::Store(error)) => return Err(error.into()),
        Err(LinkError::Unknown) => "Aucun compte n'a cet identifiant.".to_owned(),
        Err(LinkError::Denied(why)) => format!("Rattachement refusé : {why}."),
    };
    let page = request_page(&state, &staff, file, Some(error)).await?;
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(Deserialize)]
pub struct SlotsForm {
    /// `none`: no message to the member, the desk passes the slots on; otherwise mailed.
    #[serde(default)]
    notify: String,
    #[serde(default)]
    slot1: String,
    #[serde(default)]
    slot2: String,
    #[serde(default)]
    slot3: String,
    #[serde(default)]
    minutes: String,
    #[serde(default)]
    phone: String,
}

/// Reads `2026-03-03T14:00` (a `datetime-local` field) in the site's time zone.
fn local_time(raw: &str, zone: &jiff::tz::TimeZone) -> Option<jiff::Timestamp> {
    let civil: jiff::civil::DateTime = raw.trim().parse().ok()?;
    civil.to_zoned_datetime(zone.clone()).ok().map(|z| z.timestamp())
}

pub async fn propose_slots(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<RequestId>,
    Form(form): Form<SlotsForm>,
) -> Result<Response, WebError> {
    let file = request(&state, id).await?;
    let zone = &state.settings.time_zone;
    let minutes: i64 = form.minutes.trim().parse().ok().filter(|m| (5..=120).contains(m)).unwrap_or(30);
    let filled: Vec<&str> =
        [&form.slot1, &form.slot2, &form.slot3].into_iter().map(|s| s.trim()).filter(|s| !s.is_empty()).collect();
    let mut slots = Vec::new();
    for raw in &filled {
        let Some(start) = local_time(raw, zone) else {
            let page =
                request_page(&state, &staff, file, Some(format!("« {raw} » n'est pas une date et une heure."))).await?;
            return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
        };
        slots.push((start, start.saturating_add(SignedDuration::from_mins(minutes)).unwrap_or(start)));
    }
    let mail_member = form.notify != "none";
    match state
        .desk
        .propose_slots(file.request.id, &slots, &form.phone, mail_member, &staff.actor, &staff.account)
        .await
    {
        Ok(()) => Ok(back(id)),
        Err(RequestError::Invalid { message, .. }) => {
            let page = request_page(&state, &staff, file, Some(message.to_owned())).await?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(RequestError::Denied(why)) => {
            let page = request_page(&state, &staff, file, Some(format!("Proposition refusée : {why}."))).await?;
            render(StatusCode::FORBIDDEN, &page)
        }
        Err(RequestError::TooMany | RequestError::Form(_)) => Err(WebError::Internal("not from the assistance form")),
        Err(RequestError::Store(error)) => Err(error.into()),
    }
}

/// "Convenu par téléphone": the desk confirms, for the member, the slot they agreed to
/// on the phone. Nothing is mailed to them.
pub async fn agreed_by_phone(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, slot)): Path<(RequestId, CallSlotId)>,
) -> Result<Response, WebError> {
    let file = request(&state, id).await?;
    let (status, error) = match state.desk.confirm_for_member(file.request.id, slot, &staff.actor, &staff.account).await
    {
        Ok(Some(Confirmation::Confirmed(_) | Confirmation::AlreadyConfirmed(_))) => return Ok(back(id)),
        Ok(Some(Confirmation::Unavailable(_))) => {
            (StatusCode::CONFLICT, "Ce créneau n'est plus libre : un autre a été confirmé, ou il est passé.".to_owned())
        }
        Ok(None) | Err(LinkError::Unknown) => {
            (StatusCode::CONFLICT, "Ce créneau n'est pas une proposition de cette demande.".to_owned())
        }
        Err(LinkError::Denied(why)) => (StatusCode::FORBIDDEN, format!("Confirmation refusée : {why}.")),
        Err(LinkError::Store(error)) => return Err(error.into()),
    };
    let page = request_page(&state, &staff, file, Some(error)).await?;
    render(status, &page)
}
