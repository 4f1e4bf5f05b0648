//! Property tests of what the operator feeds guichet: settings (durations and every
//! variable, from the environment or a TOML file) and the CSV rows of `member import`.

use std::path::Path;

use proptest::prelude::*;

use crate::commands::import::CsvText;
use crate::config::{Settings, Sources, VARIABLES, parse_duration};

proptest! {
    #[test]
    fn durations_parse_anything_and_read_back_what_they_print(raw in any::<String>(), secs in 1u64..10_000_000) {
        let _ = parse_duration(&raw);
        let written = humantime::format_duration(std::time::Duration::from_secs(secs)).to_string();
        prop_assert_eq!(parse_duration(&written).map(|d| d.as_secs()), Some(i64::try_from(secs).unwrap_or(i64::MAX)));
    }

    #[test]
    fn any_value_of_any_setting_is_accepted_or_refused_without_panic(which in 0..VARIABLES.len(), value in any::<String>()) {
        let sources = Sources::from_pairs([(VARIABLES[which], value.as_str())]);
        if let Err(error) = Settings::load(&sources) {
            prop_assert!(error.to_string().contains("GUICHET_"), "{error}");
        }
    }

    #[test]
    fn any_toml_file_is_read_without_panic(text in any::<String>()) {
        if let Ok(sources) = Sources::default().with_toml(&text, Path::new("guichet.toml")) {
            let _ = Settings::load(&sources);
        }
    }

    #[test]
    fn csv_files_of_any_bytes_are_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let text = CsvText::read(&bytes);
        if let Ok(mut rows) = text.rows() {
            while rows.next_row().is_some() {}
        }
    }

    #[test]
    fn csv_rows_written_by_a_spreadsheet_read_back(
        rows in proptest::collection::vec(("[a-z][a-z0-9.]{1,20}", "[a-z]{1,10}@[a-z]{1,10}\\.fr", "[^\\x00\\r\\n]{0,30}"), 1..20)
    ) {
        let mut writer = csv::Writer::from_writer(Vec::new());
        prop_assert!(writer.write_record(["identifier", "email", "name"]).is_ok());
        for (identifier, email, name) in &rows {
            prop_assert!(writer.write_record([identifier, email, name]).is_ok());
        }
        let bytes = writer.into_inner().unwrap_or_default();
        let text = CsvText::read(&bytes);
        let mut read = text.rows().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let fields: Vec<(String, String, String)> = std::iter::from_fn(|| read.next_row())
            .filter_map(|(_, row)| row.ok())
            .map(|row| (row.identifier, row.email, row.name))
            .collect();
        let expected: Vec<(String, String, String)> = rows
            .iter()
            .filter(|(i, e, n)| ![i, e, n].iter().all(|f| f.trim().is_empty()))
            .map(|(i, e, n)| (i.trim().to_owned(), e.trim().to_owned(), n.trim().to_owned()))
            .collect();
        prop_assert_eq!(fields, expected);
    }
}
