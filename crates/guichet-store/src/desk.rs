//! The assistance desk's requests, notes and call slots.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::{AccountId, EmailAddress};
use guichet_core::desk::{
    AssistanceRequest, CallSlot, CallSlotId, NewNote, NewRequest, RequestId, RequestNote, RequestOrigin, RequestState,
    Wants, new_reference,
};
use guichet_core::ports::{DeskStore, StoreError};
use guichet_core::token::TokenHash;
use sqlx::AssertSqlSafe;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, optional_timestamp, timestamp};

pub(crate) const REQUEST_COLUMNS: &str = "id, reference, name, email, identifier, phone, message, wants, origin, state, account_id, assignee_id, \
     created_at, updated_at";
pub(crate) const SLOT_COLUMNS: &str = "id, request_id, starts_at, ends_at, confirmed_at, withdrawn_at";

fn account(row: &AnyRow, column: &str) -> Result<Option<AccountId>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(column).map_err(backend)?.map(AccountId::from_stored))
}

pub(crate) fn request_from_row(row: &AnyRow) -> Result<AssistanceRequest, StoreError> {
    let text = |column: &str| row.try_get::<String, _>(column).map_err(backend);
    Ok(AssistanceRequest {
        id: RequestId::from_stored(row.try_get("id").map_err(backend)?),
        reference: text("reference")?,
        name: text("name")?,
        email: EmailAddress::from_stored(text("email")?),
        identifier: text("identifier")?,
        phone: text("phone")?,
        message: text("message")?,
        wants: row.try_get::<Option<String>, _>("wants").map_err(backend)?.as_deref().and_then(Wants::parse),
        origin: crate::column(&text("origin")?, RequestOrigin::parse, "assistance_requests.origin")?,
        state: crate::column(&text("state")?, RequestState::parse, "assistance_requests.state")?,
        account_id: account(row, "account_id")?,
        assignee_id: account(row, "assignee_id")?,
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
        updated_at: timestamp(row.try_get("updated_at").map_err(backend)?)?,
    })
}

pub(crate) fn slot_from_row(row: &AnyRow) -> Result<CallSlot, StoreError> {
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
pub(crate) async fn insert_note(
    tx: &mut SqlWork,
    id: RequestId,
    note: &NewNote,
    now: Timestamp,
) -> Result<(), StoreError> {
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

/// Stores a request with a fresh reference, inside a transaction.
pub(crate) async fn insert_request(
    tx: &mut SqlWork,
    request: &NewRequest,
    now: Timestamp,
) -> Result<AssistanceRequest, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO assistance_requests (reference, name, email, identifier, phone, message, address, account_id, \
         created_at, updated_at, wants, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11) \
         RETURNING {REQUEST_COLUMNS}"
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
    .bind(request.wants.map(Wants::as_str))
    .bind(request.origin.as_str())
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    request_from_row(&row)
}

#[async_trait]
impl DeskStore for SqlStore {
    async fn list_requests(&self, open_only: bool, limit: u32) -> Result<Vec<AssistanceRequest>, StoreError> {
        let filter = if open_only { "WHERE state <> 'closed'" } else { "" };
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM assistance_requests {filter} ORDER BY id DESC LIMIT $1");
        let rows =
            sqlx::query(AssertSqlSafe(sql)).bind(i64::from(limit)).fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(request_from_row).collect()
    }

    async fn account_requests(&self, account: AccountId, limit: u32) -> Result<Vec<AssistanceRequest>, StoreError> {
        let sql = format!(
            "SELECT {REQUEST_COLUMNS} FROM assistance_requests WHERE account_id = $1 ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(account.get())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(request_from_row).collect()
    }

    async fn find_request(&self, id: RequestId) -> Result<Option<AssistanceRequest>, StoreError> {
        let sql = format!("SELECT {REQUEST_COLUMNS} FROM assistance_requests WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql)).bind(id.get()).fetch_optional(&self.pool).await.map_err(backend)?;
        row.as_ref().map(request_from_row).transpose()
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
