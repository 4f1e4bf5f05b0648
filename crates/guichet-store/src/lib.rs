//! guichet's storage: one implementation of the `guichet_core::ports` contract for both
//! SQLite and PostgreSQL.
//!
//! The queries are written once, in the SQL both databases speak (`$1` placeholders,
//! `RETURNING`, `ON CONFLICT`), and run through sqlx's `Any` driver. Times are stored as
//! Unix milliseconds written by the application's clock, never the database's, so a
//! test clock moves everything. Each backend keeps its own migrations folder.

mod accounts;
mod audit;
mod database_url;
mod desk;
mod devices;
mod groups;
mod import;
mod keys;
mod oidc;
mod outbox;
mod passkeys;
mod privacy;
mod recovery;
mod second_factors;
mod sessions;
#[cfg(feature = "testing")]
pub mod testing;
mod throttle;
mod tls;
mod upstream;
mod work;

use std::str::FromStr as _;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context as _;
use guichet_core::Timestamp;
use guichet_core::ports::{Health, Schema, StoreError};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor as _};

pub use database_url::{Backend, DatabaseUrl};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The channel the change counter's triggers notify (migration 0009).
const GATE_CHANNEL: &str = "guichet_gate";

/// PostgreSQL's announcements of changes to what the gate caches (`LISTEN`), on a
/// connection of its own, outside the pool.
pub struct AccessChanges {
    connect: Arc<str>,
    /// Kept alive while listening through it.
    _relay: Option<Arc<tls::Relay>>,
    listener: Option<sqlx::postgres::PgListener>,
}

impl std::fmt::Debug for AccessChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessChanges").field("listening", &self.listener.is_some()).finish_non_exhaustive()
    }
}

impl AccessChanges {
    /// Waits until something may have changed: a notification came, or the listening
    /// connection was (re)opened, after which what happened while nobody listened is
    /// unknown (the caller forgets everything then). `Err` when the database cannot be
    /// reached: the caller falls back to reading the change counter, and calls again.
    pub async fn changed(&mut self) -> Result<(), StoreError> {
        let Some(listener) = &mut self.listener else {
            let mut listener = sqlx::postgres::PgListener::connect(&self.connect).await.map_err(backend)?;
            listener.listen(GATE_CHANNEL).await.map_err(backend)?;
            // Listening from now on: whatever came before is the caller's to forget.
            self.listener = Some(listener);
            return Ok(());
        };
        match listener.try_recv().await {
            Ok(Some(_)) => Ok(()),
            // The connection dropped: reopened (and listening again) at the next call.
            Ok(None) => {
                self.listener = None;
                Ok(())
            }
            Err(error) => {
                self.listener = None;
                Err(backend(error))
            }
        }
    }
}

/// The database, as guichet's store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// How to open a connection of one's own (PostgreSQL's notifications). Never logged.
    connect: Arc<str>,
    /// The TLS connections of guichet's own, when the URL pins a CA (`sslrootcert`).
    relay: Option<Arc<tls::Relay>>,
    /// Told after each commit that queued mail.
    mail_queued: Arc<tokio::sync::Notify>,
}

impl SqlStore {
    /// Checks what can be checked of a URL without connecting: its options (`sslmode`…)
    /// and the `sslrootcert` file.
    pub fn check_url(url: &DatabaseUrl) -> anyhow::Result<()> {
        if url.backend() == Backend::Postgres {
            sqlx::postgres::PgConnectOptions::from_str(url.connect_string().as_str())
                .map_err(|e| anyhow::anyhow!("GUICHET_DATABASE_URL {url}: {e}"))?;
            tls::PinnedCa::from_url(&url.connect_string()).map_err(|e| anyhow::anyhow!("GUICHET_DATABASE_URL: {e}"))?;
        }
        Ok(())
    }

    /// Connects (creating the SQLite file on first run) without migrating.
    pub async fn connect(url: &DatabaseUrl) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = url.backend();
        if backend == Backend::Sqlite {
            url.create_sqlite_parent_dir()?;
        }
        let pin = match backend {
            Backend::Postgres => tls::PinnedCa::from_url(&url.connect_string())?.map(Arc::new),
            Backend::Sqlite => None,
        };
        // With a pinned CA, sqlx speaks to guichet's relay, which makes the TLS
        // connections itself (see `tls`).
        let relay = match &pin {
            Some(pin) => Some(Arc::new(tls::Relay::start(&url.connect_string(), Arc::clone(pin))?)),
            None => None,
        };
        let connect: Arc<str> = match &relay {
            Some(relay) => Arc::from(relay.url()),
            None => Arc::from(url.connect_string().as_str()),
        };
        let options = AnyConnectOptions::from_str(&connect).with_context(|| format!("invalid database URL {url}"))?;
        if backend == Backend::Postgres {
            Self::check_url(url)?;
            // At once, in one clear line naming what refused, rather than as a pool
            // that times out after ten seconds.
            if let Some(pin) = &pin {
                pin.check().await.map_err(|e| anyhow::anyhow!("could not connect to the database {url}: {e}"))?;
            }
            use sqlx::Connection as _;
            let first =
                tokio::time::timeout(Duration::from_secs(10), sqlx::AnyConnection::connect_with(&options)).await;
            match first {
                Ok(Ok(connection)) => {
                    let _ = connection.close().await;
                }
                Ok(Err(error)) => anyhow::bail!("could not connect to the database {url}: {error}"),
                Err(_) => anyhow::bail!("could not connect to the database {url}: no answer within 10 seconds"),
            }
        }
        let pool = AnyPoolOptions::new()
            // SQLite writes one at a time whatever the pool size; a few connections let
            // reads go on beside the writer (WAL).
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_release(|connection, _| Box::pin(async move { Ok(ended_cleanly(connection).await) }))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                        ] {
                            connection.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("could not connect to the database {url}"))?;
        Ok(Self { pool, backend, connect, relay, mail_queued: Arc::new(tokio::sync::Notify::new()) })
    }

    /// What may change what the forward-auth gate caches, as PostgreSQL announces it;
    /// `None` on SQLite, which announces nothing (read the change counter instead).
    pub fn access_changes(&self) -> Option<AccessChanges> {
        (self.backend == Backend::Postgres).then(|| AccessChanges {
            connect: Arc::clone(&self.connect),
            _relay: self.relay.clone(),
            listener: None,
        })
    }

    /// Connects and applies pending migrations.
    pub async fn connect_and_migrate(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        // Said plainly, rather than as the driver's "previously applied but missing".
        if let Ok(Schema::Ahead) = Health::schema(self).await {
            anyhow::bail!(
                "this database is newer than this binary: a newer guichet migrated it; upgrade guichet \
                 (or restore the backup taken before the upgrade)"
            );
        }
        migrator.run(&self.pool).await.context("could not apply the database migrations")
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(backend)
    }

    /// Writes a consistent copy of a SQLite database to `path` while others go on using
    /// it (`VACUUM INTO`: one read transaction, a compact file guichet starts on as it is);
    /// refuses an existing file. PostgreSQL is backed up with its own tools (`pg_dump`).
    pub async fn backup_to(&self, path: &std::path::Path) -> anyhow::Result<()> {
        if self.backend == Backend::Postgres {
            anyhow::bail!(
                "guichet backup copies SQLite databases; back up PostgreSQL with its own tools: \
                 pg_dump --format=custom --file={} \"$GUICHET_DATABASE_URL\"",
                path.display()
            );
        }
        if path.exists() {
            anyhow::bail!("{} exists already: guichet backup never overwrites a file", path.display());
        }
        let target = path.to_str().context("the backup path is not valid UTF-8")?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await
            .with_context(|| format!("could not write the backup {}", path.display()))?;
        Ok(())
    }

    /// Whether the connection to PostgreSQL is encrypted (TLS); `false` for SQLite.
    pub async fn encrypted(&self) -> Result<bool, StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(false);
        }
        let ssl: Option<bool> = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(ssl.unwrap_or(false))
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait::async_trait]
impl Health for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(backend)
    }

    async fn write_probe(&self, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE readiness SET checked_at = $1 WHERE id = 1")
            .bind(millis(now))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    async fn schema(&self) -> Result<Schema, StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        Ok(if applied.iter().any(|v| !known.contains(v)) {
            Schema::Ahead
        } else if known.iter().any(|v| !applied.contains(v)) {
            Schema::Behind
        } else {
            Schema::Current
        })
    }
}

/// Reads an enum column, refusing a value the code does not know (a corrupt row, or a
/// database written by a newer guichet) instead of guessing.
fn column<T>(stored: &str, parse: impl Fn(&str) -> Option<T>, column: &str) -> Result<T, StoreError> {
    parse(stored).ok_or_else(|| StoreError::Backend(format!("unknown value {stored:?} in {column}").into()))
}

/// Wraps a database failure.
/// Whether a connection given back to the pool may serve again: no transaction left
/// open, neither in the database nor in the driver's count. A transaction whose `COMMIT`
/// failed (SQLite on a full disk rolls it back itself) leaves the driver counting one
/// that SQLite no longer has; the driver's next "transaction" then becomes a savepoint
/// inside a real transaction that never commits, holding the write lock, its writes seen
/// only by itself and lost at the next restart. Such a connection is closed instead
/// (closing rolls back whatever is open). A clean one costs nothing to check: the driver
/// counts no transaction.
async fn ended_cleanly(connection: &mut sqlx::AnyConnection) -> bool {
    use sqlx::Connection as _;
    if !connection.is_in_transaction() {
        return true;
    }
    // A transaction dropped without commit leaves its rollback queued: run it, then see
    // whether both sides agree that nothing is open. `BEGIN` fails inside a transaction.
    let probe = async {
        connection.execute("BEGIN").await?;
        connection.execute("ROLLBACK").await?;
        Ok::<_, sqlx::Error>(())
    };
    let clean = probe.await.is_ok() && !connection.is_in_transaction();
    if !clean {
        tracing::warn!("a database connection was left inside a transaction: closed instead of reused");
    }
    clean
}

/// A driver's error as the core sees it: [`StoreError::Unavailable`] when the database
/// cannot take anything now (its disk is full, a lock outlasted the wait, the connection
/// is gone or cannot be made), [`StoreError::Backend`] otherwise.
fn backend(error: sqlx::Error) -> StoreError {
    if is_unavailable(&error) { StoreError::Unavailable(Box::new(error)) } else { StoreError::Backend(Box::new(error)) }
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database) => {
            let code = database.code().unwrap_or_default();
            if database.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLite's extended codes carry the primary one in their low byte: FULL
                // (13), BUSY (5), LOCKED (6), IOERR (10), CANTOPEN (14), READONLY (8).
                let primary = code.parse::<i32>().ok().map(|c| c & 0xff);
                matches!(primary, Some(5 | 6 | 8 | 10 | 13 | 14))
            } else {
                // PostgreSQL's SQLSTATE classes: 08 connection, 53 insufficient
                // resources, 57P operator intervention, 25006 read-only transaction.
                code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") || code == "25006"
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

fn millis(at: Timestamp) -> i64 {
    at.as_millisecond()
}

fn timestamp(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Backend(Box::new(e)))
}

fn optional_timestamp(ms: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    ms.map(timestamp).transpose()
}
