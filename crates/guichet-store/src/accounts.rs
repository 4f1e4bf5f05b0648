//! Accounts as rows: reading them, and the bulk writes of an import. What changes an
//! account is decided in the core, over units of work (`work.rs`).

use async_trait::async_trait;
use guichet_core::account::{Account, AccountId, DisplayName, EmailAddress, Identifier, NameParts, Role};
use guichet_core::password::PasswordHash;
use guichet_core::ports::{AccountFilter, AccountQuery, AccountState, AccountStore, Conflict, Page, StoreError};
use guichet_core::token::TokenHash;
use jiff::Timestamp;
use sqlx::AssertSqlSafe;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

pub(crate) const ACCOUNT_COLUMNS: &str = "id, identifier, email, display_name, role, password_hash, temporary_password_hash, \
     locked_until, created_at, updated_at, last_login_at, disabled_at, password_expires_at, devices_trusted_after, \
     recovery_email, recovery_email_pending, given_name, family_name, email_pending, erase_at, rpps";

pub(crate) fn account_from_row(row: &AnyRow) -> Result<Account, StoreError> {
    let get_i64 = |column: &str| row.try_get::<i64, _>(column).map_err(backend);
    let get_text = |column: &str| row.try_get::<String, _>(column).map_err(backend);
    Ok(Account {
        id: AccountId::from_stored(get_i64("id")?),
        identifier: Identifier::from_stored(get_text("identifier")?),
        email: EmailAddress::from_stored(get_text("email")?),
        display_name: DisplayName::from_stored(get_text("display_name")?),
        names: NameParts {
            given: DisplayName::from_stored(get_text("given_name")?),
            family: DisplayName::from_stored(get_text("family_name")?),
        },
        role: crate::column(&get_text("role")?, |r| Role::parse(r).ok(), "accounts.role")?,
        password_hash: row.try_get::<Option<String>, _>("password_hash").map_err(backend)?.map(PasswordHash::from_phc),
        temporary_password_hash: row
            .try_get::<Option<String>, _>("temporary_password_hash")
            .map_err(backend)?
            .map(TokenHash::from_stored),
        locked_until: optional_timestamp(row.try_get("locked_until").map_err(backend)?)?,
        created_at: timestamp(get_i64("created_at")?)?,
        updated_at: timestamp(get_i64("updated_at")?)?,
        last_login_at: optional_timestamp(row.try_get("last_login_at").map_err(backend)?)?,
        disabled_at: optional_timestamp(row.try_get("disabled_at").map_err(backend)?)?,
        temporary_password_until: optional_timestamp(row.try_get("password_expires_at").map_err(backend)?)?,
        devices_trusted_after: timestamp(get_i64("devices_trusted_after")?)?,
        recovery_email: row
            .try_get::<Option<String>, _>("recovery_email")
            .map_err(backend)?
            .map(EmailAddress::from_stored),
        recovery_email_pending: row
            .try_get::<Option<String>, _>("recovery_email_pending")
            .map_err(backend)?
            .map(EmailAddress::from_stored),
        email_pending: row
            .try_get::<Option<String>, _>("email_pending")
            .map_err(backend)?
            .map(EmailAddress::from_stored),
        erase_at: optional_timestamp(row.try_get("erase_at").map_err(backend)?)?,
        rpps: row.try_get::<Option<String>, _>("rpps").map_err(backend)?.map(guichet_core::account::Rpps::from_stored),
    })
}

/// Maps a unique violation to the value that clashed.
pub(crate) fn conflict_or_backend(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        let said = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
        let conflict = if said.contains("email") {
            Conflict::Email
        } else if said.contains("rpps") {
            Conflict::Rpps
        } else {
            Conflict::Identifier
        };
        return StoreError::Conflict(conflict);
    }
    backend(error)
}

pub(crate) fn select_where(clause: &str) -> String {
    format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {clause}")
}

fn optional_account(row: Option<AnyRow>) -> Result<Option<Account>, StoreError> {
    row.as_ref().map(account_from_row).transpose()
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn find_account_by_identifier(&self, identifier: &Identifier) -> Result<Option<Account>, StoreError> {
        let sql = select_where("identifier = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(identifier.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        optional_account(row)
    }

    async fn find_account_by_email(&self, email: &EmailAddress) -> Result<Option<Account>, StoreError> {
        let sql = select_where("email = $1");
        let row =
            sqlx::query(AssertSqlSafe(sql)).bind(email.as_str()).fetch_optional(&self.pool).await.map_err(backend)?;
        optional_account(row)
    }

    async fn find_account_by_any_address(&self, email: &EmailAddress) -> Result<Option<Account>, StoreError> {
        match self.find_account_by_email(email).await? {
            Some(account) => Ok(Some(account)),
            None => {
                let sql = select_where("recovery_email = $1");
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(email.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                optional_account(row)
            }
        }
    }

    async fn find_account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let sql = select_where("id = $1");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(id.get()).fetch_optional(&self.pool).await.map_err(backend)?;
        optional_account(row)
    }

    async fn list_accounts(&self, filter: AccountFilter) -> Result<Vec<Account>, StoreError> {
        let sql = select_where("($1 < 0 OR locked_until > $1) ORDER BY identifier");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(filter.locked_at.map_or(-1, millis))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(account_from_row).collect()
    }

    async fn second_factors(
        &self,
        account: AccountId,
    ) -> Result<guichet_core::second_factor::FactorStatus, StoreError> {
        self.factor_status(account).await
    }

    async fn count_accounts(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&self.pool).await.map_err(backend)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn browse_accounts(
        &self,
        query: &AccountQuery,
        now: Timestamp,
        page: Page,
    ) -> Result<(Vec<Account>, u64), StoreError> {
        // LIKE's wildcards in what was typed are matched literally ('!' escapes).
        let text = query.text.trim().to_lowercase();
        let escaped = text.replace('!', "!!").replace('%', "!%").replace('_', "!_");
        // Each part is on only when its value is given: '' and -1 switch it off.
        let selected = "($1 = '' OR identifier LIKE $2 ESCAPE '!' OR email LIKE $2 ESCAPE '!' \
                OR LOWER(display_name) LIKE $2 ESCAPE '!') \
            AND ($3 = '' OR role = $3) \
            AND ($4 = '' \
                OR ($4 = 'locked' AND disabled_at IS NULL AND locked_until > $5) \
                OR ($4 = 'disabled' AND disabled_at IS NOT NULL) \
                OR ($4 IN ('active', 'never') AND disabled_at IS NULL \
                    AND (locked_until IS NULL OR locked_until <= $5) \
                    AND (last_login_at IS NULL) = ($4 = 'never'))) \
            AND ($6 = '' OR id IN (SELECT m.account_id FROM group_members m \
                JOIN groups g ON g.id = m.group_id WHERE g.name = $6)) \
            AND ($7 < 0 OR EXISTS (SELECT 1 FROM outbox o WHERE o.recipient = accounts.email \
                AND o.state = 'failed' AND o.created_at >= $7 \
                AND NOT EXISTS (SELECT 1 FROM outbox s WHERE s.recipient = o.recipient \
                    AND s.state = 'sent' AND s.id > o.id)))";
        let bind = |sql: String| {
            sqlx::query(AssertSqlSafe(sql))
                .bind(text.clone())
                .bind(format!("%{escaped}%"))
                .bind(query.role.map(Role::as_str).unwrap_or_default())
                .bind(query.state.map(AccountState::as_str).unwrap_or_default())
                .bind(millis(now))
                .bind(query.group.as_ref().map(|g| g.as_str().to_owned()).unwrap_or_default())
                .bind(query.refused_since.map_or(-1, millis))
        };
        let total: i64 = bind(format!("SELECT COUNT(*) AS total FROM accounts WHERE {selected}"))
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?
            .try_get("total")
            .map_err(backend)?;
        let rows = bind(select_where(&format!("{selected} ORDER BY identifier LIMIT $8 OFFSET $9")))
            .bind(i64::from(page.limit))
            .bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let accounts = rows.iter().map(account_from_row).collect::<Result<_, _>>()?;
        Ok((accounts, u64::try_from(total).unwrap_or_default()))
    }
}
