//! The database URL: which backend it names, and a `Debug`/`Display` that never shows
//! its password.

use anyhow::Context as _;

/// The two databases guichet runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file, the embedded default.
    Sqlite,
    /// Shared by several instances.
    Postgres,
}

/// A parsed `sqlite://PATH` or `postgres://…` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    backend: Backend,
}

/// What was wrong with a database URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected sqlite://PATH or postgres://USER@HOST/DATABASE")]
pub struct DatabaseUrlError;

impl DatabaseUrl {
    /// Parses a URL.
    pub fn parse(raw: &str) -> Result<Self, DatabaseUrlError> {
        let raw = raw.trim();
        let backend = if raw.starts_with("sqlite:") {
            Backend::Sqlite
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(DatabaseUrlError);
        };
        if backend == Backend::Sqlite && Self::sqlite_path_of(raw).is_empty() {
            return Err(DatabaseUrlError);
        }
        Ok(Self { raw: raw.to_owned(), backend })
    }

    /// The URL as written, secrets included: for handing to another process (a test
    /// running a command on the same database), never for display.
    pub fn expose_secret(&self) -> &str {
        &self.raw
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its secrets, for the driver only.
    pub(crate) fn connect_string(&self) -> String {
        match self.backend {
            Backend::Sqlite if !self.raw.contains("mode=") => {
                let separator = if self.raw.contains('?') { '&' } else { '?' };
                format!("{}{separator}mode=rwc", self.raw)
            }
            _ => self.raw.clone(),
        }
    }

    fn sqlite_path_of(raw: &str) -> &str {
        let rest = raw.trim_start_matches("sqlite:").trim_start_matches("//");
        rest.split('?').next().unwrap_or_default()
    }

    /// Creates the folder of a SQLite file when missing.
    pub(crate) fn create_sqlite_parent_dir(&self) -> anyhow::Result<()> {
        let path = std::path::Path::new(Self::sqlite_path_of(&self.raw));
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => {
                std::fs::create_dir_all(dir).with_context(|| format!("could not create the folder {}", dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        guichet_core::redact::url_password(&self.raw)
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> DatabaseUrl {
        DatabaseUrl::parse(raw).expect("valid URL")
    }

    #[test]
    fn passwords_never_show() {
        let u = url("postgres://guichet:s3cr3t@db.example:5432/guichet?sslmode=require");
        assert_eq!(u.to_string(), "postgres://guichet:***@db.example:5432/guichet?sslmode=require");
        assert!(!format!("{u:?}").contains("s3cr3t"));
        let q = url("postgres://db/guichet?user=g&password=s3cr3t");
        assert!(!q.to_string().contains("s3cr3t"));
        assert!(!url("postgres://p%40ss:x@db/g").to_string().contains(":x@"));
    }

    #[test]
    fn users_without_password_show_as_they_are() {
        assert_eq!(url("postgres://postgres@127.0.0.1/test").to_string(), "postgres://postgres@127.0.0.1/test");
    }

    #[test]
    fn backends_are_recognised() {
        assert_eq!(url("sqlite://guichet.db").backend(), Backend::Sqlite);
        assert_eq!(url("sqlite:data/guichet.db").backend(), Backend::Sqlite);
        assert_eq!(url("postgresql://x@y/z").backend(), Backend::Postgres);
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn sqlite_files_are_created_on_first_run() {
        assert_eq!(url("sqlite://guichet.db").connect_string(), "sqlite://guichet.db?mode=rwc");
        assert_eq!(url("sqlite://g.db?mode=ro").connect_string(), "sqlite://g.db?mode=ro");
    }

    proptest::proptest! {
        #[test]
        fn any_url_is_parsed_without_panic(raw in proptest::prelude::any::<String>()) {
            if let Ok(parsed) = DatabaseUrl::parse(&raw) {
                let _ = (parsed.connect_string(), parsed.redacted());
            }
        }

        #[test]
        fn a_password_never_shows_however_it_is_written(
            user in "[a-z]{1,8}",
            password in "[A-Za-z0-9!$&'()*+,;=%~._-]{4,20}",
            host in "[a-z]{1,10}",
        ) {
            let shown = url(&format!("postgres://{user}:{password}@{host}/guichet")).to_string();
            proptest::prop_assert!(!shown.contains(&format!(":{password}@")), "{}", shown);
            let query = url(&format!("postgres://{host}/guichet?user={user}&password={password}")).to_string();
            proptest::prop_assert!(!query.contains(&format!("password={password}")), "{}", query);
        }
    }
}
