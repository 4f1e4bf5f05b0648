//! OpenID Connect clients, codes and grants.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::AccountId;
use guichet_core::groups::GroupName;
use guichet_core::oidc::{
    Client, ClientId, Grant, IssuedCode, LogoutEntry, LogoutId, LogoutOutcome, LogoutState, NewCode, NewGrant,
    NewRefreshToken, QueuedLogout,
};
use guichet_core::ports::{Conflict, OidcStore, StoreError};
use guichet_core::second_factor::Factors;
use guichet_core::token::TokenHash;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

const CLIENT_COLUMNS: &str = "client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, \
     group_names, backchannel_logout_uri, frontchannel_logout_uri, offline, second_factor, created_at";

const CLIENT_SELECT: &str = "SELECT client_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, \
     group_names, backchannel_logout_uri, frontchannel_logout_uri, offline, second_factor, created_at FROM oidc_clients";

/// The columns [`refresh_from_row`] reads.
pub(crate) const REFRESH_COLUMNS: &str =
    "token_hash, family, client_id, account_id, session_hash, scope, sid, auth_time, created_at, expires_at, factors";

/// The columns [`code_from_row`] reads.
pub(crate) const CODE_COLUMNS: &str = "code_hash, client_id, account_id, redirect_uri, scope, nonce, code_challenge, \
     auth_time, created_at, expires_at, session_hash, factors";

const CODE_SELECT: &str = "SELECT code_hash, client_id, account_id, redirect_uri, scope, nonce, code_challenge, \
     auth_time, created_at, expires_at, session_hash, factors FROM oidc_codes";

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
        backchannel_logout_uri: row.try_get("backchannel_logout_uri").map_err(backend)?,
        frontchannel_logout_uri: row.try_get("frontchannel_logout_uri").map_err(backend)?,
        offline: row.try_get::<i64, _>("offline").map_err(backend)? != 0,
        second_factor: row.try_get::<i64, _>("second_factor").map_err(backend)? != 0,
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
    })
}

fn optional_hash(row: &AnyRow, column: &str) -> Result<Option<TokenHash>, StoreError> {
    Ok(row.try_get::<Option<String>, _>(column).map_err(backend)?.map(TokenHash::from_stored))
}

pub(crate) fn refresh_from_row(row: &AnyRow) -> Result<NewRefreshToken, StoreError> {
    Ok(NewRefreshToken {
        hash: TokenHash::from_stored(row.try_get("token_hash").map_err(backend)?),
        family: TokenHash::from_stored(row.try_get("family").map_err(backend)?),
        client: ClientId::from_stored(row.try_get("client_id").map_err(backend)?),
        account: AccountId::from_stored(row.try_get("account_id").map_err(backend)?),
        session: optional_hash(row, "session_hash")?,
        scope: row.try_get("scope").map_err(backend)?,
        sid: row.try_get("sid").map_err(backend)?,
        auth_time: timestamp(row.try_get("auth_time").map_err(backend)?)?,
        factors: factors(row)?,
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
        expires_at: timestamp(row.try_get("expires_at").map_err(backend)?)?,
    })
}

/// The `factors` column: how the session signed in.
fn factors(row: &AnyRow) -> Result<Factors, StoreError> {
    Ok(Factors::from_stored(&row.try_get::<String, _>("factors").map_err(backend)?))
}

fn logout_entry(row: &AnyRow) -> Result<LogoutEntry, StoreError> {
    let state: String = row.try_get("state").map_err(backend)?;
    Ok(LogoutEntry {
        id: LogoutId::from_stored(row.try_get("id").map_err(backend)?),
        client: ClientId::from_stored(row.try_get("client_id").map_err(backend)?),
        account: AccountId::from_stored(row.try_get("account_id").map_err(backend)?),
        identifier: row.try_get("identifier").map_err(backend)?,
        ended_at: timestamp(row.try_get("ended_at").map_err(backend)?)?,
        state: crate::column(&state, LogoutState::parse, "oidc_logouts.state")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts").map_err(backend)?).unwrap_or(u32::MAX),
        last_answer: row.try_get("last_answer").map_err(backend)?,
        finished_at: optional_timestamp(row.try_get("finished_at").map_err(backend)?)?,
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
        session: optional_hash(row, "session_hash")?,
        factors: factors(row)?,
    })
}

#[async_trait]
impl OidcStore for SqlStore {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        let groups: Vec<&str> = client.groups.iter().map(GroupName::as_str).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO oidc_clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(client.id.as_str())
        .bind(&client.name)
        .bind(client.secret_hash.as_ref().map(|h| h.as_str().to_owned()))
        .bind(client.redirect_uris.join("\n"))
        .bind(client.post_logout_redirect_uris.join("\n"))
        .bind(groups.join(","))
        .bind(client.backchannel_logout_uri.clone())
        .bind(client.frontchannel_logout_uri.clone())
        .bind(i64::from(client.offline))
        .bind(i64::from(client.second_factor))
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
        for table in ["oidc_grants", "oidc_codes", "oidc_refresh_tokens", "oidc_session_clients", "oidc_logouts"] {
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
             auth_time, created_at, expires_at, session_hash, factors) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .bind(code.session.as_ref().map(|h| h.as_str().to_owned()))
        .bind(code.factors.to_stored())
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
            "SELECT jti, code_hash, client_id, account_id, scope, expires_at, revoked_at, session_hash \
             FROM oidc_grants WHERE jti = $1",
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
                session: optional_hash(&row, "session_hash")?,
            },
            revoked_at: optional_timestamp(row.try_get("revoked_at").map_err(backend)?)?,
        }))
    }

    async fn find_refresh_token(
        &self,
        token: &TokenHash,
        client: &ClientId,
    ) -> Result<Option<(NewRefreshToken, Option<Timestamp>)>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REFRESH_COLUMNS}, used_at FROM oidc_refresh_tokens WHERE token_hash = $1 AND client_id = $2"
        )))
        .bind(token.as_str())
        .bind(client.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|row| Ok((refresh_from_row(&row)?, optional_timestamp(row.try_get("used_at").map_err(backend)?)?)))
            .transpose()
    }

    async fn session_clients(&self, session: &TokenHash) -> Result<Vec<(Client, String)>, StoreError> {
        let columns: Vec<String> = CLIENT_COLUMNS.split(", ").map(|c| format!("c.{c}")).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {}, l.sid FROM oidc_session_clients l JOIN oidc_clients c ON c.client_id = l.client_id \
             WHERE l.session_hash = $1 ORDER BY c.name",
            columns.join(", ")
        )))
        .bind(session.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(|row| Ok((client_from_row(row)?, row.try_get("sid").map_err(backend)?))).collect()
    }

    async fn clients_with_due_logouts(&self, now: Timestamp) -> Result<Vec<ClientId>, StoreError> {
        // A read: the messenger asks every two seconds, and an idle queue takes no write
        // lock (nor, on SQLite, restarts the write-ahead log).
        let clients: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT client_id FROM oidc_logouts WHERE state = 'pending' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until <= $1)",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(clients.into_iter().map(ClientId::from_stored).collect())
    }

    async fn claim_due_logouts(
        &self,
        client: &ClientId,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<QueuedLogout>, StoreError> {
        // As the outbox's claim: the conditions repeated outside the subquery make a
        // second claimer on PostgreSQL skip a row the first one took.
        let rows = sqlx::query(
            "UPDATE oidc_logouts SET lease_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM oidc_logouts WHERE client_id = $4 AND state = 'pending' \
                          AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
                          ORDER BY id LIMIT $3) \
             AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $1) \
             RETURNING id, client_id, account_id, sid, attempts, ended_at",
        )
        .bind(millis(now))
        .bind(millis(lease_until))
        .bind(i64::from(limit))
        .bind(client.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(QueuedLogout {
                    id: LogoutId::from_stored(row.try_get("id").map_err(backend)?),
                    client: ClientId::from_stored(row.try_get("client_id").map_err(backend)?),
                    account: AccountId::from_stored(row.try_get("account_id").map_err(backend)?),
                    sid: row.try_get("sid").map_err(backend)?,
                    attempts: u32::try_from(row.try_get::<i64, _>("attempts").map_err(backend)?).unwrap_or(u32::MAX),
                    ended_at: timestamp(row.try_get("ended_at").map_err(backend)?)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_by_key(|l| l.id.get());
        Ok(claimed)
    }

    async fn finish_logout(&self, id: LogoutId, outcome: &LogoutOutcome, now: Timestamp) -> Result<(), StoreError> {
        let (state, answer, next, finished) = match outcome {
            LogoutOutcome::Delivered(answer) => (LogoutState::Delivered, answer, None, Some(now)),
            LogoutOutcome::Retry(answer, at) => (LogoutState::Pending, answer, Some(*at), None),
            LogoutOutcome::Failed(answer) => (LogoutState::Failed, answer, None, Some(now)),
        };
        let answer: String = answer.chars().take(300).collect();
        sqlx::query(
            "UPDATE oidc_logouts SET state = $2, last_answer = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
             finished_at = $5, lease_until = NULL WHERE id = $1",
        )
        .bind(id.get())
        .bind(state.as_str())
        .bind(answer)
        .bind(next.map(millis))
        .bind(finished.map(millis))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(backend)
    }

    async fn logout_log(&self, limit: u32) -> Result<Vec<LogoutEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.id, l.client_id, l.account_id, a.identifier, l.ended_at, l.state, l.attempts, l.last_answer, \
             l.finished_at FROM oidc_logouts l LEFT JOIN accounts a ON a.id = l.account_id \
             ORDER BY l.id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(logout_entry).collect()
    }

    async fn purge_oidc(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut purged = 0;
        for delete in [
            "DELETE FROM oidc_codes WHERE expires_at < $1",
            "DELETE FROM oidc_grants WHERE expires_at < $1",
            "DELETE FROM oidc_refresh_tokens WHERE expires_at < $1",
            "DELETE FROM oidc_logouts WHERE state <> 'pending' AND finished_at < $1",
        ] {
            purged +=
                sqlx::query(delete).bind(millis(before)).execute(&self.pool).await.map_err(backend)?.rows_affected();
        }
        Ok(purged)
    }
}
