//! What guichet signs for clients — ID tokens, access tokens and logout tokens, RS256
//! under keys kept in the database (the first made on first use; see `keyring` for
//! their rotation). ID and access tokens are
//! the `openidconnect` crate's types; the signature itself is `ring`'s (constant time:
//! the `rsa` crate, which carries RUSTSEC-2023-0071, only makes and reads the key).

use chrono::{DateTime, Utc};
use jiff::Timestamp;
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, ClientId as OidcClientId, IdToken, IdTokenClaims, IdTokenVerifier,
    IssuerUrl, JsonWebKeyId, PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use rsa::pkcs1::{EncodeRsaPrivateKey as _, LineEnding};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The claims guichet adds to the standard ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsClaim {
    /// The member's groups (only with the `groups` scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// The guichet session the ID token was issued in (Back-Channel Logout 1.0 §2.1);
    /// never in userinfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}
impl AdditionalClaims for GroupsClaim {}

/// What marks a token as an access token, and ties it to its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Always `access`: an ID token never passes for an access token.
    pub token_use: String,
    /// The record's key ([`super::Grant`]).
    pub jti: String,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// The client it was issued to.
    pub client_id: String,
}
impl AdditionalClaims for AccessClaims {}

/// An ID token as guichet makes it.
pub type GuichetIdToken =
    IdToken<GroupsClaim, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
/// An access token: signed like an ID token, with [`AccessClaims`].
type AccessJwt = IdToken<AccessClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// Why something could not be signed or read back.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The stored key is not a key.
    #[error("the stored OpenID Connect signing key cannot be read")]
    Key,
    /// Signing failed.
    #[error("could not sign a token")]
    Sign,
}

/// Makes a fresh RS256 key (2048 bits), as PKCS#1 PEM. Slow: call it off the async
/// threads.
pub fn generate_key() -> Result<SecretString, SigningError> {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|_| SigningError::Key)?;
    let pem = key.to_pkcs1_pem(LineEnding::LF).map_err(|_| SigningError::Key)?;
    Ok(SecretString::from(pem.as_str()))
}

/// An RSA key signing with `ring` (RS256 only), for the `openidconnect` types.
struct RingKey {
    pair: ring::signature::RsaKeyPair,
    public: CoreJsonWebKey,
}

impl RingKey {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let mut signature = vec![0; self.pair.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        self.pair
            .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, message, &mut signature)
            .map_err(|_| SigningError::Sign)?;
        Ok(signature)
    }
}

impl PrivateSigningKey for RingKey {
    type VerificationKey = CoreJsonWebKey;

    fn sign(
        &self,
        algorithm: &CoreJwsSigningAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, openidconnect::SigningError> {
        if *algorithm != CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256 {
            return Err(openidconnect::SigningError::UnsupportedAlg(format!("{algorithm:?}")));
        }
        self.sign_rs256(message).map_err(|_| openidconnect::SigningError::Other("ring refused to sign".to_owned()))
    }

    fn as_verification_key(&self) -> CoreJsonWebKey {
        self.public.clone()
    }
}

/// The signing key and its public half, with the keys published beside it. `Debug`
/// shows only the key id.
pub struct Signer {
    key: RingKey,
    /// The key set applications are given: what they check guichet's tokens against.
    jwks: CoreJsonWebKeySet,
    /// Every key guichet ever kept, for an `id_token_hint` (which may be old).
    every: CoreJsonWebKeySet,
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// A time for the `openidconnect` types.
pub(super) fn chrono(at: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(at.as_second(), 0).unwrap_or_default()
}

impl Signer {
    /// Reads a key kept as PKCS#1 PEM. Its id (`kid`) is derived from the public key.
    pub fn from_pem(pem: &SecretString) -> Result<Self, SigningError> {
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        let private = rsa::RsaPrivateKey::from_pkcs1_pem(pem.expose_secret()).map_err(|_| SigningError::Key)?;
        let der = private.to_pkcs1_der().map_err(|_| SigningError::Key)?;
        let pair = ring::signature::RsaKeyPair::from_der(der.as_bytes()).map_err(|_| SigningError::Key)?;
        let parts = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
        let kid = crate::token::hex(Sha256::digest(&parts.n).get(..8).unwrap_or_default());
        let public = CoreJsonWebKey::new_rsa(parts.n, parts.e, Some(JsonWebKeyId::new(kid.clone())));
        let jwks = CoreJsonWebKeySet::new(vec![public.clone()]);
        let every = jwks.clone();
        Ok(Self { key: RingKey { pair, public }, jwks, every, kid })
    }

    /// Signs with this key, publishing `published` and reading hints with `every`.
    #[must_use]
    pub fn with_keys(mut self, published: Vec<CoreJsonWebKey>, every: Vec<CoreJsonWebKey>) -> Self {
        self.jwks = CoreJsonWebKeySet::new(published);
        self.every = CoreJsonWebKeySet::new(every);
        self
    }

    /// This key's public half.
    pub fn public_key(&self) -> CoreJsonWebKey {
        self.key.public.clone()
    }

    /// This key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public keys, for `/oidc/jwks` and for checking what guichet signed.
    pub fn jwks(&self) -> &CoreJsonWebKeySet {
        &self.jwks
    }

    /// Signs an ID token; `access_token` sets `at_hash`.
    pub fn id_token(
        &self,
        claims: IdTokenClaims<GroupsClaim, CoreGenderClaim>,
        access_token: &str,
    ) -> Result<String, SigningError> {
        let token = GuichetIdToken::new(
            claims,
            &self.key,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Some(&AccessToken::new(access_token.to_owned())),
            None,
        )
        .map_err(|_| SigningError::Sign)?;
        Ok(token.to_string())
    }

    /// Signs an access token. Its audience is the userinfo endpoint (the resource it is
    /// for, RFC 9068), never the client: a client cannot take it for an ID token.
    pub fn access_token(&self, token: &NewAccessToken) -> Result<String, SigningError> {
        let claims = IdTokenClaims::new(
            token.issuer.clone(),
            vec![Audience::new(format!("{}/oidc/userinfo", token.issuer.as_str()))],
            chrono(token.expires_at),
            chrono(token.issued_at),
            StandardClaims::new(SubjectIdentifier::new(token.subject.clone())),
            token.claims.clone(),
        );
        let jwt = AccessJwt::new(claims, &self.key, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None, None)
            .map_err(|_| SigningError::Sign)?;
        Ok(jwt.to_string())
    }

    /// Reads back an access token guichet signed and that has not expired at `now`:
    /// its subject and claims. `None` for anything else (an ID token included).
    pub fn read_access_token(&self, raw: &str, issuer: &IssuerUrl, now: Timestamp) -> Option<(String, AccessClaims)> {
        let jwt: AccessJwt = raw.parse().ok()?;
        let verifier =
            IdTokenVerifier::new_public_client(OidcClientId::new(String::new()), issuer.clone(), self.jwks.clone())
                .require_audience_match(false)
                .set_time_fn(move || chrono(now));
        let claims = jwt.into_claims(&verifier, |_: Option<&openidconnect::Nonce>| Ok(())).ok()?;
        let extra = claims.additional_claims().clone();
        (extra.token_use == "access").then(|| (claims.subject().to_string(), extra))
    }

    /// Reads an ID token guichet signed, expired or not (an `id_token_hint`): its
    /// subject, audiences and issue time. `None` when guichet did not sign it, or it is
    /// an access token.
    pub fn read_id_token_hint(&self, raw: &str, issuer: &IssuerUrl) -> Option<(String, Vec<String>, Timestamp)> {
        let jwt: GuichetIdToken = raw.parse().ok()?;
        let verifier =
            IdTokenVerifier::new_public_client(OidcClientId::new(String::new()), issuer.clone(), self.every.clone())
                .require_audience_match(false)
                // A hint may have expired: only the signature and issuer matter here.
                .set_time_fn(DateTime::<Utc>::default);
        let claims = jwt.into_claims(&verifier, |_: Option<&openidconnect::Nonce>| Ok(())).ok()?;
        let audiences: Vec<String> = claims.audiences().iter().map(|a| a.to_string()).collect();
        if audiences.iter().any(|a| a.ends_with("/oidc/userinfo")) {
            return None;
        }
        let issued = Timestamp::from_second(claims.issue_time().timestamp()).ok()?;
        Some((claims.subject().to_string(), audiences, issued))
    }
}

/// A logout token to sign (Back-Channel Logout 1.0 §2.4).
#[derive(Debug, Clone)]
pub struct LogoutToken {
    /// Who signs.
    pub issuer: IssuerUrl,
    /// The client told.
    pub audience: String,
    /// The member's `sub`.
    pub subject: String,
    /// The session that ended, as its ID tokens named it.
    pub sid: String,
    /// When it is signed.
    pub issued_at: Timestamp,
}

/// How long a logout token is good for, from its signature.
const LOGOUT_TOKEN_LIFETIME: i64 = 120;

impl Signer {
    /// Signs a logout token: a JWT typed `logout+jwt`, with the back-channel logout
    /// event, a fresh `jti`, and no `nonce` (so that it can never pass for an ID token,
    /// nor an ID token for it).
    pub fn logout_token(&self, token: &LogoutToken) -> Result<String, SigningError> {
        use base64::Engine as _;
        let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let header = serde_json::json!({ "alg": "RS256", "typ": "logout+jwt", "kid": self.kid });
        let issued_at = token.issued_at.as_second();
        let claims = serde_json::json!({
            "iss": token.issuer.as_str(),
            "aud": token.audience,
            "iat": issued_at,
            "exp": issued_at + LOGOUT_TOKEN_LIFETIME,
            "jti": crate::token::hex(&crate::token::random_bytes::<16>()),
            "sub": token.subject,
            "sid": token.sid,
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        let input = format!("{}.{}", encode(header.to_string().as_bytes()), encode(claims.to_string().as_bytes()));
        let signature = self.key.sign_rs256(input.as_bytes())?;
        Ok(format!("{input}.{}", encode(&signature)))
    }
}

/// An access token to sign.
#[derive(Debug, Clone)]
pub struct NewAccessToken {
    /// Who signs.
    pub issuer: IssuerUrl,
    /// The member's `sub`.
    pub subject: String,
    /// When.
    pub issued_at: Timestamp,
    /// Until when.
    pub expires_at: Timestamp,
    /// What marks it.
    pub claims: AccessClaims,
}
