//! Fresh databases for tests: a temporary SQLite file, or a new database on the
//! PostgreSQL server named by `GUICHET_TEST_POSTGRES_URL`, dropped afterwards.
//!
//! Without that variable the PostgreSQL tests say they skipped; under CI (`CI` set)
//! its absence is an error, so a CI run cannot pass without having run them.

/// Says a test was skipped, on the real standard error: `eprintln!` is captured by
/// the test harness and would hide it.
macro_rules! say_skipped {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use anyhow::Context as _;
use sqlx::{AssertSqlSafe, Connection as _, Executor as _};

use crate::{DatabaseUrl, SqlStore};

/// The variable naming the PostgreSQL server tests may create databases on.
pub const POSTGRES_URL_VARIABLE: &str = "GUICHET_TEST_POSTGRES_URL";

/// A database that lives as long as the test.
#[derive(Debug)]
pub struct TestDatabase {
    url: DatabaseUrl,
    _cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Directory(#[expect(dead_code, reason = "held for its Drop")] tempfile::TempDir),
    Postgres { server: String, name: String },
}

impl TestDatabase {
    /// A new SQLite file in a temporary folder.
    pub fn sqlite() -> Self {
        #[expect(clippy::expect_used, reason = "a test cannot go on without its folder")]
        let dir = tempfile::tempdir().expect("a temporary folder");
        let url = DatabaseUrl::parse(&format!("sqlite://{}/guichet.db", dir.path().display()))
            .unwrap_or_else(|e| panic!("temporary SQLite URL: {e}"));
        Self { url, _cleanup: Cleanup::Directory(dir) }
    }

    /// A new database on the test PostgreSQL server, or `None` (after saying so) when
    /// none is configured.
    pub async fn postgres() -> Option<Self> {
        let Ok(server) = std::env::var(POSTGRES_URL_VARIABLE) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{POSTGRES_URL_VARIABLE} must be set under CI: the PostgreSQL tests would not run"
            );
            say_skipped!(
                "SKIPPED (PostgreSQL): set {POSTGRES_URL_VARIABLE}=postgres://postgres@127.0.0.1:5432/postgres to run it"
            );
            return None;
        };
        let name = format!("guichet_test_{}", random_suffix());
        match create_postgres_database(&server, &name).await {
            Ok(url) => Some(Self { url, _cleanup: Cleanup::Postgres { server, name } }),
            Err(error) => {
                panic!("could not create a test database on {POSTGRES_URL_VARIABLE}: {error:#}")
            }
        }
    }

    /// Runs one statement of SQL on the database, as an operator or another version of
    /// guichet would (for tests of what guichet does about it).
    pub async fn execute(store: &SqlStore, sql: &str) -> anyhow::Result<u64> {
        use sqlx::Executor as _;
        Ok(store.pool.execute(sqlx::AssertSqlSafe(sql.to_owned())).await?.rows_affected())
    }

    /// One number read with SQL (a count).
    pub async fn scalar(store: &SqlStore, sql: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&store.pool).await?)
    }

    /// Every table of the schema, the migrations' own bookkeeping aside.
    pub async fn tables(store: &SqlStore) -> anyhow::Result<Vec<String>> {
        let sql = match store.backend {
            crate::Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                 AND name NOT LIKE '_sqlx%' ORDER BY name"
            }
            crate::Backend::Postgres => {
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = 'public' \
                 AND table_type = 'BASE TABLE' AND table_name NOT LIKE '_sqlx%' ORDER BY table_name"
            }
        };
        Ok(sqlx::query_scalar(sql).fetch_all(&store.pool).await?)
    }

    /// The columns that refer to an account, read from the schema: each foreign key to
    /// `accounts`, and each column named `account_id` (some are kept without a key, to
    /// outlive the account for a while), as `(table, column)`.
    pub async fn account_references(store: &SqlStore) -> anyhow::Result<Vec<(String, String)>> {
        use sqlx::Row as _;
        let sql = match store.backend {
            crate::Backend::Sqlite => {
                "SELECT m.name AS t, p.\"from\" AS c FROM sqlite_master m, pragma_foreign_key_list(m.name) p \
                 WHERE m.type = 'table' AND p.\"table\" = 'accounts' \
                 UNION SELECT m.name AS t, i.name AS c FROM sqlite_master m, pragma_table_info(m.name) i \
                 WHERE m.type = 'table' AND i.name = 'account_id' ORDER BY t, c"
            }
            crate::Backend::Postgres => {
                "SELECT CAST(k.table_name AS TEXT) AS t, CAST(k.column_name AS TEXT) AS c \
                 FROM information_schema.referential_constraints r \
                 JOIN information_schema.key_column_usage k ON k.constraint_name = r.constraint_name \
                 JOIN information_schema.constraint_column_usage u ON u.constraint_name = r.unique_constraint_name \
                 WHERE u.table_name = 'accounts' AND k.table_schema = 'public' \
                 UNION SELECT CAST(table_name AS TEXT) AS t, CAST(column_name AS TEXT) AS c \
                 FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'account_id' \
                 ORDER BY t, c"
            }
        };
        let rows = sqlx::query(sql).fetch_all(&store.pool).await?;
        rows.iter().map(|row| Ok((row.try_get::<String, _>("t")?, row.try_get::<String, _>("c")?))).collect()
    }

    /// Every value of every row of `table` (a name from [`TestDatabase::tables`]), as
    /// text: what a scan for a person's data reads.
    pub async fn dump(store: &SqlStore, table: &str) -> anyhow::Result<Vec<String>> {
        use sqlx::Row as _;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}"))).fetch_all(&store.pool).await?;
        let mut values = Vec::new();
        for row in &rows {
            for index in 0..row.len() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(index) {
                    values.push(text);
                } else if let Ok(Some(number)) = row.try_get::<Option<i64>, _>(index) {
                    values.push(number.to_string());
                }
            }
        }
        Ok(values)
    }

    /// Where it is.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A migrated store on it.
    pub async fn store(&self) -> SqlStore {
        SqlStore::connect_and_migrate(&self.url).await.unwrap_or_else(|e| panic!("test database: {e:#}"))
    }
}

async fn create_postgres_database(server: &str, name: &str) -> anyhow::Result<DatabaseUrl> {
    let mut admin = sqlx::PgConnection::connect(server).await.context("connecting")?;
    // The name is ours: a fixed prefix and random hex.
    admin.execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await.context("CREATE DATABASE")?;
    let (base, query) = server.split_once('?').map_or((server, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    DatabaseUrl::parse(&url).context("test database URL")
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Self::Postgres { server, name } = self else {
            return;
        };
        let (server, name) = (server.clone(), name.clone());
        // Drop runs outside async: a short-lived thread with its own runtime does the work.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&server).await {
                    let _ =
                        admin.execute(AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))).await;
                }
            });
        })
        .join();
    }
}

/// A short random suffix for names (test databases).
fn random_suffix() -> String {
    guichet_core::token::hex(&guichet_core::token::random_bytes::<6>())
}
