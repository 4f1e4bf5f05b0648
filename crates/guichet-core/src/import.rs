//! Bringing the old site's members over (`guichet member import`): each row is checked
//! here, then stored a batch at a time, one transaction per batch (see
//! [`crate::ports::AccountStore::import_accounts`]), so that a hundred thousand rows go
//! in within seconds and memory stays bounded.

use std::sync::Arc;

use crate::account::{DisplayName, EmailAddress, Identifier, Role};
use crate::clock::Clock;
use crate::groups::GroupName;
use crate::legacy::accept_imported;
use crate::password::PasswordHash;
use crate::ports::{AccountStore, Ports, StoreError};

/// A row as the file says it, before any check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypedRow {
    /// Identifier.
    pub identifier: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role (empty: `member`).
    pub role: String,
    /// Group names separated by `|`; `None` when the file has no such column.
    pub groups: Option<String>,
    /// A password hash from the old site; empty or `None`: no password.
    pub password_hash: Option<String>,
}

/// A checked row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Identifier.
    pub identifier: Identifier,
    /// Email address.
    pub email: EmailAddress,
    /// Display name.
    pub name: DisplayName,
    /// Role of a new account (an update leaves the role alone).
    pub role: Role,
    /// Groups; `None` when the file says nothing of them (an update leaves them alone).
    pub groups: Option<Vec<GroupName>>,
    /// Argon2 or a legacy hash guichet can check; `None`: no password.
    pub password_hash: Option<PasswordHash>,
}

/// How the import treats what it finds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Mail new accounts without a password an invitation.
    pub invite: bool,
    /// Update the name, email and groups of identifiers that exist (otherwise: rejected).
    pub update: bool,
    /// With `update`, also replace their password by the row's hash, when it has one.
    pub update_passwords: bool,
    /// Create the groups a row names that do not exist (otherwise: the row is rejected).
    pub create_groups: bool,
}

/// What became of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// A new account.
    Created,
    /// An existing account, changed.
    Updated,
    /// An existing account, already as the row says.
    Unchanged,
    /// Refused, and why (in English, for the operator).
    Rejected(String),
}

/// Checks a typed row.
pub fn check_row(row: &TypedRow) -> Result<ImportRow, String> {
    let identifier = Identifier::parse(&row.identifier).map_err(|e| format!("identifier: {e}"))?;
    let email = EmailAddress::parse(&row.email).map_err(|e| format!("email: {e}"))?;
    let name = DisplayName::parse(&row.name).map_err(|e| format!("name: {e}"))?;
    let role =
        if row.role.trim().is_empty() { Role::Member } else { Role::parse(&row.role).map_err(|e| e.to_string())? };
    let groups = row
        .groups
        .as_deref()
        .map(|raw| {
            raw.split('|')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(|g| GroupName::parse(g).map_err(|_| format!("groups: {g:?} is not a group name")))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let password_hash = match row.password_hash.as_deref().map(str::trim) {
        Some(raw) if !raw.is_empty() => Some(accept_imported(raw).map_err(|e| format!("password_hash: {e}"))?),
        _ => None,
    };
    Ok(ImportRow { identifier, email, name, role, groups, password_hash })
}

/// The import use case.
#[derive(Debug, Clone)]
pub struct Importer {
    accounts: Arc<dyn AccountStore>,
    clock: Arc<dyn Clock>,
}

impl Importer {
    /// Wires it.
    pub fn new(ports: &Ports, clock: Arc<dyn Clock>) -> Self {
        Self { accounts: Arc::clone(&ports.accounts), clock }
    }

    /// Stores a batch of checked rows in one transaction; one outcome per row, in order.
    pub async fn import(&self, rows: &[ImportRow], options: ImportOptions) -> Result<Vec<ImportOutcome>, StoreError> {
        self.accounts.import_accounts(rows, options, self.clock.now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(identifier: &str, email: &str) -> TypedRow {
        TypedRow { identifier: identifier.into(), email: email.into(), ..TypedRow::default() }
    }

    #[test]
    fn rows_are_checked_field_by_field() {
        assert!(check_row(&typed("marie", "marie@chu.example.fr")).is_ok());
        assert!(
            check_row(&typed("ma rie", "marie@chu.example.fr")).err().unwrap_or_default().starts_with("identifier")
        );
        assert!(check_row(&typed("marie", "pas une adresse")).err().unwrap_or_default().starts_with("email"));
        let with_groups =
            TypedRow { groups: Some("bureau | adherents||".into()), ..typed("marie", "m@chu.example.fr") };
        assert_eq!(check_row(&with_groups).ok().and_then(|r| r.groups).map(|g| g.len()), Some(2));
        let bad_hash = TypedRow {
            password_hash: Some("5f4dcc3b5aa765d61d8327deb882cf99".into()),
            ..typed("marie", "m@chu.example.fr")
        };
        assert!(check_row(&bad_hash).err().unwrap_or_default().starts_with("password_hash: unknown"));
        let phpass = TypedRow {
            password_hash: Some("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0".into()),
            ..typed("marie", "m@chu.example.fr")
        };
        assert!(check_row(&phpass).ok().and_then(|r| r.password_hash).is_some());
    }
}
