//! WebAuthn credentials (security keys and passkeys) and the ceremonies between the two
//! requests of a registration or a login.

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;
use crate::account::AccountId;
use crate::token::TokenHash;

/// A registered credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Its credential id, base64url.
    pub credential_id: String,
    /// Whose.
    pub account: AccountId,
    /// What the member called it.
    pub name: String,
    /// The credential as webauthn-rs keeps it (public key, counter), JSON.
    pub passkey: String,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last opened a session.
    pub last_used_at: Option<Timestamp>,
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Adding a key to a signed-in account.
    Register,
    /// The second step of a login (or a step up), for one account.
    SecondFactor,
    /// A login with a passkey alone: whose, the passkey says.
    Login,
}

impl CeremonyPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::SecondFactor => "second_factor",
            Self::Login => "login",
        }
    }
}

/// A ceremony begun, as stored.
#[derive(Debug, Clone)]
pub struct StoredCeremony {
    /// For whom (none for a passkey login).
    pub account: Option<AccountId>,
    /// webauthn-rs's state, JSON.
    pub state: String,
}

/// Credentials and ceremonies.
#[async_trait]
pub trait PasskeyStore: Send + Sync + std::fmt::Debug {
    /// Keeps a ceremony's state under the hash of the browser's token until `expires_at`.
    async fn put_ceremony(
        &self,
        token: &TokenHash,
        purpose: CeremonyPurpose,
        account: Option<AccountId>,
        state: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Takes (removes) the ceremony with this token and purpose, if it has not expired
    /// at `now`: each serves once.
    async fn take_ceremony(
        &self,
        token: &TokenHash,
        purpose: CeremonyPurpose,
        now: Timestamp,
    ) -> Result<Option<StoredCeremony>, StoreError>;

    /// The account's credentials, oldest first.
    async fn account_keys(&self, account: AccountId) -> Result<Vec<StoredKey>, StoreError>;

    /// The credential with this id, whoever's.
    async fn find_key(&self, credential_id: &str) -> Result<Option<StoredKey>, StoreError>;

    /// Removes ceremonies expired at `now`; returns how many.
    async fn purge_ceremonies(&self, now: Timestamp) -> Result<u64, StoreError>;
}
