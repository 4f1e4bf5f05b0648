//! Groups and who belongs to them.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;
use crate::account::AccountId;
use crate::groups::{Group, GroupId, GroupName};

/// Groups of accounts.
#[async_trait]
pub trait GroupStore: Send + Sync + std::fmt::Debug {
    /// Makes a group. `Err(Conflict(Group))` when the name is taken.
    async fn create_group(&self, name: &GroupName, description: &str, now: Timestamp) -> Result<Group, StoreError>;

    /// Every group, by name, with its member count.
    async fn list_groups(&self) -> Result<Vec<Group>, StoreError>;

    /// `Ok(None)` when no group has this name.
    async fn find_group(&self, name: &GroupName) -> Result<Option<Group>, StoreError>;

    /// Removes a group and its memberships. `Ok(false)` when it was gone already.
    async fn remove_group(&self, group: GroupId) -> Result<bool, StoreError>;

    /// The names of the account's groups, sorted.
    async fn account_groups(&self, account: AccountId) -> Result<Vec<GroupName>, StoreError>;
}
