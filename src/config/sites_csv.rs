//! A CSV sites file: a header row naming site options (`headers.<Name>` for a request header),
//! then one site per row; an empty cell leaves the option unset. Rows are read one at a time
//! (the csv crate), each turned into the same tree a YAML site would be, so both formats are
//! validated by the same code.

use std::io::Read;

use serde_yaml_ng::{Mapping, Value};

use super::site_file::Sink;
use super::sites::SITE_FIELDS;

/// How one column's cells become a site's option.
enum Column {
    /// The option of that name, typed by [`cell`].
    Field(&'static str),
    /// One request header.
    Header(String),
    /// Reported once at the header row; its cells are ignored.
    Unknown,
}

/// A cell as the option's YAML value would be: booleans for the two flags, a list for
/// `expected_status` (`200|204`), text otherwise (numbers and durations are read from text).
fn cell(field: &str, text: &str) -> Value {
    match field {
        "follow_redirects" | "tls_verify" => match text.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        "expected_status" => {
            Value::Sequence(text.split('|').map(|code| Value::String(code.trim().to_owned())).collect())
        }
        _ => Value::String(text.to_owned()),
    }
}

/// Reads the header row and every site row, handing each to `sink`.
pub(super) fn read(sink: &mut Sink, file: impl Read) {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(file);
    let mut records = csv.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            sink.problem("", e.position().map(|p| (p.line() as usize, 0)), format!("not valid CSV: {e}"));
            return;
        }
        None => return,
    };
    let header_line = header.position().map_or(1, |p| p.line() as usize);
    let mut columns = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        let column = if let Some(h) = name.strip_prefix("headers.").filter(|h| !h.is_empty()) {
            Column::Header(h.to_owned())
        } else if let Some(&f) = SITE_FIELDS.iter().find(|f| **f == name && **f != "headers") {
            Column::Field(f)
        } else {
            let hint = SITE_FIELDS
                .iter()
                .map(|a| (strsim::jaro_winkler(a, name), a))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, a)| format!("did you mean `{a}`? "))
                .unwrap_or_default();
            sink.problem(
                &format!("column {}", i + 1),
                Some((header_line, 0)),
                format!(
                    "unknown column `{name}`; {hint}expected site options ({}) or `headers.<Name>`",
                    SITE_FIELDS.join(", ")
                ),
            );
            Column::Unknown
        };
        columns.push(column);
    }
    if !columns.iter().any(|c| matches!(c, Column::Field("name"))) {
        sink.problem("", Some((header_line, 0)), "the header row names no `name` column");
    }
    for row in records {
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                let line = e.position().map(|p| (p.line() as usize, 0));
                sink.problem("", line, format!("not valid CSV: {e}"));
                sink.count += 1;
                continue;
            }
        };
        let line = row.position().map_or(0, |p| p.line() as usize);
        if row.len() != columns.len() {
            sink.problem(
                &super::site_file::item_path(sink.count),
                Some((line, 0)),
                format!("{} cells, but the header row names {} columns", row.len(), columns.len()),
            );
            sink.count += 1;
            continue;
        }
        let mut site = Mapping::new();
        let mut headers = Mapping::new();
        for (column, text) in columns.iter().zip(row.iter()) {
            if text.is_empty() {
                continue;
            }
            match column {
                Column::Field(f) => {
                    site.insert(Value::String((*f).to_owned()), cell(f, text));
                }
                Column::Header(h) => {
                    headers.insert(Value::String(h.clone()), Value::String(text.to_owned()));
                }
                Column::Unknown => {}
            }
        }
        if !headers.is_empty() {
            site.insert(Value::String("headers".to_owned()), Value::Mapping(headers));
        }
        sink.site(&Value::Mapping(site), line, |_| None);
    }
}
