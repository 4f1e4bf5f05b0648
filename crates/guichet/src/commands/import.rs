//! `guichet member import FILE.csv [--invite] [--update [--update-passwords]] [--create-groups]`:
//! the old site's members, with their passwords, from a CSV file as French Excel saves it.
//!
//! The file is read as it comes: `;` or `,` (whichever the first line uses), UTF-8 with or
//! without a BOM, or Windows-1252 (Excel's default in France), CRLF or LF. Columns are
//! found by the header line's names (`identifier`, `email`, `name`, `role`, `groups`,
//! `password_hash`, `given_name`, `family_name`, `rpps`), or else taken in that order (the
//! first six). A bad row (a bad field, a field in a
//! bad encoding, a duplicate) is reported with its line, and the others are kept. Rows go
//! to the database a thousand at a time, one transaction each, with a progress bar.

use std::path::Path;

use anyhow::{Context as _, bail};
use encoding_rs::WINDOWS_1252;
use guichet_core::import::{ImportOptions, ImportOutcome, ImportRow, Rejection, TypedRow, check_row};
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::Application;

/// Rows per transaction.
const BATCH: usize = 1000;

/// The columns, in their default order.
const COLUMNS: [&str; 9] =
    ["identifier", "email", "name", "role", "groups", "password_hash", "given_name", "family_name", "rpps"];
/// How many columns a file without a header line may have, at most.
const UNNAMED_COLUMNS: usize = 6;

/// A row that was not imported.
#[derive(Debug)]
struct Rejected {
    line: u64,
    reason: String,
}

/// How many rows ended how.
#[derive(Debug, Default)]
struct Tally {
    created: u64,
    updated: u64,
    unchanged: u64,
    rejected: Vec<Rejected>,
}

/// Imports; exits with status 2 (through the error) when some rows were rejected.
pub async fn run(app: &Application, file: &Path, options: ImportOptions) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("could not read {}", file.display()))?;
    let text = CsvText::read(&bytes);
    let mut rows = text.rows().with_context(|| format!("{}: not a CSV file", file.display()))?;
    let total = bytes.iter().filter(|b| **b == b'\n').count().max(1);
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut tally = Tally::default();
    let mut batch: Vec<(u64, ImportRow)> = Vec::with_capacity(BATCH);
    let mut seen = 0_u64;
    // Within one file, an identifier or address given twice is a duplicate, whatever the
    // database holds.
    let mut identifiers = std::collections::HashSet::new();
    let mut emails = std::collections::HashSet::new();
    while let Some((line, row)) = rows.next_row() {
        seen += 1;
        match row.and_then(|typed| check_row(&typed)) {
            Err(reason) => tally.rejected.push(Rejected { line, reason }),
            Ok(row) => {
                if !identifiers.insert(row.identifier.as_str().to_owned()) {
                    let reason = "the identifier appears on an earlier line of the file".to_owned();
                    tally.rejected.push(Rejected { line, reason });
                } else if !emails.insert(row.email.as_str().to_owned()) {
                    let reason = "the email address appears on an earlier line of the file".to_owned();
                    tally.rejected.push(Rejected { line, reason });
                } else {
                    batch.push((line, row));
                }
            }
        }
        if batch.len() >= BATCH {
            store(app, &mut batch, options, &mut tally).await?;
            bar.set_position(seen);
        }
    }
    store(app, &mut batch, options, &mut tally).await?;
    bar.finish_and_clear();
    if seen == 0 {
        bail!("{}: no row to import (columns: {})", file.display(), COLUMNS.join(","));
    }
    if options.invite && tally.created > 0 {
        app.state.postman.deliver_due().await?;
    }
    // Rows rejected on reading and rows rejected by the database, in the file's order.
    tally.rejected.sort_by_key(|row| row.line);
    let Tally { created, updated, unchanged, rejected } = &tally;
    say!(
        "created {created}, updated {updated}, unchanged {unchanged}, rejected {}{}",
        rejected.len(),
        if options.invite && *created > 0 { " (invitations sent)" } else { "" }
    );
    for row in rejected {
        say!("line {}: {}", row.line, row.reason);
    }
    if !rejected.is_empty() {
        return Err(anyhow::anyhow!("{} row(s) rejected (listed above); the others were imported", rejected.len())
            .context(PartialImport));
    }
    Ok(())
}

async fn store(
    app: &Application,
    batch: &mut Vec<(u64, ImportRow)>,
    options: ImportOptions,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let rows: Vec<ImportRow> = batch.iter().map(|(_, row)| row.clone()).collect();
    let outcomes = app.importer.import(&rows, options).await.context("the database refused the import")?;
    for ((line, _), outcome) in batch.drain(..).zip(outcomes) {
        match outcome {
            ImportOutcome::Created => tally.created += 1,
            ImportOutcome::Updated => tally.updated += 1,
            ImportOutcome::Unchanged => tally.unchanged += 1,
            ImportOutcome::Rejected(why) => tally.rejected.push(Rejected { line, reason: explain(&why) }),
        }
    }
    Ok(())
}

/// Why a row was refused, for the operator.
fn explain(why: &Rejection) -> String {
    match why {
        Rejection::MissingGroup(name) => {
            format!("no group is named {:?} (--create-groups creates the missing ones)", name.as_str())
        }
        Rejection::EmailTaken => "the email address is already another account's".into(),
        Rejection::IdentifierTaken => "the identifier is already taken (--update updates existing accounts)".into(),
        Rejection::IdentifierTwice => "the identifier appears twice in the batch".into(),
        Rejection::RppsTaken => "the RPPS number is already another account's".into(),
    }
}

/// How the file's text is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 (a field that is not is rejected with its row).
    Utf8,
    /// Windows-1252, what Excel writes in France.
    Windows1252,
}

/// A CSV file's bytes, with what was found out about them.
#[derive(Debug)]
pub struct CsvText<'a> {
    bytes: &'a [u8],
    /// Its encoding.
    pub encoding: Encoding,
    /// Its delimiter.
    pub delimiter: u8,
}

impl<'a> CsvText<'a> {
    /// Looks at the bytes: a UTF-8 BOM is dropped; text that is UTF-8 wherever it is not
    /// ASCII is UTF-8 (a few broken fields then reject their rows), text with no UTF-8
    /// sequence at all but other high bytes is Windows-1252; the delimiter is `;` when the
    /// first line has more of them than of `,`.
    pub fn read(bytes: &'a [u8]) -> Self {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let encoding = if std::str::from_utf8(bytes).is_ok() || has_utf8_sequences(bytes) {
            Encoding::Utf8
        } else {
            Encoding::Windows1252
        };
        let first = bytes.split(|b| *b == b'\n').find(|l| !l.iter().all(u8::is_ascii_whitespace)).unwrap_or_default();
        let count = |d: u8| first.iter().filter(|b| **b == d).count();
        let delimiter = if count(b';') > count(b',') { b';' } else { b',' };
        Self { bytes, encoding, delimiter }
    }

    /// The rows, their columns found by the header line when there is one.
    pub fn rows(&self) -> anyhow::Result<Rows<'a>> {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.delimiter)
            .from_reader(self.bytes);
        let mut records = reader.into_byte_records().peekable();
        let mut columns: Vec<Option<usize>> = (0..COLUMNS.len()).map(Some).collect();
        let mut header_columns = None;
        if let Some(Ok(first)) = records.peek() {
            let names: Vec<String> = first
                .iter()
                .map(|f| decode(f, self.encoding).unwrap_or_default().trim().to_ascii_lowercase())
                .collect();
            if names.iter().any(|n| n == "identifier") && names.iter().any(|n| n == "email") {
                if let Some(unknown) = names.iter().find(|n| !n.is_empty() && !COLUMNS.contains(&n.as_str())) {
                    bail!("unknown column {unknown:?} in the header line (known: {})", COLUMNS.join(", "));
                }
                columns = COLUMNS.iter().map(|c| names.iter().position(|n| n == c)).collect();
                header_columns = Some(names.len());
                records.next();
            }
        }
        let header = header_columns.is_some();
        Ok(Rows {
            records: Box::new(records),
            columns,
            encoding: self.encoding,
            header,
            bytes: self.bytes,
            counted_to: 0,
            line: 1,
        })
    }
}

/// Whether the bytes hold at least one well-formed multi-byte UTF-8 sequence.
fn has_utf8_sequences(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| (0xC2..=0xF4).contains(&w[0]) && (0x80..=0xBF).contains(&w[1]))
        && bytes.split(|b| *b == b'\n').any(|line| !line.is_ascii() && std::str::from_utf8(line).is_ok())
}

fn decode(field: &[u8], encoding: Encoding) -> Result<String, ()> {
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(field).map(str::to_owned).map_err(|_| ()),
        Encoding::Windows1252 => Ok(WINDOWS_1252.decode_without_bom_handling(field).0.into_owned()),
    }
}

type Records<'a> = Box<dyn Iterator<Item = Result<csv::ByteRecord, csv::Error>> + 'a>;

/// The file's rows, one at a time.
pub struct Rows<'a> {
    records: Records<'a>,
    /// Where each of [`COLUMNS`] is, if anywhere.
    columns: Vec<Option<usize>>,
    encoding: Encoding,
    header: bool,
    /// The file, to number lines by its line ends (CR LF or LF) up to each record.
    bytes: &'a [u8],
    counted_to: usize,
    line: u64,
}

impl std::fmt::Debug for Rows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows").field("columns", &self.columns).field("line", &self.line).finish_non_exhaustive()
    }
}

impl Rows<'_> {
    /// The next non-blank row with its line number, or why it cannot be one.
    pub fn next_row(&mut self) -> Option<(u64, Result<TypedRow, String>)> {
        loop {
            let record = self.records.next()?;
            let at = match &record {
                Ok(record) => record.position().map(csv::Position::byte),
                Err(error) => error.position().map(csv::Position::byte),
            };
            let line = self.line_at(at.and_then(|b| usize::try_from(b).ok()));
            let record = match record {
                Ok(record) => record,
                Err(error) => return Some((line, Err(format!("not valid CSV: {error}")))),
            };
            if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                continue;
            }
            return Some((line, self.typed(&record)));
        }
    }

    /// The line a record starting at byte `at` is on (the reader's position may stand on
    /// the line ends before the record: they are skipped).
    fn line_at(&mut self, at: Option<usize>) -> u64 {
        let Some(mut at) = at.filter(|at| *at >= self.counted_to && *at <= self.bytes.len()) else { return self.line };
        while matches!(self.bytes.get(at), Some(b'\r' | b'\n')) {
            at += 1;
        }
        let ends = self.bytes[self.counted_to..at].iter().filter(|b| **b == b'\n').count();
        self.line += u64::try_from(ends).unwrap_or(0);
        self.counted_to = at;
        self.line
    }

    fn typed(&self, record: &csv::ByteRecord) -> Result<TypedRow, String> {
        if !self.header && !(3..=UNNAMED_COLUMNS).contains(&record.len()) {
            let columns = COLUMNS[..UNNAMED_COLUMNS].join(",");
            return Err(format!("expected 3 to {UNNAMED_COLUMNS} columns ({columns}), found {}", record.len()));
        }
        let field = |column: usize| -> Result<Option<String>, String> {
            let Some(at) = self.columns[column] else { return Ok(None) };
            match record.get(at) {
                None => Ok(self.header.then(String::new)),
                Some(bytes) => decode(bytes, self.encoding).map(|text| Some(text.trim().to_owned())).map_err(|()| {
                    format!("the {} column is not valid UTF-8 (save the file as UTF-8)", COLUMNS[column])
                }),
            }
        };
        Ok(TypedRow {
            identifier: field(0)?.unwrap_or_default(),
            email: field(1)?.unwrap_or_default(),
            name: field(2)?.unwrap_or_default(),
            role: field(3)?.unwrap_or_default(),
            groups: field(4)?,
            password_hash: field(5)?,
            given_name: field(6)?.unwrap_or_default(),
            family_name: field(7)?.unwrap_or_default(),
            rpps: field(8)?,
        })
    }
}

/// Marks an import that kept some rows and rejected others: `main` exits with 2.
#[derive(Debug)]
pub struct PartialImport;

impl std::fmt::Display for PartialImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("partial import")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Vec<(u64, Result<TypedRow, String>)> {
        let text = CsvText::read(bytes);
        let mut rows = text.rows().unwrap();
        std::iter::from_fn(|| rows.next_row()).collect()
    }

    #[test]
    fn french_excel_files_are_read_semicolons_windows_1252_and_crlf() {
        let bytes = b"identifier;email;name;password_hash\r\nh\xe9l\xe8ne;helene@chu.example.fr;H\xe9l\xe8ne B\xe9rard;$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0\r\n";
        let text = CsvText::read(bytes);
        assert_eq!((text.encoding, text.delimiter), (Encoding::Windows1252, b';'));
        let rows = all(bytes);
        let row = rows[0].1.clone().unwrap();
        assert_eq!((rows[0].0, row.name.as_str()), (2, "Hélène Bérard"));
        assert_eq!(row.password_hash.as_deref(), Some("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0"));
        assert_eq!(row.groups, None, "no groups column: groups left alone");
    }

    #[test]
    fn utf8_with_a_bom_and_columns_in_any_order() {
        let bytes = "\u{feff}email,identifier,groups\nzoe@chu.example.fr,zoé,bureau\n".as_bytes();
        let text = CsvText::read(bytes);
        assert_eq!((text.encoding, text.delimiter), (Encoding::Utf8, b','));
        let row = all(bytes)[0].1.clone().unwrap();
        assert_eq!(
            (row.identifier.as_str(), row.email.as_str(), row.groups.as_deref()),
            ("zoé", "zoe@chu.example.fr", Some("bureau"))
        );
    }

    #[test]
    fn one_bad_byte_rejects_its_row_and_keeps_the_others() {
        let bytes = "identifier,email,name\nmarie,marie@chu.example.fr,Marie Hélène\npaul,paul@chu.example.fr,P\u{0}\n"
            .as_bytes();
        let mut bytes = bytes.to_vec();
        let at = bytes.iter().rposition(|b| *b == 0).unwrap_or(0);
        bytes[at] = 0xff;
        let rows = all(&bytes);
        assert!(rows[0].1.is_ok());
        assert_eq!(rows[1].0, 3);
        assert!(rows[1].1.clone().err().unwrap_or_default().contains("not valid UTF-8"));
    }

    #[test]
    fn without_a_header_the_columns_are_the_contracts() {
        let rows = all(b"marie,marie@chu.example.fr,Marie,assistance\n\nonly,two\n");
        let first = rows[0].1.clone().unwrap();
        assert_eq!((first.role.as_str(), rows[1].0), ("assistance", 3));
        assert!(rows[1].1.clone().err().unwrap_or_default().contains("expected 3 to 6 columns"));
    }

    #[test]
    fn an_unknown_header_column_is_named() {
        let text = CsvText::read(b"identifier,email,nom\n");
        assert!(text.rows().map(|_| ()).err().is_some_and(|e| e.to_string().contains("\"nom\"")));
    }
}
