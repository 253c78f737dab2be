//! A CSV sites file: a header row naming site options (`headers.<Name>` for a request header),
//! then one site per row; an empty cell leaves the option unset. Rows are read one at a time
//! (the csv crate), each turned into the same tree a YAML site would be, so both formats are
//! validated by the same code.

use std::io::Read;

use serde_yaml_ng::{Mapping, Value};

use super::reader::did_you_mean;
use super::site_file::Sink;
use super::sites::SITE_FIELDS;

/// Rows validated together (on two threads).
const BATCH: usize = 8192;

/// How one column's cells become a site's option.
enum Column {
    /// The option of that name, typed by [`cell`].
    Field(&'static str),
    /// One request header.
    Header(String),
    /// Reported once at the header row; its cells are ignored.
    Unknown,
}

/// Notes where the file's content lines start as the csv reader pulls its bytes through: csv's
/// own record positions lag a line on CRLF endings and point at the comment or blank lines
/// before a record, so a record's line is the first content line at or after its position.
struct LineIndex<R> {
    inner: R,
    offset: u64,
    line: u32,
    /// The next byte starts a line.
    at_start: bool,
    /// (byte offset, line number) of each line that is neither blank nor a `#` comment.
    content: Vec<(u64, u32)>,
}

impl<R: Read> Read for LineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if self.at_start {
                self.line += 1;
                if !matches!(b, b'#' | b'\n' | b'\r') {
                    self.content.push((self.offset, self.line));
                }
            }
            self.at_start = b == b'\n';
            self.offset += 1;
        }
        Ok(n)
    }
}

impl<R> LineIndex<R> {
    /// The line of the record csv placed at byte `at`.
    fn line_of(&self, at: u64) -> usize {
        let i = self.content.partition_point(|(offset, _)| *offset < at);
        self.content.get(i).map_or(self.line, |(_, line)| *line) as usize
    }
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
    let index = LineIndex { inner: file, offset: 0, line: 0, at_start: true, content: Vec::new() };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(index);
    let mut header = csv::StringRecord::new();
    match csv.read_record(&mut header) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            let at = e.position().map(|p| (csv.get_ref().line_of(p.byte()), 0));
            sink.problem("", at, format!("not valid CSV: {e}"));
            return;
        }
    }
    let header_line = header.position().map_or(1, |p| csv.get_ref().line_of(p.byte()));
    let mut columns = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        let name = if i == 0 { name.trim_start_matches('\u{feff}') } else { name };
        let column_path = format!("column {}", i + 1);
        let repeated = header.iter().take(i).any(|earlier| earlier == name);
        let column = if repeated {
            sink.problem(&column_path, Some((header_line, 0)), format!("`{name}` names a column twice"));
            Column::Unknown
        } else if let Some(h) = name.strip_prefix("headers.").filter(|h| !h.is_empty()) {
            if http::HeaderName::from_bytes(h.as_bytes()).is_ok() {
                Column::Header(h.to_owned())
            } else {
                sink.problem(
                    &column_path,
                    Some((header_line, 0)),
                    format!("`{h}` is not a valid header name"),
                );
                Column::Unknown
            }
        } else if let Some(&f) = SITE_FIELDS.iter().find(|f| **f == name && **f != "headers") {
            Column::Field(f)
        } else {
            let hint = did_you_mean(SITE_FIELDS, name);
            sink.problem(
                &column_path,
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
    let mut row = csv::StringRecord::new();
    let mut batch: Vec<(Value, usize)> = Vec::with_capacity(BATCH);
    loop {
        match csv.read_record(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // Problems stay in file order: the rows before this one go first.
                sink.rows(&batch);
                batch.clear();
                let line = e.position().map(|p| (csv.get_ref().line_of(p.byte()), 0));
                sink.problem("", line, format!("not valid CSV: {e}"));
                sink.count += 1;
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = row.position().map_or(0, |p| csv.get_ref().line_of(p.byte()));
        if row.len() != columns.len() {
            sink.rows(&batch);
            batch.clear();
            sink.problem(
                &super::site_file::item_path(sink.count),
                Some((line, 0)),
                format!("{} cells, but the header row names {} columns", row.len(), columns.len()),
            );
            sink.count += 1;
            continue;
        }
        let mut site = Mapping::with_capacity(columns.len());
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
        batch.push((Value::Mapping(site), line));
        if batch.len() == BATCH {
            sink.rows(&batch);
            batch.clear();
        }
    }
    sink.rows(&batch);
}
