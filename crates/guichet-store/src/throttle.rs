//! Counts per address, in one-minute buckets.
//!
//! A count adds to its minute's bucket and sums the window in one transaction. The
//! upsert takes the bucket row's lock (PostgreSQL) or the write lock (SQLite) first, so
//! concurrent counts of one key are serialised and each sees the ones before it.

use async_trait::async_trait;
use guichet_core::lockout::ThrottleKey;
use guichet_core::ports::{StoreError, ThrottleStore};
use guichet_core::{SignedDuration, Timestamp};
use sqlx::Row as _;

use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, optional_timestamp};

const MINUTE_MS: i64 = 60_000;

fn minute_of(at: Timestamp) -> i64 {
    millis(at).div_euclid(MINUTE_MS) * MINUTE_MS
}

/// Takes back one count, inside a transaction.
pub(crate) async fn uncount_in(tx: &mut SqlWork, key: &ThrottleKey, at: Timestamp) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE address_failures SET failures = failures - 1 WHERE address_key = $1 AND minute = $2 AND failures > 0",
    )
    .bind(key.storage_key())
    .bind(minute_of(at))
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(backend)
}

#[async_trait]
impl ThrottleStore for SqlStore {
    async fn count(
        &self,
        key: &ThrottleKey,
        window: SignedDuration,
        now: Timestamp,
    ) -> Result<(u64, Option<Timestamp>), StoreError> {
        let key = key.storage_key();
        let mut tx = self.begin_work().await?;
        sqlx::query(
            "INSERT INTO address_failures (address_key, minute, failures) VALUES ($1, $2, 1) \
             ON CONFLICT (address_key, minute) DO UPDATE SET failures = address_failures.failures + 1",
        )
        .bind(&key)
        .bind(minute_of(now))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // A bucket counts when its minute ends after the window's start.
        let since = now.saturating_sub(window).unwrap_or(now);
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(failures), 0) AS BIGINT) AS failures, MIN(minute) AS oldest \
             FROM address_failures WHERE address_key = $1 AND minute > $2 AND failures > 0",
        )
        .bind(&key)
        .bind(millis(since) - MINUTE_MS)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await?;
        let failures: i64 = row.try_get("failures").map_err(backend)?;
        let oldest = optional_timestamp(row.try_get("oldest").map_err(backend)?)?;
        Ok((u64::try_from(failures).unwrap_or_default(), oldest))
    }

    async fn peek(&self, key: &ThrottleKey, window: SignedDuration, now: Timestamp) -> Result<u64, StoreError> {
        let since = now.saturating_sub(window).unwrap_or(now);
        let count: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(failures), 0) AS BIGINT) FROM address_failures \
             WHERE address_key = $1 AND minute > $2 AND failures > 0",
        )
        .bind(key.storage_key())
        .bind(millis(since) - MINUTE_MS)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn uncount(&self, key: &ThrottleKey, at: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_work().await?;
        uncount_in(&mut tx, key, at).await?;
        tx.commit().await
    }

    async fn purge_counts(&self, before: Timestamp) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM address_failures WHERE minute < $1")
            .bind(millis(before) - MINUTE_MS)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    }
}
