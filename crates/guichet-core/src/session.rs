//! Server-side sessions: a random token in the cookie, its hash in the database, an
//! idle and an absolute lifetime, a CSRF token of its own, and a fresh token at every
//! login so that a token planted before login is worth nothing after.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::account::AccountId;
use crate::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::ports::{Store, StoreError};
use crate::token::{PlainToken, TokenHash};

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ends after this long without a request.
    pub idle: SignedDuration,
    /// Ends this long after login, whatever happens.
    pub max: SignedDuration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self { idle: SignedDuration::from_mins(30), max: SignedDuration::from_hours(12) }
    }
}

/// A session to store. `Debug` leaves out the CSRF token.
#[derive(Clone)]
pub struct NewSession {
    /// Hash of the cookie's token.
    pub token_hash: TokenHash,
    /// Whose session.
    pub account_id: AccountId,
    /// The token every form of this session must carry.
    pub csrf_token: String,
    /// Login time.
    pub created_at: Timestamp,
    /// Ends at this instant unless a request comes first.
    pub idle_expires_at: Timestamp,
    /// Ends at this instant whatever happens.
    pub expires_at: Timestamp,
    /// Where the login came from.
    pub context: RequestContext,
}

/// A live session. `Debug` leaves out the CSRF token.
#[derive(Clone)]
pub struct Session {
    /// Hash of the cookie's token.
    pub token_hash: TokenHash,
    /// Whose session.
    pub account_id: AccountId,
    /// The token every form of this session must carry.
    pub csrf_token: String,
    /// Login time.
    pub created_at: Timestamp,
    /// Idle expiry as stored.
    pub idle_expires_at: Timestamp,
    /// Absolute expiry.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("token_hash", &self.token_hash)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token_hash", &self.token_hash)
            .field("account_id", &self.account_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Opens, finds and ends sessions.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: SessionPolicy,
}

/// The idle expiry is written back at most this often, not at every request.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_secs(60);

impl Sessions {
    /// Wires the session service.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, policy: SessionPolicy) -> Self {
        Self { store, clock, policy }
    }

    /// The policy in force.
    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// Opens a new session for `account` with a fresh token, ending `replacing` (the
    /// session the browser had before, if any). Returns the token for the cookie.
    pub async fn open(
        &self,
        account: AccountId,
        context: RequestContext,
        replacing: Option<&TokenHash>,
    ) -> Result<(PlainToken, Session), StoreError> {
        if let Some(old) = replacing {
            self.store.delete_session(old, None).await?;
        }
        let now = self.clock.now();
        let token = PlainToken::generate();
        let expires_at = now.saturating_add(self.policy.max).unwrap_or(now);
        let session = NewSession {
            token_hash: token.hash(),
            account_id: account,
            csrf_token: PlainToken::generate().expose().to_owned(),
            created_at: now,
            idle_expires_at: now.saturating_add(self.policy.idle).unwrap_or(now).min(expires_at),
            expires_at,
            context,
        };
        self.store.create_session(&session).await?;
        let NewSession { token_hash, account_id, csrf_token, created_at, idle_expires_at, expires_at, .. } = session;
        Ok((token, Session { token_hash, account_id, csrf_token, created_at, idle_expires_at, expires_at }))
    }

    /// The live session behind a cookie's token, its idle expiry pushed back.
    /// `Ok(None)` when there is none (unknown, expired or ended).
    pub async fn resume(&self, token: &PlainToken) -> Result<Option<Session>, StoreError> {
        let now = self.clock.now();
        let Some(mut session) = self.store.find_session(&token.hash(), now).await? else {
            return Ok(None);
        };
        let wanted = now.saturating_add(self.policy.idle).unwrap_or(now).min(session.expires_at);
        if wanted.duration_since(session.idle_expires_at) >= TOUCH_EVERY {
            self.store.touch_session(&session.token_hash, now, wanted).await?;
            session.idle_expires_at = wanted;
        }
        Ok(Some(session))
    }

    /// Logs out: ends the session and records it, in one transaction.
    pub async fn log_out(&self, session: &Session, context: RequestContext) -> Result<(), StoreError> {
        let event = NewAuditEvent {
            at: self.clock.now(),
            account_id: Some(session.account_id),
            kind: AuditKind::LoggedOut,
            actor: Actor::Member,
            context,
            detail: None,
        };
        self.store.delete_session(&session.token_hash, Some(event)).await
    }
}
