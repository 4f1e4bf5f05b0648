//! What a presented authorization code does, one unit of work each: the first
//! presentation uses it; a second one revokes what the first issued (RFC 6749 §4.1.2),
//! including a grant stored after it, which is born revoked.

use std::sync::Arc;

use jiff::Timestamp;

use super::{ClientId, NewGrant};
use crate::ports::{CodeUse, Ports, StoreError, Transactions};
use crate::token::TokenHash;

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
            CodeUse::First(held.code)
        } else {
            if held.reused_at.is_none() {
                work.set_oidc_code_reused(code, now).await?;
            }
            work.revoke_grants_of(code, now).await?;
            CodeUse::Again
        };
        work.commit().await?;
        Ok(used)
    }

    /// Stores what a code issued: revoked from birth when the code was presented again
    /// meanwhile.
    pub async fn store_grant(&self, grant: &NewGrant) -> Result<(), StoreError> {
        let mut work = self.transactions.begin().await?;
        let reused_at = work.hold_oidc_code(&grant.code, &grant.client).await?.and_then(|held| held.reused_at);
        work.insert_grant(grant, reused_at).await?;
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
            created_at: t0,
            expires_at: t0,
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
        };
        assert_eq!(grants.use_code(&code, &other, t0).await.unwrap(), CodeUse::Unknown, "another client's");
        assert_eq!(grants.use_code(&code, &app, t0).await.unwrap(), CodeUse::First(issued));
        grants.store_grant(&grant("first")).await.unwrap();
        assert_eq!(grants.use_code(&code, &app, t0).await.unwrap(), CodeUse::Again);
        grants.store_grant(&grant("late")).await.unwrap();
        let rows = rows.lock().await;
        assert!(rows.grants.iter().all(|(_, revoked)| *revoked == Some(t0)), "{:?}", rows.grants);
    }
}
