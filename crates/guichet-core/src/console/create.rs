//! Accounts and groups made in the console, and who may make which: assistance staff
//! make members' accounts (without groups, which administrators alone change);
//! administrators make any account, and the groups.

use crate::account::{Account, EmailAddress, Identifier, NameParts, NewAccount, Role};
use crate::account_changes::create_in;
use crate::audit::{AuditDetail, AuditKind, NewAuditEvent, Origin, RequestContext};
use crate::catalogue::{self, sentence};
use crate::groups::{GroupError, GroupName, Groups};
use crate::mail::MailKind;
use crate::ports::{Conflict, StoreError};

use super::{Console, Denied, StaffActor};

/// The account creation form, as typed.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountForm<'a> {
    /// Login identifier.
    pub identifier: &'a str,
    /// Email address.
    pub email: &'a str,
    /// Display name (may be empty; with a given or family name, their join).
    pub name: &'a str,
    /// Given name (may be empty).
    pub given_name: &'a str,
    /// Family name (may be empty).
    pub family_name: &'a str,
    /// `member`, `assistance` or `admin`.
    pub role: &'a str,
    /// Group names separated by `|` (may be empty).
    pub groups: &'a str,
    /// Mail an invitation to choose a password.
    pub invite: bool,
}

/// A form field at fault (its name), and what to do about it, in French.
pub type FormError = (&'static str, String);

/// Why an account was not made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The actor may not make this account.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Fields are missing or wrong, or clash with another account: every one at once.
    #[error("{}", .0.first().map_or("", |(_, message)| message.as_str()))]
    Form(Vec<FormError>),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who may make which account: assistance staff make members' accounts, without
/// groups; administrators make any.
pub fn decide_creation(actor: &StaffActor, role: Role, with_groups: bool) -> Result<(), Denied> {
    if actor.is_admin() {
        Ok(())
    } else if role != Role::Member {
        Err(Denied::StaffTarget)
    } else if with_groups {
        Err(Denied::AdminsOnly)
    } else {
        Ok(())
    }
}

/// What the form holds, checked: every field at fault at once.
struct Checked {
    new: NewAccount,
    groups: Vec<GroupName>,
}

fn check(form: &AccountForm<'_>) -> Result<Checked, Vec<FormError>> {
    let mut errors = Vec::new();
    let identifier = Identifier::parse(form.identifier).map_err(|e| errors.push(("identifier", sentence(e)))).ok();
    let email = EmailAddress::parse(form.email).map_err(|e| errors.push(("email", sentence(e)))).ok();
    let name = NameParts::with_display(form.name, form.given_name, form.family_name)
        .map_err(|e| errors.push(("name", sentence(e))))
        .ok();
    let role = Role::parse(form.role).map_err(|_| errors.push(("role", catalogue::CREATE_ROLE.to_owned()))).ok();
    let mut groups: Vec<GroupName> = Vec::new();
    for raw in form.groups.split('|').map(str::trim).filter(|g| !g.is_empty()) {
        match GroupName::parse(raw) {
            Ok(name) if !groups.contains(&name) => groups.push(name),
            Ok(_) => {}
            Err(error) => {
                errors.push(("groups", sentence(format!("« {raw} » : {error}"))));
                break;
            }
        }
    }
    match (identifier, email, name, role) {
        (Some(identifier), Some(email), Some((display_name, names)), Some(role)) if errors.is_empty() => Ok(Checked {
            new: NewAccount { identifier, email, display_name, names, role, password_hash: None, rpps: None },
            groups,
        }),
        _ => Err(errors),
    }
}

impl Console {
    /// Makes an account from the console, in one unit of work with its audit line, its
    /// groups (each with its own line) and, if asked, its invitation. The account has no
    /// password until the member chooses one (invitation, forgotten password) or staff
    /// hand over a temporary one.
    pub async fn create_account(
        &self,
        actor: &StaffActor,
        form: &AccountForm<'_>,
        context: &RequestContext,
    ) -> Result<Account, CreateError> {
        let Checked { new, groups } = check(form).map_err(CreateError::Form)?;
        decide_creation(actor, new.role, !groups.is_empty())?;
        let now = self.clock.now();
        let mut work = self.transactions.begin().await?;
        // What would clash, read first: a failed insert would end the unit on PostgreSQL.
        let mut errors = Vec::new();
        let found = work.groups_named(&groups).await?;
        let missing: Vec<String> =
            groups.iter().filter(|g| !found.iter().any(|(name, _)| name == *g)).map(ToString::to_string).collect();
        if !missing.is_empty() {
            errors.push(("groups", catalogue::create_missing_groups(&missing)));
        }
        if !work.accounts_named(std::slice::from_ref(&new.identifier), false).await?.is_empty() {
            errors.push(("identifier", sentence(catalogue::taken(Conflict::Identifier))));
        }
        if !work.address_owners(std::slice::from_ref(&new.email)).await?.is_empty() {
            errors.push(("email", sentence(catalogue::taken(Conflict::Email))));
        }
        if !errors.is_empty() {
            return Err(CreateError::Form(errors));
        }
        let event = |account_id, kind, detail| NewAuditEvent {
            at: now,
            account_id,
            kind,
            actor: actor.audit_actor(),
            context: context.clone(),
            detail: Some(detail),
        };
        let created = event(None, AuditKind::AccountCreated, AuditDetail::Created(new.role, Origin::Created));
        let then_mail = form.invite.then_some(MailKind::Invitation);
        let account = match create_in(work.as_mut(), &new, created, then_mail).await {
            Ok(account) => account,
            Err(StoreError::Conflict(conflict)) => {
                let field = if conflict == Conflict::Email { "email" } else { "identifier" };
                return Err(CreateError::Form(vec![(field, sentence(catalogue::taken(conflict)))]));
            }
            Err(other) => return Err(other.into()),
        };
        let joined =
            |name: &GroupName| event(Some(account.id), AuditKind::GroupJoined, AuditDetail::Group(name.clone()));
        work.record_all(&found.iter().map(|(name, _)| joined(name)).collect::<Vec<_>>()).await?;
        let memberships: Vec<_> = found.iter().map(|(_, group)| (*group, account.id)).collect();
        work.join_all(&memberships).await?;
        work.commit().await?;
        Ok(account)
    }

    /// Makes a group (administrators only), with its audit line, in one unit of work.
    pub async fn create_group(
        &self,
        actor: &StaffActor,
        name: &str,
        description: &str,
        context: &RequestContext,
    ) -> Result<GroupName, GroupError> {
        if !actor.is_admin() {
            return Err(GroupError::Denied);
        }
        let (name, description) = Groups::check(name, description)?;
        let now = self.clock.now();
        let mut work = self.transactions.begin().await?;
        work.insert_group(&name, &description, now).await?;
        work.record(&NewAuditEvent {
            at: now,
            account_id: None,
            kind: AuditKind::GroupCreated,
            actor: actor.audit_actor(),
            context: context.clone(),
            detail: Some(AuditDetail::Group(name.clone())),
        })
        .await?;
        work.commit().await?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::AccountId;

    fn actor(role: Role) -> StaffActor {
        StaffActor { id: AccountId::from_stored(1), role }
    }

    #[test]
    fn assistance_makes_members_without_groups_and_administrators_make_anyone() {
        for role in [Role::Member, Role::Assistance, Role::Admin] {
            for with_groups in [false, true] {
                let expected = match (role, with_groups) {
                    (Role::Member, false) => Ok(()),
                    (Role::Member, true) => Err(Denied::AdminsOnly),
                    _ => Err(Denied::StaffTarget),
                };
                assert_eq!(
                    decide_creation(&actor(Role::Assistance), role, with_groups),
                    expected,
                    "{role} {with_groups}"
                );
                assert_eq!(decide_creation(&actor(Role::Admin), role, with_groups), Ok(()), "{role} {with_groups}");
            }
        }
    }

    #[test]
    fn every_field_at_fault_is_named_at_once() {
        let form = AccountForm {
            identifier: "",
            email: "pas une adresse",
            role: "chef",
            groups: "bureau|Élus",
            ..AccountForm::default()
        };
        let errors = check(&form).err().unwrap_or_default();
        let fields: Vec<_> = errors.iter().map(|(field, _)| *field).collect();
        assert_eq!(fields, ["identifier", "email", "role", "groups"]);
        assert!(errors.iter().all(|(_, message)| message.ends_with(['.', ')'])), "{errors:?}");
        let form = AccountForm {
            identifier: "Marie.Durand",
            email: "marie@chu.example.fr",
            role: "member",
            groups: " bureau | | bureau|ca ",
            ..AccountForm::default()
        };
        let checked = check(&form).ok().unwrap_or_else(|| unreachable!());
        assert_eq!(checked.groups.iter().map(GroupName::as_str).collect::<Vec<_>>(), ["bureau", "ca"]);
        assert_eq!(checked.new.identifier.as_str(), "marie.durand");
    }
}
