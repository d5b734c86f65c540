//! Reading CSV and JSONL files row by row, with file-level checks (empty
//! file, header, delimiter, encoding) done before any row is accepted.

use std::io::{BufRead, BufReader, Read};

use csv::{ByteRecord, StringRecord};
use keel_core::EntityKind;
use serde_json::{Map, Value};

use crate::fields::Fields;
use crate::kinds::{EVENT_ALIASES, EVENT_IGNORED, columns};

/// The layout of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row (RFC 4180 quoting).
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// Guesses the format from a file name's extension.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" | "tsv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// What the reader hands to its caller for each row.
pub(crate) enum RowEvent<'a> {
    /// A row that was read (its cells may still be invalid).
    Row(u64, Fields<'a>),
    /// A row that could not be read at all.
    Bad { line: u64, column: Option<String>, reason: String },
}

/// A problem with the file as a whole: nothing in it is imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileProblem {
    pub line: u64,
    pub column: Option<String>,
    pub reason: String,
}

fn problem(line: u64, column: Option<&str>, reason: impl Into<String>) -> FileProblem {
    FileProblem { line, column: column.map(str::to_owned), reason: reason.into() }
}

fn allowed_columns(kind: EntityKind) -> String {
    columns(kind).iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
}

pub(crate) fn read_csv(
    input: impl Read,
    kind: EntityKind,
    delimiter: u8,
    on: &mut dyn FnMut(RowEvent<'_>),
) -> Result<(), FileProblem> {
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(input);
    let mut raw = ByteRecord::new();
    let got = reader
        .read_byte_record(&mut raw)
        .map_err(|e| problem(1, None, format!("cannot read the header row: {e}")))?;
    if !got || raw.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
        return Err(problem(
            1,
            None,
            format!("file is empty: expected a header row naming the columns ({})", allowed_columns(kind)),
        ));
    }
    let mut header = Vec::with_capacity(raw.len());
    for (i, field) in raw.iter().enumerate() {
        let text = std::str::from_utf8(field).map_err(|e| {
            problem(
                1,
                None,
                format!(
                    "header cell {} is not valid UTF-8 (byte {}); save the file as UTF-8",
                    i + 1,
                    e.valid_up_to()
                ),
            )
        })?;
        header.push(text.trim_start_matches('\u{feff}').trim().to_owned());
    }
    check_header(&header, kind, delimiter)?;

    loop {
        match reader.read_byte_record(&mut raw) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                on(RowEvent::Bad { line, column: None, reason: format!("unreadable CSV: {e}") });
                continue;
            }
        }
        let line = raw.position().map(|p| p.line()).unwrap_or(0);
        if raw.len() == 1 && raw.get(0).is_some_and(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue; // a blank line
        }
        if raw.len() != header.len() {
            on(RowEvent::Bad {
                line,
                column: None,
                reason: format!("row has {} fields but the header has {}", raw.len(), header.len()),
            });
            continue;
        }
        let record = match StringRecord::from_byte_record(raw.clone()) {
            Ok(r) => r,
            Err(e) => {
                let field = e.utf8_error().field();
                let column = header.get(field).cloned();
                let at = e.utf8_error().valid_up_to();
                on(RowEvent::Bad {
                    line,
                    column,
                    reason: format!("invalid UTF-8 after byte {at} of the cell; save the file as UTF-8"),
                });
                continue;
            }
        };
        on(RowEvent::Row(line, Fields::Csv { header: &header, record: &record }));
    }
    Ok(())
}

fn check_header(header: &[String], kind: EntityKind, delimiter: u8) -> Result<(), FileProblem> {
    if header.len() == 1 {
        for (sep, name) in [(';', "semicolon"), ('\t', "tab"), ('|', "pipe"), (',', "comma")] {
            if sep as u8 != delimiter && header[0].contains(sep) {
                return Err(problem(
                    1,
                    None,
                    format!(
                        "wrong delimiter: the header is one column {:?} that contains {name}s; \
                         pass --delimiter '{}' or save the file comma-separated",
                        header[0],
                        sep.escape_default()
                    ),
                ));
            }
        }
    }
    let spec = columns(kind);
    for (i, h) in header.iter().enumerate() {
        if header[..i].contains(h) {
            return Err(problem(1, Some(h), "column appears twice in the header"));
        }
        let attr = kind == EntityKind::Accounts && h.strip_prefix("attr.").is_some_and(|n| !n.is_empty());
        if !attr && !spec.iter().any(|c| c.name == h) {
            let hint = if kind == EntityKind::Accounts {
                "; account attributes go in attr.<name> columns"
            } else {
                ""
            };
            return Err(problem(
                1,
                Some(h),
                format!("unknown column; {kind} files take: {}{hint}", allowed_columns(kind)),
            ));
        }
    }
    for c in spec.iter().filter(|c| c.required) {
        if !header.iter().any(|h| h == c.name) {
            return Err(problem(1, Some(c.name), "required column is missing from the header"));
        }
    }
    Ok(())
}

pub(crate) fn read_jsonl(
    input: impl Read,
    kind: EntityKind,
    on: &mut dyn FnMut(RowEvent<'_>),
) -> Result<(), FileProblem> {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut seen_any = false;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| problem(line + 1, None, format!("cannot read the file: {e}")))?;
        if n == 0 {
            break;
        }
        line += 1;
        let mut bytes = buf.as_slice();
        if line == 1 {
            bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        }
        while let Some((b'\n' | b'\r', rest)) = bytes.split_last() {
            bytes = rest;
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let first_row = !seen_any;
        seen_any = true;
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                on(RowEvent::Bad {
                    line,
                    column: None,
                    reason: format!(
                        "invalid UTF-8 at byte {} of the line; save the file as UTF-8",
                        e.valid_up_to()
                    ),
                });
                continue;
            }
        };
        if kind == EntityKind::Events
            && let Ok(fast) = serde_json::from_str::<crate::fields::FastEvent<'_>>(text)
        {
            on(RowEvent::Row(line, Fields::Event(&fast)));
            continue;
        }
        let object: Map<String, Value> = match serde_json::from_str(text) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                on(RowEvent::Bad {
                    line,
                    column: None,
                    reason: "expected a JSON object on this line".into(),
                });
                continue;
            }
            Err(e) => {
                if first_row && !text.trim_start().starts_with('{') && text.contains(',') {
                    return Err(problem(
                        line,
                        None,
                        "this looks like CSV, not JSON lines; name the file .csv or pass --format csv",
                    ));
                }
                // serde_json appends "at line 1 column N"; the line is ours to give.
                let message = e.to_string();
                let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
                on(RowEvent::Bad {
                    line,
                    column: None,
                    reason: format!("invalid JSON at column {}: {message}", e.column()),
                });
                continue;
            }
        };
        match normalise(object, kind) {
            Ok(o) => on(RowEvent::Row(line, Fields::Json(&o))),
            Err((column, reason)) => on(RowEvent::Bad { line, column: Some(column), reason }),
        }
    }
    if !seen_any {
        return Err(problem(
            1,
            None,
            format!("file is empty: expected one JSON object per line with keys {}", allowed_columns(kind)),
        ));
    }
    Ok(())
}

/// Maps Segment-style keys to Keel columns and refuses unknown keys.
fn normalise(
    mut object: Map<String, Value>,
    kind: EntityKind,
) -> Result<Map<String, Value>, (String, String)> {
    let spec = columns(kind);
    if kind == EntityKind::Events {
        if let Some(t) = object.get("type").and_then(Value::as_str)
            && t != "track"
        {
            return Err(("type".into(), format!("only track events are imported, not {t:?}")));
        }
        for (alias, column) in EVENT_ALIASES {
            if let Some(v) = object.remove(*alias) {
                object.entry(column.to_string()).or_insert(v);
            }
        }
        if !object.contains_key("user_id")
            && let Some(v) = object.get("anonymousId").cloned()
        {
            object.insert("user_id".into(), v);
        }
        if !object.contains_key("account_id")
            && let Some(v) = object.get("context").and_then(|c| c.get("groupId")).cloned()
        {
            object.insert("account_id".into(), v);
        }
        for ignored in EVENT_IGNORED {
            object.remove(*ignored);
        }
    }
    if let Some(unknown) = object.keys().find(|k| !spec.iter().any(|c| c.name == k.as_str())) {
        return Err((unknown.clone(), format!("unknown key; {kind} lines take: {}", allowed_columns(kind))));
    }
    Ok(object)
}
