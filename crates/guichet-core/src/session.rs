//! Server-side sessions: a random token in the cookie, its hash in the database, an
//! idle and an absolute lifetime, and a fresh token at every login so that a token
//! planted before login is worth nothing after.
//!
//! Form (CSRF) tokens are not stored at all: a session's is the HMAC of its cookie's
//! token under the server key, an anonymous visitor's the HMAC of their anonymous
//! cookie. The database holds nothing that would let a reader forge either.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::account::AccountId;
use crate::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::keys::{Purpose, ServerKey};
use crate::ports::{Ports, SessionStore, StoreError};
use crate::second_factor::{Factors, SecondFactor};
use crate::token::{PlainToken, TokenHash};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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

/// A session to store.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Hash of the cookie's token.
    pub token_hash: TokenHash,
    /// Whose session.
    pub account_id: AccountId,
    /// Login time.
    pub created_at: Timestamp,
    /// Ends at this instant unless a request comes first.
    pub idle_expires_at: Timestamp,
    /// Ends at this instant whatever happens.
    pub expires_at: Timestamp,
    /// Where the login came from.
    pub context: RequestContext,
    /// Opened with a temporary password: it can only choose a new password.
    pub must_change_password: bool,
    /// How it signed in.
    pub factors: Factors,
    /// Opened upstream: which provider, and its ID token.
    pub upstream: Option<UpstreamSession>,
}

/// What a session opened upstream keeps of it.
#[derive(Clone)]
pub struct UpstreamSession {
    /// The provider's id (its back-channel logout ends the sessions it opened).
    pub provider: String,
    /// The provider's `sub` for the person (the link's removal ends its sessions).
    pub subject: String,
    /// The provider's ID token, the hint its own logout asks for.
    pub id_token: String,
}

impl std::fmt::Debug for UpstreamSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSession").field("provider", &self.provider).finish_non_exhaustive()
    }
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Hash of the cookie's token.
    pub token_hash: TokenHash,
    /// Whose session.
    pub account_id: AccountId,
    /// Login time.
    pub created_at: Timestamp,
    /// Idle expiry as stored.
    pub idle_expires_at: Timestamp,
    /// Absolute expiry.
    pub expires_at: Timestamp,
    /// Opened with a temporary password, and no new password chosen yet: the session can
    /// only choose one (no other page, no forward auth, no OpenID Connect).
    pub must_change_password: bool,
    /// How it signed in (a second factor given later, in Mon espace or a step up, adds
    /// to it).
    pub factors: Factors,
}

/// A live session as its member sees it in a list.
#[derive(Debug, Clone)]
pub struct OpenSession {
    /// The session.
    pub session: Session,
    /// The network address it logged in from, as recorded.
    pub address: Option<String>,
    /// The browser it logged in with, as it said.
    pub user_agent: Option<String>,
}

/// Opens, finds and ends sessions.
#[derive(Debug, Clone)]
pub struct Sessions {
    sessions: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    policy: SessionPolicy,
    key: ServerKey,
}

/// The idle expiry is written back at most this often, not at every request.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_secs(60);

impl Sessions {
    /// Wires the session service.
    pub fn new(ports: &Ports, clock: Arc<dyn Clock>, policy: SessionPolicy, key: ServerKey) -> Self {
        Self { sessions: Arc::clone(&ports.sessions), clock, policy, key }
    }

    /// The token every form of the session behind `token` must carry.
    pub fn csrf_token(&self, token: &PlainToken) -> String {
        URL_SAFE_NO_PAD.encode(self.key.mac(Purpose::SessionCsrf, token.expose().as_bytes()))
    }

    /// The token every form of a visitor without a session must carry, bound to their
    /// anonymous cookie `nonce`.
    pub fn anonymous_csrf_token(&self, nonce: &PlainToken) -> String {
        URL_SAFE_NO_PAD.encode(self.key.mac(Purpose::AnonymousCsrf, nonce.expose().as_bytes()))
    }

    /// The policy in force.
    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// The name a session goes by in its member's list and its address
    /// (`/me/sessions/{handle}/end`): opaque, derived from the token's hash, and nothing
    /// that would find the session without the server key.
    pub fn handle(&self, hash: &TokenHash) -> String {
        crate::token::hex(self.key.mac(Purpose::SessionHandle, hash.as_str().as_bytes()).get(..12).unwrap_or_default())
    }

    /// Opens a new session for `account` with a fresh token, ending `replacing` (the
    /// session the browser had before, if any); with `must_change_password` (a login with
    /// a temporary password) it can only choose a new password; `factors` says how it
    /// signed in. Returns the token for the cookie.
    pub async fn open(
        &self,
        account: AccountId,
        context: RequestContext,
        replacing: Option<&TokenHash>,
        must_change_password: bool,
        factors: Factors,
    ) -> Result<(PlainToken, Session), StoreError> {
        self.open_with(account, context, replacing, must_change_password, factors, None).await
    }

    /// Like [`Self::open`], for a session an upstream provider vouched for: the provider
    /// and its ID token are kept, for the logouts.
    pub async fn open_with(
        &self,
        account: AccountId,
        context: RequestContext,
        replacing: Option<&TokenHash>,
        must_change_password: bool,
        factors: Factors,
        upstream: Option<UpstreamSession>,
    ) -> Result<(PlainToken, Session), StoreError> {
        if let Some(old) = replacing {
            self.sessions.delete_session(old, self.clock.now(), None).await?;
        }
        let now = self.clock.now();
        let token = PlainToken::generate();
        let expires_at = now.saturating_add(self.policy.max).unwrap_or(now);
        let session = NewSession {
            token_hash: token.hash(),
            account_id: account,
            created_at: now,
            idle_expires_at: now.saturating_add(self.policy.idle).unwrap_or(now).min(expires_at),
            expires_at,
            context,
            must_change_password,
            factors,
            upstream,
        };
        self.sessions.create_session(&session).await?;
        let NewSession { token_hash, account_id, created_at, idle_expires_at, expires_at, .. } = session;
        let session =
            Session { token_hash, account_id, created_at, idle_expires_at, expires_at, must_change_password, factors };
        Ok((token, session))
    }

    /// The session's pass for forward auth on sub-domains: the cookie shared with the
    /// protected sites (`GUICHET_COOKIE_DOMAIN`) carries this, never the session's token,
    /// so that a site that sees it cannot use guichet's own pages (the console…) as the
    /// member. It names the session by its token's hash, signed under the server key; it
    /// dies with the session.
    pub fn pass(&self, token: &PlainToken) -> String {
        let hash = token.hash();
        let mac = self.key.mac(Purpose::GatePass, hash.as_str().as_bytes());
        format!("{}.{}", hash.as_str(), URL_SAFE_NO_PAD.encode(mac))
    }

    /// The session hash a pass names, when the pass is one guichet made (see
    /// [`Self::pass`]); whether that session is live is for [`Self::resume_hash`].
    pub fn verify_pass(&self, pass: &str) -> Option<TokenHash> {
        let (hash, mac) = pass.split_once('.')?;
        let well_formed = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        (well_formed && self.key.verify(Purpose::GatePass, hash.as_bytes(), &mac))
            .then(|| TokenHash::from_stored(hash.to_owned()))
    }

    /// The live session a pass names (see [`Self::pass`]), its idle expiry pushed back.
    pub async fn resume_pass(&self, pass: &str) -> Result<Option<Session>, StoreError> {
        match self.verify_pass(pass) {
            Some(hash) => self.resume_hash(&hash).await,
            None => Ok(None),
        }
    }

    /// The live session behind a cookie's token, its idle expiry pushed back.
    /// `Ok(None)` when there is none (unknown, expired or ended).
    pub async fn resume(&self, token: &PlainToken) -> Result<Option<Session>, StoreError> {
        self.resume_hash(&token.hash()).await
    }

    /// The live session whose token has this hash, as it is (its idle expiry untouched).
    pub async fn find(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
        self.sessions.find_session(hash, self.clock.now()).await
    }

    /// The live session whose token has this hash, its idle expiry pushed back.
    pub async fn resume_hash(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
        let now = self.clock.now();
        let Some(mut session) = self.sessions.find_session(hash, now).await? else {
            return Ok(None);
        };
        let wanted = now.saturating_add(self.policy.idle).unwrap_or(now).min(session.expires_at);
        if wanted.duration_since(session.idle_expires_at) >= TOUCH_EVERY {
            self.sessions.touch_session(&session.token_hash, now, wanted).await?;
            session.idle_expires_at = wanted;
        }
        Ok(Some(session))
    }

    /// Adds `second` to how the session signed in (a step up, or a second factor just
    /// enrolled in it). The session keeps its token, so the applications it opened keep
    /// their `sid`; it was already authenticated by this member.
    pub async fn add_factor(&self, session: &Session, second: SecondFactor) -> Result<Factors, StoreError> {
        let factors = session.factors.and(second);
        self.sessions.set_session_factors(&session.token_hash, factors).await?;
        Ok(factors)
    }

    /// The upstream provider's ID token a session keeps (see [`Self::open_with`]).
    pub async fn upstream_id_token(&self, session: &Session) -> Result<Option<String>, StoreError> {
        self.sessions.upstream_id_token(&session.token_hash).await
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
        let now = event.at;
        self.sessions.delete_session(&session.token_hash, now, Some(event)).await
    }
}
