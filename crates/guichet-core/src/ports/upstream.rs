//! Upstream identity providers: the identities linked to accounts, and what waits between
//! guichet's redirect to a provider and its answer (or a member's password).

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;
use crate::account::{AccountId, Rpps};
use crate::token::TokenHash;

/// What an upstream request row is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPurpose {
    /// A login begun from the login page.
    Login,
    /// A signed-in member linking the provider to their account (from Mon espace).
    Link,
    /// An identity the provider vouched for, no account linked yet: it waits for the
    /// member's password.
    Pending,
}

impl RequestPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Link => "link",
            Self::Pending => "pending",
        }
    }

    /// Reads a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Login, Self::Link, Self::Pending].into_iter().find(|p| p.as_str() == stored)
    }
}

/// A request row. `Debug` leaves out the payload (a nonce and a PKCE verifier, or an
/// identity with its ID token).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredRequest {
    /// The provider's id.
    pub upstream: String,
    /// What for.
    pub purpose: RequestPurpose,
    /// The signed-in account, for [`RequestPurpose::Link`].
    pub account: Option<AccountId>,
    /// JSON: the nonce, PKCE verifier and destination; or the identity waiting.
    pub payload: String,
}

impl std::fmt::Debug for StoredRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRequest")
            .field("upstream", &self.upstream)
            .field("purpose", &self.purpose)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// An upstream identity linked to an account, as Mon espace lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamLink {
    /// The provider's id.
    pub upstream: String,
    /// The provider's `sub` for the member.
    pub subject: String,
    /// When it was linked.
    pub created_at: Timestamp,
    /// When it last opened a session.
    pub last_used_at: Option<Timestamp>,
}

/// Reads and keeps what the upstream login needs outside a unit of work (links are
/// written in one: see [`super::Work::link_upstream`]).
#[async_trait]
pub trait UpstreamStore: Send + Sync + std::fmt::Debug {
    /// Keeps a request under the hash of the browser's token until `until`.
    async fn put_upstream_request(
        &self,
        token: &TokenHash,
        request: &StoredRequest,
        until: Timestamp,
    ) -> Result<(), StoreError>;

    /// Takes (deletes) the request, when it is there and alive at `now`: it serves once.
    async fn take_upstream_request(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<StoredRequest>, StoreError>;

    /// Reads the request, when it is there and alive at `now`, leaving it.
    async fn peek_upstream_request(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<StoredRequest>, StoreError>;

    /// Deletes requests dead at `now`; how many.
    async fn purge_upstream_requests(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// The account the provider's `subject` is linked to.
    async fn linked_account(&self, upstream: &str, subject: &str) -> Result<Option<AccountId>, StoreError>;

    /// The account's links, oldest first.
    async fn account_links(&self, account: AccountId) -> Result<Vec<UpstreamLink>, StoreError>;

    /// The account holding this RPPS number.
    async fn account_with_rpps(&self, rpps: &Rpps) -> Result<Option<AccountId>, StoreError>;
}
