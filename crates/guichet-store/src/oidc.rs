//! OpenID Connect clients, codes and grants.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::AccountId;
use guichet_core::groups::GroupName;
use guichet_core::oidc::{Client, ClientId, Grant, IssuedCode, NewCode, NewGrant};
use guichet_core::ports::{Conflict, OidcStore, StoreError};
use guichet_core::token::TokenHash;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

const CLIENT_SELECT: &str = "SELECT client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, \
     group_names, created_at FROM oidc_clients";

/// The columns [`code_from_row`] reads.
pub(crate) const CODE_COLUMNS: &str = "code_hash, client_id, account_id, redirect_uri, scope, nonce, code_challenge, \
     auth_time, created_at, expires_at";

const CODE_SELECT: &str = "SELECT code_hash, client_id, account_id, redirect_uri, scope, nonce, code_challenge, \
     auth_time, created_at, expires_at FROM oidc_codes";

fn lines(stored: &str) -> Vec<String> {
    stored.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn client_from_row(row: &AnyRow) -> Result<Client, StoreError> {
    let groups: String = row.try_get("group_names").map_err(backend)?;
    let redirect_uris: String = row.try_get("redirect_uris").map_err(backend)?;
    let post_logout: String = row.try_get("post_logout_redirect_uris").map_err(backend)?;
    Ok(Client {
        id: ClientId::from_stored(row.try_get("client_id").map_err(backend)?),
        name: row.try_get("name").map_err(backend)?,
        secret_hash: row.try_get::<Option<String>, _>("secret_hash").map_err(backend)?.map(TokenHash::from_stored),
        redirect_uris: lines(&redirect_uris),
        post_logout_redirect_uris: lines(&post_logout),
        groups: groups.split(',').filter(|g| !g.is_empty()).map(|g| GroupName::from_stored(g.to_owned())).collect(),
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
    })
}

pub(crate) fn code_from_row(row: &AnyRow) -> Result<IssuedCode, StoreError> {
    Ok(NewCode {
        hash: TokenHash::from_stored(row.try_get("code_hash").map_err(backend)?),
        client: ClientId::from_stored(row.try_get("client_id").map_err(backend)?),
        account: AccountId::from_stored(row.try_get("account_id").map_err(backend)?),
        redirect_uri: row.try_get("redirect_uri").map_err(backend)?,
        scope: row.try_get("scope").map_err(backend)?,
        nonce: row.try_get("nonce").map_err(backend)?,
        code_challenge: row.try_get("code_challenge").map_err(backend)?,
        auth_time: timestamp(row.try_get("auth_time").map_err(backend)?)?,
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
        expires_at: timestamp(row.try_get("expires_at").map_err(backend)?)?,
    })
}

#[async_trait]
impl OidcStore for SqlStore {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        let groups: Vec<&str> = client.groups.iter().map(GroupName::as_str).collect();
        sqlx::query(
            "INSERT INTO oidc_clients (client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, \
             group_names, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(client.id.as_str())
        .bind(&client.name)
        .bind(client.secret_hash.as_ref().map(|h| h.as_str().to_owned()))
        .bind(client.redirect_uris.join("\n"))
        .bind(client.post_logout_redirect_uris.join("\n"))
        .bind(groups.join(","))
        .bind(millis(client.created_at))
        .execute(&self.pool)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(Conflict::Client),
            _ => backend(error),
        })?;
        Ok(())
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{CLIENT_SELECT} ORDER BY name, client_id")))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{CLIENT_SELECT} WHERE client_id = $1")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn remove_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let mut tx = self.begin_work().await?;
        for table in ["oidc_grants", "oidc_codes"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE client_id = $1")))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        let removed = sqlx::query("DELETE FROM oidc_clients WHERE client_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        tx.commit().await?;
        Ok(removed > 0)
    }

    async fn store_code(&self, code: &NewCode) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oidc_codes (code_hash, client_id, account_id, redirect_uri, scope, nonce, code_challenge, \
             auth_time, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(code.hash.as_str())
        .bind(code.client.as_str())
        .bind(code.account.get())
        .bind(&code.redirect_uri)
        .bind(&code.scope)
        .bind(code.nonce.clone())
        .bind(code.code_challenge.clone())
        .bind(millis(code.auth_time))
        .bind(millis(code.created_at))
        .bind(millis(code.expires_at))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn find_authorization_code(
        &self,
        code: &TokenHash,
        client: &ClientId,
    ) -> Result<Option<IssuedCode>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{CODE_SELECT} WHERE code_hash = $1 AND client_id = $2")))
            .bind(code.as_str())
            .bind(client.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(code_from_row).transpose()
    }

    async fn find_grant(&self, jti: &str) -> Result<Option<Grant>, StoreError> {
        let row = sqlx::query(
            "SELECT jti, code_hash, client_id, account_id, scope, expires_at, revoked_at FROM oidc_grants \
             WHERE jti = $1",
        )
        .bind(jti)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Grant {
            grant: NewGrant {
                jti: row.try_get("jti").map_err(backend)?,
                code: TokenHash::from_stored(row.try_get("code_hash").map_err(backend)?),
                client: ClientId::from_stored(row.try_get("client_id").map_err(backend)?),
                account: AccountId::from_stored(row.try_get("account_id").map_err(backend)?),
                scope: row.try_get("scope").map_err(backend)?,
                expires_at: timestamp(row.try_get("expires_at").map_err(backend)?)?,
            },
            revoked_at: optional_timestamp(row.try_get("revoked_at").map_err(backend)?)?,
        }))
    }

    async fn purge_oidc(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut purged = 0;
        for table in ["oidc_codes", "oidc_grants"] {
            purged += sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE expires_at < $1")))
                .bind(millis(before))
                .execute(&self.pool)
                .await
                .map_err(backend)?
                .rows_affected();
        }
        Ok(purged)
    }
}
