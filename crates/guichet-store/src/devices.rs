//! Attempts counted per device cookie mark, one row per mark and window.

use async_trait::async_trait;
use guichet_core::account::AccountId;
use guichet_core::ports::{DeviceStore, StoreError};
use guichet_core::{SignedDuration, Timestamp};

use crate::{SqlStore, backend, millis};

#[async_trait]
impl DeviceStore for SqlStore {
    async fn count_device_attempt(
        &self,
        device: &str,
        account: AccountId,
        window: SignedDuration,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let opened_before = now.saturating_sub(window).unwrap_or(now);
        // One statement: the upsert holds the row while it decides, so concurrent
        // attempts with one mark get consecutive counts.
        let attempts: i64 = sqlx::query_scalar(
            "INSERT INTO device_attempts (device, account_id, attempts, window_start) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (device) DO UPDATE SET \
               attempts = CASE WHEN device_attempts.window_start <= $4 THEN 1 ELSE device_attempts.attempts + 1 END, \
               window_start = CASE WHEN device_attempts.window_start <= $4 THEN $3 ELSE device_attempts.window_start END \
             RETURNING attempts",
        )
        .bind(device)
        .bind(account.get())
        .bind(millis(now))
        .bind(millis(opened_before))
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u32::try_from(attempts).unwrap_or(u32::MAX))
    }

    async fn clear_device_attempts(&self, device: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM device_attempts WHERE device = $1")
            .bind(device)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn purge_device_attempts(&self, before: Timestamp) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM device_attempts WHERE window_start < $1")
            .bind(millis(before))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    }
}
