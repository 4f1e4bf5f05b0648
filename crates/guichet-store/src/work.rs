//! A transaction, as every write of the store opens it: what it wrote commits together
//! or not at all, and a commit that queued mail wakes the postman at once (no handler
//! has to remember to).

use std::sync::Arc;

use sqlx::{Any, AnyConnection, Transaction};
use tokio::sync::Notify;

use guichet_core::ports::StoreError;

use crate::{SqlStore, backend};

/// An open transaction of the store's.
pub(crate) struct SqlWork {
    tx: Transaction<'static, Any>,
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

impl SqlStore {
    /// Opens a transaction.
    pub(crate) async fn begin_work(&self) -> Result<SqlWork, StoreError> {
        let tx = self.pool.begin().await.map_err(backend)?;
        Ok(SqlWork { tx, queued_mail: false, mail_queued: Arc::clone(&self.mail_queued) })
    }
}
