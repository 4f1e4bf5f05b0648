//! Failed logins counted per address, in one-minute buckets.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::ports::{StoreError, ThrottleStore};
use sqlx::Row as _;

use crate::{SqlStore, backend, millis, optional_timestamp};

const MINUTE_MS: i64 = 60_000;

#[async_trait]
impl ThrottleStore for SqlStore {
    async fn record_address_failure(&self, key: &str, now: Timestamp) -> Result<(), StoreError> {
        let minute = millis(now).div_euclid(MINUTE_MS) * MINUTE_MS;
        sqlx::query(
            "INSERT INTO address_failures (address_key, minute, failures) VALUES ($1, $2, 1) \
             ON CONFLICT (address_key, minute) DO UPDATE SET failures = address_failures.failures + 1",
        )
        .bind(key)
        .bind(minute)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(backend)
    }

    async fn address_failures_since(
        &self,
        key: &str,
        since: Timestamp,
    ) -> Result<(u64, Option<Timestamp>), StoreError> {
        // A bucket counts when its minute ends after `since`.
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(failures), 0) AS BIGINT) AS failures, MIN(minute) AS oldest \
             FROM address_failures WHERE address_key = $1 AND minute > $2",
        )
        .bind(key)
        .bind(millis(since) - MINUTE_MS)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let failures: i64 = row.try_get("failures").map_err(backend)?;
        let oldest = optional_timestamp(row.try_get("oldest").map_err(backend)?)?;
        Ok((u64::try_from(failures).unwrap_or_default(), oldest))
    }

    async fn purge_address_failures(&self, before: Timestamp) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM address_failures WHERE minute < $1")
            .bind(millis(before) - MINUTE_MS)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    }
}
