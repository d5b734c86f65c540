//! Dates and timestamps: what Keel accepts and how it writes them back.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::ValueError;

/// A calendar date (contract start, contact membership, account creation).
pub type Date = NaiveDate;

/// An instant in UTC, kept to the microsecond.
pub type Timestamp = DateTime<Utc>;

/// Parses an ISO 8601 calendar date, `YYYY-MM-DD`.
pub fn parse_date(raw: &str) -> Result<Date, ValueError> {
    let raw = raw.trim();
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ValueError::new(format!("{raw:?} is not a date in the form YYYY-MM-DD")))
}

/// Parses an instant: RFC 3339 (`2025-03-01T14:05:00Z`, any offset) or a
/// UTC wall time `YYYY-MM-DD HH:MM:SS` / `YYYY-MM-DDTHH:MM:SS` (fractional
/// seconds allowed). A bare date is refused: an instant needs a time.
/// Precision beyond microseconds is truncated.
pub fn parse_timestamp(raw: &str) -> Result<Timestamp, ValueError> {
    let raw = raw.trim();
    let parsed = DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f"))
                .map(|t| t.and_utc())
        })
        .map_err(|_| {
            ValueError::new(format!(
                "{raw:?} is not a timestamp such as 2025-03-01T14:05:00Z (RFC 3339, or YYYY-MM-DD HH:MM:SS in UTC)"
            ))
        })?;
    Ok(truncate_to_micros(parsed))
}

fn truncate_to_micros(t: Timestamp) -> Timestamp {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_accept_offsets_and_utc_wall_times() {
        let a = parse_timestamp("2025-03-01T15:05:00+01:00").unwrap();
        let b = parse_timestamp("2025-03-01 14:05:00").unwrap();
        let c = parse_timestamp("2025-03-01T14:05:00.000Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert!(parse_timestamp("2025-03-01").is_err());
        assert!(parse_timestamp("03/01/2025 14:05").is_err());
    }

    #[test]
    fn dates_are_iso_only() {
        assert!(parse_date("2025-02-29").is_err());
        assert!(parse_date("01/03/2025").is_err());
        assert_eq!(parse_date(" 2024-02-29 ").unwrap().to_string(), "2024-02-29");
    }
}
