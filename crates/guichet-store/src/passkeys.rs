//! Security keys and passkeys, and the WebAuthn ceremonies between their two requests.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::AccountId;
use guichet_core::ports::{CeremonyPurpose, PasskeyStore, StoreError, StoredCeremony, StoredKey};
use guichet_core::token::TokenHash;
use sqlx::Row as _;

use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

const KEY_COLUMNS: &str = "credential_id, account_id, name, passkey, created_at, last_used_at";

fn key_from_row(row: &sqlx::any::AnyRow) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        credential_id: row.try_get("credential_id").map_err(backend)?,
        account: AccountId::from_stored(row.try_get("account_id").map_err(backend)?),
        name: row.try_get("name").map_err(backend)?,
        passkey: row.try_get("passkey").map_err(backend)?,
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
        last_used_at: optional_timestamp(row.try_get("last_used_at").map_err(backend)?)?,
    })
}

/// Adds a key inside a unit; `false` when its credential id is taken.
pub(crate) async fn insert_key(tx: &mut SqlWork, key: &StoredKey) -> Result<bool, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webauthn_credentials ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL) \
         ON CONFLICT (credential_id) DO NOTHING"
    )))
    .bind(key.credential_id.clone())
    .bind(key.account.get())
    .bind(key.name.clone())
    .bind(key.passkey.clone())
    .bind(millis(key.created_at))
    .execute(&mut **tx)
    .await
    .map(|done| done.rows_affected() == 1)
    .map_err(backend)
}

/// Removes one of the account's keys inside a unit.
pub(crate) async fn remove_key(tx: &mut SqlWork, account: AccountId, credential_id: &str) -> Result<bool, StoreError> {
    sqlx::query("DELETE FROM webauthn_credentials WHERE account_id = $1 AND credential_id = $2")
        .bind(account.get())
        .bind(credential_id.to_owned())
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(backend)
}

/// Writes back a key after a use inside a unit, provided it is unchanged since read.
pub(crate) async fn used_key(
    tx: &mut SqlWork,
    key: &StoredKey,
    passkey: &str,
    at: Timestamp,
) -> Result<bool, StoreError> {
    sqlx::query(
        "UPDATE webauthn_credentials SET passkey = $4, last_used_at = $5 \
         WHERE credential_id = $1 AND account_id = $2 AND passkey = $3",
    )
    .bind(key.credential_id.clone())
    .bind(key.account.get())
    .bind(key.passkey.clone())
    .bind(passkey.to_owned())
    .bind(millis(at))
    .execute(&mut **tx)
    .await
    .map(|done| done.rows_affected() == 1)
    .map_err(backend)
}

/// Removes every key of the account inside a unit; returns how many.
pub(crate) async fn remove_keys(tx: &mut SqlWork, account: AccountId) -> Result<u64, StoreError> {
    sqlx::query("DELETE FROM webauthn_credentials WHERE account_id = $1")
        .bind(account.get())
        .execute(&mut **tx)
        .await
        .map(|done| done.rows_affected())
        .map_err(backend)
}

#[async_trait]
impl PasskeyStore for SqlStore {
    async fn put_ceremony(
        &self,
        token: &TokenHash,
        purpose: CeremonyPurpose,
        account: Option<AccountId>,
        state: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (token_hash, purpose, account_id, state, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.as_str())
        .bind(purpose.as_str())
        .bind(account.map(AccountId::get))
        .bind(state.to_owned())
        .bind(millis(expires_at))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(backend)
    }

    async fn take_ceremony(
        &self,
        token: &TokenHash,
        purpose: CeremonyPurpose,
        now: Timestamp,
    ) -> Result<Option<StoredCeremony>, StoreError> {
        // Deleted whatever its purpose or age: a token serves once, and only as it was made.
        let row = sqlx::query(
            "DELETE FROM webauthn_ceremonies WHERE token_hash = $1 RETURNING purpose, account_id, state, expires_at",
        )
        .bind(token.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let stored_purpose: String = row.try_get("purpose").map_err(backend)?;
        let expires_at = timestamp(row.try_get("expires_at").map_err(backend)?)?;
        if stored_purpose != purpose.as_str() || expires_at <= now {
            return Ok(None);
        }
        Ok(Some(StoredCeremony {
            account: row.try_get::<Option<i64>, _>("account_id").map_err(backend)?.map(AccountId::from_stored),
            state: row.try_get("state").map_err(backend)?,
        }))
    }

    async fn account_keys(&self, account: AccountId) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM webauthn_credentials WHERE account_id = $1 ORDER BY created_at, credential_id"
        )))
        .bind(account.get())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn find_key(&self, credential_id: &str) -> Result<Option<StoredKey>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM webauthn_credentials WHERE credential_id = $1"
        )))
        .bind(credential_id.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn purge_ceremonies(&self, now: Timestamp) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1")
            .bind(millis(now))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    }
}
