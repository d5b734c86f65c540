//! Uniform, typed access to one input row, whether it came from CSV or JSONL.

use std::borrow::Cow;

use csv::StringRecord;
use keel_core::{Date, ExternalId, TimeWindow, Timestamp, ValueError};
use serde_json::{Map, Value};

/// A problem with one column of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The column (or JSON key) at fault.
    pub column: String,
    /// What was wrong with it.
    pub reason: String,
}

/// The cells of one row, looked up by column name.
pub(crate) enum Fields<'a> {
    /// A CSV record and the header it is read against.
    Csv { header: &'a [String], record: &'a StringRecord },
    /// A JSON object (after alias resolution).
    Json(&'a Map<String, Value>),
    /// A JSON event line read by the fast path (see [`FastEvent`]).
    Event(&'a FastEvent<'a>),
}

/// An event line whose keys are exactly Keel's (or their Segment aliases),
/// with string values. Deserialising into it borrows from the line and
/// skips building a JSON tree; any line that does not fit goes through the
/// general path, which gives the precise diagnostics.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FastEvent<'a> {
    #[serde(borrow, default, alias = "messageId")]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "groupId")]
    account_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "userId")]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "receivedAt")]
    received_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    properties: Option<&'a serde_json::value::RawValue>,
}

impl<'a> FastEvent<'a> {
    fn get(&self, column: &str) -> Option<&Cow<'a, str>> {
        match column {
            "message_id" => self.message_id.as_ref(),
            "account_id" => self.account_id.as_ref(),
            "user_id" => self.user_id.as_ref(),
            "event" => self.event.as_ref(),
            "timestamp" => self.timestamp.as_ref(),
            "received_at" => self.received_at.as_ref(),
            _ => None,
        }
    }
}

/// Collects every field error of a row instead of stopping at the first.
pub(crate) struct RowReader<'a> {
    fields: Fields<'a>,
    pub errors: Vec<FieldError>,
    /// When dates and instants may lie, seen at `now`.
    window: TimeWindow,
    now: Timestamp,
}

impl<'a> RowReader<'a> {
    pub fn new(fields: Fields<'a>, window: TimeWindow, now: Timestamp) -> Self {
        Self { fields, errors: Vec::new(), window, now }
    }

    fn raw(&self, column: &str) -> Option<Cow<'a, str>> {
        match &self.fields {
            Fields::Csv { header, record } => {
                let i = header.iter().position(|h| h == column)?;
                let cell = record.get(i)?;
                if cell.trim().is_empty() { None } else { Some(Cow::Borrowed(cell)) }
            }
            Fields::Json(map) => match map.get(column)? {
                Value::Null => None,
                Value::String(s) if s.trim().is_empty() => None,
                Value::String(s) => Some(Cow::Borrowed(s.as_str())),
                Value::Number(n) => Some(Cow::Owned(n.to_string())),
                Value::Bool(b) => Some(Cow::Owned(b.to_string())),
                other => Some(Cow::Owned(other.to_string())),
            },
            Fields::Event(e) => match e.get(column)? {
                c if c.trim().is_empty() => None,
                Cow::Borrowed(b) => Some(Cow::Borrowed(b)),
                Cow::Owned(o) => Some(Cow::Owned(o.clone())),
            },
        }
    }

    /// The JSON value of a column: parsed from text in CSV, as-is in JSONL.
    pub fn json(&mut self, column: &str) -> Option<Value> {
        match &self.fields {
            Fields::Json(map) => match map.get(column) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => self.parse_json_text(column, s),
                Some(v) => Some(v.clone()),
            },
            Fields::Csv { .. } => {
                let raw = self.raw(column)?;
                self.parse_json_text(column, &raw)
            }
            Fields::Event(e) => match (column, e.properties.map(|p| p.get())) {
                ("properties", Some("{}")) => Some(Value::Object(Map::new())),
                ("properties", Some("null")) | ("properties", None) => None,
                ("properties", Some(raw)) => self.parse_json_text(column, raw),
                _ => self.raw(column).map(|c| Value::String(c.into_owned())),
            },
        }
    }

    fn parse_json_text(&mut self, column: &str, text: &str) -> Option<Value> {
        if text.trim().is_empty() {
            return None;
        }
        match serde_json::from_str(text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(column, format!("is not valid JSON: {e}"));
                None
            }
        }
    }

    pub fn fail(&mut self, column: &str, reason: impl Into<String>) {
        self.errors.push(FieldError { column: column.to_owned(), reason: reason.into() });
    }

    /// An optional text cell (under Keel's text policy, [`keel_core::check_text`]).
    pub fn opt_text(&mut self, column: &str) -> Option<String> {
        let text = self.raw(column).map(|c| c.trim().to_owned())?;
        match keel_core::check_text("the text", &text) {
            Ok(()) => Some(text),
            Err(e) => {
                self.fail(column, e.0);
                None
            }
        }
    }

    /// A required text cell.
    pub fn text(&mut self, column: &str) -> Option<String> {
        let value = self.opt_text(column);
        if value.is_none() {
            self.fail(column, "is required but empty");
        }
        value
    }

    /// Parses an optional cell with `parse`, recording its error.
    pub fn opt<T>(&mut self, column: &str, parse: impl FnOnce(&str) -> Result<T, ValueError>) -> Option<T> {
        let raw = self.raw(column)?;
        match parse(&raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(column, e.0);
                None
            }
        }
    }

    /// Parses a required cell with `parse`, recording its error.
    pub fn req<T>(&mut self, column: &str, parse: impl FnOnce(&str) -> Result<T, ValueError>) -> Option<T> {
        if self.raw(column).is_none() {
            self.fail(column, "is required but empty");
            return None;
        }
        self.opt(column, parse)
    }

    pub fn id(&mut self, column: &str) -> Option<ExternalId> {
        self.req(column, ExternalId::parse)
    }

    pub fn date(&mut self, column: &str) -> Option<Date> {
        let (window, now) = (self.window, self.now);
        self.req(column, |raw| keel_core::parse_date(raw).and_then(|d| window.check_date(d, now).map(|()| d)))
    }

    pub fn opt_date(&mut self, column: &str) -> Option<Date> {
        let (window, now) = (self.window, self.now);
        self.opt(column, |raw| keel_core::parse_date(raw).and_then(|d| window.check_date(d, now).map(|()| d)))
    }

    pub fn timestamp(&mut self, column: &str) -> Option<Timestamp> {
        let (window, now) = (self.window, self.now);
        self.req(column, |raw| keel_core::parse_timestamp(raw).and_then(|t| window.check(t, now).map(|()| t)))
    }

    pub fn opt_timestamp(&mut self, column: &str) -> Option<Timestamp> {
        let (window, now) = (self.window, self.now);
        self.opt(column, |raw| keel_core::parse_timestamp(raw).and_then(|t| window.check(t, now).map(|()| t)))
    }

    pub fn int_in(&mut self, column: &str, lo: i64, hi: i64) -> Option<i64> {
        self.opt(column, |raw| {
            let v: i64 =
                raw.trim().parse().map_err(|_| ValueError(format!("{raw:?} is not a whole number")))?;
            if v < lo || v > hi {
                return Err(ValueError(format!("{v} is outside {lo}..={hi}")));
            }
            Ok(v)
        })
    }

    /// Attribute cells: CSV columns named `attr.<name>` (text), or a JSON
    /// object under `attributes` whose values are scalars.
    /// The row's attributes (`attr.NAME` columns or an `attributes` object),
    /// their names and text values under Keel's text policy.
    pub fn attributes(&mut self) -> keel_core::Attributes {
        let out = self.attributes_as_given();
        for (name, value) in &out {
            let text = value.as_str().unwrap_or_default();
            if let Err(e) = keel_core::check_text("the name", name)
                .and_then(|()| keel_core::check_text("the value", text))
            {
                self.fail(&format!("attr.{name}"), e.0);
            }
        }
        out
    }

    fn attributes_as_given(&mut self) -> keel_core::Attributes {
        let mut out = keel_core::Attributes::new();
        match &self.fields {
            Fields::Csv { header, .. } => {
                if header.iter().any(|h| h == "attributes") {
                    match self.json("attributes") {
                        None => {}
                        Some(Value::Object(attrs)) => {
                            out.extend(attrs.into_iter().filter(|(_, v)| !v.is_null()))
                        }
                        Some(_) => self.fail("attributes", "must be a JSON object of name → value"),
                    }
                }
                let Fields::Csv { header, record } = &self.fields else { return out };
                for (i, h) in header.iter().enumerate() {
                    if let Some(name) = h.strip_prefix("attr.")
                        && let Some(cell) = record.get(i).filter(|c| !c.trim().is_empty())
                    {
                        out.insert(name.to_owned(), Value::String(cell.trim().to_owned()));
                    }
                }
            }
            Fields::Event(_) => {}
            Fields::Json(map) => match map.get("attributes") {
                None | Some(Value::Null) => {}
                Some(Value::Object(attrs)) => {
                    let mut bad = Vec::new();
                    for (k, v) in attrs {
                        match v {
                            Value::Null => {}
                            Value::Object(_) | Value::Array(_) => bad.push(k.clone()),
                            scalar => {
                                out.insert(k.clone(), scalar.clone());
                            }
                        }
                    }
                    for k in bad {
                        self.fail(
                            "attributes",
                            format!("attribute {k:?} must be a string, number or boolean"),
                        );
                    }
                }
                Some(_) => self.fail("attributes", "must be a JSON object of name → value"),
            },
        }
        out
    }
}
