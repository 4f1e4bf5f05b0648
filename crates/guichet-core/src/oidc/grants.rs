//! What a presented authorization code or refresh token does, one unit of work each: the
//! first presentation uses it; a second one revokes what the first issued (RFC 6749
//! §4.1.2, and the refresh token's family, OAuth 2.0 Security BCP §4.14.2). For a code,
//! a grant stored after its reuse is born revoked; a refresh token is used in the same
//! unit that stores its successor, so that a reuse always finds the successor to revoke.

use std::sync::Arc;

use jiff::Timestamp;

use super::{ClientId, NewGrant};
use crate::account::AccountId;
use crate::ports::{CodeUse, Ports, StoreError, Transactions};
use crate::token::TokenHash;

/// A refresh token's record (its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    /// The token's hash.
    pub hash: TokenHash,
    /// Its family: the hash of the code whose exchange began it.
    pub family: TokenHash,
    /// Issued to.
    pub client: ClientId,
    /// For whom.
    pub account: AccountId,
    /// The guichet session it ends with; `None` for offline access.
    pub session: Option<TokenHash>,
    /// Granted scopes.
    pub scope: String,
    /// The session's `sid`, named again in refreshed ID tokens.
    pub sid: String,
    /// When the member logged in.
    pub auth_time: Timestamp,
    /// How that login was made (the ID token's `amr` and `acr`).
    pub factors: crate::second_factor::Factors,
    /// When it was issued (for an offline family, when the family began).
    pub created_at: Timestamp,
    /// When the family stops working.
    pub expires_at: Timestamp,
}

/// What became of a refresh token's rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Used, and its successor stored with the access token's record.
    Rotated,
    /// Used meanwhile (a concurrent or replayed presentation): its family has just been
    /// revoked, the successor with it.
    Replayed,
    /// Gone meanwhile (revoked, or its session ended): nothing stored.
    Gone,
    /// Its session ended meanwhile: nothing stored.
    SessionEnded,
}

/// A session signing in to a client, with the `sid` the client knows it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLink {
    /// The session.
    pub session: TokenHash,
    /// The client.
    pub client: ClientId,
    /// Whose session.
    pub account: AccountId,
    /// The session's `sid`.
    pub sid: String,
}

/// Codes and grants, over units of work.
#[derive(Debug, Clone)]
pub struct Grants {
    transactions: Arc<dyn Transactions>,
}

impl Grants {
    /// Over the store's units of work.
    pub fn of(ports: &Ports) -> Self {
        Self::new(Arc::clone(&ports.transactions))
    }

    /// Over these units of work.
    pub fn new(transactions: Arc<dyn Transactions>) -> Self {
        Self { transactions }
    }

    /// Presents `code` for `client`: of any number of concurrent presentations, one
    /// alone is the first; any later one revokes the grants the code issued.
    /// `Unknown` for no such code, or one issued to another client (left untouched:
    /// whoever sees a code cannot burn it without the client's credentials).
    pub async fn use_code(&self, code: &TokenHash, client: &ClientId, now: Timestamp) -> Result<CodeUse, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some(held) = work.hold_oidc_code(code, client).await? else { return Ok(CodeUse::Unknown) };
        let used = if held.used_at.is_none() {
            work.set_oidc_code_used(code, now).await?;
            CodeUse::First(Box::new(held.code))
        } else {
            if held.reused_at.is_none() {
                work.set_oidc_code_reused(code, now).await?;
            }
            work.revoke_family(code, now).await?;
            CodeUse::Again
        };
        work.commit().await?;
        Ok(used)
    }

    /// Stores what a code exchange or a refresh issued — the access token's record, the
    /// next refresh token and, at an exchange, the session's link to the client — all
    /// revoked from birth when the code was presented again meanwhile. `false` (nothing
    /// stored) when the session they live in has ended.
    pub async fn store_grant(
        &self,
        grant: &NewGrant,
        refresh: &NewRefreshToken,
        link: Option<&SessionLink>,
    ) -> Result<bool, StoreError> {
        let mut work = self.transactions.begin().await?;
        let reused_at = work.hold_oidc_code(&grant.code, &grant.client).await?.and_then(|held| held.reused_at);
        if let Some(link) = link
            && !work.link_session(link).await?
        {
            return Ok(false);
        }
        if reused_at.is_none() && !work.insert_refresh_token(refresh).await? {
            return Ok(false);
        }
        work.insert_grant(grant, reused_at).await?;
        work.commit().await?;
        Ok(true)
    }

    /// Rotates `client`'s refresh token `presented` into `next`, storing `grant` (the
    /// access token signed with it), in one unit of work: of any number of concurrent
    /// rotations of one token, one alone succeeds; any other finds it used and revokes
    /// its family (the successor too, so that neither party keeps a live token).
    pub async fn rotate(
        &self,
        presented: &TokenHash,
        client: &ClientId,
        grant: &NewGrant,
        next: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let mut work = self.transactions.begin().await?;
        let Some((held, used_at)) = work.hold_refresh_token(presented, client).await? else {
            return Ok(Rotation::Gone);
        };
        if used_at.is_some() {
            work.revoke_family(&held.family, now).await?;
            work.commit().await?;
            return Ok(Rotation::Replayed);
        }
        work.set_refresh_token_used(presented, now).await?;
        if !work.insert_refresh_token(next).await? {
            return Ok(Rotation::SessionEnded);
        }
        work.insert_grant(grant, None).await?;
        work.commit().await?;
        Ok(Rotation::Rotated)
    }

    /// Revokes a refresh token's family and what it issued.
    pub async fn revoke_family(&self, family: &TokenHash, now: Timestamp) -> Result<(), StoreError> {
        let mut work = self.transactions.begin().await?;
        work.revoke_family(family, now).await?;
        work.commit().await
    }

    /// Revokes the family of `client`'s refresh token `token`, if it is one.
    pub async fn revoke_refresh_token(
        &self,
        token: &TokenHash,
        client: &ClientId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut work = self.transactions.begin().await?;
        if let Some((held, _)) = work.hold_refresh_token(token, client).await? {
            work.revoke_family(&held.family, now).await?;
        }
        work.commit().await
    }

    /// Revokes one access token.
    pub async fn revoke_grant(&self, jti: &str, now: Timestamp) -> Result<(), StoreError> {
        let mut work = self.transactions.begin().await?;
        work.revoke_grant(jti, now).await?;
        work.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::AccountId;
    use crate::oidc::NewCode;
    use crate::ports::HeldOidcCode;
    use crate::ports::memory::Memory;
    use crate::token::PlainToken;

    #[tokio::test]
    async fn a_code_issues_once_and_its_reuse_revokes_what_it_issued() {
        let memory = Memory::default();
        let rows = Arc::clone(&memory.0);
        let grants = Grants::new(Arc::new(memory));
        let t0: Timestamp = "2026-03-02T09:00:00Z".parse().unwrap();
        let (app, other) = (ClientId::from_stored("wiki".into()), ClientId::from_stored("intranet".into()));
        let code = PlainToken::generate().hash();
        let issued = NewCode {
            hash: code.clone(),
            client: app.clone(),
            account: AccountId::from_stored(1),
            redirect_uri: "https://wiki.example.fr/cb".into(),
            scope: "openid".into(),
            nonce: None,
            code_challenge: None,
            auth_time: t0,
            factors: crate::second_factor::Factors::PASSWORD,
            created_at: t0,
            expires_at: t0,
            session: None,
        };
        let held = HeldOidcCode { code: issued.clone(), used_at: None, reused_at: None };
        rows.lock().await.oidc_codes.insert(code.as_str().to_owned(), held);
        let grant = |jti: &str| NewGrant {
            jti: jti.into(),
            code: code.clone(),
            client: app.clone(),
            account: AccountId::from_stored(1),
            scope: "openid".into(),
            expires_at: t0,
            session: None,
        };
        let refresh = |n: u8| NewRefreshToken {
            hash: TokenHash::from_stored(format!("{n:064}")),
            family: code.clone(),
            client: app.clone(),
            account: AccountId::from_stored(1),
            session: None,
            scope: "openid".into(),
            sid: "s".into(),
            auth_time: t0,
            factors: crate::second_factor::Factors::PASSWORD,
            created_at: t0,
            expires_at: t0,
        };
        assert_eq!(grants.use_code(&code, &other, t0).await.unwrap(), CodeUse::Unknown, "another client's");
        assert_eq!(grants.use_code(&code, &app, t0).await.unwrap(), CodeUse::First(Box::new(issued)));
        assert!(grants.store_grant(&grant("first"), &refresh(1), None).await.unwrap());
        assert_eq!(grants.use_code(&code, &app, t0).await.unwrap(), CodeUse::Again);
        assert!(grants.store_grant(&grant("late"), &refresh(2), None).await.unwrap());
        let rows = rows.lock().await;
        assert!(rows.grants.iter().all(|(_, revoked)| *revoked == Some(t0)), "{:?}", rows.grants);
        assert!(
            rows.refresh_tokens.is_empty(),
            "the family is revoked, and none is born to it: {:?}",
            rows.refresh_tokens
        );
    }
}
