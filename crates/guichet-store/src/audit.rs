//! The audit trail.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::AccountId;
use guichet_core::audit::{Actor, AuditDetail, AuditEvent, AuditKind, NewAuditEvent, RequestContext};
use guichet_core::ports::{AuditStore, StoreError};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row as _};

use crate::work::SqlWork;
use crate::{SqlStore, backend, millis, timestamp};

const DAY_MS: i64 = 86_400_000;

fn actor_columns(actor: Actor) -> (&'static str, Option<i64>) {
    match actor {
        Actor::Member => ("member", None),
        Actor::Staff(id) => ("staff", Some(id.get())),
        Actor::Operator => ("operator", None),
        Actor::System => ("system", None),
    }
}

fn actor_from_columns(kind: &str, id: Option<i64>) -> Option<Actor> {
    match (kind, id) {
        ("member", _) => Some(Actor::Member),
        ("staff", Some(id)) => Some(Actor::Staff(AccountId::from_stored(id))),
        ("operator", _) => Some(Actor::Operator),
        ("system", _) => Some(Actor::System),
        _ => None,
    }
}

/// The columns an event is written to, in the order [`bind_event`] binds them.
pub(crate) const EVENT_COLUMNS: &str = "at, account_id, kind, actor_kind, actor_id, address, user_agent, detail";

/// Binds an event's values, in [`EVENT_COLUMNS`]'s order.
pub(crate) fn bind_event<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    event: &NewAuditEvent,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    let (actor_kind, actor_id) = actor_columns(event.actor);
    query
        .bind(millis(event.at))
        .bind(event.account_id.map(AccountId::get))
        .bind(event.kind.as_str())
        .bind(actor_kind)
        .bind(actor_id)
        .bind(event.context.address.map(|a| a.to_string()))
        .bind(event.context.user_agent.clone())
        .bind(event.detail.as_ref().map(AuditDetail::to_stored))
}

/// Appends an event inside a transaction; returns its id.
pub(crate) async fn insert_event(tx: &mut SqlWork, event: &NewAuditEvent) -> Result<i64, StoreError> {
    let sql =
        format!("INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id");
    let row = bind_event(sqlx::query(AssertSqlSafe(sql)), event).fetch_one(&mut **tx).await.map_err(backend)?;
    row.try_get("id").map_err(backend)
}

fn event_from_row(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    let actor_kind: String = row.try_get("actor_kind").map_err(backend)?;
    let actor_id: Option<i64> = row.try_get("actor_id").map_err(backend)?;
    let address: Option<String> = row.try_get("address").map_err(backend)?;
    Ok(AuditEvent {
        id: row.try_get("id").map_err(backend)?,
        at: timestamp(row.try_get("at").map_err(backend)?)?,
        account_id: row.try_get::<Option<i64>, _>("account_id").map_err(backend)?.map(AccountId::from_stored),
        kind: crate::column(&kind, AuditKind::parse, "audit_events.kind")?,
        actor: crate::column(&actor_kind, |k| actor_from_columns(k, actor_id), "audit_events.actor_kind")?,
        context: RequestContext {
            address: address.and_then(|a| a.parse().ok()),
            user_agent: row.try_get("user_agent").map_err(backend)?,
        },
        detail: row.try_get::<Option<String>, _>("detail").map_err(backend)?.as_deref().map(AuditDetail::from_stored),
    })
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn record_event(&self, event: NewAuditEvent) -> Result<(), StoreError> {
        let mut tx = self.begin_work().await?;
        insert_event(&mut tx, &event).await?;
        tx.commit().await
    }

    async fn account_events(&self, account: AccountId, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, account_id, kind, actor_kind, actor_id, address, user_agent, detail \
             FROM audit_events WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(account.get())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn daily_counts(
        &self,
        kinds: &[AuditKind],
        since: Timestamp,
    ) -> Result<Vec<(i64, AuditKind, u64)>, StoreError> {
        let mut counts = Vec::new();
        for kind in kinds {
            // Integer division gives the Unix day on both databases.
            let rows = sqlx::query(
                "SELECT at / $3 AS day, COUNT(*) AS n FROM audit_events WHERE kind = $1 AND at >= $2 GROUP BY at / $3",
            )
            .bind(kind.as_str())
            .bind(millis(since))
            .bind(DAY_MS)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
            for row in rows {
                let day: i64 = row.try_get("day").map_err(backend)?;
                let n: i64 = row.try_get("n").map_err(backend)?;
                counts.push((day, *kind, u64::try_from(n).unwrap_or_default()));
            }
        }
        Ok(counts)
    }
}
