//! The server's key, made on the first start and kept so that every instance shares it.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::keys::ServerKey;
use guichet_core::ports::{KeyStore, StoreError};
use secrecy::{ExposeSecret as _, SecretString};

use crate::{SqlStore, backend, millis, timestamp};

#[async_trait]
impl KeyStore for SqlStore {
    async fn server_key(&self, name: &str, candidate: &ServerKey, now: Timestamp) -> Result<ServerKey, StoreError> {
        sqlx::query(
            "INSERT INTO server_keys (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(guichet_core::token::hex(candidate.expose()))
        .bind(millis(now))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        let stored: String = sqlx::query_scalar("SELECT secret FROM server_keys WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        from_hex(&stored)
            .and_then(|bytes| ServerKey::from_bytes(&bytes))
            .ok_or_else(|| StoreError::Backend(format!("the stored server key {name:?} is not 32 bytes of hex").into()))
    }

    async fn find_secret(&self, name: &str) -> Result<Option<SecretString>, StoreError> {
        let stored: Option<String> = sqlx::query_scalar("SELECT secret FROM server_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(stored.map(SecretString::from))
    }

    async fn keep_secret(
        &self,
        name: &str,
        candidate: &SecretString,
        now: Timestamp,
    ) -> Result<SecretString, StoreError> {
        sqlx::query(
            "INSERT INTO server_keys (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate.expose_secret())
        .bind(millis(now))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        self.find_secret(name)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("the secret {name:?} was not kept").into()))
    }

    async fn secrets_named(&self, name: &str) -> Result<Vec<(String, SecretString, Timestamp)>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT name, secret, created_at FROM server_keys WHERE name = $1 OR name LIKE $2 \
             ORDER BY created_at, name",
        )
        .bind(name)
        .bind(format!("{name}-%"))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.into_iter().map(|(name, secret, at)| Ok((name, SecretString::from(secret), timestamp(at)?))).collect()
    }
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok())).collect()
}
