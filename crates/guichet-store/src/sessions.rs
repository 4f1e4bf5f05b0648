//! Server-side sessions.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::AccountId;
use guichet_core::audit::{AuditDetail, NewAuditEvent};
use guichet_core::ports::{SessionStore, StoreError};
use guichet_core::second_factor::Factors;
use guichet_core::session::{NewSession, OpenSession, Session};
use guichet_core::token::TokenHash;
use sqlx::Row as _;

use crate::audit::insert_event;
use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, timestamp};

/// Queues, in the transaction that ends them, a back-channel logout for each application
/// the sessions `which` selects (a condition on `oidc_session_clients l`, over `$1` and
/// `$2`) signed in to and that has a back channel, dated `now` (`$3`).
async fn tell_applications(
    tx: &mut SqlWork,
    which: &str,
    first: &str,
    second: Option<i64>,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO oidc_logouts (client_id, account_id, sid, ended_at, next_attempt_at) \
         SELECT l.client_id, l.account_id, l.sid, $3, $3 FROM oidc_session_clients l \
         JOIN oidc_clients c ON c.client_id = l.client_id \
         WHERE c.backchannel_logout_uri IS NOT NULL AND {which}"
    )))
    .bind(first.to_owned())
    .bind(second.unwrap_or_default())
    .bind(millis(now))
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(backend)
}

/// Ends every session of the account but `keep` at `now`, inside a transaction, telling
/// the applications they signed in to; returns how many. The account's offline refresh
/// tokens end too: ending the other sessions (a password changed, the account disabled,
/// staff, "end my other sessions") means every other way in.
pub(crate) async fn end_sessions(
    tx: &mut SqlWork,
    account: AccountId,
    keep: Option<&TokenHash>,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let keep = keep.map_or("", TokenHash::as_str);
    tell_applications(tx, "l.session_hash <> $1 AND l.account_id = $2", keep, Some(account.get()), now).await?;
    sqlx::query("DELETE FROM oidc_refresh_tokens WHERE account_id = $1 AND session_hash IS NULL")
        .bind(account.get())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND token_hash <> $2")
        .bind(account.get())
        .bind(keep)
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected())
        .map_err(backend)
}

/// Selects the sessions an upstream identity opened: `$1` is `"{upstream} {subject}"` (a
/// provider's id has no space).
const BY_IDENTITY: &str = "upstream || ' ' || upstream_subject = $1";

/// Ends the sessions `upstream` opened for `subject` on the account but `keep`, inside a
/// transaction, telling the applications they signed in to; how many (a link's sessions:
/// a handful).
pub(crate) async fn end_link_sessions(
    tx: &mut SqlWork,
    account: AccountId,
    identity: &str,
    keep: Option<&TokenHash>,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let keep = keep.map_or("", TokenHash::as_str);
    let hashes: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT token_hash FROM sessions WHERE {BY_IDENTITY} AND account_id = $2 AND token_hash <> $3"
    )))
    .bind(identity.to_owned())
    .bind(account.get())
    .bind(keep.to_owned())
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    for hash in &hashes {
        // As a logout of that session (see `delete_session`).
        tell_applications(tx, "l.session_hash = $1 AND $2 = 0", hash, None, now).await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(hash.clone())
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    Ok(u64::try_from(hashes.len()).unwrap_or(u64::MAX))
}

/// Ends the account's sessions opened with a temporary password, inside a transaction:
/// they live only as long as that password (replaced or revoked, they end).
pub(crate) async fn end_forced_sessions(tx: &mut SqlWork, account: AccountId) -> Result<u64, StoreError> {
    sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND must_change_password <> 0")
        .bind(account.get())
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected())
        .map_err(backend)
}

/// A session read back (the columns `token_hash`, `account_id`, `created_at`,
/// `idle_expires_at`, `expires_at`, `must_change_password`, `factors`).
fn session_from_row(row: &sqlx::any::AnyRow) -> Result<Session, StoreError> {
    let get = |column: &str| row.try_get::<i64, _>(column).map_err(backend);
    Ok(Session {
        token_hash: TokenHash::from_stored(row.try_get("token_hash").map_err(backend)?),
        account_id: AccountId::from_stored(get("account_id")?),
        created_at: timestamp(get("created_at")?)?,
        idle_expires_at: timestamp(get("idle_expires_at")?)?,
        expires_at: timestamp(get("expires_at")?)?,
        must_change_password: get("must_change_password")? != 0,
        factors: Factors::from_stored(&row.try_get::<String, _>("factors").map_err(backend)?),
    })
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn access_epoch(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT value FROM gate_epoch WHERE id = 1").fetch_one(&self.pool).await.map_err(backend)
    }

    async fn create_session(&self, session: &NewSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, account_id, created_at, idle_expires_at, expires_at, address, user_agent, \
             must_change_password, factors, upstream, upstream_subject, upstream_id_token) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(session.token_hash.as_str())
        .bind(session.account_id.get())
        .bind(millis(session.created_at))
        .bind(millis(session.idle_expires_at))
        .bind(millis(session.expires_at))
        .bind(session.context.address.map(|a| a.to_string()))
        .bind(session.context.user_agent.clone())
        .bind(i64::from(session.must_change_password))
        .bind(session.factors.to_stored())
        .bind(session.upstream.as_ref().map(|u| u.provider.clone()))
        .bind(session.upstream.as_ref().map(|u| u.subject.clone()))
        .bind(session.upstream.as_ref().map(|u| u.id_token.clone()))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(backend)
    }

    async fn find_session(&self, token: &TokenHash, now: Timestamp) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT token_hash, account_id, created_at, idle_expires_at, expires_at, must_change_password, factors \
             FROM sessions \
             WHERE token_hash = $1 AND idle_expires_at > $2 AND expires_at > $2",
        )
        .bind(token.as_str())
        .bind(millis(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn account_sessions(&self, account: AccountId, now: Timestamp) -> Result<Vec<OpenSession>, StoreError> {
        let rows = sqlx::query(
            "SELECT token_hash, account_id, created_at, idle_expires_at, expires_at, must_change_password, factors, \
             address, user_agent FROM sessions WHERE account_id = $1 AND idle_expires_at > $2 AND expires_at > $2 \
             ORDER BY created_at DESC, token_hash",
        )
        .bind(account.get())
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(OpenSession {
                    session: session_from_row(row)?,
                    address: row.try_get("address").map_err(backend)?,
                    user_agent: row.try_get("user_agent").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn upstream_id_token(&self, token: &TokenHash) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar::<_, Option<String>>("SELECT upstream_id_token FROM sessions WHERE token_hash = $1")
            .bind(token.as_str())
            .fetch_optional(&self.pool)
            .await
            .map(Option::flatten)
            .map_err(backend)
    }

    async fn set_session_factors(&self, token: &TokenHash, factors: Factors) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET factors = $2 WHERE token_hash = $1")
            .bind(token.as_str())
            .bind(factors.to_stored())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn touch_session(
        &self,
        token: &TokenHash,
        now: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET idle_expires_at = $2 WHERE token_hash = $1 AND idle_expires_at > $3")
            .bind(token.as_str())
            .bind(millis(idle_expires_at))
            .bind(millis(now))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn delete_session(
        &self,
        token: &TokenHash,
        now: Timestamp,
        event: Option<NewAuditEvent>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_work().await?;
        tell_applications(&mut tx, "l.session_hash = $1 AND $2 = 0", token.as_str(), None, now).await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if let Some(event) = event {
            insert_event(&mut tx, &event).await?;
        }
        tx.commit().await
    }

    async fn end_upstream_sessions(
        &self,
        upstream: &str,
        subject: &str,
        before: Timestamp,
        now: Timestamp,
        event: NewAuditEvent,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_work().await?;
        let identity = format!("{upstream} {subject}");
        let accounts: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT account_id FROM sessions WHERE {BY_IDENTITY} AND created_at <= $2"
        )))
        .bind(identity.clone())
        .bind(millis(before))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let which =
            format!("l.session_hash IN (SELECT token_hash FROM sessions WHERE {BY_IDENTITY} AND created_at <= $2)");
        tell_applications(&mut tx, &which, &identity, Some(millis(before)), now).await?;
        let ended =
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM sessions WHERE {BY_IDENTITY} AND created_at <= $2")))
                .bind(identity)
                .bind(millis(before))
                .execute(&mut *tx)
                .await
                .map(|done| done.rows_affected())
                .map_err(backend)?;
        for account in accounts {
            let event = NewAuditEvent { account_id: Some(AccountId::from_stored(account)), ..event.clone() };
            insert_event(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(ended)
    }

    async fn delete_account_sessions(
        &self,
        account: AccountId,
        keep: Option<&TokenHash>,
        now: Timestamp,
        event: Option<NewAuditEvent>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_work().await?;
        let ended = end_sessions(&mut tx, account, keep, now).await?;
        if let Some(mut event) = event {
            event.detail = Some(AuditDetail::Sessions(ended));
            insert_event(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(ended)
    }

    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        // Their applications are not told (the links go with the sessions): an
        // application's activity never reaches guichet's idle timer, and telling it at
        // guichet's expiry would throw out a member working there.
        sqlx::query("DELETE FROM sessions WHERE idle_expires_at <= $1 OR expires_at <= $1")
            .bind(millis(now))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    }
}
