//! The bulk row operations of a unit of work, for `member import`: a batch of a thousand
//! rows reads what it names in a few queries and writes its new accounts, their audit
//! lines and memberships many rows per statement (one statement per row would take
//! minutes for a hundred thousand). What becomes of each row is decided in the core
//! ([`guichet_core::import`]).

use std::collections::HashMap;

use guichet_core::Timestamp;
use guichet_core::account::{Account, AccountId, EmailAddress, Identifier, NewAccount, Rpps};
use guichet_core::audit::NewAuditEvent;
use guichet_core::groups::{GroupId, GroupName};
use guichet_core::ports::{Conflict, StoreError};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row as _};

use crate::accounts::{ACCOUNT_COLUMNS, account_from_row, conflict_or_backend};
use crate::audit::{EVENT_COLUMNS, bind_event};
use crate::work::SqlWork;
use crate::{Backend, backend, millis};

/// Values bound per statement at most. Well below both databases' limits, and small
/// enough for SQLite's driver, which finds each parameter by name among all of the
/// statement's (a time that grows with the square of their number): on 100,000 rows,
/// 1,600 per statement took 5.0 s, 500 took 3.6 s, 200 took 3.0 s and 100 took 3.3 s
/// (`bench/import.sh`).
const PARAMETERS: usize = 200;

/// How many rows of `columns` values one statement takes, beside `shared` values.
const fn rows_per_statement(columns: usize, shared: usize) -> usize {
    (PARAMETERS - shared) / columns
}

/// `$first, $first+1, …` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

impl SqlWork {
    /// Runs `sql` once per chunk of `values`, its `{list}` (which may appear more than
    /// once) replaced by the chunk's placeholders, each value bound as `bind` says; the
    /// rows of every chunk, in order.
    async fn rows_in<T: Sync>(
        &mut self,
        sql: &str,
        values: &[T],
        bind: impl for<'q> Fn(Query<'q, Any, AnyArguments>, &'q T) -> Query<'q, Any, AnyArguments>,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let mut rows = Vec::with_capacity(values.len());
        for chunk in values.chunks(PARAMETERS) {
            let sql = sql.replace("{list}", &placeholders(1, chunk.len()));
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for value in chunk {
                query = bind(query, value);
            }
            rows.extend(query.fetch_all(&mut **self).await.map_err(backend)?);
        }
        Ok(rows)
    }

    /// See [`guichet_core::ports::Work::accounts_named`].
    pub(crate) async fn accounts_named_in(
        &mut self,
        identifiers: &[Identifier],
        hold: bool,
    ) -> Result<Vec<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE identifier IN ({{list}})");
        let rows = self.rows_in(&sql, identifiers, |q, identifier| q.bind(identifier.as_str())).await?;
        let mut found = rows.iter().map(account_from_row).collect::<Result<Vec<_>, _>>()?;
        found.sort_by_key(|account| account.id);
        if !hold || self.backend() == Backend::Sqlite {
            // SQLite's unit already holds the only write lock.
            return Ok(found);
        }
        // PostgreSQL: the rows are locked chunk after chunk of the ids in ascending order,
        // so the whole batch is held in id order, and read again under the lock.
        let ids: Vec<i64> = found.iter().map(|account| account.id.get()).collect();
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id IN ({{list}}) ORDER BY id FOR NO KEY UPDATE");
        let rows = self.rows_in(&sql, &ids, |q, id| q.bind(*id)).await?;
        rows.iter().map(account_from_row).collect()
    }

    /// See [`guichet_core::ports::Work::address_owners`].
    pub(crate) async fn address_owners_in(
        &mut self,
        addresses: &[EmailAddress],
    ) -> Result<Vec<(EmailAddress, AccountId)>, StoreError> {
        let sql = "SELECT id, email AS address FROM accounts WHERE email IN ({list}) \
                   UNION ALL SELECT id, recovery_email AS address FROM accounts WHERE recovery_email IN ({list})";
        let rows = self.rows_in(sql, addresses, |q, address| q.bind(address.as_str())).await?;
        rows.iter()
            .map(|row| {
                let address: String = row.try_get("address").map_err(backend)?;
                let id: i64 = row.try_get("id").map_err(backend)?;
                Ok((EmailAddress::from_stored(address), AccountId::from_stored(id)))
            })
            .collect()
    }

    /// See [`guichet_core::ports::Work::rpps_owners`].
    pub(crate) async fn rpps_owners_in(&mut self, numbers: &[Rpps]) -> Result<Vec<(Rpps, AccountId)>, StoreError> {
        let sql = "SELECT id, rpps FROM accounts WHERE rpps IN ({list})";
        let rows = self.rows_in(sql, numbers, |q, number| q.bind(number.as_str())).await?;
        rows.iter()
            .map(|row| {
                let number: String = row.try_get("rpps").map_err(backend)?;
                let id: i64 = row.try_get("id").map_err(backend)?;
                Ok((Rpps::from_stored(number), AccountId::from_stored(id)))
            })
            .collect()
    }

    /// See [`guichet_core::ports::Work::groups_named`].
    pub(crate) async fn groups_named_in(
        &mut self,
        names: &[GroupName],
    ) -> Result<Vec<(GroupName, GroupId)>, StoreError> {
        let by_name: HashMap<&str, &GroupName> = names.iter().map(|n| (n.as_str(), n)).collect();
        let rows =
            self.rows_in("SELECT id, name FROM groups WHERE name IN ({list})", names, |q, name| q.bind(name.as_str()));
        let mut found = Vec::new();
        for row in rows.await? {
            let name: String = row.try_get("name").map_err(backend)?;
            let id: i64 = row.try_get("id").map_err(backend)?;
            if let Some(name) = by_name.get(name.as_str()) {
                found.push(((*name).clone(), GroupId::from_stored(id)));
            }
        }
        Ok(found)
    }

    /// See [`guichet_core::ports::Work::insert_group`].
    pub(crate) async fn insert_group_in(
        &mut self,
        name: &GroupName,
        description: &str,
        at: Timestamp,
    ) -> Result<GroupId, StoreError> {
        sqlx::query_scalar("INSERT INTO groups (name, description, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(name.as_str())
            .bind(description)
            .bind(millis(at))
            .fetch_one(&mut **self)
            .await
            .map(GroupId::from_stored)
            .map_err(|error| match &error {
                sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(Conflict::Group),
                _ => backend(error),
            })
    }

    /// See [`guichet_core::ports::Work::memberships_of`].
    pub(crate) async fn memberships_of_in(
        &mut self,
        accounts: &[AccountId],
    ) -> Result<Vec<(GroupId, AccountId)>, StoreError> {
        let sql = "SELECT group_id, account_id FROM group_members WHERE account_id IN ({list})";
        let rows = self.rows_in(sql, accounts, |q, account| q.bind(account.get())).await?;
        rows.iter()
            .map(|row| {
                let group: i64 = row.try_get("group_id").map_err(backend)?;
                let account: i64 = row.try_get("account_id").map_err(backend)?;
                Ok((GroupId::from_stored(group), AccountId::from_stored(account)))
            })
            .collect()
    }

    /// See [`guichet_core::ports::Work::insert_accounts`].
    pub(crate) async fn insert_accounts_in(
        &mut self,
        new: &[NewAccount],
        at: Timestamp,
    ) -> Result<Vec<AccountId>, StoreError> {
        let mut ids = Vec::with_capacity(new.len());
        // One value more than the rows' own: the time, `$1`.
        for chunk in new.chunks(rows_per_statement(8, 1)) {
            let values: Vec<String> =
                (0..chunk.len()).map(|i| format!("({}, $1, $1)", placeholders(2 + 8 * i, 8))).collect();
            let sql = format!(
                "INSERT INTO accounts (identifier, email, display_name, role, password_hash, given_name, family_name, \
                 rpps, created_at, updated_at) VALUES {} RETURNING id, identifier",
                values.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(millis(at));
            for account in chunk {
                query = query
                    .bind(account.identifier.as_str())
                    .bind(account.email.as_str())
                    .bind(account.display_name.as_str())
                    .bind(account.role.as_str())
                    .bind(account.password_hash.as_ref().map(|h| h.as_phc().to_owned()))
                    .bind(account.names.given.as_str())
                    .bind(account.names.family.as_str())
                    .bind(account.rpps.as_ref().map(|n| n.as_str().to_owned()));
            }
            // RETURNING gives no promise of order: the ids are matched by identifier.
            let returned = query.fetch_all(&mut **self).await.map_err(conflict_or_backend)?;
            let mut by_identifier = HashMap::with_capacity(returned.len());
            for row in &returned {
                let identifier: String = row.try_get("identifier").map_err(backend)?;
                by_identifier.insert(identifier, AccountId::from_stored(row.try_get("id").map_err(backend)?));
            }
            for account in chunk {
                let id = by_identifier
                    .get(account.identifier.as_str())
                    .copied()
                    .ok_or_else(|| StoreError::Backend("an inserted account came back without its id".into()))?;
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// See [`guichet_core::ports::Work::record_all`].
    pub(crate) async fn record_all_in(&mut self, events: &[NewAuditEvent]) -> Result<(), StoreError> {
        const COLUMNS: usize = 8;
        for chunk in events.chunks(rows_per_statement(COLUMNS, 0)) {
            let values: Vec<String> =
                (0..chunk.len()).map(|i| format!("({})", placeholders(1 + COLUMNS * i, COLUMNS))).collect();
            let sql = format!("INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES {}", values.join(", "));
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for event in chunk {
                query = bind_event(query, event);
            }
            query.execute(&mut **self).await.map_err(backend)?;
        }
        Ok(())
    }

    /// See [`guichet_core::ports::Work::join_all`].
    pub(crate) async fn join_all_in(&mut self, memberships: &[(GroupId, AccountId)]) -> Result<(), StoreError> {
        for chunk in memberships.chunks(rows_per_statement(2, 0)) {
            let values: Vec<String> = (0..chunk.len()).map(|i| format!("({})", placeholders(1 + 2 * i, 2))).collect();
            let sql = format!(
                "INSERT INTO group_members (group_id, account_id) VALUES {} \
                 ON CONFLICT (group_id, account_id) DO NOTHING",
                values.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (group, account) in chunk {
                query = query.bind(group.get()).bind(account.get());
            }
            query.execute(&mut **self).await.map_err(backend)?;
        }
        Ok(())
    }
}
