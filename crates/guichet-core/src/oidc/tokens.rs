//! What guichet signs for clients — ID tokens and access tokens, RS256 under one key made
//! on first use and kept in the database — with the `openidconnect` crate's types (no
//! JOSE written here).

use chrono::{DateTime, Utc};
use jiff::Timestamp;
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRsaPrivateSigningKey,
};
use openidconnect::{
    AccessToken, AdditionalClaims, Audience, ClientId as OidcClientId, IdToken, IdTokenClaims, IdTokenVerifier,
    IssuerUrl, JsonWebKeyId, PrivateSigningKey as _, StandardClaims, SubjectIdentifier,
};
use rsa::pkcs1::{EncodeRsaPrivateKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The `groups` claim, the one guichet adds to the standard ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsClaim {
    /// The member's groups (only with the `groups` scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
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

/// The signing key and its public half. `Debug` shows only the key id.
pub struct Signer {
    key: CoreRsaPrivateSigningKey,
    jwks: CoreJsonWebKeySet,
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
        let digest = Sha256::digest(private.n().to_bytes_be());
        let kid = crate::token::hex(digest.get(..8).unwrap_or_default());
        let key = CoreRsaPrivateSigningKey::from_pem(pem.expose_secret(), Some(JsonWebKeyId::new(kid.clone())))
            .map_err(|_| SigningError::Key)?;
        let public: CoreJsonWebKey = key.as_verification_key();
        Ok(Self { key, jwks: CoreJsonWebKeySet::new(vec![public]), kid })
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
            IdTokenVerifier::new_public_client(OidcClientId::new(String::new()), issuer.clone(), self.jwks.clone())
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
