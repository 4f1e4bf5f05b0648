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
/// its secrets: `$1` is the account's id, `$2` to `$5` its addresses (own, secours, and
/// the two waiting for confirmation; NULL when absent). A table added to the schema
/// with a column referring to accounts must be added here: the export test reads the
/// schema and fails until it is.
const SECTIONS: &[(&str, &str)] = &[
    (
        "accounts",
        "SELECT identifier, email, display_name, given_name, family_name, role, created_at, updated_at, \
         last_login_at, locked_until, disabled_at, must_change_password, \
         CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END AS password_set, \
         password_expires_at AS temporary_password_until, recovery_email, recovery_email_pending, email_pending, \
         erase_at FROM accounts WHERE id = $1",
    ),
    (
        "group_members",
        "SELECT g.name AS group_name, g.description FROM group_members m JOIN groups g ON g.id = m.group_id \
         WHERE m.account_id = $1 ORDER BY g.name",
    ),
    (
        "sessions",
        "SELECT created_at, idle_expires_at, expires_at, address, user_agent, factors, must_change_password \
         FROM sessions WHERE account_id = $1 ORDER BY created_at DESC",
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
         WHERE account_id = $1 OR assignee_id = $1 OR email IN ($2, $3, $4, $5) ORDER BY id DESC",
    ),
    (
        "request_notes",
        "SELECT r.reference AS request, n.at, n.body FROM request_notes n \
         JOIN assistance_requests r ON r.id = n.request_id \
         WHERE r.account_id = $1 OR r.assignee_id = $1 OR r.email IN ($2, $3, $4, $5) OR n.author_id = $1 \
         ORDER BY n.id DESC",
    ),
    (
        "call_slots",
        "SELECT r.reference AS request, s.starts_at, s.ends_at, s.created_at, s.confirmed_at, s.withdrawn_at \
         FROM call_slots s JOIN assistance_requests r ON r.id = s.request_id \
         WHERE r.account_id = $1 OR r.assignee_id = $1 OR r.email IN ($2, $3, $4, $5) OR s.proposed_by = $1 \
         ORDER BY s.id DESC",
    ),
    (
        "outbox",
        "SELECT kind, recipient, created_at, state, attempts, finished_at, last_answer FROM outbox \
         WHERE account_id = $1 OR recipient IN ($2, $3, $4, $5) ORDER BY id DESC",
    ),
    (
        "mail_attempts",
        "SELECT o.kind, a.at, a.outcome, a.answer FROM mail_attempts a JOIN outbox o ON o.id = a.outbox_id \
         WHERE o.account_id = $1 OR o.recipient IN ($2, $3, $4, $5) ORDER BY a.id DESC",
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
        "second_factor_recovery_codes",
        "SELECT created_at, used_at FROM second_factor_recovery_codes WHERE account_id = $1 ORDER BY created_at",
    ),
    (
        "webauthn_credentials",
        "SELECT name, created_at, last_used_at FROM webauthn_credentials WHERE account_id = $1 ORDER BY created_at",
    ),
    ("webauthn_ceremonies", "SELECT purpose, expires_at FROM webauthn_ceremonies WHERE account_id = $1"),
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

impl SqlStore {
    /// `SELECT COUNT(*)` or the `DELETE`/`UPDATE` of one retention rule.
    async fn rule(&self, apply: bool, count: &str, act: &str, binds: &[i64]) -> Result<u64, StoreError> {
        if apply {
            let mut query = sqlx::query(AssertSqlSafe(act.to_owned()));
            for value in binds {
                query = query.bind(*value);
            }
            return Ok(query.execute(&self.pool).await.map_err(backend)?.rows_affected());
        }
        let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(count.to_owned()));
        for value in binds {
            query = query.bind(*value);
        }
        Ok(u64::try_from(query.fetch_one(&self.pool).await.map_err(backend)?).unwrap_or(0))
    }

    /// Cuts the addresses of `table`'s rows older than `before` to their network (and
    /// forgets their browser, where there is one), one distinct address at a time.
    async fn cut_addresses(&self, table: &str, time: &str, browser: bool, before: i64) -> Result<u64, StoreError> {
        let pending = format!("address_truncated = 0 AND {time} < $1");
        let forget = if browser { ", user_agent = NULL" } else { "" };
        let addresses: Vec<Option<String>> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT DISTINCT address FROM {table} WHERE {pending}")))
                .bind(before)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        let mut cut = 0;
        for address in addresses {
            let (sql, old, new) = match &address {
                None => (
                    format!("UPDATE {table} SET address_truncated = 1{forget} WHERE {pending} AND address IS NULL"),
                    None,
                    None,
                ),
                Some(raw) => {
                    let network = raw.parse::<IpAddr>().ok().map(|ip| truncate_address(ip).to_string());
                    let sql = format!(
                        "UPDATE {table} SET address = $3, address_truncated = 1{forget} WHERE {pending} AND address = $2"
                    );
                    (sql, Some(raw.clone()), Some(network))
                }
            };
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(before);
            if let (Some(old), Some(new)) = (old, new) {
                query = query.bind(old).bind(new);
            }
            cut += query.execute(&self.pool).await.map_err(backend)?.rows_affected();
        }
        Ok(cut)
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
        // Failed attempts first: their lines, then the counts made of them.
        swept.failed_attempts += self
            .rule(
                apply,
                &format!("SELECT COUNT(*) FROM audit_events WHERE at < $1 AND kind IN ({failed})"),
                &format!("DELETE FROM audit_events WHERE at < $1 AND kind IN ({failed})"),
                &[failed_cut],
            )
            .await?;
        // A per-minute bucket goes once the whole minute is past the cutoff.
        let minute = failed_cut - 60_000;
        swept.failed_attempts += self
            .rule(
                apply,
                "SELECT COUNT(*) FROM address_failures WHERE minute < $1",
                "DELETE FROM address_failures WHERE minute < $1",
                &[minute],
            )
            .await?;
        swept.failed_attempts += self
            .rule(
                apply,
                "SELECT COUNT(*) FROM device_attempts WHERE window_start < $1",
                "DELETE FROM device_attempts WHERE window_start < $1",
                &[failed_cut],
            )
            .await?;
        swept.audit = self
            .rule(
                apply,
                &format!("SELECT COUNT(*) FROM audit_events WHERE at < $1 AND kind NOT IN ({failed})"),
                "DELETE FROM audit_events WHERE at < $1",
                &[audit],
            )
            .await?;
        swept.mail_log = self
            .rule(
                apply,
                "SELECT COUNT(*) FROM outbox WHERE state <> 'pending' AND created_at < $1",
                "DELETE FROM outbox WHERE state <> 'pending' AND created_at < $1",
                &[millis(cutoffs.mail_log)],
            )
            .await?;
        // The codes those messages carried (by hash): once expired for as long.
        swept.mail_log += self
            .rule(
                apply,
                "SELECT COUNT(*) FROM recovery_codes WHERE expires_at < $1",
                "DELETE FROM recovery_codes WHERE expires_at < $1",
                &[millis(cutoffs.mail_log)],
            )
            .await?;
        swept.closed_requests = self
            .rule(
                apply,
                "SELECT COUNT(*) FROM assistance_requests WHERE state = 'closed' AND updated_at < $1",
                "DELETE FROM assistance_requests WHERE state = 'closed' AND updated_at < $1",
                &[millis(cutoffs.closed_requests)],
            )
            .await?;
        let addresses = millis(cutoffs.addresses);
        swept.addresses = if apply {
            self.cut_addresses("audit_events", "at", true, addresses).await?
                + self.cut_addresses("assistance_requests", "created_at", false, addresses).await?
        } else {
            let count = |table: &str, time: &str| {
                format!("SELECT COUNT(*) FROM {table} WHERE address_truncated = 0 AND {time} < $1 AND {time} >= $2")
            };
            self.rule(false, &count("audit_events", "at"), "", &[addresses, audit]).await?
                + self.rule(false, &count("assistance_requests", "created_at"), "", &[addresses, i64::MIN]).await?
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
        let addresses = [
            Some(&held.email),
            held.recovery_email.as_ref(),
            held.recovery_email_pending.as_ref(),
            held.email_pending.as_ref(),
        ]
        .map(|address| address.map(|a| a.as_str().to_owned()));
        let mut sections = Vec::with_capacity(SECTIONS.len());
        for (table, sql) in SECTIONS {
            let mut query = sqlx::query(AssertSqlSafe(*sql)).bind(account.get());
            if sql.contains("$2") {
                for address in &addresses {
                    query = query.bind(address.clone());
                }
            }
            let rows = query.fetch_all(&self.pool).await.map_err(backend)?;
            sections.push(Section { table, rows: rows.iter().map(fields).collect::<Result<_, _>>()? });
        }
        Ok(Some(PersonalData { generated_at: now, sections }))
    }
}
