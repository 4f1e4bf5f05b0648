//! Upstream identity providers: the identities linked to accounts, and the requests
//! waiting between guichet's redirect and the provider's answer (or the member's password).

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{AccountId, Rpps};
use guichet_core::ports::{RequestPurpose, StoreError, StoredRequest, UpstreamLink, UpstreamStore};
use guichet_core::token::TokenHash;
use sqlx::Row as _;

use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

fn request_from_row(row: &sqlx::any::AnyRow, now: Timestamp) -> Result<Option<StoredRequest>, StoreError> {
    let expires_at = timestamp(row.try_get("expires_at").map_err(backend)?)?;
    let purpose: String = row.try_get("purpose").map_err(backend)?;
    let Some(purpose) = RequestPurpose::parse(&purpose).filter(|_| expires_at > now) else { return Ok(None) };
    Ok(Some(StoredRequest {
        upstream: row.try_get("upstream").map_err(backend)?,
        purpose,
        account: row.try_get::<Option<i64>, _>("account_id").map_err(backend)?.map(AccountId::from_stored),
        payload: row.try_get("payload").map_err(backend)?,
    }))
}

/// Links inside a unit; `false` when the identity is linked already.
pub(crate) async fn link(
    tx: &mut SqlWork,
    upstream: &str,
    subject: &str,
    account: AccountId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO upstream_links (upstream, subject, account_id, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, NULL) ON CONFLICT (upstream, subject) DO NOTHING",
    )
    .bind(upstream.to_owned())
    .bind(subject.to_owned())
    .bind(account.get())
    .bind(millis(now))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    if inserted.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM upstream_refusals WHERE upstream = $1 AND account_id = $2")
        .bind(upstream.to_owned())
        .bind(account.get())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(true)
}

/// Whether the account's member removed a link of `upstream` since its last link.
pub(crate) async fn removed(tx: &mut SqlWork, upstream: &str, account: AccountId) -> Result<bool, StoreError> {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM upstream_refusals WHERE upstream = $1 AND account_id = $2")
        .bind(upstream.to_owned())
        .bind(account.get())
        .fetch_one(&mut **tx)
        .await
        .map(|n| n > 0)
        .map_err(backend)
}

/// Records a link's use inside a unit; `false` when it is not the account's.
pub(crate) async fn used(
    tx: &mut SqlWork,
    upstream: &str,
    subject: &str,
    account: AccountId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    sqlx::query("UPDATE upstream_links SET last_used_at = $4 WHERE upstream = $1 AND subject = $2 AND account_id = $3")
        .bind(upstream.to_owned())
        .bind(subject.to_owned())
        .bind(account.get())
        .bind(millis(now))
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(backend)
}

/// Removes one of the account's links inside a unit, remembering it was removed.
pub(crate) async fn unlink(
    tx: &mut SqlWork,
    account: AccountId,
    upstream: &str,
    subject: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let removed = sqlx::query("DELETE FROM upstream_links WHERE account_id = $1 AND upstream = $2 AND subject = $3")
        .bind(account.get())
        .bind(upstream.to_owned())
        .bind(subject.to_owned())
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    if removed.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO upstream_refusals (upstream, account_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (upstream, account_id) DO NOTHING",
    )
    .bind(upstream.to_owned())
    .bind(account.get())
    .bind(millis(now))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(true)
}

#[async_trait]
impl UpstreamStore for SqlStore {
    async fn put_upstream_request(
        &self,
        token: &TokenHash,
        request: &StoredRequest,
        until: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO upstream_requests (token_hash, upstream, purpose, account_id, payload, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.as_str())
        .bind(request.upstream.clone())
        .bind(request.purpose.as_str())
        .bind(request.account.map(AccountId::get))
        .bind(request.payload.clone())
        .bind(millis(until))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(backend)
    }

    async fn take_upstream_request(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<StoredRequest>, StoreError> {
        // Deleted whatever its age: a token serves once.
        let row = sqlx::query(
            "DELETE FROM upstream_requests WHERE token_hash = $1 \
             RETURNING upstream, purpose, account_id, payload, expires_at",
        )
        .bind(token.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map_or(Ok(None), |row| request_from_row(&row, now))
    }

    async fn peek_upstream_request(
        &self,
        token: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<StoredRequest>, StoreError> {
        let row = sqlx::query(
            "SELECT upstream, purpose, account_id, payload, expires_at FROM upstream_requests WHERE token_hash = $1",
        )
        .bind(token.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map_or(Ok(None), |row| request_from_row(&row, now))
    }

    async fn purge_upstream_requests(&self, now: Timestamp) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM upstream_requests WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    }

    async fn linked_account(&self, upstream: &str, subject: &str) -> Result<Option<AccountId>, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT account_id FROM upstream_links WHERE upstream = $1 AND subject = $2")
            .bind(upstream.to_owned())
            .bind(subject.to_owned())
            .fetch_optional(&self.pool)
            .await
            .map(|id| id.map(AccountId::from_stored))
            .map_err(backend)
    }

    async fn account_links(&self, account: AccountId) -> Result<Vec<UpstreamLink>, StoreError> {
        let rows = sqlx::query(
            "SELECT upstream, subject, created_at, last_used_at FROM upstream_links WHERE account_id = $1 \
             ORDER BY created_at, upstream, subject",
        )
        .bind(account.get())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(UpstreamLink {
                    upstream: row.try_get("upstream").map_err(backend)?,
                    subject: row.try_get("subject").map_err(backend)?,
                    created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
                    last_used_at: optional_timestamp(row.try_get("last_used_at").map_err(backend)?)?,
                })
            })
            .collect()
    }

    async fn account_with_rpps(&self, rpps: &Rpps) -> Result<Option<AccountId>, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT id FROM accounts WHERE rpps = $1")
            .bind(rpps.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await
            .map(|id| id.map(AccountId::from_stored))
            .map_err(backend)
    }
}
