//! The assistance desk's requests, notes and call slots.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{AccountId, EmailAddress};
use guichet_core::audit::{Actor, AuditKind, NewAuditEvent, RequestContext};
use guichet_core::desk::{
    AssistanceRequest, CallSlot, CallSlotId, Confirmation, NewNote, NewRequest, RequestChange, RequestId, RequestNote,
    RequestState, SlotState, new_reference,
};
use guichet_core::mail::{MailKind, MailSubject, NewMail};
use guichet_core::ports::{DeskStore, StoreError};
use guichet_core::token::TokenHash;
use sqlx::AssertSqlSafe;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::audit::insert_event;
use crate::outbox::insert_mail;
use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

const REQUEST_COLUMNS: &str =
    "id, reference, name, email, identifier, phone, message, state, account_id, assignee_id, created_at, updated_at";
const SLOT_COLUMNS: &str = "id, request_id, starts_at, ends_at, confirmed_at, withdrawn_at";

fn account(row: &AnyRow, column: &str) -> Result<Option<AccountId>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(column).map_err(backend)?.map(AccountId::from_stored))
}

fn request_from_row(row: &AnyRow) -> Result<AssistanceRequest, StoreError> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(backend);
    Ok(AssistanceRequest {
        id: RequestId::from_stored(row.try_get("id").map_err(backend)?),
        reference: text("reference")?,
        name: text("name")?,
        email: EmailAddress::from_stored(text("email")?),
        identifier: text("identifier")?,
        phone: text("phone")?,
        message: text("message")?,
        state: crate::column(&text("state")?, RequestState::parse, "assistance_requests.state")?,
        account_id: account(row, "account_id")?,
        assignee_id: account(row, "assignee_id")?,
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
        updated_at: timestamp(row.try_get("updated_at").map_err(backend)?)?,
    })
}

fn slot_from_row(row: &AnyRow) -> Result<CallSlot, StoreError> {
    Ok(CallSlot {
        id: CallSlotId::from_stored(row.try_get("id").map_err(backend)?),
        request_id: RequestId::from_stored(row.try_get("request_id").map_err(backend)?),
        starts_at: timestamp(row.try_get("starts_at").map_err(backend)?)?,
        ends_at: timestamp(row.try_get("ends_at").map_err(backend)?)?,
        confirmed_at: optional_timestamp(row.try_get("confirmed_at").map_err(backend)?)?,
        withdrawn_at: optional_timestamp(row.try_get("withdrawn_at").map_err(backend)?)?,
    })
}

/// Adds a note to a request, inside a transaction.
async fn insert_note(tx: &mut SqlWork, id: RequestId, note: &NewNote, now: Timestamp) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO request_notes (request_id, author_id, at, body) VALUES ($1, $2, $3, $4)")
        .bind(id.get())
        .bind(note.author_id.map(AccountId::get))
        .bind(millis(now))
        .bind(note.body.as_str())
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(backend)
}

/// The audit line of a call step on the request's account.
fn call_event(account: AccountId, kind: AuditKind, actor: Actor, at: Timestamp) -> NewAuditEvent {
    NewAuditEvent { at, account_id: Some(account), kind, actor, context: RequestContext::default(), detail: None }
}

/// Stores a request with a fresh reference, inside a transaction.
async fn insert_request(
    tx: &mut SqlWork,
    request: &NewRequest,
    now: Timestamp,
) -> Result<AssistanceRequest, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO assistance_requests (reference, name, email, identifier, phone, message, address, account_id, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {REQUEST_COLUMNS}"
    )))
    .bind(new_reference())
    .bind(request.name.as_str())
    .bind(request.email.as_str())
    .bind(request.identifier.as_str())
    .bind(request.phone.as_str())
    .bind(request.message.as_str())
    .bind(request.address.clone())
    .bind(request.account_id.map(AccountId::get))
    .bind(millis(now))
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    request_from_row(&row)
}

/// Queues a notice to the desk's mailbox about `subject`, when there is one.
async fn tell_the_desk(
    tx: &mut SqlWork,
    notify: Option<&EmailAddress>,
    subject: MailSubject,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(desk) = notify else { return Ok(()) };
    let kind = match subject {
        MailSubject::Slot(_) => MailKind::DeskCallConfirmed,
        _ => MailKind::DeskNewRequest,
    };
    insert_mail(tx, &NewMail { kind, account_id: None, recipient: desk.clone(), subject }, now).await.map(|_| ())
}

#[async_trait]
impl DeskStore for SqlStore {
    async fn create_request(
        &self,
        request: &NewRequest,
        notify: Option<&EmailAddress>,
        now: Timestamp,
    ) -> Result<AssistanceRequest, StoreError> {
        let mut tx = self.begin_work().await?;
        let created = insert_request(&mut tx, request, now).await?;
        let receipt = NewMail {
            kind: MailKind::AssistanceReceived,
            account_id: created.account_id,
            recipient: created.email.clone(),
            subject: MailSubject::Request(created.id),
        };
        insert_mail(&mut tx, &receipt, now).await?;
        tell_the_desk(&mut tx, notify, MailSubject::Request(created.id), now).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn report_undelivered(
        &self,
        request: &NewRequest,
        notify: Option<&EmailAddress>,
        now: Timestamp,
    ) -> Result<RequestId, StoreError> {
        let mut tx = self.begin_work().await?;
        let open: Option<i64> = sqlx::query_scalar(
            "UPDATE assistance_requests SET state = 'new', updated_at = $2 WHERE id = \
             (SELECT MAX(id) FROM assistance_requests WHERE account_id = $1 AND state <> 'closed') RETURNING id",
        )
        .bind(request.account_id.map(AccountId::get))
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let id = match open {
            Some(id) => {
                let id = RequestId::from_stored(id);
                insert_note(&mut tx, id, &NewNote { author_id: None, body: request.message.clone() }, now).await?;
                id
            }
            None => {
                let created = insert_request(&mut tx, request, now).await?;
                tell_the_desk(&mut tx, notify, MailSubject::Request(created.id), now).await?;
                created.id
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    async fn list_requests(&self, open_only: bool, limit: u32) -> Result<Vec<AssistanceRequest>, StoreError> {
        let filter = if open_only { "WHERE state <> 'closed'" } else { "" };
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM assistance_requests {filter} ORDER BY id DESC LIMIT $1");
        let rows =
            sqlx::query(AssertSqlSafe(sql)).bind(i64::from(limit)).fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(request_from_row).collect()
    }

    async fn find_request(&self, id: RequestId) -> Result<Option<AssistanceRequest>, StoreError> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM assistance_requests WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(id.get()).fetch_optional(&self.pool).await.map_err(backend)?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn update_request(
        &self,
        id: RequestId,
        change: RequestChange,
        note: &NewNote,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_work().await?;
        let query = match change {
            RequestChange::State(state) => {
                sqlx::query("UPDATE assistance_requests SET state = $2, updated_at = $3 WHERE id = $1")
                    .bind(id.get())
                    .bind(state.as_str())
            }
            RequestChange::Assignee(who) => {
                sqlx::query("UPDATE assistance_requests SET assignee_id = $2, updated_at = $3 WHERE id = $1")
                    .bind(id.get())
                    .bind(who.map(AccountId::get))
            }
            RequestChange::Account(which) => {
                sqlx::query("UPDATE assistance_requests SET account_id = $2, updated_at = $3 WHERE id = $1")
                    .bind(id.get())
                    .bind(which.map(AccountId::get))
            }
        };
        query.bind(millis(now)).execute(&mut *tx).await.map_err(backend)?;
        insert_note(&mut tx, id, note, now).await?;
        tx.commit().await
    }

    async fn add_note(&self, id: RequestId, note: &NewNote, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_work().await?;
        insert_note(&mut tx, id, note, now).await?;
        tx.commit().await
    }

    async fn request_notes(&self, id: RequestId) -> Result<Vec<RequestNote>, StoreError> {
        let rows = sqlx::query("SELECT author_id, at, body FROM request_notes WHERE request_id = $1 ORDER BY id")
            .bind(id.get())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(RequestNote {
                    author_id: account(row, "author_id")?,
                    at: timestamp(row.try_get("at").map_err(backend)?)?,
                    body: row.try_get("body").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn propose_slots(
        &self,
        id: RequestId,
        slots: &[(Timestamp, Timestamp)],
        phone: &str,
        note: &NewNote,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let staff = note.author_id;
        let mut tx = self.begin_work().await?;
        let email: String = sqlx::query_scalar(
            "UPDATE assistance_requests SET state = 'waiting', phone = $3, updated_at = $2 WHERE id = $1 RETURNING email",
        )
        .bind(id.get())
        .bind(millis(now))
        .bind(phone)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        // Earlier proposals that were not taken up give way to this one.
        sqlx::query("UPDATE call_slots SET withdrawn_at = $2 WHERE request_id = $1 AND confirmed_at IS NULL AND withdrawn_at IS NULL")
            .bind(id.get())
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for (starts_at, ends_at) in slots {
            sqlx::query("INSERT INTO call_slots (request_id, starts_at, ends_at, proposed_by, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id.get())
                .bind(millis(*starts_at))
                .bind(millis(*ends_at))
                .bind(staff.map(AccountId::get))
                .bind(millis(now))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        let account: Option<i64> = sqlx::query_scalar("SELECT account_id FROM assistance_requests WHERE id = $1")
            .bind(id.get())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        if let Some(account) = account {
            let actor = staff.map_or(Actor::System, Actor::Staff);
            let event = call_event(AccountId::from_stored(account), AuditKind::CallProposed, actor, now);
            insert_event(&mut tx, &event).await?;
        }
        let mail = NewMail {
            kind: MailKind::CallProposal,
            account_id: account.map(AccountId::from_stored),
            recipient: EmailAddress::from_stored(email),
            subject: MailSubject::Request(id),
        };
        insert_mail(&mut tx, &mail, now).await?;
        insert_note(&mut tx, id, note, now).await?;
        tx.commit().await
    }

    async fn request_slots(&self, id: RequestId) -> Result<Vec<CallSlot>, StoreError> {
        let sql = format!("SELECT {SLOT_COLUMNS} FROM call_slots WHERE request_id = $1 ORDER BY starts_at, id");
        let rows = sqlx::query(AssertSqlSafe(sql)).bind(id.get()).fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(slot_from_row).collect()
    }

    async fn set_slot_token(&self, slot: CallSlotId, hash: &TokenHash) -> Result<(), StoreError> {
        sqlx::query("UPDATE call_slots SET token_hash = $2 WHERE id = $1")
            .bind(slot.get())
            .bind(hash.as_str())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn find_slot(&self, hash: &TokenHash) -> Result<Option<(CallSlot, AssistanceRequest)>, StoreError> {
        let sql = format!("SELECT {SLOT_COLUMNS} FROM call_slots WHERE token_hash = $1");
        let Some(row) =
            sqlx::query(AssertSqlSafe(sql)).bind(hash.as_str()).fetch_optional(&self.pool).await.map_err(backend)?
        else {
            return Ok(None);
        };
        let slot = slot_from_row(&row)?;
        Ok(self.find_request(slot.request_id).await?.map(|request| (slot, request)))
    }

    async fn find_slot_by_id(&self, slot: CallSlotId) -> Result<Option<CallSlot>, StoreError> {
        let sql = format!("SELECT {SLOT_COLUMNS} FROM call_slots WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(slot.get()).fetch_optional(&self.pool).await.map_err(backend)?;
        row.as_ref().map(slot_from_row).transpose()
    }

    async fn confirm_slot(
        &self,
        hash: &TokenHash,
        notify: Option<&EmailAddress>,
        note: &str,
        now: Timestamp,
    ) -> Result<Option<Confirmation>, StoreError> {
        let mut tx = self.begin_work().await?;
        // The request's row serialises confirmations of the same proposal.
        let request: Option<i64> = sqlx::query_scalar(
            "UPDATE assistance_requests SET updated_at = updated_at \
             WHERE id = (SELECT request_id FROM call_slots WHERE token_hash = $1) RETURNING id",
        )
        .bind(hash.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(request) = request else { return Ok(None) };
        let sql = format!("SELECT {SLOT_COLUMNS} FROM call_slots WHERE token_hash = $1");
        let slot = slot_from_row(
            &sqlx::query(AssertSqlSafe(sql)).bind(hash.as_str()).fetch_one(&mut *tx).await.map_err(backend)?,
        )?;
        match slot.state_at(now) {
            SlotState::Confirmed => return Ok(Some(Confirmation::AlreadyConfirmed(slot))),
            SlotState::Withdrawn | SlotState::Past => return Ok(Some(Confirmation::Unavailable(slot))),
            SlotState::Open => {}
        }
        sqlx::query("UPDATE call_slots SET confirmed_at = $2 WHERE id = $1")
            .bind(slot.id.get())
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("UPDATE call_slots SET withdrawn_at = $3 WHERE request_id = $1 AND id <> $2 AND confirmed_at IS NULL AND withdrawn_at IS NULL")
            .bind(request)
            .bind(slot.id.get())
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let row = sqlx::query("SELECT email, account_id FROM assistance_requests WHERE id = $1")
            .bind(request)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        if let Some(account) = account(&row, "account_id")? {
            insert_event(&mut tx, &call_event(account, AuditKind::CallConfirmed, Actor::Member, now)).await?;
        }
        let mail = NewMail {
            kind: MailKind::CallConfirmed,
            account_id: account(&row, "account_id")?,
            recipient: EmailAddress::from_stored(row.try_get("email").map_err(backend)?),
            subject: MailSubject::Slot(slot.id),
        };
        insert_mail(&mut tx, &mail, now).await?;
        tell_the_desk(&mut tx, notify, MailSubject::Slot(slot.id), now).await?;
        sqlx::query("INSERT INTO request_notes (request_id, author_id, at, body) VALUES ($1, NULL, $2, $3)")
            .bind(request)
            .bind(millis(now))
            .bind(note)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await?;
        Ok(Some(Confirmation::Confirmed(CallSlot { confirmed_at: Some(now), ..slot })))
    }

    async fn upcoming_calls(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(CallSlot, AssistanceRequest)>, StoreError> {
        let sql = format!(
            "SELECT {SLOT_COLUMNS} FROM call_slots WHERE confirmed_at IS NOT NULL AND ends_at > $1 ORDER BY starts_at LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(millis(now))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let mut calls = Vec::new();
        for row in &rows {
            let slot = slot_from_row(row)?;
            if let Some(request) = self.find_request(slot.request_id).await? {
                calls.push((slot, request));
            }
        }
        Ok(calls)
    }
}
