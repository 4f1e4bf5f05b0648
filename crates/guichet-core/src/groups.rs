//! Groups of members (`adherents`, `bureau`, `formateurs`…): what the access rules of
//! the members' area and the OpenID Connect clients look at.

use std::sync::Arc;

use jiff::Timestamp;

use crate::account::{AccountId, Identifier};
use crate::audit::{Actor, AuditDetail, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::ports::{AccountStore, GroupStore, Ports, StoreError};

/// A group's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupId(i64);

impl GroupId {
    /// Wraps a stored id.
    pub fn from_stored(id: i64) -> Self {
        Self(id)
    }

    /// The stored id.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Why a text is not a group name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", crate::catalogue::GROUP_NAME_ERROR)]
pub struct GroupNameError;

/// A group's name: lower case, 1 to 64 characters among `a-z 0-9 _ -`, starting with a
/// letter or digit — what goes into `Remote-Groups` and the `groups` claim as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupName(String);

impl GroupName {
    /// Parses what someone typed.
    pub fn parse(raw: &str) -> Result<Self, GroupNameError> {
        let value = raw.trim().to_lowercase();
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-');
        let ok = (1..=64).contains(&value.len())
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.chars().all(allowed);
        if ok { Ok(Self(value)) } else { Err(GroupNameError) }
    }

    /// Rebuilds a name read back from storage.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for GroupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.0)
    }
}

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its id.
    pub id: GroupId,
    /// Its name.
    pub name: GroupName,
    /// What it is for.
    pub description: String,
    /// How many accounts belong to it.
    pub members: u64,
    /// When it was made.
    pub created_at: Timestamp,
}

/// Why a group action failed. The messages are shown to people, in French.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// A bad name.
    #[error(transparent)]
    Name(#[from] GroupNameError),
    /// The description is too long or holds control characters.
    #[error("{}", crate::catalogue::GROUP_ERROR_DESCRIPTION)]
    Description,
    /// No group has this name.
    #[error("{}", crate::catalogue::group_error_unknown(.0))]
    Unknown(String),
    /// No account has this identifier.
    #[error("{}", crate::catalogue::unknown_identifier(.0))]
    UnknownAccount(String),
    /// The name is taken.
    #[error("{}", crate::catalogue::GROUP_ERROR_TAKEN)]
    Taken,
    /// Groups are made by administrators only.
    #[error("{}", crate::catalogue::DENIED_ADMINS_ONLY)]
    Denied,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for GroupError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(_) => Self::Taken,
            other => Self::Store(other),
        }
    }
}

/// Managing groups and who belongs to them.
#[derive(Debug, Clone)]
pub struct Groups {
    groups: Arc<dyn GroupStore>,
    transactions: Arc<dyn crate::ports::Transactions>,
    accounts: Arc<dyn AccountStore>,
    clock: Arc<dyn Clock>,
}

impl Groups {
    /// Wires the use cases.
    pub fn new(ports: &Ports, clock: Arc<dyn Clock>) -> Self {
        Self {
            groups: Arc::clone(&ports.groups),
            transactions: Arc::clone(&ports.transactions),
            accounts: Arc::clone(&ports.accounts),
            clock,
        }
    }

    /// Makes a group.
    pub async fn add(&self, name: &str, description: &str) -> Result<Group, GroupError> {
        let (name, description) = Self::check(name, description)?;
        Ok(self.groups.create_group(&name, &description, self.clock.now()).await?)
    }

    /// A new group's name and description, as typed, checked: the description on one
    /// line, 200 characters at most.
    pub fn check(name: &str, description: &str) -> Result<(GroupName, String), GroupError> {
        let name = GroupName::parse(name)?;
        let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
        if description.chars().count() > 200 {
            return Err(GroupError::Description);
        }
        Ok((name, description))
    }

    /// Every group, by name, with how many belong to it.
    pub async fn list(&self) -> Result<Vec<Group>, StoreError> {
        self.groups.list_groups().await
    }

    /// Removes a group (its members stay, without it).
    pub async fn remove(&self, name: &str) -> Result<(), GroupError> {
        let group = self.find(name).await?;
        self.groups.remove_group(group.id).await?;
        Ok(())
    }

    async fn find(&self, name: &str) -> Result<Group, GroupError> {
        let parsed = GroupName::parse(name)?;
        self.groups.find_group(&parsed).await?.ok_or_else(|| GroupError::Unknown(parsed.to_string()))
    }

    /// Puts an account in a group (`join`) or takes it out, with its audit line:
    /// `Ok(false)` (and nothing recorded) when it already was where it is asked to be.
    pub async fn change(
        &self,
        account: AccountId,
        group: &str,
        join: bool,
        actor: Actor,
        context: &RequestContext,
    ) -> Result<bool, GroupError> {
        let group = self.find(group).await?;
        let kind = if join { AuditKind::GroupJoined } else { AuditKind::GroupLeft };
        let event = self.event(account, kind, &group.name, actor, context);
        Ok(self.set_membership(group.id, account, join, event).await?)
    }

    /// The membership change itself, one unit of work: recorded only when it changed
    /// something.
    pub async fn set_membership(
        &self,
        group: GroupId,
        account: AccountId,
        join: bool,
        event: NewAuditEvent,
    ) -> Result<bool, StoreError> {
        let mut work = self.transactions.begin().await?;
        let changed = work.set_member(group, account, join).await?;
        if changed {
            work.record(&event).await?;
            work.commit().await?;
        }
        Ok(changed)
    }

    /// The account with this identifier, for the command line.
    pub async fn account(&self, identifier: &str) -> Result<AccountId, GroupError> {
        let unknown = || GroupError::UnknownAccount(identifier.trim().to_owned());
        let parsed = Identifier::parse(identifier).map_err(|_| unknown())?;
        Ok(self.accounts.find_account_by_identifier(&parsed).await?.ok_or_else(unknown)?.id)
    }

    /// The groups an account belongs to, by name.
    pub async fn of(&self, account: AccountId) -> Result<Vec<GroupName>, StoreError> {
        self.groups.account_groups(account).await
    }

    fn event(
        &self,
        account: AccountId,
        kind: AuditKind,
        group: &GroupName,
        actor: Actor,
        context: &RequestContext,
    ) -> NewAuditEvent {
        NewAuditEvent {
            at: self.clock.now(),
            account_id: Some(account),
            kind,
            actor,
            context: context.clone(),
            detail: Some(AuditDetail::Group(group.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_lower_cased_and_checked() {
        assert_eq!(GroupName::parse(" Bureau ").map(|g| g.0), Ok("bureau".to_owned()));
        assert!(GroupName::parse("formateurs-2026").is_ok());
        for bad in ["", "-x", "a b", "élus", "a,b", &"x".repeat(65)] {
            assert_eq!(GroupName::parse(bad), Err(GroupNameError), "{bad}");
        }
    }
}
