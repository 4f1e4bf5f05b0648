//! Groups and memberships.

use async_trait::async_trait;
use guichet_core::Timestamp;
use guichet_core::account::AccountId;
use guichet_core::groups::{Group, GroupId, GroupName};
use guichet_core::ports::{Conflict, GroupStore, StoreError};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::{SqlStore, backend, millis, timestamp};

const GROUP_SELECT: &str = "SELECT g.id, g.name, g.description, g.created_at, \
     (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) AS members FROM groups g";

fn group_from_row(row: &AnyRow) -> Result<Group, StoreError> {
    let members: i64 = row.try_get("members").map_err(backend)?;
    Ok(Group {
        id: GroupId::from_stored(row.try_get("id").map_err(backend)?),
        name: GroupName::from_stored(row.try_get("name").map_err(backend)?),
        description: row.try_get("description").map_err(backend)?,
        members: u64::try_from(members).unwrap_or_default(),
        created_at: timestamp(row.try_get("created_at").map_err(backend)?)?,
    })
}

#[async_trait]
impl GroupStore for SqlStore {
    async fn create_group(&self, name: &GroupName, description: &str, now: Timestamp) -> Result<Group, StoreError> {
        let id: i64 =
            sqlx::query_scalar("INSERT INTO groups (name, description, created_at) VALUES ($1, $2, $3) RETURNING id")
                .bind(name.as_str())
                .bind(description)
                .bind(millis(now))
                .fetch_one(&self.pool)
                .await
                .map_err(|error| match &error {
                    sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(Conflict::Group),
                    _ => backend(error),
                })?;
        Ok(Group {
            id: GroupId::from_stored(id),
            name: name.clone(),
            description: description.to_owned(),
            members: 0,
            created_at: now,
        })
    }

    async fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{GROUP_SELECT} ORDER BY g.name")))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(group_from_row).collect()
    }

    async fn find_group(&self, name: &GroupName) -> Result<Option<Group>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{GROUP_SELECT} WHERE g.name = $1")))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(group_from_row).transpose()
    }

    async fn remove_group(&self, group: GroupId) -> Result<bool, StoreError> {
        let mut tx = self.begin_work().await?;
        sqlx::query("DELETE FROM group_members WHERE group_id = $1")
            .bind(group.get())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let removed = sqlx::query("DELETE FROM groups WHERE id = $1")
            .bind(group.get())
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        tx.commit().await?;
        Ok(removed == 1)
    }

    async fn account_groups(&self, account: AccountId) -> Result<Vec<GroupName>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT g.name FROM groups g JOIN group_members m ON m.group_id = g.id WHERE m.account_id = $1 ORDER BY g.name",
        )
        .bind(account.get())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(names.into_iter().map(GroupName::from_stored).collect())
    }
}
