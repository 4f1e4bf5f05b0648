//! Retention rounds, the export of what is held about an account, and the lookups of
//! the erasures.

use std::net::IpAddr;

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::AccountId;
use guichet_core::audit::AuditKind;
use guichet_core::personal_data::{Field, PersonalData, Section};
use guichet_core::ports::{PrivacyStore, StoreError};
use guichet_core::retention::{Cutoffs, Swept, truncate_address};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Column as _, Row as _};

use crate::accounts::account_from_row;
use crate::{SqlStore, backend, millis, timestamp};

/// Each table that refers to an account, and how to read the rows about it without
/// its secrets: `$1` is the account's id, `$2` and `$3` its confirmed addresses (own and
/// secours, NULL when it has none), `$4` its identifier in lower case. An address only
/// proposed is not the member's yet (anybody's may be typed there). Requests a staff
/// account was assigned, and notes or slots it wrote on them, are the members' data, not
/// its own: they are not in its export. A table added to the schema with a column
/// referring to accounts must be added here: the export test reads the schema and fails
/// until it is.
const SECTIONS: &[(&str, &str)] = &[
    (
        "accounts",
        "SELECT identifier, email, display_name, given_name, family_name, role, created_at, updated_at, \
         last_login_at, locked_until, disabled_at, must_change_password, \
         CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS password_set, \
         password_expires_at AS temporary_password_until, recovery_email, recovery_email_pending, email_pending, \
         erase_at, rpps FROM accounts WHERE id = $1",
    ),
    (
        "group_members",
        "SELECT g.name AS group_name, g.description FROM group_members m JOIN groups g ON g.id = m.group_id \
         WHERE m.account_id = $1 ORDER BY g.name",
    ),
    (
        "sessions",
        "SELECT created_at, idle_expires_at, expires_at, address, user_agent, factors, must_change_password, \
         upstream FROM sessions WHERE account_id = $1 ORDER BY created_at DESC",
    ),
    (
        "audit_events",
        "SELECT at, kind, actor_kind, address, user_agent, detail FROM audit_events \
         WHERE account_id = $1 ORDER BY id DESC",
    ),
    (
        "assistance_requests",
        "SELECT reference, name, email, identifier, phone, message, wants, origin, state, address, created_at, \
         updated_at FROM assistance_requests \
         WHERE account_id = $1 OR email IN ($2, $3) OR lower(identifier) = $4 ORDER BY id DESC",
    ),
    (
        "request_notes",
        "SELECT r.reference AS request, n.at, n.body FROM request_notes n \
         JOIN assistance_requests r ON r.id = n.request_id \
         WHERE r.account_id = $1 OR r.email IN ($2, $3) OR lower(r.identifier) = $4 \
         ORDER BY n.id DESC",
    ),
    (
        "call_slots",
        "SELECT r.reference AS request, s.starts_at, s.ends_at, s.created_at, s.confirmed_at, s.withdrawn_at \
         FROM call_slots s JOIN assistance_requests r ON r.id = s.request_id \
         WHERE r.account_id = $1 OR r.email IN ($2, $3) OR lower(r.identifier) = $4 \
         ORDER BY s.id DESC",
    ),
    (
        "outbox",
        "SELECT kind, recipient, created_at, state, attempts, finished_at, last_answer FROM outbox \
         WHERE account_id = $1 OR recipient IN ($2, $3) ORDER BY id DESC",
    ),
    (
        "mail_attempts",
        "SELECT o.kind, a.at, a.outcome, a.answer FROM mail_attempts a JOIN outbox o ON o.id = a.outbox_id \
         WHERE o.account_id = $1 OR o.recipient IN ($2, $3) ORDER BY a.id DESC",
    ),
    (
        "recovery_codes",
        "SELECT purpose, created_at, expires_at, used_at, voided_at FROM recovery_codes \
         WHERE account_id = $1 ORDER BY created_at DESC",
    ),
    ("device_attempts", "SELECT attempts, window_start FROM device_attempts WHERE account_id = $1"),
    (
        "oidc_session_clients",
        "SELECT l.client_id, c.name AS application FROM oidc_session_clients l \
         JOIN oidc_clients c ON c.client_id = l.client_id WHERE l.account_id = $1",
    ),
    (
        "oidc_codes",
        "SELECT client_id, scope, auth_time, created_at, expires_at, used_at, factors FROM oidc_codes \
         WHERE account_id = $1 ORDER BY created_at DESC",
    ),
    (
        "oidc_grants",
        "SELECT client_id, scope, expires_at, revoked_at FROM oidc_grants WHERE account_id = $1 \
         ORDER BY expires_at DESC",
    ),
    (
        "oidc_refresh_tokens",
        "SELECT client_id, scope, auth_time, created_at, expires_at, used_at, factors FROM oidc_refresh_tokens \
         WHERE account_id = $1 ORDER BY created_at DESC",
    ),
    (
        "oidc_logouts",
        "SELECT client_id, ended_at, state, attempts, finished_at FROM oidc_logouts WHERE account_id = $1 \
         ORDER BY id DESC",
    ),
    ("totp_secrets", "SELECT created_at, confirmed_at FROM totp_secrets WHERE account_id = $1"),
    (
        "upstream_links",
        "SELECT upstream, subject, created_at, last_used_at FROM upstream_links WHERE account_id = $1 \
         ORDER BY created_at",
    ),
    (
        "second_factor_recovery_codes",
        "SELECT created_at, used_at FROM second_factor_recovery_codes WHERE account_id = $1 ORDER BY created_at",
    ),
    (
        "webauthn_credentials",
        "SELECT name, created_at, last_used_at FROM webauthn_credentials WHERE account_id = $1 ORDER BY created_at",
    ),
    ("webauthn_ceremonies", "SELECT purpose, expires_at FROM webauthn_ceremonies WHERE account_id = $1"),
    ("upstream_requests", "SELECT upstream, purpose, expires_at FROM upstream_requests WHERE account_id = $1"),
    ("upstream_refusals", "SELECT upstream, created_at FROM upstream_refusals WHERE account_id = $1"),
];

/// Whether a column holds an instant (milliseconds since the epoch).
fn is_instant(column: &str) -> bool {
    column == "at"
        || column.ends_with("_at")
        || column.ends_with("_until")
        || matches!(column, "window_start" | "auth_time" | "temporary_password_until")
}

fn field(row: &AnyRow, index: usize, name: &str) -> Result<Field, StoreError> {
    if let Ok(number) = row.try_get::<Option<i64>, _>(index) {
        return Ok(match number {
            None => Field::Empty,
            Some(ms) if is_instant(name) => Field::Time(timestamp(ms)?),
            Some(n) => Field::Number(n),
        });
    }
    let text: Option<String> = row.try_get(index).map_err(backend)?;
    Ok(text.map_or(Field::Empty, Field::Text))
}

fn fields(row: &AnyRow) -> Result<Vec<(String, Field)>, StoreError> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(index, column)| Ok((column.name().to_owned(), field(row, index, column.name())?)))
        .collect()
}

/// Rows a batch of a retention rule touches at most: each batch is its own short
/// transaction, so that logins are never held behind a round that removes a year.
const BATCH: i64 = 1000;

/// The pause between two batches: SQLite's busy handler sleeps while it waits for the
/// write lock, and a round that took the lock again at once would keep a login waiting
/// for seconds (measured by `bench/privacy.py`).
const BREATHE: std::time::Duration = std::time::Duration::from_millis(120);

impl SqlStore {
    /// Counts the rows of `table` that meet `condition` or, with `apply`, deletes them:
    /// by batches of [`BATCH`] keyed on `key` when the table has a numeric one, at once
    /// otherwise (small tables of counters).
    async fn rule(
        &self,
        apply: bool,
        table: &str,
        key: Option<&str>,
        condition: &str,
        binds: &[i64],
    ) -> Result<u64, StoreError> {
        let bound = |sql: String| {
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for value in binds {
                query = query.bind(*value);
            }
            query
        };
        if !apply {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE {condition}");
            let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
            for value in binds {
                query = query.bind(*value);
            }
            return Ok(u64::try_from(query.fetch_one(&self.pool).await.map_err(backend)?).unwrap_or(0));
        }
        let Some(key) = key else {
            let done = bound(format!("DELETE FROM {table} WHERE {condition}")).execute(&self.pool).await;
            return Ok(done.map_err(backend)?.rows_affected());
        };
        let mut removed = 0;
        loop {
            let sql = format!(
                "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {condition} LIMIT {BATCH})"
            );
            let done = bound(sql).execute(&self.pool).await.map_err(backend)?.rows_affected();
            removed += done;
            if done < u64::try_from(BATCH).unwrap_or(u64::MAX) {
                return Ok(removed);
            }
            tokio::time::sleep(BREATHE).await;
        }
    }

    /// Cuts the addresses of `table`'s rows older than `before` to their network (and
    /// forgets their browser, where there is one), a batch of rows at a time, each batch
    /// one transaction: the rows of a batch grouped by network, one update per network.
    async fn cut_addresses(&self, table: &str, time: &str, browser: bool, before: i64) -> Result<u64, StoreError> {
        let forget = if browser { ", user_agent = NULL" } else { "" };
        let select =
            format!("SELECT id, address FROM {table} WHERE address_truncated = 0 AND {time} < $1 LIMIT {BATCH}");
        let mut cut = 0;
        loop {
            let rows: Vec<(i64, Option<String>)> = sqlx::query_as(AssertSqlSafe(select.clone()))
                .bind(before)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
            let mut by_network: std::collections::BTreeMap<Option<String>, Vec<String>> = Default::default();
            for (id, address) in &rows {
                let network = address.as_deref().and_then(|a| a.parse::<IpAddr>().ok()).map(truncate_address);
                by_network.entry(network.map(|n| n.to_string())).or_default().push(id.to_string());
            }
            let mut work = self.begin_work().await?;
            for (network, ids) in by_network {
                // The ids are numbers read just above.
                let sql = format!(
                    "UPDATE {table} SET address = $1, address_truncated = 1{forget} WHERE id IN ({})",
                    ids.join(", ")
                );
                sqlx::query(AssertSqlSafe(sql)).bind(network).execute(&mut *work).await.map_err(backend)?;
            }
            work.commit().await?;
            cut += u64::try_from(rows.len()).unwrap_or(u64::MAX);
            if rows.len() < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                return Ok(cut);
            }
            tokio::time::sleep(BREATHE).await;
        }
    }
}

fn failed_kinds() -> String {
    AuditKind::FAILED_ATTEMPTS.iter().map(|kind| format!("'{}'", kind.as_str())).collect::<Vec<_>>().join(", ")
}

#[async_trait]
impl PrivacyStore for SqlStore {
    async fn sweep(&self, cutoffs: &Cutoffs, apply: bool) -> Result<Swept, StoreError> {
        let failed = failed_kinds();
        let (audit, failed_cut) = (millis(cutoffs.audit), millis(cutoffs.failed_attempts));
        let mut swept = Swept::default();
        // Failed attempts first: their lines, then the counts made of them (a per-minute
        // bucket goes once the whole minute is past the cutoff).
        let failed_lines = format!("at < $1 AND kind IN ({failed})");
        swept.failed_attempts += self.rule(apply, "audit_events", Some("id"), &failed_lines, &[failed_cut]).await?;
        swept.failed_attempts +=
            self.rule(apply, "address_failures", None, "minute < $1", &[failed_cut - 60_000]).await?;
        swept.failed_attempts += self.rule(apply, "device_attempts", None, "window_start < $1", &[failed_cut]).await?;
        // The other lines (the failed ones past the audit period went just above).
        let old_lines = format!("at < $1 AND kind NOT IN ({failed})");
        swept.audit = self.rule(apply, "audit_events", Some("id"), &old_lines, &[audit]).await?;
        let finished = "state <> 'pending' AND created_at < $1";
        swept.mail_log = self.rule(apply, "outbox", Some("id"), finished, &[millis(cutoffs.mail_log)]).await?;
        // The codes those messages carried (by hash): once expired for as long.
        let expired = "expires_at < $1";
        swept.mail_log += self.rule(apply, "recovery_codes", None, expired, &[millis(cutoffs.mail_log)]).await?;
        let closed = "state = 'closed' AND updated_at < $1";
        let closed_cut = millis(cutoffs.closed_requests);
        swept.closed_requests = self.rule(apply, "assistance_requests", Some("id"), closed, &[closed_cut]).await?;
        let addresses = millis(cutoffs.addresses);
        swept.addresses = if apply {
            self.cut_addresses("audit_events", "at", true, addresses).await?
                + self.cut_addresses("assistance_requests", "created_at", false, addresses).await?
        } else {
            // What the deletions above leave.
            let lines =
                format!("address_truncated = 0 AND at < $1 AND at >= $2 AND NOT (kind IN ({failed}) AND at < $3)");
            let requests = "address_truncated = 0 AND created_at < $1 AND NOT (state = 'closed' AND updated_at < $2)";
            self.rule(false, "audit_events", None, &lines, &[addresses, audit, failed_cut]).await?
                + self.rule(false, "assistance_requests", None, requests, &[addresses, closed_cut]).await?
        };
        Ok(swept)
    }

    async fn unused_accounts(&self, before: Timestamp) -> Result<Vec<AccountId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM accounts WHERE role = 'member' AND last_login_at IS NULL AND erase_at IS NULL \
             AND created_at < $1 AND updated_at < $1 ORDER BY id",
        )
        .bind(millis(before))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(ids.into_iter().map(AccountId::from_stored).collect())
    }

    async fn erasures_due(&self, now: Timestamp) -> Result<Vec<AccountId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE erase_at <= $1 ORDER BY erase_at")
            .bind(millis(now))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(ids.into_iter().map(AccountId::from_stored).collect())
    }

    async fn personal_data(&self, account: AccountId, now: Timestamp) -> Result<Option<PersonalData>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(crate::accounts::select_where("id = $1")))
            .bind(account.get())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let held = account_from_row(&row)?;
        let email = held.email.as_str().to_owned();
        let secours = held.recovery_email.as_ref().map(|a| a.as_str().to_owned());
        let identifier = held.identifier.as_str().to_lowercase();
        let mut sections = Vec::with_capacity(SECTIONS.len());
        for (table, sql) in SECTIONS {
            let mut query = sqlx::query(AssertSqlSafe(*sql)).bind(account.get());
            if sql.contains("$2") {
                query = query.bind(email.clone()).bind(secours.clone());
            }
            if sql.contains("$4") {
                query = query.bind(identifier.clone());
            }
            let rows = query.fetch_all(&self.pool).await.map_err(backend)?;
            sections.push(Section { table, rows: rows.iter().map(fields).collect::<Result<_, _>>()? });
        }
        Ok(Some(PersonalData { generated_at: now, sections }))
    }
}
