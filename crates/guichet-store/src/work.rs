//! A transaction, as every write of the store opens it: what it wrote commits together
//! or not at all, and a commit that queued mail wakes the postman at once (no handler
//! has to remember to).

use std::sync::Arc;

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{Account, AccountId, DisplayName, EmailAddress, Identifier, NameParts, NewAccount, Role};
use guichet_core::audit::{AuditKind, NewAuditEvent};
use guichet_core::codes::StoredCode;
use guichet_core::desk::{AssistanceRequest, CallSlot, CallSlotId, NewNote, NewRequest, RequestId};
use guichet_core::groups::{GroupId, GroupName};
use guichet_core::lockout::ThrottleKey;
use guichet_core::mail::{MailId, NewMail};
use guichet_core::oidc::{ClientId, NewGrant, NewRefreshToken, SessionLink};
use guichet_core::password::PasswordHash;
use guichet_core::ports::{EventId, HeldAccount, HeldOidcCode, Secours, StoreError, StoredTotp, Transactions, Work};
use guichet_core::token::TokenHash;
use sqlx::{Any, AnyConnection, AssertSqlSafe, Row as _, Transaction};
use tokio::sync::Notify;

use crate::accounts::{ACCOUNT_COLUMNS, account_from_row, conflict_or_backend};
use crate::audit::insert_event;
use crate::desk::{REQUEST_COLUMNS, SLOT_COLUMNS, request_from_row, slot_from_row};
use crate::outbox::insert_mail;
use crate::recovery::{CODE_COLUMNS, code_from_row};
use crate::{SqlStore, backend, millis, optional_timestamp};

/// An open transaction of the store's.
pub(crate) struct SqlWork {
    tx: Transaction<'static, Any>,
    backend: crate::Backend,
    /// Whether anything was put in the outbox.
    queued_mail: bool,
    mail_queued: Arc<Notify>,
}

impl std::fmt::Debug for SqlWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlWork").field("queued_mail", &self.queued_mail).finish_non_exhaustive()
    }
}

impl SqlWork {
    /// Which database it runs on.
    pub(crate) fn backend(&self) -> crate::Backend {
        self.backend
    }

    /// Notes that this transaction put a message in the outbox.
    pub(crate) fn queued_mail(&mut self) {
        self.queued_mail = true;
    }

    /// Commits; then, when mail was queued, says so to whoever waits for it.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(backend)?;
        if self.queued_mail {
            self.mail_queued.notify_one();
        }
        Ok(())
    }
}

impl std::ops::Deref for SqlWork {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for SqlWork {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl SqlWork {
    /// Runs one write.
    async fn write(&mut self, query: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>) -> Result<(), StoreError> {
        query.execute(&mut **self).await.map(|_| ()).map_err(backend)
    }

    /// Runs one write that a unique index may refuse (`Err(Conflict(..))`).
    async fn write_unique(
        &mut self,
        query: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
    ) -> Result<(), StoreError> {
        query.execute(&mut **self).await.map(|_| ()).map_err(conflict_or_backend)
    }
}

impl SqlStore {
    /// Opens a transaction. On SQLite it takes the write lock at once (waiting its
    /// turn), so that it may read before it writes: a deferred transaction that read
    /// first could not write once another one committed ("database is locked").
    pub(crate) async fn begin_work(&self) -> Result<SqlWork, StoreError> {
        let tx = match self.backend {
            crate::Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            crate::Backend::Postgres => self.pool.begin().await,
        }
        .map_err(backend)?;
        Ok(SqlWork { tx, backend: self.backend, queued_mail: false, mail_queued: Arc::clone(&self.mail_queued) })
    }
}

#[async_trait]
impl Transactions for SqlStore {
    async fn begin(&self) -> Result<Box<dyn Work>, StoreError> {
        Ok(Box::new(self.begin_work().await?))
    }
}

/// The rows a rule decides on (an account, a code) are held with a no-op
/// `UPDATE … RETURNING`, or on PostgreSQL a `SELECT … FOR UPDATE` where rows are held in
/// an order: PostgreSQL then holds those rows' locks until commit (SQLite's unit already
/// holds the write lock), so what is read is what every unit before it left.
#[async_trait]
impl Work for SqlWork {
    async fn hold_account(&mut self, account: AccountId) -> Result<Option<HeldAccount>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE accounts SET updated_at = updated_at WHERE id = $1 \
             RETURNING {ACCOUNT_COLUMNS}, failures_cleared_after, recovery_email_code_hash, \
             recovery_email_code_expires_at, email_code_hash, email_code_expires_at"
        )))
        .bind(account.get())
        .fetch_optional(&mut **self)
        .await
        .map_err(backend)?;
        row.map(|row| {
            Ok(HeldAccount {
                account: account_from_row(&row)?,
                failures_cleared_after: row.try_get("failures_cleared_after").map_err(backend)?,
                secours_code: match (
                    row.try_get::<Option<String>, _>("recovery_email_code_hash").map_err(backend)?,
                    optional_timestamp(row.try_get("recovery_email_code_expires_at").map_err(backend)?)?,
                ) {
                    (Some(hash), Some(until)) => Some((TokenHash::from_stored(hash), until)),
                    _ => None,
                },
                email_code: match (
                    row.try_get::<Option<String>, _>("email_code_hash").map_err(backend)?,
                    optional_timestamp(row.try_get("email_code_expires_at").map_err(backend)?)?,
                ) {
                    (Some(hash), Some(until)) => Some((TokenHash::from_stored(hash), until)),
                    _ => None,
                },
            })
        })
        .transpose()
    }

    async fn find_code(&mut self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {CODE_COLUMNS} FROM recovery_codes WHERE code_hash = $1")))
            .bind(hash.as_str())
            .fetch_optional(&mut **self)
            .await
            .map_err(backend)?;
        row.as_ref().map(code_from_row).transpose()
    }

    async fn hold_code(&mut self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE recovery_codes SET used_at = used_at WHERE code_hash = $1 RETURNING {CODE_COLUMNS}"
        )))
        .bind(hash.as_str())
        .fetch_optional(&mut **self)
        .await
        .map_err(backend)?;
        row.as_ref().map(code_from_row).transpose()
    }

    async fn count_events(
        &mut self,
        account: AccountId,
        kind: AuditKind,
        after: EventId,
        since: Timestamp,
    ) -> Result<u32, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE account_id = $1 AND kind = $2 AND id > $3 AND at >= $4",
        )
        .bind(account.get())
        .bind(kind.as_str())
        .bind(after)
        .bind(millis(since))
        .fetch_one(&mut **self)
        .await
        .map_err(backend)?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn last_event(&mut self, account: AccountId) -> Result<EventId, StoreError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM audit_events WHERE account_id = $1")
            .bind(account.get())
            .fetch_one(&mut **self)
            .await
            .map_err(backend)
    }

    async fn record(&mut self, event: &NewAuditEvent) -> Result<EventId, StoreError> {
        insert_event(self, event).await
    }

    async fn queue_mail(&mut self, mail: &NewMail, now: Timestamp) -> Result<MailId, StoreError> {
        insert_mail(self, mail, now).await
    }

    async fn set_lock(
        &mut self,
        account: AccountId,
        until: Option<Timestamp>,
        cleared_after: EventId,
    ) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE accounts SET locked_until = $2, failures_cleared_after = $3 WHERE id = $1")
                .bind(account.get())
                .bind(until.map(millis))
                .bind(cleared_after),
        )
        .await
    }

    async fn set_logged_in(
        &mut self,
        account: AccountId,
        at: Timestamp,
        rehash: Option<&PasswordHash>,
    ) -> Result<(), StoreError> {
        self.write(
            sqlx::query(
                "UPDATE accounts SET last_login_at = $2, updated_at = $2, password_hash = COALESCE($3, password_hash) \
             WHERE id = $1",
            )
            .bind(account.get())
            .bind(millis(at))
            .bind(rehash.map(|h| h.as_phc().to_owned())),
        )
        .await
    }

    async fn set_password(&mut self, account: AccountId, hash: &PasswordHash, at: Timestamp) -> Result<(), StoreError> {
        self.write(
            sqlx::query(
                "UPDATE accounts SET password_hash = $2, password_expires_at = NULL, temporary_password_hash = NULL, \
             updated_at = $3, devices_trusted_after = $3 WHERE id = $1",
            )
            .bind(account.get())
            .bind(hash.as_phc())
            .bind(millis(at)),
        )
        .await
    }

    async fn set_temporary_password(
        &mut self,
        account: AccountId,
        hash: &TokenHash,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE accounts SET temporary_password_hash = $2, password_expires_at = $3 WHERE id = $1")
                .bind(account.get())
                .bind(hash.as_str())
                .bind(millis(expires_at)),
        )
        .await
    }

    async fn insert_account(&mut self, new: &NewAccount, at: Timestamp) -> Result<Account, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO accounts (identifier, email, display_name, role, password_hash, created_at, updated_at, \
             given_name, family_name, rpps) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9) RETURNING {ACCOUNT_COLUMNS}"
        )))
        .bind(new.identifier.as_str())
        .bind(new.email.as_str())
        .bind(new.display_name.as_str())
        .bind(new.role.as_str())
        .bind(new.password_hash.as_ref().map(|h| h.as_phc().to_owned()))
        .bind(millis(at))
        .bind(new.names.given.as_str())
        .bind(new.names.family.as_str())
        .bind(new.rpps.as_ref().map(|r| r.as_str().to_owned()))
        .fetch_one(&mut **self)
        .await
        .map_err(conflict_or_backend)?;
        account_from_row(&row)
    }

    async fn accounts_named(&mut self, identifiers: &[Identifier], hold: bool) -> Result<Vec<Account>, StoreError> {
        self.accounts_named_in(identifiers, hold).await
    }

    async fn address_owners(
        &mut self,
        addresses: &[EmailAddress],
    ) -> Result<Vec<(EmailAddress, AccountId)>, StoreError> {
        self.address_owners_in(addresses).await
    }

    async fn rpps_owners(
        &mut self,
        numbers: &[guichet_core::account::Rpps],
    ) -> Result<Vec<(guichet_core::account::Rpps, AccountId)>, StoreError> {
        self.rpps_owners_in(numbers).await
    }

    async fn groups_named(&mut self, names: &[GroupName]) -> Result<Vec<(GroupName, GroupId)>, StoreError> {
        self.groups_named_in(names).await
    }

    async fn insert_group(
        &mut self,
        name: &GroupName,
        description: &str,
        at: Timestamp,
    ) -> Result<GroupId, StoreError> {
        self.insert_group_in(name, description, at).await
    }

    async fn memberships_of(&mut self, accounts: &[AccountId]) -> Result<Vec<(GroupId, AccountId)>, StoreError> {
        self.memberships_of_in(accounts).await
    }

    async fn insert_accounts(&mut self, new: &[NewAccount], at: Timestamp) -> Result<Vec<AccountId>, StoreError> {
        self.insert_accounts_in(new, at).await
    }

    async fn record_all(&mut self, events: &[NewAuditEvent]) -> Result<(), StoreError> {
        self.record_all_in(events).await
    }

    async fn join_all(&mut self, memberships: &[(GroupId, AccountId)]) -> Result<(), StoreError> {
        self.join_all_in(memberships).await
    }

    async fn set_member(&mut self, group: GroupId, account: AccountId, member: bool) -> Result<bool, StoreError> {
        let sql = if member {
            "INSERT INTO group_members (group_id, account_id) VALUES ($1, $2) \
             ON CONFLICT (group_id, account_id) DO NOTHING"
        } else {
            "DELETE FROM group_members WHERE group_id = $1 AND account_id = $2"
        };
        sqlx::query(sql)
            .bind(group.get())
            .bind(account.get())
            .execute(&mut **self)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(backend)
    }

    async fn hold_active_administrators(&mut self) -> Result<Vec<AccountId>, StoreError> {
        // PostgreSQL locks the rows in id order (an UPDATE would lock them in whatever
        // order it scans); SQLite's unit already holds the only write lock.
        let sql = match self.backend {
            crate::Backend::Postgres => {
                "SELECT id FROM accounts WHERE role = 'admin' AND disabled_at IS NULL ORDER BY id FOR UPDATE"
            }
            crate::Backend::Sqlite => {
                "SELECT id FROM accounts WHERE role = 'admin' AND disabled_at IS NULL ORDER BY id"
            }
        };
        let admins: Vec<i64> = sqlx::query_scalar(sql).fetch_all(&mut **self).await.map_err(backend)?;
        Ok(admins.into_iter().map(AccountId::from_stored).collect())
    }

    async fn email_owner(&mut self, email: &EmailAddress) -> Result<Option<AccountId>, StoreError> {
        let owner: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut **self)
            .await
            .map_err(backend)?;
        Ok(owner.map(AccountId::from_stored))
    }

    async fn set_secours(&mut self, account: AccountId, secours: &Secours, at: Timestamp) -> Result<(), StoreError> {
        self.write_unique(
            sqlx::query(
                "UPDATE accounts SET recovery_email = $2, recovery_email_pending = $3, recovery_email_code_hash = $4, \
             recovery_email_code_expires_at = $5, updated_at = $6 WHERE id = $1",
            )
            .bind(account.get())
            .bind(secours.confirmed.as_ref().map(EmailAddress::as_str))
            .bind(secours.pending.as_ref().map(EmailAddress::as_str))
            .bind(secours.code.as_ref().map(|(hash, _)| hash.as_str()))
            .bind(secours.code.as_ref().map(|(_, until)| millis(*until)))
            .bind(millis(at)),
        )
        .await
    }

    async fn set_rpps(
        &mut self,
        account: AccountId,
        rpps: Option<&guichet_core::account::Rpps>,
    ) -> Result<(), StoreError> {
        self.write_unique(
            sqlx::query("UPDATE accounts SET rpps = $2 WHERE id = $1")
                .bind(account.get())
                .bind(rpps.map(|r| r.as_str().to_owned())),
        )
        .await
    }

    async fn set_erase_at(&mut self, account: AccountId, at: Option<Timestamp>) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET erase_at = $2 WHERE id = $1")
            .bind(account.get())
            .bind(at.map(millis))
            .execute(&mut **self)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn set_email_change(
        &mut self,
        account: AccountId,
        pending: Option<&EmailAddress>,
        code: Option<(&TokenHash, Timestamp)>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE accounts SET email_pending = $2, email_code_hash = $3, email_code_expires_at = $4 WHERE id = $1",
        )
        .bind(account.get())
        .bind(pending.map(EmailAddress::as_str))
        .bind(code.map(|(hash, _)| hash.as_str()))
        .bind(code.map(|(_, until)| millis(until)))
        .execute(&mut **self)
        .await
        .map(|_| ())
        .map_err(backend)
    }

    async fn erase_account(&mut self, account: &Account, pseudonym: &str) -> Result<(), StoreError> {
        // Its confirmed addresses only: a proposed one may be anybody's (see
        // `crate::privacy::SECTIONS`); mail sent to one carries the account's id anyway.
        let email = account.email.as_str();
        let secours = account.recovery_email.as_ref().map(EmailAddress::as_str);
        let identifier = account.identifier.as_str().to_lowercase();
        let id = account.id.get();
        // Requests written by the member, or for them (before they had an account, on the
        // public form under their identifier), and the desk's count of those written from
        // their addresses; then the mail log to its addresses.
        let theirs = "account_id = $1 OR email IN ($2, $3) OR lower(identifier) = $4";
        let desk_counts = format!(
            "DELETE FROM address_failures WHERE address_key IN \
             (SELECT 'assistance:email:' || email FROM assistance_requests WHERE {theirs})"
        );
        for sql in [desk_counts, format!("DELETE FROM assistance_requests WHERE {theirs}")] {
            sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(email)
                .bind(secours)
                .bind(&identifier)
                .execute(&mut **self)
                .await
                .map_err(backend)?;
        }
        sqlx::query("DELETE FROM address_failures WHERE address_key IN ($1, $2)")
            .bind(format!("assistance:email:{email}"))
            .bind(secours.map(|s| format!("assistance:email:{s}")))
            .execute(&mut **self)
            .await
            .map_err(backend)?;
        sqlx::query("DELETE FROM outbox WHERE account_id = $1 OR recipient IN ($2, $3)")
            .bind(id)
            .bind(email)
            .bind(secours)
            .execute(&mut **self)
            .await
            .map_err(backend)?;
        // Counts kept under the identifier as typed (`login-on:ADDRESS|identifier`).
        let suffix = format!("|{}", account.identifier.as_str().to_lowercase());
        sqlx::query(
            "DELETE FROM address_failures \
             WHERE substr(address_key, length(address_key) - length($1) + 1) = $1",
        )
        .bind(&suffix)
        .execute(&mut **self)
        .await
        .map_err(backend)?;
        sqlx::query(
            "UPDATE audit_events SET account_id = NULL, pseudonym = $2, address = NULL, user_agent = NULL, \
             detail = NULL, address_truncated = 1 WHERE account_id = $1",
        )
        .bind(id)
        .bind(pseudonym)
        .execute(&mut **self)
        .await
        .map_err(backend)?;
        // Everything else that is the account's goes with its row (foreign keys).
        sqlx::query("DELETE FROM accounts WHERE id = $1").bind(id).execute(&mut **self).await.map_err(backend)?;
        Ok(())
    }

    async fn secours_owner(&mut self, email: &EmailAddress) -> Result<Option<AccountId>, StoreError> {
        let owner: Option<i64> = sqlx::query_scalar("SELECT id FROM accounts WHERE recovery_email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut **self)
            .await
            .map_err(backend)?;
        Ok(owner.map(AccountId::from_stored))
    }

    async fn set_disabled(
        &mut self,
        account: AccountId,
        disabled_at: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE accounts SET disabled_at = $2, updated_at = $3 WHERE id = $1")
                .bind(account.get())
                .bind(disabled_at.map(millis))
                .bind(millis(at)),
        )
        .await
    }

    async fn set_details(
        &mut self,
        account: AccountId,
        email: &EmailAddress,
        name: &DisplayName,
        names: &NameParts,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.write_unique(
            sqlx::query(
                "UPDATE accounts SET email = $2, display_name = $3, updated_at = $4, given_name = $5, \
                 family_name = $6 WHERE id = $1",
            )
            .bind(account.get())
            .bind(email.as_str())
            .bind(name.as_str())
            .bind(millis(at))
            .bind(names.given.as_str())
            .bind(names.family.as_str()),
        )
        .await
    }

    async fn set_role(&mut self, account: AccountId, role: Role, at: Timestamp) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE accounts SET role = $2, updated_at = $3 WHERE id = $1")
                .bind(account.get())
                .bind(role.as_str())
                .bind(millis(at)),
        )
        .await
    }

    async fn revoke_temporary_password(&mut self, account: AccountId, at: Timestamp) -> Result<(), StoreError> {
        let sql = "UPDATE accounts SET devices_trusted_after = $2, temporary_password_hash = NULL, \
                   password_expires_at = NULL WHERE id = $1";
        self.write(sqlx::query(sql).bind(account.get()).bind(millis(at))).await
    }

    async fn end_sessions(
        &mut self,
        account: AccountId,
        keep: Option<&TokenHash>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        crate::sessions::end_sessions(self, account, keep, now).await
    }

    async fn end_forced_sessions(&mut self, account: AccountId) -> Result<u64, StoreError> {
        crate::sessions::end_forced_sessions(self, account).await
    }

    async fn clear_forced_change(&mut self, session: &TokenHash) -> Result<(), StoreError> {
        self.write(
            sqlx::query(
                "UPDATE sessions SET must_change_password = 0 WHERE token_hash = $1 AND must_change_password <> 0",
            )
            .bind(session.as_str()),
        )
        .await
    }

    async fn uncount(&mut self, key: &ThrottleKey, at: Timestamp) -> Result<(), StoreError> {
        crate::throttle::uncount_in(self, key, at).await
    }

    async fn use_code(&mut self, hash: &TokenHash, at: Timestamp) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE recovery_codes SET used_at = $2 WHERE code_hash = $1")
                .bind(hash.as_str())
                .bind(millis(at)),
        )
        .await
    }

    async fn use_up_codes(&mut self, account: AccountId, at: Timestamp) -> Result<(), StoreError> {
        crate::recovery::use_up_codes(self, account, at).await
    }

    async fn hold_request(&mut self, id: RequestId) -> Result<Option<AssistanceRequest>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE assistance_requests SET updated_at = updated_at WHERE id = $1 RETURNING {REQUEST_COLUMNS}"
        )))
        .bind(id.get())
        .fetch_optional(&mut **self)
        .await
        .map_err(backend)?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn hold_open_request_of(&mut self, account: AccountId) -> Result<Option<AssistanceRequest>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE assistance_requests SET updated_at = updated_at WHERE id = \
             (SELECT MAX(id) FROM assistance_requests WHERE account_id = $1 AND state <> 'closed') \
             AND state <> 'closed' RETURNING {REQUEST_COLUMNS}"
        )))
        .bind(account.get())
        .fetch_optional(&mut **self)
        .await
        .map_err(backend)?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn insert_request(&mut self, request: &NewRequest, now: Timestamp) -> Result<AssistanceRequest, StoreError> {
        crate::desk::insert_request(self, request, now).await
    }

    async fn save_request(&mut self, request: &AssistanceRequest, at: Timestamp) -> Result<(), StoreError> {
        let sql = "UPDATE assistance_requests SET state = $2, phone = $3, account_id = $4, assignee_id = $5, \
                   updated_at = $6 WHERE id = $1";
        let query = sqlx::query(sql)
            .bind(request.id.get())
            .bind(request.state.as_str())
            .bind(request.phone.as_str())
            .bind(request.account_id.map(AccountId::get))
            .bind(request.assignee_id.map(AccountId::get))
            .bind(millis(at));
        self.write(query).await
    }

    async fn insert_note(&mut self, request: RequestId, note: &NewNote, at: Timestamp) -> Result<(), StoreError> {
        crate::desk::insert_note(self, request, note, at).await
    }

    async fn find_slot(&mut self, hash: &TokenHash) -> Result<Option<CallSlot>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {SLOT_COLUMNS} FROM call_slots WHERE token_hash = $1")))
            .bind(hash.as_str())
            .fetch_optional(&mut **self)
            .await
            .map_err(backend)?;
        row.as_ref().map(slot_from_row).transpose()
    }

    async fn request_slots(&mut self, request: RequestId) -> Result<Vec<CallSlot>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SLOT_COLUMNS} FROM call_slots WHERE request_id = $1 ORDER BY starts_at, id"
        )))
        .bind(request.get())
        .fetch_all(&mut **self)
        .await
        .map_err(backend)?;
        rows.iter().map(slot_from_row).collect()
    }

    async fn insert_slot(
        &mut self,
        request: RequestId,
        (starts_at, ends_at): (Timestamp, Timestamp),
        proposed_by: Option<AccountId>,
        at: Timestamp,
    ) -> Result<CallSlotId, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO call_slots (request_id, starts_at, ends_at, proposed_by, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(request.get())
        .bind(millis(starts_at))
        .bind(millis(ends_at))
        .bind(proposed_by.map(AccountId::get))
        .bind(millis(at))
        .fetch_one(&mut **self)
        .await
        .map(CallSlotId::from_stored)
        .map_err(backend)
    }

    async fn set_slot_token(&mut self, slot: CallSlotId, hash: &TokenHash) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE call_slots SET token_hash = $2 WHERE id = $1").bind(slot.get()).bind(hash.as_str()),
        )
        .await
    }

    async fn save_slot(&mut self, slot: &CallSlot) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE call_slots SET confirmed_at = $2, withdrawn_at = $3 WHERE id = $1")
                .bind(slot.id.get())
                .bind(slot.confirmed_at.map(millis))
                .bind(slot.withdrawn_at.map(millis)),
        )
        .await
    }

    async fn hold_oidc_code(
        &mut self,
        code: &TokenHash,
        client: &ClientId,
    ) -> Result<Option<HeldOidcCode>, StoreError> {
        let columns = crate::oidc::CODE_COLUMNS;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE oidc_codes SET used_at = used_at WHERE code_hash = $1 AND client_id = $2 \
             RETURNING {columns}, used_at, reused_at"
        )))
        .bind(code.as_str())
        .bind(client.as_str())
        .fetch_optional(&mut **self)
        .await
        .map_err(backend)?;
        row.map(|row| {
            Ok(HeldOidcCode {
                code: crate::oidc::code_from_row(&row)?,
                used_at: optional_timestamp(row.try_get("used_at").map_err(backend)?)?,
                reused_at: optional_timestamp(row.try_get("reused_at").map_err(backend)?)?,
            })
        })
        .transpose()
    }

    async fn set_oidc_code_used(&mut self, code: &TokenHash, at: Timestamp) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE oidc_codes SET used_at = $2 WHERE code_hash = $1").bind(code.as_str()).bind(millis(at)),
        )
        .await
    }

    async fn set_oidc_code_reused(&mut self, code: &TokenHash, at: Timestamp) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE oidc_codes SET reused_at = $2 WHERE code_hash = $1")
                .bind(code.as_str())
                .bind(millis(at)),
        )
        .await
    }

    async fn revoke_family(&mut self, family: &TokenHash, at: Timestamp) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE oidc_grants SET revoked_at = $2 WHERE code_hash = $1 AND revoked_at IS NULL")
                .bind(family.as_str())
                .bind(millis(at)),
        )
        .await?;
        self.write(sqlx::query("DELETE FROM oidc_refresh_tokens WHERE family = $1").bind(family.as_str())).await
    }

    async fn revoke_grant(&mut self, jti: &str, at: Timestamp) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE oidc_grants SET revoked_at = $2 WHERE jti = $1 AND revoked_at IS NULL")
                .bind(jti)
                .bind(millis(at)),
        )
        .await
    }

    async fn link_session(&mut self, link: &SessionLink) -> Result<bool, StoreError> {
        // Written only while the session lives (its end forgets the link, or tells the
        // client): a session ended meanwhile gets nothing.
        let live: Option<i64> = sqlx::query_scalar("SELECT account_id FROM sessions WHERE token_hash = $1")
            .bind(link.session.as_str())
            .fetch_optional(&mut **self)
            .await
            .map_err(backend)?;
        if live.is_none() {
            return Ok(false);
        }
        self.write(
            sqlx::query(
                "INSERT INTO oidc_session_clients (session_hash, client_id, account_id, sid) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (session_hash, client_id) DO NOTHING",
            )
            .bind(link.session.as_str())
            .bind(link.client.as_str())
            .bind(link.account.get())
            .bind(&link.sid),
        )
        .await?;
        Ok(true)
    }

    async fn insert_refresh_token(&mut self, token: &NewRefreshToken) -> Result<bool, StoreError> {
        let columns = crate::oidc::REFRESH_COLUMNS;
        // Bound to a session: written only while it lives (the foreign key would refuse it).
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO oidc_refresh_tokens ({columns}) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
             WHERE $5 IS NULL OR EXISTS (SELECT 1 FROM sessions WHERE token_hash = $5)"
        )))
        .bind(token.hash.as_str())
        .bind(token.family.as_str())
        .bind(token.client.as_str())
        .bind(token.account.get())
        .bind(token.session.as_ref().map(|h| h.as_str().to_owned()))
        .bind(&token.scope)
        .bind(&token.sid)
        .bind(millis(token.auth_time))
        .bind(millis(token.created_at))
        .bind(millis(token.expires_at))
        .bind(token.factors.to_stored())
        .execute(&mut **self)
        .await
        .map_err(backend)?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn hold_refresh_token(
        &mut self,
        token: &TokenHash,
        client: &ClientId,
    ) -> Result<Option<(NewRefreshToken, Option<Timestamp>)>, StoreError> {
        let columns = crate::oidc::REFRESH_COLUMNS;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE oidc_refresh_tokens SET used_at = used_at WHERE token_hash = $1 AND client_id = $2 \
             RETURNING {columns}, used_at"
        )))
        .bind(token.as_str())
        .bind(client.as_str())
        .fetch_optional(&mut **self)
        .await
        .map_err(backend)?;
        row.map(|row| {
            Ok((crate::oidc::refresh_from_row(&row)?, optional_timestamp(row.try_get("used_at").map_err(backend)?)?))
        })
        .transpose()
    }

    async fn set_refresh_token_used(&mut self, token: &TokenHash, at: Timestamp) -> Result<(), StoreError> {
        self.write(
            sqlx::query("UPDATE oidc_refresh_tokens SET used_at = $2 WHERE token_hash = $1")
                .bind(token.as_str())
                .bind(millis(at)),
        )
        .await
    }

    async fn insert_grant(&mut self, grant: &NewGrant, revoked_at: Option<Timestamp>) -> Result<(), StoreError> {
        self.write(
            sqlx::query(
                "INSERT INTO oidc_grants (jti, code_hash, client_id, account_id, scope, expires_at, revoked_at, \
                 session_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&grant.jti)
            .bind(grant.code.as_str())
            .bind(grant.client.as_str())
            .bind(grant.account.get())
            .bind(&grant.scope)
            .bind(millis(grant.expires_at))
            .bind(revoked_at.map(millis))
            .bind(grant.session.as_ref().map(|h| h.as_str().to_owned())),
        )
        .await
    }

    async fn totp(&mut self, account: AccountId) -> Result<Option<StoredTotp>, StoreError> {
        crate::second_factors::totp(self, account).await
    }

    async fn put_totp(&mut self, account: AccountId, sealed: &str, at: Timestamp) -> Result<(), StoreError> {
        crate::second_factors::put_totp(self, account, sealed, at).await
    }

    async fn confirm_totp(&mut self, account: AccountId, step: i64, at: Timestamp) -> Result<(), StoreError> {
        crate::second_factors::set_totp_step(self, account, step, Some(at)).await
    }

    async fn set_totp_step(&mut self, account: AccountId, step: i64) -> Result<(), StoreError> {
        crate::second_factors::set_totp_step(self, account, step, None).await
    }

    async fn replace_backup_codes(
        &mut self,
        account: AccountId,
        hashes: &[TokenHash],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        crate::second_factors::replace_backup_codes(self, account, hashes, at).await
    }

    async fn use_backup_code(
        &mut self,
        account: AccountId,
        hash: &TokenHash,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        crate::second_factors::use_backup_code(self, account, hash, at).await
    }

    async fn remove_second_factors(&mut self, account: AccountId) -> Result<u64, StoreError> {
        crate::second_factors::remove(self, account).await?;
        crate::passkeys::remove_keys(self, account).await
    }

    async fn link_upstream(
        &mut self,
        upstream: &str,
        subject: &str,
        account: AccountId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        crate::upstream::link(self, upstream, subject, account, now).await
    }

    async fn used_upstream_link(
        &mut self,
        upstream: &str,
        subject: &str,
        account: AccountId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        crate::upstream::used(self, upstream, subject, account, now).await
    }

    async fn unlink_upstream(
        &mut self,
        account: AccountId,
        upstream: &str,
        subject: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        crate::upstream::unlink(self, account, upstream, subject, now).await
    }

    async fn end_link_sessions(
        &mut self,
        account: AccountId,
        upstream: &str,
        subject: &str,
        keep: Option<&TokenHash>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        crate::sessions::end_link_sessions(self, account, &format!("{upstream} {subject}"), keep, now).await
    }

    async fn upstream_link_removed(&mut self, upstream: &str, account: AccountId) -> Result<bool, StoreError> {
        crate::upstream::removed(self, upstream, account).await
    }

    async fn insert_key(&mut self, key: &guichet_core::ports::StoredKey) -> Result<bool, StoreError> {
        crate::passkeys::insert_key(self, key).await
    }

    async fn used_key(
        &mut self,
        key: &guichet_core::ports::StoredKey,
        passkey: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        crate::passkeys::used_key(self, key, passkey, at).await
    }

    async fn count_keys(&mut self, account: AccountId) -> Result<u64, StoreError> {
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webauthn_credentials WHERE account_id = $1")
            .bind(account.get())
            .fetch_one(&mut **self)
            .await
            .map_err(backend)?;
        Ok(u64::try_from(keys).unwrap_or_default())
    }

    async fn remove_key(&mut self, account: AccountId, credential_id: &str) -> Result<bool, StoreError> {
        crate::passkeys::remove_key(self, account, credential_id).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        SqlWork::commit(*self).await
    }
}
