//! guichet as an OpenID Connect provider (Core 1.0, Discovery 1.0, RP-Initiated Logout
//! 1.0, Back- and Front-Channel Logout 1.0), with OAuth's refresh tokens (RFC 6749 §6),
//! revocation (RFC 7009) and introspection (RFC 7662), for the association's own
//! applications: authorization code flow only, with PKCE (S256; required of public
//! clients), no consent screen.
//!
//! Who gets a code is decided here, with the account in hand: a disabled account or one
//! that must change its password gets none (the latter changes it first, then goes on),
//! a locked one gets none, and a client limited to groups admits only their members.
//! Codes live 60 seconds, are stored hashed and work once: a second use revokes what the
//! first one issued. Tokens are RS256-signed and live 10 minutes.
//!
//! Everything a code issues belongs to the guichet session it was issued in: the ID
//! token names it (`sid`), the session records the application, and when the session
//! ends (however it ends, but expiry) the application is told on its back channel.
//! Refresh tokens rotate at each use, a replayed one revokes its family, and they end
//! with the session — unless the client holds offline access and the scope asked for it:
//! then they live a bounded time, and still end at a password change, when the account
//! is disabled or its sessions are ended (and are refused while it is suspended or out
//! of the client's groups).

mod clients;
mod grants;
mod keyring;
mod logouts;
mod tokens;

use crate::second_factor::Factors;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use openidconnect::core::CoreGenderClaim;
use openidconnect::{
    Audience, EndUserEmail, EndUserFamilyName, EndUserGivenName, EndUserName, EndUserUsername, IdTokenClaims,
    IssuerUrl, LocalizedClaim, Nonce, StandardClaims, SubjectIdentifier, UserInfoClaims,
};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use url::Url;

pub use clients::{Client, ClientError, ClientId, NewClient, Registered, check_redirect_uri};
pub use grants::{Grants, NewRefreshToken, Rotation, SessionLink};
pub use keyring::{Arrangement, PUBLISH_AHEAD, RETIRE_AFTER, arrange};
pub use logouts::{
    Delivery, GIVE_UP_AFTER, LogoutEntry, LogoutId, LogoutOutcome, LogoutSender, LogoutState, Messenger, QueuedLogout,
};
pub use tokens::{AccessClaims, GroupsClaim, LogoutToken, NewAccessToken, Signer, SigningError, generate_key};

use crate::account::{Account, AccountId};
use crate::clock::Clock;
use crate::console::StaffActor;
use crate::groups::GroupName;
use crate::keys::{Purpose, ServerKey};
use crate::ports::{AccountStore, CodeUse, GroupStore, KeyStore, OidcStore, Ports, StoreError};
use crate::session::{Session, Sessions};
use crate::token::{PlainToken, TokenHash};

/// How long a code may wait for its exchange.
pub const CODE_LIFETIME: SignedDuration = SignedDuration::from_secs(60);
/// How long an ID token or access token is good for.
pub const TOKEN_LIFETIME: SignedDuration = SignedDuration::from_mins(10);
/// The scopes guichet knows; others are ignored (`offline_access` too, for a client
/// without offline access).
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];
/// How long an offline refresh token family lives, unless configured.
pub const OFFLINE_LIFETIME: SignedDuration = SignedDuration::from_hours(30 * 24);
/// The name the first signing key is kept under; rotated ones add `-<milliseconds>`.
const KEY_NAME: &str = "oidc-rs256";
/// How often the signing keys are read again.
const KEYS_READ_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// An authorization code to keep (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode {
    /// The code's hash.
    pub hash: TokenHash,
    /// Issued to.
    pub client: ClientId,
    /// For whom.
    pub account: AccountId,
    /// The redirect URI it was sent to (the exchange must name it again).
    pub redirect_uri: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The client's nonce, returned in the ID token.
    pub nonce: Option<String>,
    /// The PKCE challenge (S256).
    pub code_challenge: Option<String>,
    /// When the member logged in.
    pub auth_time: Timestamp,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// The guichet session it was issued in.
    pub session: Option<TokenHash>,
    /// How that session signed in (the ID token's `amr` and `acr`).
    pub factors: Factors,
}

/// A code as read back at its first use.
pub type IssuedCode = NewCode;

/// An access token's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    /// The token's `jti`.
    pub jti: String,
    /// The code it came from (for a refreshed one, the code that began its family).
    pub code: TokenHash,
    /// Issued to.
    pub client: ClientId,
    /// For whom.
    pub account: AccountId,
    /// Granted scopes.
    pub scope: String,
    /// Until when.
    pub expires_at: Timestamp,
    /// The guichet session it lives in; `None` for one refreshed offline.
    pub session: Option<TokenHash>,
}

/// An access token's record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// As issued.
    pub grant: NewGrant,
    /// When it was revoked (its code or refresh token was presented again, it was
    /// revoked by its client, or its family was).
    pub revoked_at: Option<Timestamp>,
}

/// What `/oidc/authorize` was asked, parsed where it arrives ([`Self::parse`]): the
/// client and the redirect URI as sent (the use case checks them against the
/// registered client first, so that nothing is ever sent to an address the client did
/// not register), `state` to send back, and the rest in its types, or the first thing
/// wrong with it, to be said to the client.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// `client_id`, when it is a well-formed one.
    pub client_id: Option<ClientId>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `state`, sent back as it came.
    pub state: Option<String>,
    /// The rest.
    pub asked: Result<Asked, Malformed>,
}

/// What a well-formed authorization request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The scopes asked that guichet offers (`openid` among them).
    pub scopes: Vec<&'static str>,
    /// `nonce` (512 bytes at most).
    pub nonce: Option<String>,
    /// The PKCE challenge (S256, 43 base64url characters).
    pub code_challenge: Option<String>,
    /// `prompt=none`: answer without showing anything.
    pub prompt_none: bool,
    /// `prompt=login`: a fresh login is wanted.
    pub prompt_login: bool,
    /// `max_age`, in seconds.
    pub max_age: Option<u64>,
}

/// The first thing wrong with an authorization request, as OAuth names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    /// The `error` code.
    pub error: &'static str,
    /// The `error_description`.
    pub description: &'static str,
}

impl AuthorizeRequest {
    /// Parses the request's parameters (`get` gives one by name, `None` when absent);
    /// `request` or `request_uri` (request objects) are not supported.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            client_id: get("client_id").as_deref().and_then(ClientId::parse),
            redirect_uri: get("redirect_uri"),
            state: get("state"),
            asked: Asked::parse(&get),
        }
    }
}

impl Asked {
    fn parse(get: &impl Fn(&str) -> Option<String>) -> Result<Self, Malformed> {
        let malformed = |error, description| Malformed { error, description };
        if get("response_type").as_deref() != Some("code") {
            return Err(malformed(
                "unsupported_response_type",
                "only the authorization code flow (response_type=code)",
            ));
        }
        if get("request").is_some() || get("request_uri").is_some() {
            return Err(malformed("request_not_supported", "request objects are not supported"));
        }
        if get("response_mode").is_some_and(|m| m != "query") {
            return Err(malformed("invalid_request", "only response_mode=query is supported"));
        }
        let asked = get("scope").unwrap_or_default();
        let asked: Vec<&str> = asked.split_whitespace().collect();
        if !asked.contains(&"openid") {
            return Err(malformed("invalid_scope", "the openid scope is required"));
        }
        let code_challenge = match (get("code_challenge"), get("code_challenge_method").as_deref()) {
            (Some(challenge), Some("S256")) if is_pkce_value(&challenge) => Some(challenge),
            (Some(_), _) => {
                return Err(malformed("invalid_request", "code_challenge must be S256 (43 base64url characters)"));
            }
            (None, Some(_)) => {
                return Err(malformed("invalid_request", "code_challenge_method without code_challenge"));
            }
            (None, None) => None,
        };
        let nonce = get("nonce");
        if nonce.as_deref().is_some_and(|n| n.len() > 512) {
            return Err(malformed("invalid_request", "nonce is too long"));
        }
        let max_age = match get("max_age") {
            None => None,
            Some(max) => Some(
                max.parse::<u64>().map_err(|_| malformed("invalid_request", "max_age must be a number of seconds"))?,
            ),
        };
        let prompt = get("prompt").unwrap_or_default();
        let prompt = |value: &str| prompt.split_whitespace().any(|v| v == value);
        Ok(Self {
            scopes: SCOPES.iter().copied().filter(|s| asked.contains(s)).collect(),
            nonce,
            code_challenge,
            prompt_none: prompt("none"),
            prompt_login: prompt("login"),
            max_age,
        })
    }
}

/// Why the browser cannot be sent back to the client at all: shown on a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No registered client has this id.
    UnknownClient,
    /// The redirect URI is not one the client registered.
    RedirectUri,
}

/// What to do with an authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorize {
    /// Never redirect: show a page.
    Refuse(Refusal),
    /// Back to the client, with a code or an error.
    Redirect(String),
    /// Log in first, then come back to the same request.
    SignIn,
    /// Change the temporary password first, then come back.
    ChangePassword,
    /// The client admits only sessions signed in with a second factor: give it (or
    /// enrol one first, `enrol`), then come back.
    SecondFactor {
        /// The account has none yet.
        enrol: bool,
    },
}

/// How the client authenticated at the token endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// `client_id` (from Basic or the form).
    pub id: Option<String>,
    /// `client_secret` (from Basic or the form).
    pub secret: Option<SecretString>,
}

/// What `/oidc/token` was asked, parsed where it arrives ([`Self::parse`]); what is
/// wrong with it is answered once the client has authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    /// `grant_type=authorization_code`.
    AuthorizationCode {
        /// `code`.
        code: String,
        /// `redirect_uri`, to be the authorization request's.
        redirect_uri: Option<String>,
        /// `code_verifier`.
        code_verifier: Option<String>,
    },
    /// `grant_type=refresh_token`.
    RefreshToken {
        /// `refresh_token`.
        refresh_token: String,
        /// `scope`: no more than was granted.
        scope: Option<String>,
    },
    /// Another grant type.
    Unsupported,
    /// A parameter is missing: which.
    Malformed(&'static str),
}

impl TokenRequest {
    /// Parses the form's parameters (`get` gives one by name, `None` when absent).
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Self {
        match get("grant_type").as_deref() {
            None => Self::Malformed("grant_type is missing"),
            Some("authorization_code") => match get("code") {
                None => Self::Malformed("code is missing"),
                Some(code) => Self::AuthorizationCode {
                    code,
                    redirect_uri: get("redirect_uri"),
                    code_verifier: get("code_verifier"),
                },
            },
            Some("refresh_token") => match get("refresh_token") {
                None => Self::Malformed("refresh_token is missing"),
                Some(refresh_token) => Self::RefreshToken { refresh_token, scope: get("scope") },
            },
            Some(_) => Self::Unsupported,
        }
    }
}

/// A token response.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// The ID token.
    pub id_token: String,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// Seconds until they expire.
    pub expires_in: u64,
    /// Granted scopes.
    pub scope: String,
}

/// A token endpoint error, as OAuth names it.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The client is unknown or its secret wrong (`401`).
    #[error("invalid_client")]
    InvalidClient,
    /// The code is unknown, used, expired, or not for this client, URI or verifier.
    #[error("invalid_grant")]
    InvalidGrant(&'static str),
    /// A parameter is missing or malformed.
    #[error("invalid_request")]
    InvalidRequest(&'static str),
    /// A refresh asked for more than was granted.
    #[error("invalid_scope")]
    InvalidScope,
    /// Neither `authorization_code` nor `refresh_token`.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// Storage or signing failed.
    #[error(transparent)]
    Failed(#[from] OidcError),
}

impl From<StoreError> for TokenError {
    fn from(error: StoreError) -> Self {
        Self::Failed(OidcError::Store(error))
    }
}

/// Storage or signing failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing.
    #[error(transparent)]
    Signing(#[from] SigningError),
}

/// What `/oidc/logout` was asked.
#[derive(Debug, Clone, Default)]
pub struct LogoutRequest {
    /// `id_token_hint`.
    pub id_token_hint: Option<String>,
    /// `post_logout_redirect_uri`.
    pub post_logout_redirect_uri: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
}

/// How to carry out a logout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutPlan {
    /// Where to send the browser afterwards (a registered URI, with `state`).
    pub return_to: Option<String>,
    /// Whether the request proves it comes from the member's client (a valid
    /// `id_token_hint` for the signed-in member): then no need to ask them.
    pub proven: bool,
}

/// Tokens signed, with the records to keep for them.
struct Signed {
    tokens: Tokens,
    grant: NewGrant,
    refresh: NewRefreshToken,
}

/// An application to tell of a logout in the member's browser (Front-Channel Logout 1.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontChannel {
    /// The application's name.
    pub name: String,
    /// Its front-channel logout URI, with `iss` and `sid`.
    pub url: String,
    /// The URL's origin (`scheme://host[:port]`), to allow it as a frame.
    pub origin: String,
}

/// The applications a session signed in to, as a logout page needs them once the
/// session has ended: its `sid` and the clients' ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedInto {
    /// The session's `sid`.
    pub sid: String,
    /// The clients with a front-channel logout URI.
    pub clients: Vec<ClientId>,
}

impl SignedInto {
    /// As carried by a notice cookie: `sid:client,client`.
    pub fn encode(&self) -> String {
        let clients: Vec<&str> = self.clients.iter().map(ClientId::as_str).collect();
        format!("{}:{}", self.sid, clients.join(","))
    }

    /// Reads [`Self::encode`]'s text back; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let (sid, clients) = text.split_once(':')?;
        let well_formed = sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit());
        let clients: Option<Vec<ClientId>> =
            clients.split(',').filter(|c| !c.is_empty()).take(20).map(ClientId::parse).collect();
        well_formed.then_some(Self { sid: sid.to_owned(), clients: clients? })
    }
}

/// The provider.
#[derive(Debug, Clone)]
pub struct Oidc {
    store: Arc<dyn OidcStore>,
    grants: Grants,
    accounts: Arc<dyn AccountStore>,
    groups: Arc<dyn GroupStore>,
    keys: Arc<dyn KeyStore>,
    sessions: Sessions,
    clock: Arc<dyn Clock>,
    server_key: ServerKey,
    issuer: IssuerUrl,
    offline_lifetime: SignedDuration,
    /// The keys as last read, and when (real time): read again every minute, so that a
    /// key rotated by another process is published, then signs, on time.
    signer: Arc<tokio::sync::RwLock<Option<KeysRead>>>,
}

/// The signing keys as read, and when (real time).
type KeysRead = (Arc<Signer>, std::time::Instant);

/// A key just made by [`Oidc::rotate_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedKey {
    /// Its id (`kid`).
    pub kid: String,
    /// When it begins to sign.
    pub signs_from: Timestamp,
    /// Until when the key it replaces stays published.
    pub previous_until: Timestamp,
}

impl Oidc {
    /// Wires the provider; `issuer` is `GUICHET_PUBLIC_URL`; `sessions` are the guichet
    /// sessions everything issued lives in.
    pub fn new(
        ports: &Ports,
        clock: Arc<dyn Clock>,
        server_key: ServerKey,
        issuer: &str,
        sessions: Sessions,
    ) -> Result<Self, String> {
        let issuer = IssuerUrl::new(issuer.trim_end_matches('/').to_owned()).map_err(|e| e.to_string())?;
        Ok(Self {
            store: Arc::clone(&ports.oidc),
            grants: Grants::of(ports),
            accounts: Arc::clone(&ports.accounts),
            groups: Arc::clone(&ports.groups),
            keys: Arc::clone(&ports.keys),
            sessions,
            clock,
            server_key,
            issuer,
            offline_lifetime: OFFLINE_LIFETIME,
            signer: Arc::new(tokio::sync::RwLock::new(None)),
        })
    }

    /// How long an offline refresh token family lives (from the code exchange that
    /// began it; rotation does not extend it).
    #[must_use]
    pub fn with_offline_lifetime(mut self, lifetime: SignedDuration) -> Self {
        self.offline_lifetime = lifetime;
        self
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &IssuerUrl {
        &self.issuer
    }

    /// The signing key, with the keys published beside it: as read at most a minute ago,
    /// or read now (a first key is made, off the async threads, and stored on first use).
    pub async fn signer(&self) -> Result<Arc<Signer>, OidcError> {
        if let Some((signer, read_at)) = self.signer.read().await.as_ref()
            && read_at.elapsed() < KEYS_READ_EVERY
        {
            return Ok(Arc::clone(signer));
        }
        self.reload_keys().await
    }

    /// Reads the signing keys again (after a rotation, or when the cache is stale).
    pub async fn reload_keys(&self) -> Result<Arc<Signer>, OidcError> {
        let mut stored = self.keys.secrets_named(KEY_NAME).await?;
        if stored.is_empty() {
            let candidate = tokio::task::spawn_blocking(generate_key).await.map_err(|_| SigningError::Key)??;
            self.keys.keep_secret(KEY_NAME, &candidate, self.clock.now()).await?;
            stored = self.keys.secrets_named(KEY_NAME).await?;
        }
        let created: Vec<Timestamp> = stored.iter().map(|(_, _, at)| *at).collect();
        let mut signers =
            stored.iter().map(|(_, pem, _)| Signer::from_pem(pem)).collect::<Result<Vec<_>, SigningError>>()?;
        let arrangement = arrange(&created, self.clock.now()).ok_or(SigningError::Key)?;
        let published = arrangement.published.iter().map(|&i| signers[i].public_key()).collect();
        let every = signers.iter().map(Signer::public_key).collect();
        let signer = Arc::new(signers.swap_remove(arrangement.signing).with_keys(published, every));
        *self.signer.write().await = Some((Arc::clone(&signer), std::time::Instant::now()));
        Ok(signer)
    }

    /// Makes a new signing key: published at once, it signs from [`PUBLISH_AHEAD`] on;
    /// the key it replaces stays published [`RETIRE_AFTER`] more.
    pub async fn rotate_key(&self) -> Result<RotatedKey, OidcError> {
        self.signer().await?;
        let pem = tokio::task::spawn_blocking(generate_key).await.map_err(|_| SigningError::Key)??;
        let kid = Signer::from_pem(&pem)?.kid().to_owned();
        let now = self.clock.now();
        self.keys.keep_secret(&format!("{KEY_NAME}-{}", now.as_millisecond()), &pem, now).await?;
        self.reload_keys().await?;
        let signs_from = now + PUBLISH_AHEAD;
        Ok(RotatedKey { kid, signs_from, previous_until: signs_from + RETIRE_AFTER })
    }

    /// The member's `sub` for every client: opaque, stable, never another's (account
    /// ids are never reused).
    pub fn subject(&self, account: AccountId) -> String {
        let mac = self.server_key.mac(Purpose::OidcSubject, &account.get().to_be_bytes());
        crate::token::hex(mac.get(..16).unwrap_or_default())
    }

    /// A session's `sid`: opaque, the same for every client, and nothing that would let
    /// a client find the session's cookie.
    pub fn sid(&self, session: &TokenHash) -> String {
        let mac = self.server_key.mac(Purpose::OidcSession, session.as_str().as_bytes());
        crate::token::hex(mac.get(..16).unwrap_or_default())
    }

    /// The discovery document (`/.well-known/openid-configuration`).
    pub fn metadata(&self) -> serde_json::Value {
        use openidconnect::core::{
            CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey,
            CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
            CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
        };
        use openidconnect::{
            AdditionalProviderMetadata, AuthUrl, EndSessionUrl, JsonWebKeySetUrl, LogoutProviderMetadata,
            ProviderMetadata, ResponseTypes, Scope, TokenUrl, UserInfoUrl,
        };

        /// What the crate's metadata type has no field for.
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
        struct Extra {
            code_challenge_methods_supported: Vec<String>,
            authorization_response_iss_parameter_supported: bool,
            revocation_endpoint: String,
            revocation_endpoint_auth_methods_supported: Vec<String>,
            introspection_endpoint: String,
            introspection_endpoint_auth_methods_supported: Vec<String>,
            backchannel_logout_supported: bool,
            backchannel_logout_session_supported: bool,
            frontchannel_logout_supported: bool,
            frontchannel_logout_session_supported: bool,
        }
        impl AdditionalProviderMetadata for Extra {}

        type Metadata = ProviderMetadata<
            LogoutProviderMetadata<Extra>,
            CoreAuthDisplay,
            CoreClientAuthMethod,
            CoreClaimName,
            CoreClaimType,
            CoreGrantType,
            CoreJweContentEncryptionAlgorithm,
            CoreJweKeyManagementAlgorithm,
            CoreJsonWebKey,
            CoreResponseMode,
            CoreResponseType,
            CoreSubjectIdentifierType,
        >;

        let base = self.issuer.as_str();
        let endpoint = |path: &str| format!("{base}{path}");
        let client_auth = ["client_secret_basic", "client_secret_post", "none"];
        let (Ok(authorize), Ok(jwks), Ok(token), Ok(userinfo), Ok(end_session)) = (
            AuthUrl::new(endpoint("/oidc/authorize")),
            JsonWebKeySetUrl::new(endpoint("/oidc/jwks")),
            TokenUrl::new(endpoint("/oidc/token")),
            UserInfoUrl::new(endpoint("/oidc/userinfo")),
            EndSessionUrl::new(endpoint("/oidc/logout")),
        ) else {
            return serde_json::Value::Null;
        };
        let claims = [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "sid",
            "amr",
            "preferred_username",
            "name",
            "given_name",
            "family_name",
            "email",
            "email_verified",
            "groups",
        ];
        let metadata = Metadata::new(
            self.issuer.clone(),
            authorize,
            jwks,
            vec![ResponseTypes::new(vec![CoreResponseType::Code])],
            vec![CoreSubjectIdentifierType::Public],
            vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
            LogoutProviderMetadata {
                end_session_endpoint: Some(end_session),
                additional_metadata: Extra {
                    code_challenge_methods_supported: vec!["S256".to_owned()],
                    authorization_response_iss_parameter_supported: true,
                    revocation_endpoint: endpoint("/oidc/revoke"),
                    revocation_endpoint_auth_methods_supported: client_auth.iter().map(|m| (*m).to_owned()).collect(),
                    introspection_endpoint: endpoint("/oidc/introspect"),
                    introspection_endpoint_auth_methods_supported: client_auth[..2]
                        .iter()
                        .map(|m| (*m).to_owned())
                        .collect(),
                    backchannel_logout_supported: true,
                    backchannel_logout_session_supported: true,
                    frontchannel_logout_supported: true,
                    frontchannel_logout_session_supported: true,
                },
            },
        )
        .set_token_endpoint(Some(token))
        .set_userinfo_endpoint(Some(userinfo))
        .set_scopes_supported(Some(SCOPES.iter().map(|s| Scope::new((*s).to_owned())).collect()))
        .set_response_modes_supported(Some(vec![CoreResponseMode::Query]))
        .set_grant_types_supported(Some(vec![CoreGrantType::AuthorizationCode, CoreGrantType::RefreshToken]))
        .set_token_endpoint_auth_methods_supported(Some(vec![
            CoreClientAuthMethod::ClientSecretBasic,
            CoreClientAuthMethod::ClientSecretPost,
            CoreClientAuthMethod::None,
        ]))
        .set_claims_supported(Some(claims.iter().map(|c| CoreClaimName::new((*c).to_owned())).collect()))
        .set_request_parameter_supported(Some(false))
        .set_request_uri_parameter_supported(Some(false));
        serde_json::to_value(&metadata).unwrap_or_default()
    }

    // ---- clients -------------------------------------------------------------------

    /// Registers a client.
    pub async fn register(&self, new: NewClient) -> Result<Registered, ClientError> {
        let name = new.name.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ClientError::Name);
        }
        if new.redirect_uris.is_empty() {
            return Err(ClientError::NoRedirectUri);
        }
        let redirect_uris = new.redirect_uris.iter().map(|u| check_redirect_uri(u)).collect::<Result<_, _>>()?;
        let post_logout_redirect_uris =
            new.post_logout_redirect_uris.iter().map(|u| check_redirect_uri(u)).collect::<Result<_, _>>()?;
        let logout_uri = |uri: &Option<String>| {
            uri.as_deref()
                .map(|u| check_redirect_uri(u).map_err(|_| ClientError::LogoutUri(u.trim().to_owned())))
                .transpose()
        };
        let backchannel_logout_uri = logout_uri(&new.backchannel_logout_uri)?;
        let frontchannel_logout_uri = logout_uri(&new.frontchannel_logout_uri)?;
        let mut groups = Vec::new();
        for raw in &new.groups {
            let unknown = || ClientError::Group(raw.trim().to_owned());
            let name = GroupName::parse(raw).map_err(|_| unknown())?;
            self.groups.find_group(&name).await?.ok_or_else(unknown)?;
            groups.push(name);
        }
        let secret = (!new.public).then(PlainToken::generate);
        let client = Client {
            id: ClientId::generate(&name),
            name,
            secret_hash: secret.as_ref().map(PlainToken::hash),
            redirect_uris,
            post_logout_redirect_uris,
            groups,
            backchannel_logout_uri,
            frontchannel_logout_uri,
            offline: new.offline,
            second_factor: new.second_factor,
            created_at: self.clock.now(),
        };
        self.store.create_client(&client).await?;
        Ok(Registered { client, secret })
    }

    /// Every client (for the operator's command line).
    pub async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        self.store.list_clients().await
    }

    /// Every client, for a staff member of the console: administrators only (assistance
    /// staff help members, they do not wire applications).
    pub async fn clients_for(&self, actor: &StaffActor) -> Result<Vec<Client>, ClientError> {
        if !actor.is_admin() {
            return Err(ClientError::NotAdmin);
        }
        Ok(self.store.list_clients().await?)
    }

    /// Removes a client (its codes and tokens stop working).
    pub async fn remove(&self, id: &str) -> Result<(), ClientError> {
        let unknown = || ClientError::Unknown(id.trim().to_owned());
        let id = ClientId::parse(id.trim()).ok_or_else(unknown)?;
        if self.store.remove_client(&id).await? { Ok(()) } else { Err(unknown()) }
    }

    async fn client(&self, id: Option<&str>) -> Result<Option<Client>, StoreError> {
        match id.and_then(ClientId::parse) {
            Some(id) => self.store.find_client(&id).await,
            None => Ok(None),
        }
    }

    // ---- authorization -------------------------------------------------------------

    /// Decides an authorization request for the visitor's session (if any).
    pub async fn authorize(
        &self,
        request: &AuthorizeRequest,
        session: Option<&Session>,
    ) -> Result<Authorize, StoreError> {
        let client = match &request.client_id {
            Some(id) => self.store.find_client(id).await?,
            None => None,
        };
        let Some(client) = client else {
            return Ok(Authorize::Refuse(Refusal::UnknownClient));
        };
        let Some(redirect_uri) =
            request.redirect_uri.as_deref().filter(|u| client.redirect_uris.iter().any(|r| r == u))
        else {
            return Ok(Authorize::Refuse(Refusal::RedirectUri));
        };
        let back = |error: &str, description: &str| {
            Authorize::Redirect(self.redirect(
                redirect_uri,
                &[("error", error), ("error_description", description)],
                request,
            ))
        };
        let asked = match &request.asked {
            Ok(asked) => asked,
            Err(Malformed { error, description }) => return Ok(back(error, description)),
        };
        if asked.code_challenge.is_none() && client.is_public() {
            return Ok(back("invalid_request", "PKCE (S256) is required for this client"));
        }
        let prompt_none = asked.prompt_none;
        let account = match session {
            Some(session) => self.accounts.find_account(session.account_id).await?.filter(|a| a.disabled_at.is_none()),
            None => None,
        };
        let (Some(session), Some(account)) = (session, account) else {
            return Ok(if prompt_none {
                back("login_required", "the member is not signed in")
            } else {
                Authorize::SignIn
            });
        };
        if session.must_change_password {
            return Ok(if prompt_none {
                back("interaction_required", "the member must change their password")
            } else {
                Authorize::ChangePassword
            });
        }
        let now = self.clock.now();
        if account.locked_until.is_some_and(|until| until > now) {
            return Ok(back("access_denied", "the account is suspended for now"));
        }
        // guichet does not ask a signed-in member to log in again: say so rather than
        // hand out a code from an older login than the application wants.
        let too_old = asked.max_age.is_some_and(|max| {
            now.duration_since(session.created_at).as_secs() > i64::try_from(max).unwrap_or(i64::MAX)
        });
        if asked.prompt_login || too_old {
            return Ok(back("login_required", "re-authentication is not offered: log out of guichet first"));
        }
        let groups = self.groups.account_groups(account.id).await?;
        if !client.admits(&groups) {
            return Ok(back("access_denied", "this application is reserved to other groups of members"));
        }
        if client.second_factor && !session.factors.has_second() {
            if prompt_none {
                return Ok(back("interaction_required", "this application needs a second factor"));
            }
            let enrol = !self.accounts.second_factors(account.id).await?.has_second();
            return Ok(Authorize::SecondFactor { enrol });
        }
        let code = PlainToken::generate();
        // offline_access only for a client registered for it.
        let scopes: Vec<&str> =
            asked.scopes.iter().copied().filter(|s| *s != "offline_access" || client.offline).collect();
        self.store
            .store_code(&NewCode {
                hash: code.hash(),
                client: client.id.clone(),
                account: account.id,
                redirect_uri: redirect_uri.to_owned(),
                scope: scopes.join(" "),
                nonce: asked.nonce.clone(),
                code_challenge: asked.code_challenge.clone(),
                auth_time: session.created_at,
                created_at: now,
                expires_at: now + CODE_LIFETIME,
                session: Some(session.token_hash.clone()),
                factors: session.factors,
            })
            .await?;
        Ok(Authorize::Redirect(self.redirect(redirect_uri, &[("code", code.expose())], request)))
    }

    /// The client an `/oidc/authorize` query names, with its redirect URI, when that is
    /// one the client registered: who a login page may say the member is going to.
    pub async fn authorizing_client(&self, authorize_query: &str) -> Result<Option<(Client, String)>, StoreError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(authorize_query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let Some(client) = self.client(get("client_id").as_deref()).await? else { return Ok(None) };
        let redirect_uri = get("redirect_uri").filter(|uri| client.redirect_uris.contains(uri));
        Ok(redirect_uri.map(|uri| (client, uri)))
    }

    /// The client's redirect URI with `pairs`, `state` and `iss` (RFC 9207) added.
    fn redirect(&self, redirect_uri: &str, pairs: &[(&str, &str)], request: &AuthorizeRequest) -> String {
        let Ok(mut url) = Url::parse(redirect_uri) else { return redirect_uri.to_owned() };
        {
            let mut query = url.query_pairs_mut();
            for (key, value) in pairs {
                query.append_pair(key, value);
            }
            if let Some(state) = &request.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", self.issuer.as_str());
        }
        url.into()
    }

    // ---- tokens --------------------------------------------------------------------

    /// The client presenting `credentials` at the token, revocation or introspection
    /// endpoint: a confidential client by its secret, a public one by its id alone.
    async fn authenticated(&self, credentials: &ClientCredentials) -> Result<Client, TokenError> {
        let client = self.client(credentials.id.as_deref()).await?.ok_or(TokenError::InvalidClient)?;
        match (&client.secret_hash, &credentials.secret) {
            (None, None) => Ok(client),
            (Some(_), Some(secret)) if client.secret_matches(secret.expose_secret()) => Ok(client),
            _ => Err(TokenError::InvalidClient),
        }
    }

    /// Answers the token endpoint: a code exchanged, or a refresh token rotated.
    pub async fn exchange(
        &self,
        credentials: &ClientCredentials,
        request: &TokenRequest,
    ) -> Result<Tokens, TokenError> {
        let client = self.authenticated(credentials).await?;
        match request {
            TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier } => {
                self.exchange_code(&client, code, redirect_uri.as_deref(), code_verifier.as_deref()).await
            }
            TokenRequest::RefreshToken { refresh_token, scope } => {
                self.refresh(&client, refresh_token, scope.as_deref()).await
            }
            TokenRequest::Unsupported => Err(TokenError::UnsupportedGrantType),
            TokenRequest::Malformed(why) => Err(TokenError::InvalidRequest(why)),
        }
    }

    async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<Tokens, TokenError> {
        let code_hash = PlainToken::from_presented(code).ok_or(TokenError::InvalidGrant("unknown code"))?.hash();
        let now = self.clock.now();
        // The code is checked against this request before it is touched at all: whoever
        // sees a code (a public client's id is no secret) cannot burn it with a wrong
        // verifier or redirect URI.
        let seen = self
            .store
            .find_authorization_code(&code_hash, &client.id)
            .await?
            .ok_or(TokenError::InvalidGrant("unknown code"))?;
        if seen.expires_at <= now {
            // Presented again after its minute: what its first use issued is revoked all
            // the same (an expired code that was never used is merely marked used).
            if let CodeUse::Again = self.grants.use_code(&code_hash, &client.id, now).await? {
                tracing::warn!(client = %client.id, "an authorization code was used twice: what it issued is revoked");
            }
            return Err(TokenError::InvalidGrant("the code expired"));
        }
        if redirect_uri != Some(seen.redirect_uri.as_str()) {
            return Err(TokenError::InvalidGrant("redirect_uri differs from the authorization request's"));
        }
        match (&seen.code_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) if is_pkce_verifier(verifier) && s256(verifier) == *challenge => {}
            (None, None) => {}
            _ => return Err(TokenError::InvalidGrant("PKCE verification failed")),
        }
        let issued = match self.grants.use_code(&code_hash, &client.id, now).await? {
            CodeUse::First(issued) => issued,
            CodeUse::Again => {
                tracing::warn!(client = %client.id, "an authorization code was used twice: what it issued is revoked");
                return Err(TokenError::InvalidGrant("the code was already used"));
            }
            CodeUse::Unknown => return Err(TokenError::InvalidGrant("unknown code")),
        };
        // Everything issued lives in the session the code was issued in: gone (the member
        // logged out meanwhile), nothing is issued.
        let ended = || TokenError::InvalidGrant("the session has ended");
        let session = issued.session.clone().ok_or_else(ended)?;
        let session_ends = self.sessions.find(&session).await?.ok_or_else(ended)?.expires_at;
        let account = self.account_for(issued.account, client, now).await?;
        let sid = self.sid(&session);
        let offline = client.offline && has_scope(&issued.scope, "offline_access");
        let refresh = NewRefreshToken {
            hash: PlainToken::generate().hash(),
            family: code_hash.clone(),
            client: client.id.clone(),
            account: account.id,
            session: (!offline).then(|| session.clone()),
            scope: issued.scope.clone(),
            sid: sid.clone(),
            auth_time: issued.auth_time,
            factors: issued.factors,
            created_at: now,
            expires_at: if offline { now + self.offline_lifetime } else { session_ends },
        };
        let link = SessionLink { session: session.clone(), client: client.id.clone(), account: account.id, sid };
        let signed = self.sign(&account, client, issued.nonce.clone(), refresh, &issued.scope, now).await?;
        if !self.grants.store_grant(&signed.grant, &signed.refresh, Some(&link)).await? {
            return Err(ended());
        }
        Ok(signed.tokens)
    }

    /// Rotates a refresh token (RFC 6749 §6, OAuth 2.0 Security BCP §4.14): a new one
    /// each time; one presented again revokes its whole family. Nothing is used up
    /// before the answer is ready: a refusal (an expired family, a narrowing that asks
    /// for more, a suspended account) or a failure leaves the token as it was, and the
    /// rotation itself — the token used, its successor and the access token's record
    /// stored — is one unit of work.
    async fn refresh(&self, client: &Client, presented: &str, scope: Option<&str>) -> Result<Tokens, TokenError> {
        let unknown = || TokenError::InvalidGrant("unknown refresh token");
        let replayed = || {
            tracing::warn!(client = %client.id, "a refresh token was used twice: its family is revoked");
            TokenError::InvalidGrant("the refresh token was already used")
        };
        let hash = PlainToken::from_presented(presented).ok_or_else(unknown)?.hash();
        let now = self.clock.now();
        let (held, used_at) = self.store.find_refresh_token(&hash, &client.id).await?.ok_or_else(unknown)?;
        if used_at.is_some() {
            self.grants.revoke_family(&held.family, now).await?;
            return Err(replayed());
        }
        if held.expires_at <= now {
            return Err(TokenError::InvalidGrant("the refresh token expired"));
        }
        // The scopes asked may narrow the tokens, never the refresh token (§6).
        let narrowed = match scope {
            None => held.scope.clone(),
            Some(asked) => {
                let asked: Vec<&str> = asked.split_whitespace().collect();
                if asked.is_empty() || !asked.contains(&"openid") || !asked.iter().all(|s| has_scope(&held.scope, s)) {
                    return Err(TokenError::InvalidScope);
                }
                asked.join(" ")
            }
        };
        if let Some(session) = &held.session {
            // A live session, its idle time pushed back: an application that refreshes
            // keeps the member's guichet session going (never past its absolute end).
            if self.sessions.resume_hash(session).await?.is_none() {
                return Err(TokenError::InvalidGrant("the session has ended"));
            }
        }
        let account = self.account_for(held.account, client, now).await?;
        // An offline family dies with the password it was issued under (the change also
        // deletes it; this covers the change's race with a refresh).
        if held.session.is_none() && held.created_at < account.devices_trusted_after {
            return Err(TokenError::InvalidGrant("the password changed since"));
        }
        let next = NewRefreshToken {
            hash: PlainToken::generate().hash(),
            created_at: if held.session.is_none() { held.created_at } else { now },
            ..held
        };
        let signed = self.sign(&account, client, None, next, &narrowed, now).await?;
        match self.grants.rotate(&hash, &client.id, &signed.grant, &signed.refresh, now).await? {
            Rotation::Rotated => Ok(signed.tokens),
            Rotation::Replayed => Err(replayed()),
            Rotation::Gone => Err(unknown()),
            Rotation::SessionEnded => Err(TokenError::InvalidGrant("the session has ended")),
        }
    }

    /// The account tokens are issued for, when it may still sign in to `client`.
    async fn account_for(&self, account: AccountId, client: &Client, now: Timestamp) -> Result<Account, TokenError> {
        let account = self.accounts.find_account(account).await?.ok_or(TokenError::InvalidGrant("no account"))?;
        let groups = self.groups.account_groups(account.id).await?;
        if !may_sign_in(&account, now) || !client.admits(&groups) {
            return Err(TokenError::InvalidGrant("the account may not sign in to this client"));
        }
        Ok(account)
    }

    /// Signs an access token and an ID token with `scope` (the refresh token's, or less),
    /// and makes the refresh token that goes with them: not stored yet.
    async fn sign(
        &self,
        account: &Account,
        client: &Client,
        nonce: Option<String>,
        refresh: NewRefreshToken,
        scope: &str,
        now: Timestamp,
    ) -> Result<Signed, TokenError> {
        let groups = self.groups.account_groups(account.id).await?;
        let signer = self.signer().await?;
        let subject = self.subject(account.id);
        let jti = crate::token::hex(&crate::token::random_bytes::<16>());
        let expires_at = now + TOKEN_LIFETIME;
        let access_token = signer
            .access_token(&NewAccessToken {
                issuer: self.issuer.clone(),
                subject: subject.clone(),
                issued_at: now,
                expires_at,
                claims: AccessClaims {
                    token_use: "access".to_owned(),
                    jti: jti.clone(),
                    scope: scope.to_owned(),
                    client_id: client.id.to_string(),
                },
            })
            .map_err(OidcError::from)?;
        let mut extra = groups_claim(&groups, scope);
        extra.sid = Some(refresh.sid.clone());
        let mut claims = IdTokenClaims::new(
            self.issuer.clone(),
            vec![Audience::new(client.id.to_string())],
            tokens::chrono(expires_at),
            tokens::chrono(now),
            profile(account, scope, subject),
            extra,
        )
        .set_auth_time(Some(tokens::chrono(refresh.auth_time)))
        .set_auth_method_refs(Some(
            refresh
                .factors
                .amr()
                .into_iter()
                .map(|m| openidconnect::AuthenticationMethodReference::new(m.to_owned()))
                .collect(),
        ))
        .set_auth_context_ref(Some(openidconnect::AuthenticationContextClass::new(refresh.factors.acr().to_owned())));
        if let Some(nonce) = nonce {
            claims = claims.set_nonce(Some(Nonce::new(nonce)));
        }
        let id_token = signer.id_token(claims, &access_token).map_err(OidcError::from)?;
        let refresh_token = PlainToken::generate();
        let refresh = NewRefreshToken { hash: refresh_token.hash(), ..refresh };
        let grant = NewGrant {
            jti,
            code: refresh.family.clone(),
            client: client.id.clone(),
            account: account.id,
            scope: scope.to_owned(),
            expires_at,
            session: refresh.session.clone(),
        };
        let tokens = Tokens {
            access_token,
            id_token,
            refresh_token: Some(refresh_token.expose().to_owned()),
            expires_in: u64::try_from(TOKEN_LIFETIME.as_secs()).unwrap_or(600),
            scope: scope.to_owned(),
        };
        Ok(Signed { tokens, grant, refresh })
    }

    /// The live grant behind an access token, with its account: `None` when the token
    /// is not a live one (expired, revoked, not guichet's, its session ended, or its
    /// account may not sign in to its client any more).
    async fn live_grant(&self, access_token: &str) -> Result<Option<(Grant, Account, Vec<GroupName>)>, OidcError> {
        let signer = self.signer().await?;
        let now = self.clock.now();
        let Some((subject, claims)) = signer.read_access_token(access_token, &self.issuer, now) else {
            return Ok(None);
        };
        let Some(grant) = self.store.find_grant(&claims.jti).await? else { return Ok(None) };
        if grant.revoked_at.is_some() || grant.grant.expires_at <= now || self.subject(grant.grant.account) != subject {
            return Ok(None);
        }
        if let Some(session) = &grant.grant.session
            && self.sessions.find(session).await?.is_none()
        {
            return Ok(None);
        }
        let Some(account) = self.accounts.find_account(grant.grant.account).await? else { return Ok(None) };
        let groups = self.groups.account_groups(account.id).await?;
        let admitted = match self.store.find_client(&grant.grant.client).await? {
            Some(client) => client.admits(&groups),
            None => false,
        };
        // An offline one (no session) ends with the password it was issued under.
        let outlived =
            grant.grant.session.is_none() && grant.grant.expires_at - TOKEN_LIFETIME < account.devices_trusted_after;
        if !may_sign_in(&account, now) || !admitted || outlived {
            return Ok(None);
        }
        Ok(Some((grant, account, groups)))
    }

    /// The claims `/oidc/userinfo` answers for an access token; `None` when the token
    /// is not a live one.
    pub async fn userinfo(&self, access_token: &str) -> Result<Option<serde_json::Value>, OidcError> {
        let Some((grant, account, groups)) = self.live_grant(access_token).await? else { return Ok(None) };
        let info: UserInfoClaims<GroupsClaim, CoreGenderClaim> = UserInfoClaims::new(
            profile(&account, &grant.grant.scope, self.subject(account.id)),
            groups_claim(&groups, &grant.grant.scope),
        );
        Ok(Some(serde_json::to_value(&info).unwrap_or_default()))
    }

    /// Revokes a token the authenticated client holds (RFC 7009): a refresh token
    /// revokes its family and the access tokens issued with it; an access token, itself.
    /// Anything else (unknown, another client's, already revoked) is answered the same.
    pub async fn revoke(&self, credentials: &ClientCredentials, token: &str) -> Result<(), TokenError> {
        let client = self.authenticated(credentials).await?;
        let now = self.clock.now();
        if let Some(hash) = PlainToken::from_presented(token).map(|t| t.hash()) {
            self.grants.revoke_refresh_token(&hash, &client.id, now).await?;
        }
        let signer = self.signer().await?;
        if let Some((_, claims)) = signer.read_access_token(token, &self.issuer, now)
            && claims.client_id == client.id.as_str()
        {
            self.grants.revoke_grant(&claims.jti, now).await?;
        }
        Ok(())
    }

    /// What a token the authenticated (confidential) client holds is (RFC 7662):
    /// `{"active": false}` for anything not live, or not issued to this client.
    pub async fn introspect(
        &self,
        credentials: &ClientCredentials,
        token: &str,
    ) -> Result<serde_json::Value, TokenError> {
        let client = self.authenticated(credentials).await?;
        if client.is_public() {
            return Err(TokenError::InvalidClient);
        }
        let inactive = serde_json::json!({ "active": false });
        let now = self.clock.now();
        let (mut answer, account, scope) = if let Some((grant, account, _)) = self.live_grant(token).await? {
            if grant.grant.client != client.id {
                return Ok(inactive);
            }
            let answer = serde_json::json!({
                "active": true,
                "token_type": "Bearer",
                "scope": grant.grant.scope,
                "client_id": client.id.as_str(),
                "sub": self.subject(account.id),
                "iss": self.issuer.as_str(),
                "aud": format!("{}/oidc/userinfo", self.issuer.as_str()),
                "exp": grant.grant.expires_at.as_second(),
                "jti": grant.grant.jti,
            });
            (answer, account, grant.grant.scope)
        } else {
            let Some(hash) = PlainToken::from_presented(token).map(|t| t.hash()) else { return Ok(inactive) };
            let Some((held, None)) = self.store.find_refresh_token(&hash, &client.id).await? else {
                return Ok(inactive);
            };
            let session_live = match &held.session {
                Some(session) => self.sessions.find(session).await?.is_some(),
                None => true,
            };
            let account = match self.account_for(held.account, &client, now).await {
                Ok(account) => account,
                Err(TokenError::InvalidGrant(_)) => return Ok(inactive),
                Err(other) => return Err(other),
            };
            let outlived = held.session.is_none() && held.created_at < account.devices_trusted_after;
            if !session_live || held.expires_at <= now || outlived {
                return Ok(inactive);
            }
            // A refresh token has no token_type of RFC 6749 §7.1: none is said.
            let answer = serde_json::json!({
                "active": true,
                "scope": held.scope,
                "client_id": client.id.as_str(),
                "sub": self.subject(account.id),
                "iss": self.issuer.as_str(),
                "exp": held.expires_at.as_second(),
                "sid": held.sid,
            });
            (answer, account, held.scope)
        };
        // The member's identifier only to a client the profile was granted to.
        if has_scope(&scope, "profile") {
            answer["username"] = serde_json::Value::from(account.identifier.as_str());
        }
        Ok(answer)
    }

    // ---- logout --------------------------------------------------------------------

    /// The applications `session` signed in to that want to hear of its end in the
    /// browser: read before the session ends (its end forgets them).
    pub async fn signed_into(&self, session: &Session) -> Result<SignedInto, StoreError> {
        let clients = self.store.session_clients(&session.token_hash).await?;
        Ok(SignedInto {
            sid: self.sid(&session.token_hash),
            clients: clients
                .into_iter()
                .filter(|(c, _)| c.frontchannel_logout_uri.is_some())
                .map(|(c, _)| c.id)
                .collect(),
        })
    }

    /// The frames a logout page loads: each registered front-channel logout URI of
    /// `signed_into`'s clients, with `iss` and `sid` (Front-Channel Logout 1.0 §2).
    pub async fn front_channel(&self, signed_into: &SignedInto) -> Result<Vec<FrontChannel>, StoreError> {
        let mut frames = Vec::new();
        for id in &signed_into.clients {
            let Some(client) = self.store.find_client(id).await? else { continue };
            let Some(mut url) = client.frontchannel_logout_uri.as_deref().and_then(|u| Url::parse(u).ok()) else {
                continue;
            };
            url.query_pairs_mut().append_pair("iss", self.issuer.as_str()).append_pair("sid", &signed_into.sid);
            let origin = url.origin().ascii_serialization();
            frames.push(FrontChannel { name: client.name, url: url.into(), origin });
        }
        Ok(frames)
    }

    /// Plans an RP-initiated logout for the visitor's session (if any): where to return,
    /// and whether the request is proven to come from the member's own client — a hint
    /// issued to a registered client, for this member, since this session's login.
    pub async fn plan_logout(
        &self,
        request: &LogoutRequest,
        signed_in: Option<&Session>,
    ) -> Result<LogoutPlan, OidcError> {
        let hint = match request.id_token_hint.as_deref() {
            Some(hint) => self.signer().await?.read_id_token_hint(hint, &self.issuer),
            None => None,
        };
        // The client: the hint's audience, or `client_id` (they must agree when both are given).
        let hinted = hint.as_ref().and_then(|(_, audiences, _)| audiences.first().cloned());
        let client_id = match (hinted, request.client_id.clone()) {
            (Some(hinted), Some(named)) if hinted != named => None,
            (Some(hinted), _) => Some(hinted),
            (None, named) => named,
        };
        let client = self.client(client_id.as_deref()).await?;
        let known_client = client.is_some();
        let return_to = match (client, request.post_logout_redirect_uri.as_deref()) {
            (Some(client), Some(uri)) if client.post_logout_redirect_uris.iter().any(|r| r == uri) => {
                Url::parse(uri).ok().map(|mut url| {
                    if let Some(state) = &request.state {
                        url.query_pairs_mut().append_pair("state", state);
                    }
                    String::from(url)
                })
            }
            _ => None,
        };
        let proven = match (hint, signed_in) {
            (Some((subject, _, issued)), Some(session)) => {
                // A second's leeway: `iat` has whole seconds, the login has milliseconds.
                let since_login = issued >= session.created_at - SignedDuration::from_secs(1);
                known_client && since_login && subject == self.subject(session.account_id)
            }
            _ => false,
        };
        Ok(LogoutPlan { return_to, proven })
    }
}

/// Whether the account may sign in to an application now: not disabled, not locked (a
/// session opened with a temporary password gets no code in the first place).
fn may_sign_in(account: &Account, now: Timestamp) -> bool {
    account.disabled_at.is_none() && account.locked_until.is_none_or(|until| until <= now)
}

/// The standard claims the scopes allow.
fn profile(account: &Account, scope: &str, subject: String) -> StandardClaims<CoreGenderClaim> {
    let has = |s: &str| scope.split_whitespace().any(|x| x == s);
    let mut claims = StandardClaims::new(SubjectIdentifier::new(subject));
    if has("profile") {
        claims = claims
            .set_preferred_username(Some(EndUserUsername::new(account.identifier.to_string())))
            .set_name(Some(LocalizedClaim::from(EndUserName::new(account.display_name.as_str().to_owned()))));
        let given = account.names.given.as_str();
        if !given.is_empty() {
            claims = claims.set_given_name(Some(LocalizedClaim::from(EndUserGivenName::new(given.to_owned()))));
        }
        let family = account.names.family.as_str();
        if !family.is_empty() {
            claims = claims.set_family_name(Some(LocalizedClaim::from(EndUserFamilyName::new(family.to_owned()))));
        }
    }
    if has("email") {
        // The address the association keeps for the member, the only one guichet writes to.
        claims = claims.set_email(Some(EndUserEmail::new(account.email.to_string()))).set_email_verified(Some(true));
    }
    claims
}

/// The `groups` claim, with the `groups` scope.
fn groups_claim(groups: &[GroupName], scope: &str) -> GroupsClaim {
    let wanted = has_scope(scope, "groups");
    GroupsClaim { groups: wanted.then(|| groups.iter().map(|g| g.as_str().to_owned()).collect()), sid: None }
}

/// Whether the space-separated `scope` holds `wanted`.
fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split_whitespace().any(|s| s == wanted)
}

/// A PKCE challenge: 43 base64url characters (a SHA-256).
fn is_pkce_value(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A PKCE verifier: 43 to 128 unreserved characters (RFC 7636).
fn is_pkce_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `BASE64URL(SHA256(verifier))`.
fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(pairs: &[(&str, &str)]) -> Result<Asked, Malformed> {
        let get = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
        AuthorizeRequest::parse(get).asked
    }

    #[test]
    fn an_authorization_request_is_parsed_into_its_types_or_refused() {
        let base = [("response_type", "code"), ("scope", "profile openid unknown"), ("prompt", "login consent")];
        let parsed = asked(&base).unwrap();
        assert_eq!(parsed.scopes, ["openid", "profile"], "the scopes offered, in guichet's order");
        assert!(parsed.prompt_login && !parsed.prompt_none);
        for (extra, error) in [
            (("max_age", "soon"), "invalid_request"),
            (("max_age", "-1"), "invalid_request"),
            (("response_mode", "fragment"), "invalid_request"),
            (("code_challenge_method", "S256"), "invalid_request"),
            (("request_uri", "https://app.example.fr/r"), "request_not_supported"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push(extra);
            assert_eq!(asked(&pairs).map_err(|m| m.error), Err(error), "{extra:?}");
        }
        let no_openid = [("response_type", "code"), ("scope", "profile")];
        assert_eq!(asked(&no_openid).map_err(|m| m.error), Err("invalid_scope"));
        assert_eq!(asked(&[("scope", "openid")]).map_err(|m| m.error), Err("unsupported_response_type"));
    }

    #[test]
    fn a_token_request_says_what_is_missing() {
        let parse = |pairs: &[(&str, &str)]| {
            TokenRequest::parse(|name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
        };
        assert_eq!(parse(&[]), TokenRequest::Malformed("grant_type is missing"));
        assert_eq!(parse(&[("grant_type", "authorization_code")]), TokenRequest::Malformed("code is missing"));
        assert_eq!(parse(&[("grant_type", "refresh_token")]), TokenRequest::Malformed("refresh_token is missing"));
        assert_eq!(parse(&[("grant_type", "password")]), TokenRequest::Unsupported);
        let code = parse(&[("grant_type", "authorization_code"), ("code", "abc")]);
        assert!(matches!(code, TokenRequest::AuthorizationCode { redirect_uri: None, code_verifier: None, .. }));
    }

    #[test]
    fn pkce_s256_is_base64url_of_sha256() {
        // The value Python's hashlib and base64 give for this verifier.
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUVU1p1r_wW1gFWFOEjXk"), "75m8g4I1Ku_ywNcleegEzmwJMCYp9XGK9nduys7P6cc");
        assert!(is_pkce_value("75m8g4I1Ku_ywNcleegEzmwJMCYp9XGK9nduys7P6cc"));
        assert!(!is_pkce_verifier("short"));
    }

    #[test]
    fn a_signed_access_token_reads_back_and_an_id_token_does_not_pass_for_one() {
        let pem = generate_key().unwrap();
        let signer = Signer::from_pem(&pem).unwrap();
        let issuer = IssuerUrl::new("https://membres.example.org".to_owned()).unwrap();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let access = signer
            .access_token(&NewAccessToken {
                issuer: issuer.clone(),
                subject: "abc".to_owned(),
                issued_at: now,
                expires_at: now + TOKEN_LIFETIME,
                claims: AccessClaims {
                    token_use: "access".to_owned(),
                    jti: "j1".to_owned(),
                    scope: "openid".to_owned(),
                    client_id: "c".to_owned(),
                },
            })
            .unwrap();
        let read = signer.read_access_token(&access, &issuer, now);
        assert_eq!(read.map(|(sub, claims)| (sub, claims.jti)), Some(("abc".to_owned(), "j1".to_owned())));
        assert!(signer.read_access_token(&access, &issuer, now + TOKEN_LIFETIME).is_none(), "expired");
        let other = IssuerUrl::new("https://ailleurs.example".to_owned()).unwrap();
        assert!(signer.read_access_token(&access, &other, now).is_none(), "another issuer");
        let id_claims = IdTokenClaims::new(
            issuer.clone(),
            vec![Audience::new("c".to_owned())],
            tokens::chrono(now + TOKEN_LIFETIME),
            tokens::chrono(now),
            StandardClaims::new(SubjectIdentifier::new("abc".to_owned())),
            GroupsClaim::default(),
        );
        let id_token = signer.id_token(id_claims, &access).unwrap();
        assert!(signer.read_access_token(&id_token, &issuer, now).is_none());
        assert_eq!(signer.read_id_token_hint(&id_token, &issuer).map(|(s, _, _)| s).as_deref(), Some("abc"));
        assert!(signer.read_id_token_hint(&access, &issuer).is_none(), "an access token is no hint");
        let stranger = Signer::from_pem(&generate_key().unwrap()).unwrap();
        assert!(stranger.read_id_token_hint(&id_token, &issuer).is_none(), "signed by another key");
    }
}
