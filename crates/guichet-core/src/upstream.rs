//! Upstream identity providers (Pro Santé Connect…): a member signs in with an identity
//! a provider vouches for, guichet being its OpenID Connect relying party.
//!
//! - The HTTP side (discovery, the code exchange, signatures, `nonce`, `iss`) is the
//!   [`RelyingParty`] port's; this module decides what an identity it checked opens.
//! - An identity opens an account only when it is linked to it: by the RPPS number the
//!   operator recorded for the account (Pro Santé Connect's national identifier), or
//!   once by the member (their password right after the upstream login, or from Mon
//!   espace while signed in). Never by an address, never by creating an account.
//! - What waits between the redirect and the answer (the `state`, `nonce` and PKCE
//!   verifier) is kept in the database under the hash of the `state`, which the browser
//!   also holds in a cookie: an answer serves once, in the browser that asked, on any
//!   instance.
//! - A disabled account stays out. A lock (wrong passwords) applies as it does to the
//!   password: only the member's usual browser gets through it.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::account::{Account, AccountId, Rpps};
use crate::audit::{Actor, AuditDetail, AuditKind, NewAuditEvent, RequestContext};
use crate::clock::Clock;
use crate::credentials::member_event;
use crate::mail::MailKind;
use crate::ports::{
    Ports, RequestPurpose, StoreError, StoredRequest, ThrottleStore, Transactions, UpstreamLink, UpstreamStore, Work,
};
use crate::second_factor::{Factors, Vouched, Word};
use crate::session::Session;
use crate::token::PlainToken;

/// How long guichet waits for the provider's answer (the member types a PIN, finds the
/// CPS card).
pub const ANSWER_WITHIN: SignedDuration = SignedDuration::from_mins(10);
/// How long an identity no account is linked to waits for the member's password.
pub const PENDING_FOR: SignedDuration = SignedDuration::from_mins(15);
/// Upstream logins one network may begin per minute (each keeps a row for ten minutes):
/// a hospital's whole staff arriving at once stays below.
pub const BEGUN_PER_MINUTE: u64 = 120;

/// A provider, as the pages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Its id in URLs (`psc`).
    pub id: String,
    /// Its name on the login page ("Pro Santé Connect").
    pub name: String,
}

/// Where to send the browser, and what the answer will be checked against.
pub struct Authorization {
    /// The provider's authorization URL, with `state`, `nonce`, PKCE and `acr_values`.
    pub url: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization").finish_non_exhaustive()
    }
}

/// What the provider sent back to the callback. `Debug` leaves out the code.
#[derive(Clone)]
pub struct Answer {
    /// The authorization code.
    pub code: String,
    /// The `iss` parameter (RFC 9207), when the provider sent one.
    pub iss: Option<String>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").field("iss", &self.iss).finish_non_exhaustive()
    }
}

/// An identity the provider vouched for: its ID token and userinfo checked.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The provider's id.
    pub upstream: String,
    /// The provider's `sub` for the person.
    pub subject: String,
    /// The claim the configuration names as the national identifier, as sent.
    pub national: Option<String>,
    /// The `acr` of the ID token.
    pub acr: Option<String>,
    /// The given name, when sent (shown on the linking page).
    pub given_name: Option<String>,
    /// The family name, when sent.
    pub family_name: Option<String>,
    /// The ID token, the hint the provider's logout asks for.
    pub id_token: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("upstream", &self.upstream).finish_non_exhaustive()
    }
}

impl Identity {
    /// The RPPS number the identity carries, when its identifier claim reads as one.
    pub fn rpps(&self) -> Option<Rpps> {
        self.national.as_deref().and_then(|n| Rpps::parse(n).ok())
    }

    /// How a session it opens signed in.
    pub fn factors(&self) -> Factors {
        match Word::new(&self.upstream) {
            Some(by) => Factors::upstream(Vouched { by, acr: self.acr.as_deref().and_then(Word::new) }),
            None => Factors::default(),
        }
    }
}

/// Why an upstream login did not go through.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No provider has this id.
    #[error("no such upstream provider")]
    UnknownProvider,
    /// The provider did not answer (discovery, token or userinfo endpoint), or not in time.
    #[error("the upstream provider did not answer: {0}")]
    Unreachable(String),
    /// The provider's answer does not hold (signature, `nonce`, `iss`, audience, expiry,
    /// `acr`, an unreadable userinfo): said to the member as one thing; the reason is
    /// for the log.
    #[error("the upstream answer was refused: {0}")]
    Refused(String),
    /// The request is unknown, used, expired, or from another browser.
    #[error("no such upstream request")]
    Expired,
    /// The member cancelled at the provider, or it refused them (`error=` on the callback).
    #[error("the upstream provider said no: {0}")]
    Denied(String),
    /// Too many upstream logins begun from this network ([`BEGUN_PER_MINUTE`]).
    #[error("too many upstream logins from this network")]
    Throttled,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The HTTP side: guichet as the providers' OpenID Connect client.
#[async_trait]
pub trait RelyingParty: Send + Sync + std::fmt::Debug {
    /// The providers configured, in order.
    fn providers(&self) -> Vec<Provider>;

    /// A fresh authorization request to `upstream` carrying `state` (discovering the
    /// provider if needed).
    async fn authorization(&self, upstream: &str, state: &str) -> Result<Authorization, UpstreamError>;

    /// Exchanges the answer's code (with the PKCE verifier) and checks the ID token
    /// (signature, issuer, audience, expiry, `nonce`) and the userinfo (signed when the
    /// provider is configured so, its `sub` the ID token's), and the answer's `iss`.
    async fn identity(
        &self,
        upstream: &str,
        answer: &Answer,
        nonce: &str,
        verifier: &str,
    ) -> Result<Identity, UpstreamError>;

    /// Where to send the browser to end the provider's own session, when it offers it.
    async fn logout_url(&self, upstream: &str, id_token: &str, back_to: &str) -> Option<String>;

    /// Whom a back-channel logout token (OpenID Connect Back-Channel Logout 1.0) names,
    /// once the token holds: signed by the provider, its issuer, for this client, not
    /// expired, carrying the back-channel logout event and no `nonce`.
    async fn logout_subject(&self, upstream: &str, logout_token: &str) -> Result<LoggedOutThere, UpstreamError>;
}

/// A logout at the provider, as its back-channel token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedOutThere {
    /// The provider's `sub` for the person.
    pub subject: String,
    /// When the token was issued: sessions opened later are other logins there.
    pub issued_at: Timestamp,
}

/// How far a provider's clock may be ahead of guichet's, for a logout token's issue time.
const CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(60);

/// A request begun: where to send the browser, and the `state` for its cookie (secret:
/// only its hash is stored).
pub struct Begun {
    /// The provider's authorization URL.
    pub url: String,
    /// The `state`.
    pub state: PlainToken,
}

impl std::fmt::Debug for Begun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Begun").finish_non_exhaustive()
    }
}

/// An identity waiting for the member's password, and where its login was going.
#[derive(Clone, Serialize, Deserialize)]
pub struct Pending {
    /// The identity.
    pub identity: Identity,
    /// Where the login was going (already checked).
    pub next: Option<String>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("identity", &self.identity).finish_non_exhaustive()
    }
}

/// What a begun request waits with.
#[derive(Serialize, Deserialize)]
struct Waiting {
    nonce: String,
    verifier: String,
    next: Option<String>,
}

/// Where a login or a link is going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// A login from the login page, then on to `next` (already checked).
    Login {
        /// Where to go after.
        next: Option<String>,
    },
    /// A signed-in member linking the provider to their account.
    Link {
        /// The account.
        account: AccountId,
    },
}

/// The provider's answer, checked, and what the request was for.
#[derive(Debug)]
pub struct Answered {
    /// The identity.
    pub identity: Identity,
    /// What the request was for.
    pub intent: Intent,
}

/// Why an identity opened nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is disabled.
    Disabled,
    /// The account is locked until then, and this is not the member's usual browser.
    Locked(Timestamp),
}

/// What an identity opens.
#[derive(Debug)]
pub enum Admission {
    /// The account it is linked to (linked just now when `linked`).
    In {
        /// The account.
        account: Box<Account>,
        /// Linked by this login (its RPPS number matched).
        linked: bool,
    },
    /// No account is linked to it: the member proves one with a password, or asks the
    /// desk.
    Unknown,
    /// Linked, and refused.
    Refused(Refusal),
}

/// Why a link was not made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The identity is another account's already.
    #[error("linked to another account")]
    LinkedElsewhere,
    /// The identity's RPPS number is not the account's (the account holds another one,
    /// or another account holds it).
    #[error("another professional")]
    NotTheSamePerson,
    /// The pending identity is gone (expired, or linked meanwhile).
    #[error("no such pending identity")]
    Expired,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The upstream login use cases.
#[derive(Clone)]
pub struct Upstreams {
    party: Arc<dyn RelyingParty>,
    store: Arc<dyn UpstreamStore>,
    sessions: Arc<dyn crate::ports::SessionStore>,
    throttle: Arc<dyn ThrottleStore>,
    transactions: Arc<dyn Transactions>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams").field("providers", &self.party.providers()).finish_non_exhaustive()
    }
}

impl Upstreams {
    /// Wires the use cases to the relying party.
    pub fn new(ports: &Ports, party: Arc<dyn RelyingParty>, clock: Arc<dyn Clock>) -> Self {
        Self {
            party,
            store: Arc::clone(&ports.upstream),
            sessions: Arc::clone(&ports.sessions),
            throttle: Arc::clone(&ports.throttle),
            transactions: Arc::clone(&ports.transactions),
            clock,
        }
    }

    /// The providers configured.
    pub fn providers(&self) -> Vec<Provider> {
        self.party.providers()
    }

    /// The provider with this id.
    pub fn provider(&self, id: &str) -> Option<Provider> {
        self.party.providers().into_iter().find(|p| p.id == id)
    }

    /// The name `id` is shown under (the id itself for a provider no longer configured).
    pub fn name_of(&self, id: &str) -> String {
        self.provider(id).map_or_else(|| id.to_owned(), |p| p.name)
    }

    /// Begins a login or a link with `upstream`: the URL to send the browser to, and the
    /// `state`, which the browser keeps in a cookie until the answer.
    pub async fn begin(
        &self,
        upstream: &str,
        intent: Intent,
        context: &RequestContext,
    ) -> Result<Begun, UpstreamError> {
        self.provider(upstream).ok_or(UpstreamError::UnknownProvider)?;
        let now = self.clock.now();
        if let Some(address) = context.address.map(crate::lockout::throttle_key) {
            let key = crate::lockout::ThrottleKey::UpstreamLogins(address);
            let (begun, _) = self.throttle.count(&key, SignedDuration::from_mins(1), now).await?;
            if begun > BEGUN_PER_MINUTE {
                return Err(UpstreamError::Throttled);
            }
        }
        let state = PlainToken::generate();
        let authorization = self.party.authorization(upstream, state.expose()).await?;
        let (purpose, account, next) = match intent {
            Intent::Login { next } => (RequestPurpose::Login, None, next),
            Intent::Link { account } => (RequestPurpose::Link, Some(account), None),
        };
        let waiting = Waiting { nonce: authorization.nonce.clone(), verifier: authorization.verifier.clone(), next };
        let payload = serde_json::to_string(&waiting).map_err(|e| UpstreamError::Refused(e.to_string()))?;
        let request = StoredRequest { upstream: upstream.to_owned(), purpose, account, payload };
        let until = now.saturating_add(ANSWER_WITHIN).unwrap_or(now);
        self.store.put_upstream_request(&state.hash(), &request, until).await?;
        Ok(Begun { url: authorization.url, state })
    }

    /// Takes the request the answer's `state` names (it serves once), when the browser's
    /// cookie holds the same `state`, and has the relying party check the answer.
    pub async fn answer(
        &self,
        upstream: &str,
        state: &str,
        cookie: Option<&str>,
        answer: &Answer,
    ) -> Result<Answered, UpstreamError> {
        let same_browser = cookie.is_some_and(|c| bool::from(c.as_bytes().ct_eq(state.as_bytes())));
        let token = PlainToken::from_presented(state).ok_or(UpstreamError::Expired)?;
        // Taken even from another browser: a state seen twice serves no one.
        let request = self.store.take_upstream_request(&token.hash(), self.clock.now()).await?;
        let request = request.filter(|r| same_browser && r.upstream == upstream).ok_or(UpstreamError::Expired)?;
        let waiting: Waiting = serde_json::from_str(&request.payload).map_err(|_| UpstreamError::Expired)?;
        let intent = match (request.purpose, request.account) {
            (RequestPurpose::Login, None) => Intent::Login { next: waiting.next },
            (RequestPurpose::Link, Some(account)) => Intent::Link { account },
            _ => return Err(UpstreamError::Expired),
        };
        let identity = self.party.identity(upstream, answer, &waiting.nonce, &waiting.verifier).await?;
        Ok(Answered { identity, intent })
    }

    /// Forgets the request an error answer's `state` names (the member cancelled).
    pub async fn drop_request(&self, state: &str) -> Result<(), StoreError> {
        if let Some(token) = PlainToken::from_presented(state) {
            self.store.take_upstream_request(&token.hash(), self.clock.now()).await?;
        }
        Ok(())
    }

    /// What `identity` opens: the account it is linked to, or the one whose RPPS number
    /// it carries (linked now, the member told). `usual_browser` says whether the browser
    /// is the member's usual one (a lock does not stop it there).
    pub async fn admit(
        &self,
        identity: &Identity,
        usual_browser: impl Fn(&Account) -> bool + Send,
        context: &RequestContext,
    ) -> Result<Admission, UpstreamError> {
        let linked = self.store.linked_account(&identity.upstream, &identity.subject).await?;
        let national = identity.rpps();
        let (account, new_link) = match (linked, &national) {
            (Some(account), _) => (account, false),
            (None, Some(rpps)) => match self.store.account_with_rpps(rpps).await? {
                Some(account) => (account, true),
                None => return Ok(Admission::Unknown),
            },
            (None, None) => return Ok(Admission::Unknown),
        };
        let now = self.clock.now();
        let name = self.name_of(&identity.upstream);
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(Admission::Unknown) };
        let locked = held.account.is_locked_at(now);
        let refusal = if held.account.disabled_at.is_some() {
            Some(Refusal::Disabled)
        } else if locked && !usual_browser(&held.account) {
            held.account.locked_until.map(Refusal::Locked)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            let mut refused = member_event(account, AuditKind::LoginRefusedLocked, context, now);
            refused.detail = Some(AuditDetail::Upstream(name));
            work.record(&refused).await?;
            work.commit().await?;
            return Ok(Admission::Refused(refusal));
        }
        if new_link {
            // The number is still this account's, in this unit; its member did not remove
            // this provider's link (then only their password, or Mon espace, links); and
            // it is a member's: a staff account is linked by its password, never by a
            // number someone typed.
            let removed = work.upstream_link_removed(&identity.upstream, account).await?;
            if held.account.rpps != national || removed || held.account.role != crate::account::Role::Member {
                return Ok(Admission::Unknown);
            }
            if !work.link_upstream(&identity.upstream, &identity.subject, account, now).await? {
                return Ok(Admission::Unknown);
            }
            linked_event(work.as_mut(), &held, &name, context, now).await?;
        } else if national.is_some() && held.account.rpps.is_some() && held.account.rpps != national {
            // Linked, but the account's number was corrected since: another professional's
            // identity, whose link goes.
            let mut unlinked = member_event(account, AuditKind::UpstreamUnlinked, context, now);
            unlinked.actor = Actor::System;
            unlinked.detail = Some(AuditDetail::Upstream(name));
            remove_link(work.as_mut(), &identity.upstream, &identity.subject, None, &unlinked).await?;
            work.commit().await?;
            return Ok(Admission::Unknown);
        }
        // Unlinked meanwhile (after the read above): it opens nothing.
        if !work.used_upstream_link(&identity.upstream, &identity.subject, account, now).await? {
            return Ok(Admission::Unknown);
        }
        crate::second_factor::record_login(work.as_mut(), account, AuditDetail::Upstream(name), locked, context, now)
            .await?;
        work.commit().await?;
        Ok(Admission::In { account: Box::new(held.account), linked: new_link })
    }

    /// Keeps an identity no account is linked to, for [`PENDING_FOR`], under a token for
    /// the browser's cookie, with where the login was going: the member's password links
    /// it ([`Self::link_pending`]).
    pub async fn hold_pending(&self, identity: &Identity, next: Option<String>) -> Result<PlainToken, UpstreamError> {
        let token = PlainToken::generate();
        let pending = Pending { identity: identity.clone(), next };
        let payload = serde_json::to_string(&pending).map_err(|e| UpstreamError::Refused(e.to_string()))?;
        let request = StoredRequest {
            upstream: identity.upstream.clone(),
            purpose: RequestPurpose::Pending,
            account: None,
            payload,
        };
        let now = self.clock.now();
        let until = now.saturating_add(PENDING_FOR).unwrap_or(now);
        self.store.put_upstream_request(&token.hash(), &request, until).await?;
        Ok(token)
    }

    /// The identity waiting under the cookie's token, for `upstream`.
    pub async fn pending(&self, upstream: &str, cookie: Option<&str>) -> Result<Option<Pending>, StoreError> {
        let Some(token) = cookie.and_then(PlainToken::from_presented) else { return Ok(None) };
        let request = self.store.peek_upstream_request(&token.hash(), self.clock.now()).await?;
        Ok(request
            .filter(|r| r.purpose == RequestPurpose::Pending && r.upstream == upstream)
            .and_then(|r| serde_json::from_str(&r.payload).ok()))
    }

    /// Links the waiting identity to `account`, whose password the member just typed
    /// right in this browser (the login that checked it was recorded); the waiting row
    /// is taken. Returns what waited, for the session it opens.
    pub async fn link_pending(
        &self,
        upstream: &str,
        cookie: Option<&str>,
        account: AccountId,
        context: &RequestContext,
    ) -> Result<Pending, LinkError> {
        let token = cookie.and_then(PlainToken::from_presented).ok_or(LinkError::Expired)?;
        let request = self.store.take_upstream_request(&token.hash(), self.clock.now()).await?;
        let pending: Pending = request
            .filter(|r| r.purpose == RequestPurpose::Pending && r.upstream == upstream)
            .and_then(|r| serde_json::from_str(&r.payload).ok())
            .ok_or(LinkError::Expired)?;
        self.link(account, &pending.identity, context).await?;
        Ok(pending)
    }

    /// Links `identity` to the account of `session` (a member linking from Mon espace);
    /// `Ok(false)` when it was this account's already.
    pub async fn link_signed_in(
        &self,
        session: &Session,
        account: AccountId,
        identity: &Identity,
        context: &RequestContext,
    ) -> Result<bool, LinkError> {
        if session.account_id != account {
            return Err(LinkError::Expired);
        }
        self.link(account, identity, context).await
    }

    /// Links, in one unit with the account held: refused when the identity is another
    /// account's, or carries an RPPS number the account (or another one) says is
    /// someone else's; audited and told to the member.
    async fn link(&self, account: AccountId, identity: &Identity, context: &RequestContext) -> Result<bool, LinkError> {
        let linked = self.store.linked_account(&identity.upstream, &identity.subject).await?;
        if linked.is_some_and(|linked| linked != account) {
            return Err(LinkError::LinkedElsewhere);
        }
        let national = identity.rpps();
        if let Some(rpps) = &national
            && self.store.account_with_rpps(rpps).await?.is_some_and(|holder| holder != account)
        {
            return Err(LinkError::NotTheSamePerson);
        }
        let now = self.clock.now();
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Err(LinkError::Expired) };
        if held.account.rpps.is_some() && national.is_some() && held.account.rpps != national {
            return Err(LinkError::NotTheSamePerson);
        }
        if linked == Some(account) {
            return Ok(false);
        }
        if !work.link_upstream(&identity.upstream, &identity.subject, account, now).await? {
            return Err(LinkError::LinkedElsewhere);
        }
        linked_event(work.as_mut(), &held, &self.name_of(&identity.upstream), context, now).await?;
        work.commit().await?;
        Ok(true)
    }

    /// The account's links, for Mon espace.
    pub async fn links(&self, account: AccountId) -> Result<Vec<UpstreamLink>, StoreError> {
        self.store.account_links(account).await
    }

    /// Removes one of the session's account's links; the sessions it opened end, but this
    /// one (the member acting); audited. `false` when there was none.
    pub async fn unlink(
        &self,
        session: &Session,
        upstream: &str,
        subject: &str,
        context: &RequestContext,
    ) -> Result<bool, StoreError> {
        let account = session.account_id;
        let now = self.clock.now();
        let mut work = self.transactions.begin().await?;
        if work.hold_account(account).await?.is_none() {
            return Ok(false);
        }
        let mut unlinked = member_event(account, AuditKind::UpstreamUnlinked, context, now);
        unlinked.detail = Some(AuditDetail::Upstream(self.name_of(upstream)));
        if !remove_link(work.as_mut(), upstream, subject, Some(&session.token_hash), &unlinked).await? {
            return Ok(false);
        }
        work.commit().await?;
        Ok(true)
    }

    /// The provider says a person's session there ended (its back-channel logout): the
    /// sessions it opened here for that person before the token was issued end too (a
    /// token replayed later ends no newer login), their applications told, audited. How
    /// many ended (none for a person it opened nothing for: the provider is answered the
    /// same).
    pub async fn logout_from_upstream(&self, upstream: &str, logout_token: &str) -> Result<u64, UpstreamError> {
        self.provider(upstream).ok_or(UpstreamError::UnknownProvider)?;
        let there = self.party.logout_subject(upstream, logout_token).await?;
        let now = self.clock.now();
        let before = there.issued_at.saturating_add(CLOCK_SKEW).unwrap_or(there.issued_at);
        let ended = NewAuditEvent {
            at: now,
            account_id: None,
            kind: AuditKind::LoggedOut,
            actor: Actor::System,
            context: RequestContext::default(),
            detail: Some(AuditDetail::Upstream(self.name_of(upstream))),
        };
        Ok(self.sessions.end_upstream_sessions(upstream, &there.subject, before, now, ended).await?)
    }

    /// Where to send the browser to end the provider's session after guichet's, when the
    /// session came from a provider that offers it.
    pub async fn logout_url(&self, upstream: &str, id_token: &str, back_to: &str) -> Option<String> {
        self.party.logout_url(upstream, id_token, back_to).await
    }
}

/// Removes a link of the account `unlinked` names, in the caller's unit with the account
/// held: the sessions it opened end (but `keep`, the member acting), their applications
/// told, and `unlinked` is recorded. `false` (nothing written) when there was no such link.
pub(crate) async fn remove_link(
    work: &mut dyn Work,
    upstream: &str,
    subject: &str,
    keep: Option<&crate::token::TokenHash>,
    unlinked: &NewAuditEvent,
) -> Result<bool, StoreError> {
    let Some(account) = unlinked.account_id else { return Ok(false) };
    if !work.unlink_upstream(account, upstream, subject, unlinked.at).await? {
        return Ok(false);
    }
    work.end_link_sessions(account, upstream, subject, keep, unlinked.at).await?;
    work.record(unlinked).await?;
    Ok(true)
}

/// Records a new link and tells the member's address.
async fn linked_event(
    work: &mut dyn Work,
    held: &crate::ports::HeldAccount,
    name: &str,
    context: &RequestContext,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut linked = member_event(held.account.id, AuditKind::UpstreamLinked, context, now);
    linked.detail = Some(AuditDetail::Upstream(name.to_owned()));
    work.record(&linked).await?;
    crate::credentials::notify(work, held, MailKind::UpstreamLinked, now).await
}
