//! Server-side sessions, keyed by the hash of the cookie's token.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;
use crate::account::AccountId;
use crate::audit::NewAuditEvent;
use crate::second_factor::Factors;
use crate::session::{NewSession, OpenSession, Session};
use crate::token::TokenHash;

/// Server-side sessions.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// A counter the database moves whenever a session ends, an account's identity or
    /// status changes, or a membership changes (by whatever process): the forward-auth
    /// gate forgets what it cached when it moves.
    async fn access_epoch(&self) -> Result<i64, StoreError>;

    /// Stores a new session.
    async fn create_session(&self, session: &NewSession) -> Result<(), StoreError>;

    /// The session, when it exists and has expired neither by idleness nor by age at
    /// `now`. `Ok(None)` otherwise.
    async fn find_session(&self, token: &TokenHash, now: Timestamp) -> Result<Option<Session>, StoreError>;

    /// The account's live sessions at `now`, newest first, with where each began.
    async fn account_sessions(&self, account: AccountId, now: Timestamp) -> Result<Vec<OpenSession>, StoreError>;

    /// Ends the sessions `upstream` opened for its `subject` at or before `before` (a
    /// logout token's issue time: a session opened after it is another login there),
    /// telling the applications they signed in to, and records `event` for each account
    /// whose sessions ended (its account filled in); how many ended, in one transaction.
    async fn end_upstream_sessions(
        &self,
        upstream: &str,
        subject: &str,
        before: Timestamp,
        now: Timestamp,
        event: NewAuditEvent,
    ) -> Result<u64, StoreError>;

    /// The upstream provider's ID token the session keeps, if it was opened upstream.
    async fn upstream_id_token(&self, token: &TokenHash) -> Result<Option<String>, StoreError>;

    /// Sets how the session signed in.
    async fn set_session_factors(&self, token: &TokenHash, factors: Factors) -> Result<(), StoreError>;

    /// Pushes back the idle expiry.
    async fn touch_session(
        &self,
        token: &TokenHash,
        now: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Ends one session at `now` and, with `event` (a logout), records it in the same
    /// transaction, with a back-channel logout queued for each application the session
    /// signed in to that has one. Ending a session that is gone is not an error.
    async fn delete_session(
        &self,
        token: &TokenHash,
        now: Timestamp,
        event: Option<NewAuditEvent>,
    ) -> Result<(), StoreError>;

    /// Ends every session of an account but `keep` at `now`, and its offline refresh
    /// tokens, with their back-channel logouts queued as [`Self::delete_session`] does
    /// and, with `event`, records it (its detail says how many ended) in the same
    /// transaction; returns how many ended.
    async fn delete_account_sessions(
        &self,
        account: AccountId,
        keep: Option<&TokenHash>,
        now: Timestamp,
        event: Option<NewAuditEvent>,
    ) -> Result<u64, StoreError>;

    /// Removes sessions expired at `now` (their applications are not told: see the
    /// messenger); returns how many.
    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64, StoreError>;
}
