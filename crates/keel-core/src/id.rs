//! Identifier newtypes: external ids, message ids, user ids, event names and labels.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValueError;

const MAX_ID_LEN: usize = 256;

fn check_id(kind: &str, raw: &str) -> Result<(), ValueError> {
    if raw.is_empty() {
        return Err(ValueError::new(format!("{kind} is empty")));
    }
    if raw.trim() != raw {
        return Err(ValueError::new(format!("{kind} {raw:?} has leading or trailing whitespace")));
    }
    if raw.len() > MAX_ID_LEN {
        return Err(ValueError::new(format!(
            "{kind} is {} bytes long, the limit is {MAX_ID_LEN}",
            raw.len()
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(ValueError::new(format!("{kind} {raw:?} contains a control character")));
    }
    Ok(())
}

/// Keel's one policy for free text it stores (names, notes, comments,
/// trait values): no NUL and no control characters other than tab, line
/// feed and carriage return. Identifiers are stricter (no control
/// characters at all; see [`ExternalId::parse`]).
pub fn check_text(what: &str, raw: &str) -> Result<(), ValueError> {
    match raw.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        Some(c) => {
            Err(ValueError::new(format!("{what} contains the control character U+{:04X}", u32::from(c))))
        }
        None => Ok(()),
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Parses a ", $what, ": non-empty, at most 256 bytes, no surrounding whitespace or control characters.")]
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                check_id($what, raw)?;
                Ok(Self(raw.to_owned()))
            }

            /// The id as written by the source system.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;
            fn try_from(raw: String) -> Result<Self, ValueError> {
                check_id($what, &raw)?;
                Ok(Self(raw))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The id a record carries in the customer's own system (CRM, billing, help desk).
    ExternalId,
    "id"
);
string_id!(
    /// A product event's message id; Keel stores each message id once per workspace.
    MessageId,
    "message id"
);
string_id!(
    /// The product user an event belongs to (Segment's `userId`, or `anonymousId`).
    UserId,
    "user id"
);
string_id!(
    /// The name of a product event, such as `report_shared`.
    EventName,
    "event name"
);

/// A lowercase identifier used for open vocabularies: contact roles,
/// touchpoint kinds, product lines, ticket statuses of custom help desks.
///
/// Letters, digits and `_` only, starting with a letter, at most 64 bytes.
/// Input is lowercased and `-` or spaces become `_`, so `Executive Sponsor`
/// and `executive-sponsor` both read as `executive_sponsor`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

impl Label {
    /// Normalises and checks a label.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let normal: String = raw
            .trim()
            .chars()
            .map(|c| match c {
                '-' | ' ' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        let mut chars = normal.chars();
        match chars.next() {
            None => return Err(ValueError::new("value is empty")),
            Some(c) if !c.is_ascii_lowercase() => {
                return Err(ValueError::new(format!("{raw:?} must start with a letter")));
            }
            Some(_) => {}
        }
        if normal.len() > 64 {
            return Err(ValueError::new(format!("{raw:?} is longer than 64 bytes")));
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
            return Err(ValueError::new(format!("{raw:?} contains {bad:?}; use letters, digits and '_'")));
        }
        Ok(Self(normal))
    }

    /// The normalised label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Label {
    type Error = ValueError;
    fn try_from(raw: String) -> Result<Self, ValueError> {
        Self::parse(&raw)
    }
}

impl From<Label> for String {
    fn from(label: Label) -> String {
        label.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_id_rejects_blank_and_padded_values() {
        assert!(ExternalId::parse("").is_err());
        assert!(ExternalId::parse(" acme").is_err());
        assert!(ExternalId::parse("ac\u{7}me").is_err());
        assert!(ExternalId::parse(&"x".repeat(257)).is_err());
        assert_eq!(ExternalId::parse("acme-1").unwrap().as_str(), "acme-1");
    }

    #[test]
    fn label_normalises_case_and_separators() {
        assert_eq!(Label::parse("Executive Sponsor").unwrap().as_str(), "executive_sponsor");
        assert_eq!(Label::parse("first-value-review").unwrap().as_str(), "first_value_review");
        assert!(Label::parse("9lives").is_err());
        assert!(Label::parse("a.b").is_err());
    }
}
