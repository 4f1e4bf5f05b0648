//! Making accounts and groups in the console. Who may make which is the core's decision
//! ([`guichet_core::console::decide_creation`], [`Console::create_group`]); these pages
//! offer only what it allows and keep what was typed when something is refused.
//!
//! [`Console::create_group`]: guichet_core::console::Console::create_group

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Redirect, Response};
use guichet_core::account::Role;
use guichet_core::console::{AccountForm, CreateError, decide_creation};
use guichet_core::groups::GroupError;
use serde::Deserialize;

use crate::client::Client;
use crate::error::{ErrorPage, WebError};
use crate::pages::{Form, Layout, Staff, render, sentence};
use crate::state::AppState;

/// The account form as posted (and as shown again).
#[derive(Debug, Default, Deserialize)]
pub struct NewAccount {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    email: String,
    /// The display name as it is (the contract's field; the page asks for the parts).
    #[serde(default)]
    name: String,
    #[serde(default)]
    given_name: String,
    #[serde(default)]
    family_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    groups: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    invite: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_member_new.html")]
struct NewAccountPage {
    layout: Layout,
    form: NewAccount,
    invite: bool,
    /// The roles this staff member may give: value and label.
    roles: Vec<(&'static str, &'static str)>,
    /// Whether they may put the account in groups, and which exist.
    may_group: bool,
    groups: Vec<String>,
    errors: Vec<(&'static str, String)>,
}

impl NewAccountPage {
    /// The error, when there is one about `field`.
    fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, message)| message.as_str())
    }
}

async fn new_account_page(
    state: &AppState,
    staff: &Staff,
    form: NewAccount,
    invite: bool,
    errors: Vec<(&'static str, String)>,
) -> Result<NewAccountPage, WebError> {
    let roles = [Role::Member, Role::Assistance, Role::Admin]
        .into_iter()
        .filter(|role| decide_creation(&staff.actor, *role, false).is_ok())
        .map(|role| (role.as_str(), role.label_fr()))
        .collect();
    let may_group = decide_creation(&staff.actor, Role::Member, true).is_ok();
    let groups = if may_group {
        state.groups.list().await?.into_iter().map(|g| g.name.to_string()).collect()
    } else {
        Vec::new()
    };
    Ok(NewAccountPage { layout: staff.layout.clone(), form, invite, roles, may_group, groups, errors })
}

pub async fn new_account(State(state): State<AppState>, staff: Staff) -> Result<Response, WebError> {
    let form = NewAccount { role: Role::Member.as_str().to_owned(), ..NewAccount::default() };
    render(StatusCode::OK, &new_account_page(&state, &staff, form, true, Vec::new()).await?)
}

pub async fn create_account(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Form(form): Form<NewAccount>,
) -> Result<Response, WebError> {
    let invite = form.invite.is_some();
    let typed = AccountForm {
        identifier: &form.identifier,
        email: &form.email,
        name: &form.name,
        given_name: &form.given_name,
        family_name: &form.family_name,
        role: &form.role,
        groups: &form.groups,
        invite,
    };
    match state.console.create_account(&staff.actor, &typed, &context).await {
        Ok(account) => {
            let done = if invite { "created-invited" } else { "created" };
            Ok(Redirect::to(&format!("/admin/members/{}?done={done}", account.id.get())).into_response())
        }
        Err(CreateError::Form(errors)) => {
            let page = new_account_page(&state, &staff, form, invite, errors).await?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(CreateError::Denied(why)) => Err(WebError::Page(ErrorPage::new(
            StatusCode::FORBIDDEN,
            "Action refusée",
            format!("Action refusée : {why}."),
        ))),
        Err(CreateError::Store(error)) => Err(error.into()),
    }
}

/// A group as listed.
struct GroupLine {
    name: String,
    description: String,
    members: u64,
}

/// The group form as posted.
#[derive(Debug, Default, Deserialize)]
pub struct NewGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

#[derive(Template)]
#[template(path = "admin_groups.html")]
struct GroupsPage {
    layout: Layout,
    groups: Vec<GroupLine>,
    /// Whether this staff member may make groups (administrators).
    may_create: bool,
    form: NewGroup,
    /// The field at fault and why.
    error: Option<(&'static str, String)>,
    created: Option<String>,
}

#[derive(Deserialize)]
pub struct GroupsQuery {
    #[serde(default)]
    created: String,
}

async fn groups_page(
    state: &AppState,
    staff: &Staff,
    form: NewGroup,
    error: Option<(&'static str, String)>,
    created: Option<String>,
) -> Result<GroupsPage, WebError> {
    let groups = state
        .groups
        .list()
        .await?
        .into_iter()
        .map(|g| GroupLine { name: g.name.to_string(), description: g.description, members: g.members })
        .collect();
    Ok(GroupsPage { layout: staff.layout.clone(), groups, may_create: staff.actor.is_admin(), form, error, created })
}

pub async fn groups(
    State(state): State<AppState>,
    staff: Staff,
    Query(query): Query<GroupsQuery>,
) -> Result<Response, WebError> {
    let created = guichet_core::groups::GroupName::parse(&query.created).ok().map(|name| name.to_string());
    render(StatusCode::OK, &groups_page(&state, &staff, NewGroup::default(), None, created).await?)
}

pub async fn create_group(
    State(state): State<AppState>,
    staff: Staff,
    Client(context): Client,
    Form(form): Form<NewGroup>,
) -> Result<Response, WebError> {
    let error = match state.console.create_group(&staff.actor, &form.name, &form.description, &context).await {
        Ok(name) => return Ok(Redirect::to(&format!("/admin/groups?created={name}")).into_response()),
        Err(GroupError::Denied) => {
            return Err(WebError::Page(ErrorPage::new(
                StatusCode::FORBIDDEN,
                "Action refusée",
                format!("Action refusée : {}.", GroupError::Denied),
            )));
        }
        Err(GroupError::Store(error)) => return Err(error.into()),
        Err(error @ GroupError::Description) => ("description", sentence(&error)),
        Err(error) => ("name", sentence(&error)),
    };
    let page = groups_page(&state, &staff, form, Some(error), None).await?;
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}
