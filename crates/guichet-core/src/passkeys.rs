//! Security keys and passkeys (WebAuthn, with webauthn-rs): added in Mon espace, they
//! are a second factor after the password and, when the device keeps them (a passkey), a
//! way in without a password at all.
//!
//! - Every ceremony asks for user verification (a PIN, a fingerprint on the device):
//!   a key alone is then two factors, and a login with it is one the staff rule accepts.
//! - A ceremony's state waits in the database between its two requests, under the hash
//!   of a token only the browser holds, for [`CEREMONY_FOR`]; finishing takes it, so an
//!   answer serves once, on whichever instance.
//! - The member's WebAuthn user handle is derived from the account under the server key:
//!   stable, opaque, and nothing to store.
//! - The signature counter is checked by webauthn-rs (a cloned key is refused) and
//!   written back after every use.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::account::{Account, AccountId};
use crate::audit::{Actor, AuditKind, RequestContext};
use crate::clock::Clock;
use crate::keys::{Purpose, ServerKey};
use crate::ports::{
    AccountStore, CeremonyPurpose, PasskeyStore, Ports, StoreError, StoredCeremony, StoredKey, ThrottleStore,
    Transactions,
};
use crate::second_factor::{SecondFactor, Step, event, may_change, notify, proof_of, record_login};
use crate::session::Session;
use crate::token::PlainToken;

/// How long a begun ceremony waits for the browser's answer.
pub const CEREMONY_FOR: SignedDuration = SignedDuration::from_mins(5);
/// How many keys an account may hold.
pub const MAX_KEYS: usize = 10;
/// Passkey logins one network may begin per minute (each stores a ceremony for five
/// minutes): a hospital's whole staff arriving at once stays below.
pub const LOGINS_PER_MINUTE: u64 = 120;

/// Why a key was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The ceremony is unknown, used or expired (the page was left open too long).
    #[error("no such ceremony")]
    Expired,
    /// The browser's answer does not hold (wrong origin, signature, counter, no user
    /// verification, or unreadable).
    #[error("the key's answer was refused")]
    Refused,
    /// No account has this key, or it may not sign in (disabled).
    #[error("unknown key")]
    Unknown,
    /// The account holds [`MAX_KEYS`] already.
    #[error("too many keys")]
    TooMany,
    /// Too many passkey logins begun from this network ([`LOGINS_PER_MINUTE`]).
    #[error("too many passkey logins from this network")]
    Throttled,
    /// The account holds a second factor this session did not give: it is asked first.
    #[error("second factor first")]
    StepUpFirst,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A ceremony begun: the token the browser sends back, and the options for
/// `navigator.credentials` (JSON).
pub struct Ceremony {
    /// The token naming the ceremony (secret: only its hash is stored).
    pub token: String,
    /// The options, JSON.
    pub options: String,
}

impl std::fmt::Debug for Ceremony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ceremony").finish_non_exhaustive()
    }
}

/// A key as Mon espace lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    /// Its credential id (base64url), what removing names.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last opened a session.
    pub last_used_at: Option<Timestamp>,
}

/// The WebAuthn use cases.
#[derive(Clone)]
pub struct Passkeys {
    webauthn: Arc<Webauthn>,
    store: Arc<dyn PasskeyStore>,
    accounts: Arc<dyn AccountStore>,
    throttle: Arc<dyn ThrottleStore>,
    transactions: Arc<dyn Transactions>,
    clock: Arc<dyn Clock>,
    key: ServerKey,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys").finish_non_exhaustive()
    }
}

/// Why WebAuthn cannot work with this public URL.
#[derive(Debug, thiserror::Error)]
#[error("WebAuthn needs GUICHET_PUBLIC_URL to be an https URL with a host name (or http://localhost): {0}")]
pub struct RelyingPartyError(String);

impl Passkeys {
    /// Wires the use cases for the site at `public_url` (its host is the relying party).
    pub fn new(
        ports: &Ports,
        clock: Arc<dyn Clock>,
        key: ServerKey,
        public_url: &str,
        site_name: &str,
    ) -> Result<Self, RelyingPartyError> {
        let origin = Url::parse(public_url).map_err(|e| RelyingPartyError(e.to_string()))?;
        // An address (the default 127.0.0.1) cannot be a relying party: browsers refuse it.
        let rp_id = origin.domain().ok_or_else(|| RelyingPartyError(format!("{public_url} has no host name")))?;
        let rp_id = rp_id.to_owned();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|builder| builder.rp_name(site_name).build())
            .map_err(|e| RelyingPartyError(e.to_string()))?;
        Ok(Self {
            webauthn: Arc::new(webauthn),
            store: Arc::clone(&ports.passkeys),
            accounts: Arc::clone(&ports.accounts),
            throttle: Arc::clone(&ports.throttle),
            transactions: Arc::clone(&ports.transactions),
            clock,
            key,
        })
    }

    /// The member's WebAuthn user handle: derived, stable, opaque.
    fn user_handle(&self, account: AccountId) -> Uuid {
        let mac = self.key.mac(Purpose::WebauthnUser, &account.get().to_be_bytes());
        let mut bytes = [0_u8; 16];
        bytes.copy_from_slice(mac.get(..16).unwrap_or(&[0; 16]));
        uuid_from(bytes)
    }

    async fn keep(
        &self,
        purpose: CeremonyPurpose,
        account: Option<AccountId>,
        state: &impl serde::Serialize,
        options: &impl serde::Serialize,
    ) -> Result<Ceremony, PasskeyError> {
        let token = PlainToken::generate();
        let state = serde_json::to_string(state).map_err(|_| PasskeyError::Refused)?;
        let options = serde_json::to_string(options).map_err(|_| PasskeyError::Refused)?;
        let until = self.clock.now().saturating_add(CEREMONY_FOR).unwrap_or_else(|_| self.clock.now());
        self.store.put_ceremony(&token.hash(), purpose, account, &state, until).await?;
        Ok(Ceremony { token: token.expose().to_owned(), options })
    }

    async fn take(&self, token: &str, purpose: CeremonyPurpose) -> Result<StoredCeremony, PasskeyError> {
        let token = PlainToken::from_presented(token).ok_or(PasskeyError::Expired)?;
        self.store.take_ceremony(&token.hash(), purpose, self.clock.now()).await?.ok_or(PasskeyError::Expired)
    }

    /// The account's keys, for Mon espace.
    pub async fn list(&self, account: AccountId) -> Result<Vec<ListedKey>, StoreError> {
        Ok(self
            .store
            .account_keys(account)
            .await?
            .into_iter()
            .map(|k| ListedKey {
                id: k.credential_id,
                name: k.name,
                created_at: k.created_at,
                last_used_at: k.last_used_at,
            })
            .collect())
    }

    /// Begins adding a key to `account`, from `session`: the device is asked to keep it
    /// as a passkey when it can, so that it also opens the account without a password.
    pub async fn begin_registration(&self, account: &Account, session: &Session) -> Result<Ceremony, PasskeyError> {
        self.may_change(account.id, session).await?;
        let keys = self.store.account_keys(account.id).await?;
        if keys.len() >= MAX_KEYS {
            return Err(PasskeyError::TooMany);
        }
        let exclude = keys.iter().filter_map(|k| URL_SAFE_NO_PAD.decode(&k.credential_id).ok()).collect();
        let (options, state): (CreationChallengeResponse, PasskeyRegistration) = self
            .webauthn
            .start_passkey_registration(
                self.user_handle(account.id),
                account.identifier.as_str(),
                account.display_name.as_str(),
                Some(exclude),
            )
            .map_err(|_| PasskeyError::Refused)?;
        let mut options = serde_json::to_value(&options).map_err(|_| PasskeyError::Refused)?;
        // Kept by the device when it can (a passkey): it then opens the account alone.
        if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection") {
            selection["residentKey"] = serde_json::json!("preferred");
            selection["requireResidentKey"] = serde_json::json!(false);
        }
        self.keep(CeremonyPurpose::Register, Some(account.id), &state, &options).await
    }

    /// Finishes adding a key named `name`, from `session`: stored, the account's other
    /// sessions ended (they signed in without it), the member mailed, audited.
    pub async fn finish_registration(
        &self,
        account: &Account,
        session: &Session,
        token: &str,
        answer: &str,
        name: &str,
        context: &RequestContext,
    ) -> Result<(), PasskeyError> {
        let ceremony = self.take(token, CeremonyPurpose::Register).await?;
        if ceremony.account != Some(account.id) {
            return Err(PasskeyError::Expired);
        }
        let state: PasskeyRegistration = serde_json::from_str(&ceremony.state).map_err(|_| PasskeyError::Expired)?;
        let answer: RegisterPublicKeyCredential = serde_json::from_str(answer).map_err(|_| PasskeyError::Refused)?;
        let passkey = self.webauthn.finish_passkey_registration(&answer, &state).map_err(|error| {
            tracing::info!(%error, "a key's registration was refused");
            PasskeyError::Refused
        })?;
        let now = self.clock.now();
        let name: String = name.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(60).collect();
        let name = if name.is_empty() { crate::catalogue::UNNAMED_KEY.to_owned() } else { name };
        let stored = StoredKey {
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            account: account.id,
            name,
            passkey: serde_json::to_string(&passkey).map_err(|_| PasskeyError::Refused)?,
            created_at: now,
            last_used_at: None,
        };
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account.id).await? else { return Err(PasskeyError::Unknown) };
        if session.account_id != account.id {
            return Err(PasskeyError::Expired);
        }
        may_change(work.as_mut(), session).await.map_err(|_| PasskeyError::StepUpFirst)?;
        if !work.insert_key(&stored).await? {
            // Registered already, to this account or another: refused, never moved.
            return Err(PasskeyError::Refused);
        }
        work.end_sessions(account.id, Some(&session.token_hash), now).await?;
        work.record(&event(account.id, AuditKind::SecondFactorAdded, Actor::Member, context, now)).await?;
        notify(work.as_mut(), &held, now).await?;
        work.commit().await?;
        Ok(())
    }

    /// Begins the second step with one of the account's keys.
    pub async fn begin_second_factor(&self, account: AccountId) -> Result<Ceremony, PasskeyError> {
        let keys = self.passkeys_of(account).await?;
        if keys.is_empty() {
            return Err(PasskeyError::Unknown);
        }
        let (options, state): (RequestChallengeResponse, PasskeyAuthentication) =
            self.webauthn.start_passkey_authentication(&keys).map_err(|_| PasskeyError::Refused)?;
        self.keep(CeremonyPurpose::SecondFactor, Some(account), &state, &options).await
    }

    /// Finishes the second step given by `step`: the key's answer checked, the login
    /// recorded (its failures cleared unless a lock runs, which only the member's usual
    /// browser gets through; a login whose password changed meanwhile is over).
    pub async fn finish_second_factor(
        &self,
        account: AccountId,
        token: &str,
        answer: &str,
        step: Step<'_>,
        context: &RequestContext,
    ) -> Result<(), PasskeyError> {
        let ceremony = self.take(token, CeremonyPurpose::SecondFactor).await?;
        if ceremony.account != Some(account) {
            return Err(PasskeyError::Expired);
        }
        let state: PasskeyAuthentication = serde_json::from_str(&ceremony.state).map_err(|_| PasskeyError::Expired)?;
        let answer: PublicKeyCredential = serde_json::from_str(answer).map_err(|_| PasskeyError::Refused)?;
        let result = self.webauthn.finish_passkey_authentication(&answer, &state).map_err(|error| {
            tracing::info!(%error, "a key's answer was refused");
            PasskeyError::Refused
        })?;
        let credential_id = URL_SAFE_NO_PAD.encode(result.cred_id());
        let stored = self.store.find_key(&credential_id).await?.filter(|k| k.account == account);
        let stored = stored.ok_or(PasskeyError::Unknown)?;
        let (despite_lock, proof) = match step {
            Step::Login { device, proof } => (device.is_some(), Some(proof)),
            Step::StepUp => (false, None),
        };
        self.record(&stored, &result, despite_lock, proof, context).await
    }

    /// Begins a login with a passkey alone (the device says whose), at most
    /// [`LOGINS_PER_MINUTE`] from one network.
    pub async fn begin_login(&self, context: &RequestContext) -> Result<Ceremony, PasskeyError> {
        if let Some(address) = context.address.map(crate::lockout::throttle_key) {
            let key = crate::lockout::ThrottleKey::PasskeyLogins(address);
            let (begun, _) = self.throttle.count(&key, SignedDuration::from_mins(1), self.clock.now()).await?;
            if begun > LOGINS_PER_MINUTE {
                return Err(PasskeyError::Throttled);
            }
        }
        let (mut options, state): (RequestChallengeResponse, DiscoverableAuthentication) =
            self.webauthn.start_discoverable_authentication().map_err(|_| PasskeyError::Refused)?;
        // A button asks for it: the browser's own dialog, not its autofill.
        options.mediation = None;
        self.keep(CeremonyPurpose::Login, None, &state, &options).await
    }

    /// Finishes a login with a passkey alone: the account it names, once its answer
    /// holds. A running lock does not stop it (a passkey cannot be guessed); a disabled
    /// account stays out.
    pub async fn finish_login(
        &self,
        token: &str,
        answer: &str,
        context: &RequestContext,
    ) -> Result<Account, PasskeyError> {
        let ceremony = self.take(token, CeremonyPurpose::Login).await?;
        let state: DiscoverableAuthentication =
            serde_json::from_str(&ceremony.state).map_err(|_| PasskeyError::Expired)?;
        let answer: PublicKeyCredential = serde_json::from_str(answer).map_err(|_| PasskeyError::Refused)?;
        let (handle, credential_id) =
            self.webauthn.identify_discoverable_authentication(&answer).map_err(|_| PasskeyError::Unknown)?;
        let stored = self.store.find_key(&URL_SAFE_NO_PAD.encode(credential_id)).await?.ok_or(PasskeyError::Unknown)?;
        if self.user_handle(stored.account) != handle {
            return Err(PasskeyError::Unknown);
        }
        let passkey: Passkey = serde_json::from_str(&stored.passkey).map_err(|_| PasskeyError::Unknown)?;
        let result =
            self.webauthn.finish_discoverable_authentication_v2(&answer, state, &passkey).map_err(|error| {
                tracing::info!(%error, "a passkey's answer was refused");
                PasskeyError::Refused
            })?;
        self.record(&stored, &result, true, None, context).await?;
        let account = self.accounts.find_account(stored.account).await?.ok_or(PasskeyError::Unknown)?;
        Ok(account)
    }

    /// Records a key's successful use, in one unit with the account held: its counter
    /// written back only over the one it was checked against (a key removed meanwhile, or
    /// used twice at once, opens nothing), the login recorded. With `proof`, the password
    /// the login began with must still be the account's.
    async fn record(
        &self,
        stored: &StoredKey,
        result: &webauthn_rs::prelude::AuthenticationResult,
        despite_lock: bool,
        proof: Option<&str>,
        context: &RequestContext,
    ) -> Result<(), PasskeyError> {
        if !result.user_verified() {
            return Err(PasskeyError::Refused);
        }
        let mut passkey: Passkey = serde_json::from_str(&stored.passkey).map_err(|_| PasskeyError::Unknown)?;
        passkey.update_credential(result);
        let now = self.clock.now();
        let written = serde_json::to_string(&passkey).map_err(|_| PasskeyError::Unknown)?;
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(stored.account).await? else { return Err(PasskeyError::Unknown) };
        let locked = held.account.is_locked_at(now);
        let changed = proof.is_some_and(|proof| proof_of(&held.account) != proof);
        if held.account.disabled_at.is_some() || (locked && !despite_lock) || changed {
            return Err(PasskeyError::Unknown);
        }
        if !work.used_key(stored, &written, now).await? {
            return Err(PasskeyError::Unknown);
        }
        let how = crate::audit::AuditDetail::SecondFactor(SecondFactor::Key);
        record_login(work.as_mut(), stored.account, how, locked, context, now).await?;
        work.commit().await?;
        Ok(())
    }

    /// Whether `session` may begin adding a key to `account` (a read: the unit that adds
    /// it decides again, with the account held; see [`crate::second_factor::may_change`]).
    async fn may_change(&self, account: AccountId, session: &Session) -> Result<(), PasskeyError> {
        if session.account_id != account {
            return Err(PasskeyError::Expired);
        }
        if self.accounts.second_factors(account).await?.has_second() && !session.factors.has_second() {
            return Err(PasskeyError::StepUpFirst);
        }
        Ok(())
    }

    async fn passkeys_of(&self, account: AccountId) -> Result<Vec<Passkey>, StoreError> {
        let keys = self.store.account_keys(account).await?;
        Ok(keys.iter().filter_map(|k| serde_json::from_str(&k.passkey).ok()).collect())
    }

    /// Removes one of the member's keys, their password typed again, from a session that
    /// gave a second factor; mailed and audited.
    pub async fn remove(
        &self,
        confirmed: crate::me::PasswordConfirmed,
        session: &Session,
        credential_id: &str,
        context: &RequestContext,
    ) -> Result<bool, PasskeyError> {
        let account = confirmed.account();
        let now = self.clock.now();
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_account(account).await? else { return Ok(false) };
        if session.account_id != account {
            return Ok(false);
        }
        may_change(work.as_mut(), session).await.map_err(|_| PasskeyError::StepUpFirst)?;
        if !work.remove_key(account, credential_id).await? {
            return Ok(false);
        }
        work.record(&event(account, AuditKind::SecondFactorRemoved, Actor::Member, context, now)).await?;
        notify(work.as_mut(), &held, now).await?;
        work.commit().await?;
        Ok(true)
    }
}

/// A version-4-shaped UUID from 16 bytes (the user handle's form).
fn uuid_from(mut bytes: [u8; 16]) -> Uuid {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}
