//! OpenID Connect: registered clients, authorization codes, and the access tokens
//! issued for them.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;
use crate::oidc::{
    Client, ClientId, Grant, IssuedCode, LogoutEntry, LogoutId, LogoutOutcome, NewCode, NewRefreshToken, QueuedLogout,
};
use crate::token::TokenHash;

/// What happened when a code was presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// First use: the code, now marked used.
    First(Box<IssuedCode>),
    /// Used before: what the first use issued has just been revoked.
    Again,
    /// No such code, or one issued to another client (left untouched: whoever sees a
    /// code cannot burn it without the client's credentials).
    Unknown,
}

/// OpenID Connect clients, codes and grants.
#[async_trait]
pub trait OidcStore: Send + Sync + std::fmt::Debug {
    /// Registers a client. `Err(Conflict(Client))` when its id is taken.
    async fn create_client(&self, client: &Client) -> Result<(), StoreError>;

    /// Every client, by name.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;

    /// `Ok(None)` when no client has this id.
    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError>;

    /// Removes a client with its codes and grants. `Ok(false)` when it was gone already.
    async fn remove_client(&self, id: &ClientId) -> Result<bool, StoreError>;

    /// Keeps an authorization code (its hash only).
    async fn store_code(&self, code: &NewCode) -> Result<(), StoreError>;

    /// The code issued to `client`, used or not, touching nothing.
    async fn find_authorization_code(
        &self,
        code: &TokenHash,
        client: &ClientId,
    ) -> Result<Option<IssuedCode>, StoreError>;

    /// An access token's record, by its `jti`.
    async fn find_grant(&self, jti: &str) -> Result<Option<Grant>, StoreError>;

    /// `client`'s refresh token, with when it was used, touching nothing. `None` for no
    /// such token (or a revoked one) or another client's.
    async fn find_refresh_token(
        &self,
        token: &TokenHash,
        client: &ClientId,
    ) -> Result<Option<(NewRefreshToken, Option<Timestamp>)>, StoreError>;

    /// The clients a session signed in to, each with the session's `sid`.
    async fn session_clients(&self, session: &TokenHash) -> Result<Vec<(Client, String)>, StoreError>;

    /// The clients with logouts due at `now` (pending, their attempt due, not held).
    async fn clients_with_due_logouts(&self, now: Timestamp) -> Result<Vec<ClientId>, StoreError>;

    /// Claims up to `limit` of `client`'s logouts due at `now` (pending, their attempt
    /// due, not held by another instance) until `lease_until`, counting the attempt;
    /// oldest first.
    async fn claim_due_logouts(
        &self,
        client: &ClientId,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<QueuedLogout>, StoreError>;

    /// Records how a claimed logout's attempt went.
    async fn finish_logout(&self, id: LogoutId, outcome: &LogoutOutcome, now: Timestamp) -> Result<(), StoreError>;

    /// The latest `limit` logouts, newest first.
    async fn logout_log(&self, limit: u32) -> Result<Vec<LogoutEntry>, StoreError>;

    /// Forgets codes, grants and refresh tokens that expired before `before`, and
    /// logouts finished before it. Returns how many went.
    async fn purge_oidc(&self, before: Timestamp) -> Result<u64, StoreError>;
}
