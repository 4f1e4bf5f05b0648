//! `guichet member import FILE.csv [--invite]`: bulk creation with a progress bar, a
//! summary, and a report of the rejected rows; the valid ones are kept.

use std::path::Path;

use anyhow::{Context as _, bail};
use guichet_core::account::Role;
use guichet_core::audit::{Actor, RequestContext};
use guichet_core::groups::GroupName;
use guichet_core::members::AddMember;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::Application;

/// A row that was not imported.
struct Rejected {
    line: u64,
    reason: String,
}

/// Imports; exits with status 2 (through the error) when some rows were rejected.
pub async fn run(app: &Application, file: &Path, invite: bool) -> anyhow::Result<()> {
    let text = std::fs::read(file).with_context(|| format!("could not read {}", file.display()))?;
    let rows = read_rows(&text).map_err(|line| anyhow::anyhow!("{}: line {line} is not valid CSV", file.display()))?;
    if rows.is_empty() {
        bail!("{}: no row to import (columns: {COLUMNS})", file.display());
    }
    // A misspelt group rejects its row before the account is made, rather than making
    // the group or dropping the name.
    let known: Vec<String> = app.state.groups.list().await?.into_iter().map(|g| g.name.to_string()).collect();
    let bar = ProgressBar::new(u64::try_from(rows.len()).unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut imported = 0_u64;
    let mut rejected = Vec::new();
    for Row { line, fields } in rows {
        let outcome = match fields {
            Err(reason) => Err(reason),
            Ok(fields) => add(app, fields, &known, invite).await,
        };
        match outcome {
            Ok(()) => imported += 1,
            Err(reason) => rejected.push(Rejected { line, reason }),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if invite && imported > 0 {
        app.state.postman.deliver_due().await?;
    }
    println!(
        "imported {imported} account(s), rejected {} row(s){}",
        rejected.len(),
        if invite { ", invitations sent" } else { "" }
    );
    for row in &rejected {
        println!("line {}: {}", row.line, row.reason);
    }
    if !rejected.is_empty() {
        return Err(anyhow::anyhow!("{} row(s) rejected (listed above); the others were imported", rejected.len())
            .context(PartialImport));
    }
    Ok(())
}

/// Creates one row's account and puts it in its groups.
async fn add(app: &Application, fields: Fields, known: &[String], invite: bool) -> Result<(), String> {
    let Fields { identifier, email, name, role, groups } = fields;
    let known_group = |g: &String| GroupName::parse(g).is_ok_and(|name| known.iter().any(|k| k == name.as_str()));
    if let Some(unknown) = groups.iter().find(|g| !known_group(g)) {
        return Err(format!("no group is named {unknown:?} (guichet group list shows them)"));
    }
    let request = AddMember { identifier, email, name, role, password: None, invite };
    let account =
        app.state.members.add(request, Actor::Operator, RequestContext::default()).await.map_err(|error| {
            let source = std::error::Error::source(&error).map(|s| format!(": {s}")).unwrap_or_default();
            format!("{error}{source}")
        })?;
    for group in &groups {
        let joined = app.state.groups.join(account.id, group, Actor::Operator, &RequestContext::default()).await;
        joined.map_err(|error| format!("account created, but not added to {group:?}: {error}"))?;
    }
    Ok(())
}

/// The columns, in order, as the messages name them.
const COLUMNS: &str = "identifier,email,name[,role[,groups]]";

/// A row of the file, with its line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Its line (1 for the first).
    pub line: u64,
    /// Its fields, or why the row cannot be one.
    pub fields: Result<Fields, String>,
}

/// What a good row says, as typed (the core parses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Identifier.
    pub identifier: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role (`member` when the column is absent or empty).
    pub role: Role,
    /// Groups to join (names separated by `|`; none when the column is absent).
    pub groups: Vec<String>,
}

/// Reads a CSV file's rows (`identifier,email,name[,role[,groups]]`, an optional header line,
/// blank lines skipped). `Err(line)` when a line is not CSV at all.
pub fn read_rows(text: &[u8]) -> Result<Vec<Row>, u64> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(text);
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        let record = record.map_err(|_| line)?;
        let is_header = line == 1 && record.get(0).is_some_and(|h| h.eq_ignore_ascii_case("identifier"));
        if is_header || record.iter().all(str::is_empty) {
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        let fields = if (3..=5).contains(&record.len()) {
            let role = if field(3).is_empty() { Ok(Role::Member) } else { Role::parse(&field(3)) };
            let groups = field(4).split('|').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect();
            role.map(|role| Fields { identifier: field(0), email: field(1), name: field(2), role, groups })
                .map_err(|error| error.to_string())
        } else {
            Err(format!("expected 3 to 5 columns ({COLUMNS}), found {}", record.len()))
        };
        rows.push(Row { line, fields });
    }
    Ok(rows)
}

/// Marks an import that kept some rows and rejected others: `main` exits with 2.
#[derive(Debug)]
pub struct PartialImport;

impl std::fmt::Display for PartialImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("partial import")
    }
}
