//! `guichet member import FILE.csv [--invite]`: bulk creation with a progress bar, a
//! summary, and a report of the rejected rows; the valid ones are kept.

use std::path::Path;

use anyhow::{Context as _, bail};
use guichet_core::account::Role;
use guichet_core::audit::{Actor, RequestContext};
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
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(text.as_slice());
    let records: Vec<(u64, csv::StringRecord)> = reader
        .records()
        .enumerate()
        .map(|(i, r)| {
            r.map(|r| (u64::try_from(i).unwrap_or(0) + 1, r))
                .with_context(|| format!("{}: line {} is not valid CSV", file.display(), i + 1))
        })
        .collect::<Result<_, _>>()?;
    let rows: Vec<_> = records
        .into_iter()
        .filter(|(line, r)| !(*line == 1 && r.get(0).is_some_and(|h| h.eq_ignore_ascii_case("identifier"))))
        .filter(|(_, r)| r.iter().any(|f| !f.is_empty()))
        .collect();
    if rows.is_empty() {
        bail!("{}: no row to import (columns: identifier,email,name[,role])", file.display());
    }
    let bar = ProgressBar::new(u64::try_from(rows.len()).unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut imported = 0_u64;
    let mut rejected = Vec::new();
    for (line, record) in rows {
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        let outcome = if !(3..=4).contains(&record.len()) {
            Err(format!("expected 3 or 4 columns (identifier,email,name[,role]), found {}", record.len()))
        } else {
            match Role::parse(if field(3).is_empty() { "member" } else { record.get(3).unwrap_or("member") }) {
                Err(error) => Err(error.to_string()),
                Ok(role) => {
                    let request = AddMember {
                        identifier: field(0),
                        email: field(1),
                        name: field(2),
                        role,
                        password: None,
                        invite,
                    };
                    app.state
                        .members
                        .add(request, Actor::Operator, RequestContext::default())
                        .await
                        .map(|_| ())
                        .map_err(|error| {
                            let source =
                                std::error::Error::source(&error).map(|s| format!(": {s}")).unwrap_or_default();
                            format!("{error}{source}")
                        })
                }
            }
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

/// Marks an import that kept some rows and rejected others: `main` exits with 2.
#[derive(Debug)]
pub struct PartialImport;

impl std::fmt::Display for PartialImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("partial import")
    }
}
