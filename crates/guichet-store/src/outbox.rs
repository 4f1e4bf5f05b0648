//! The outbox and its sending log.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{AccountId, EmailAddress};
use guichet_core::mail::{MailId, MailKind, MailLogEntry, MailRecord, MailState, MailSubject, NewMail, QueuedMail};
use guichet_core::ports::{OutboxStore, StoreError};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, timestamp};

/// Queues a message inside a transaction (with what caused it).
pub(crate) async fn insert_mail(tx: &mut SqlWork, mail: &NewMail, now: Timestamp) -> Result<MailId, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (kind, account_id, recipient, created_at, next_attempt_at, subject_id) \
         VALUES ($1, $2, $3, $4, $4, $5) RETURNING id",
    )
    .bind(mail.kind.as_str())
    .bind(mail.account_id.map(AccountId::get))
    .bind(mail.recipient.as_str())
    .bind(millis(now))
    .bind(mail.subject.stored_id())
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    tx.queued_mail();
    Ok(MailId::from_stored(id))
}

fn kind_of(row: &AnyRow) -> Result<MailKind, StoreError> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    crate::column(&kind, MailKind::parse, "outbox.kind")
}

fn attempts_of(row: &AnyRow) -> Result<u32, StoreError> {
    Ok(u32::try_from(row.try_get::<i64, _>("attempts").map_err(backend)?).unwrap_or(u32::MAX))
}

fn queued_from_row(row: &AnyRow) -> Result<QueuedMail, StoreError> {
    let kind = kind_of(row)?;
    let subject_id: Option<i64> = row.try_get("subject_id").map_err(backend)?;
    let subject = MailSubject::from_stored(kind, subject_id)
        .ok_or_else(|| StoreError::Backend(format!("a {} message about {subject_id:?}", kind.as_str()).into()))?;
    Ok(QueuedMail {
        id: MailId::from_stored(row.try_get("id").map_err(backend)?),
        kind,
        account_id: row.try_get::<Option<i64>, _>("account_id").map_err(backend)?.map(AccountId::from_stored),
        recipient: EmailAddress::from_stored(row.try_get("recipient").map_err(backend)?),
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
        attempts: attempts_of(row)?,
        subject,
        copy_of: row.try_get::<Option<i64>, _>("copy_of").map_err(backend)?.map(MailId::from_stored),
    })
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn enqueue_mail(&self, mail: &NewMail, now: Timestamp) -> Result<MailId, StoreError> {
        let mut tx = self.begin_work().await?;
        let id = insert_mail(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn claim_due_mail(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        // The conditions are repeated outside the subquery: on PostgreSQL a second
        // claimer blocked on the same row re-checks them against the row as the first
        // claimer left it, and so skips it.
        let rows = sqlx::query(
            "UPDATE outbox SET lease_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
                          AND (lease_until IS NULL OR lease_until <= $1) ORDER BY id LIMIT $3) \
             AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $1) \
             RETURNING id, kind, account_id, recipient, created_at, attempts, subject_id, copy_of",
        )
        .bind(millis(now))
        .bind(millis(lease_until))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut claimed = rows.iter().map(queued_from_row).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|m| m.id.get());
        Ok(claimed)
    }

    async fn renew_lease(&self, id: MailId, held_until: Timestamp, until: Timestamp) -> Result<bool, StoreError> {
        sqlx::query("UPDATE outbox SET lease_until = $3 WHERE id = $1 AND lease_until = $2 AND state = 'pending'")
            .bind(id.get())
            .bind(millis(held_until))
            .bind(millis(until))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(backend)
    }

    async fn release_mail(&self, ids: &[MailId], held_until: Timestamp) -> Result<(), StoreError> {
        for id in ids {
            sqlx::query(
                "UPDATE outbox SET lease_until = NULL, attempts = attempts - 1 \
                 WHERE id = $1 AND lease_until = $2 AND state = 'pending'",
            )
            .bind(id.get())
            .bind(millis(held_until))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        }
        Ok(())
    }

    async fn finish_mail(
        &self,
        id: MailId,
        account: Option<AccountId>,
        record: &MailRecord<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_work().await?;
        sqlx::query(
            "UPDATE outbox SET state = $2, last_answer = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
             lease_until = NULL, finished_at = $5, account_id = COALESCE($6, account_id) WHERE id = $1",
        )
        .bind(id.get())
        .bind(record.state.as_str())
        .bind(record.answer)
        .bind(record.next_attempt_at.map(millis))
        .bind(record.finished_at.map(millis))
        .bind(account.map(AccountId::get))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some((outcome, at)) = record.attempt {
            sqlx::query("INSERT INTO mail_attempts (outbox_id, at, outcome, answer) VALUES ($1, $2, $3, $4)")
                .bind(id.get())
                .bind(millis(at))
                .bind(outcome)
                .bind(record.answer)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await
    }

    async fn queue_copy(
        &self,
        original: MailId,
        account: AccountId,
        kind: MailKind,
        to: &EmailAddress,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox (kind, account_id, recipient, created_at, next_attempt_at, copy_of) \
             VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (copy_of) DO NOTHING",
        )
        .bind(kind.as_str())
        .bind(account.get())
        .bind(to.as_str())
        .bind(millis(now))
        .bind(original.get())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        self.mail_queued.notify_one();
        Ok(())
    }

    fn mail_queued(&self) -> std::sync::Arc<tokio::sync::Notify> {
        std::sync::Arc::clone(&self.mail_queued)
    }

    async fn count_sent_mail(&self, account: AccountId, kind: MailKind, since: Timestamp) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE account_id = $1 AND kind = $2 AND state IN ('sent', 'failed') \
             AND finished_at >= $3 AND copy_of IS NULL",
        )
        .bind(account.get())
        .bind(kind.as_str())
        .bind(millis(since))
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn backlog(&self) -> Result<(u64, Option<Timestamp>), StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS pending, MIN(created_at) AS oldest FROM outbox WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
        let pending: i64 = row.try_get("pending").map_err(backend)?;
        let oldest: Option<i64> = row.try_get("oldest").map_err(backend)?;
        Ok((u64::try_from(pending).unwrap_or_default(), oldest.map(timestamp).transpose()?))
    }

    async fn retry_waiting_mail(&self, now: Timestamp) -> Result<u64, StoreError> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE state = 'pending' AND attempts > 0 AND next_attempt_at > $1",
        )
        .bind(millis(now))
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected())
        .map_err(backend)
    }

    async fn account_mail(&self, account: AccountId, limit: u32) -> Result<Vec<MailLogEntry>, StoreError> {
        self.mail_log("account_id = $1", account.get(), limit).await
    }

    async fn mail_to(&self, recipient: &EmailAddress, limit: u32) -> Result<Vec<MailLogEntry>, StoreError> {
        self.mail_log("recipient = $1", recipient.as_str().to_owned(), limit).await
    }

    async fn purge_finished_mail(&self, before: Timestamp) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM outbox WHERE state <> 'pending' AND created_at < $1")
            .bind(millis(before))
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(backend)
    }
}

/// A row of the mail log.
fn log_entry(row: &sqlx::any::AnyRow) -> Result<MailLogEntry, StoreError> {
    let state: String = row.try_get("state").map_err(backend)?;
    Ok(MailLogEntry {
        id: MailId::from_stored(row.try_get("id").map_err(backend)?),
        kind: kind_of(row)?,
        recipient: EmailAddress::from_stored(row.try_get("recipient").map_err(backend)?),
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
        state: crate::column(&state, MailState::parse, "outbox.state")?,
        attempts: attempts_of(row)?,
        last_answer: row.try_get("last_answer").map_err(backend)?,
    })
}

impl SqlStore {
    /// The latest messages matching `filter` (on `$1`, bound to `value`), newest first.
    async fn mail_log<T>(&self, filter: &str, value: T, limit: u32) -> Result<Vec<MailLogEntry>, StoreError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + 'static,
    {
        let sql = format!(
            "SELECT id, kind, recipient, created_at, state, attempts, last_answer FROM outbox \
             WHERE {filter} ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(log_entry).collect()
    }
}
