//! Dates and timestamps: what Keel accepts and how it writes them back.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

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

/// When something may have happened, for Keel to store it: not before
/// `earliest`, not more than `ahead` after the moment it is received (a
/// client clock runs a little fast; a year 9999 is a bug, not an event).
/// Dates that look forward (a contract's end, a renewal) may lie up to
/// [`TimeWindow::DATES_AHEAD_YEARS`] years ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// The earliest day accepted.
    pub earliest: Date,
    /// How far after "now" an instant may lie.
    pub ahead: chrono::Duration,
}

impl Default for TimeWindow {
    /// 2000-01-01 until one day after now.
    fn default() -> Self {
        Self {
            earliest: NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or(NaiveDate::MIN),
            ahead: chrono::Duration::days(1),
        }
    }
}

impl TimeWindow {
    /// How many years ahead of now a date may lie.
    pub const DATES_AHEAD_YEARS: i32 = 100;

    /// Whether an instant lies in the window as seen at `now`.
    pub fn check(&self, t: Timestamp, now: Timestamp) -> Result<(), ValueError> {
        if t.date_naive() < self.earliest {
            return Err(ValueError::new(format!(
                "{} is before {}, the earliest date Keel accepts (the `earliest` setting)",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                self.earliest
            )));
        }
        let latest = now + self.ahead;
        if t > latest {
            return Err(ValueError::new(format!(
                "{} is after {}, the latest instant Keel accepts now (clock skew is allowed up to {} h)",
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                latest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                self.ahead.num_hours()
            )));
        }
        Ok(())
    }

    /// Whether a calendar date lies in the window as seen at `now`.
    pub fn check_date(&self, d: Date, now: Timestamp) -> Result<(), ValueError> {
        if d < self.earliest {
            return Err(ValueError::new(format!(
                "{d} is before {}, the earliest date Keel accepts (the `earliest` setting)",
                self.earliest
            )));
        }
        let today = now.date_naive();
        let latest = today.with_year(today.year() + Self::DATES_AHEAD_YEARS).unwrap_or(NaiveDate::MAX);
        if d > latest {
            return Err(ValueError::new(format!(
                "{d} is more than {} years ahead; the latest date Keel accepts now is {latest}",
                Self::DATES_AHEAD_YEARS
            )));
        }
        Ok(())
    }
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
    fn the_window_refuses_year_0_and_9999_and_says_why() {
        let w = TimeWindow::default();
        let now = parse_timestamp("2026-03-01T12:00:00Z").unwrap();
        assert!(w.check(parse_timestamp("2000-01-01T00:00:00Z").unwrap(), now).is_ok());
        assert!(w.check(now + chrono::Duration::hours(24), now).is_ok());
        let early = w.check(parse_timestamp("0000-01-01T00:00:00Z").unwrap(), now).unwrap_err();
        assert!(early.to_string().contains("before 2000-01-01"), "{early}");
        let late = w.check(now + chrono::Duration::hours(25), now).unwrap_err();
        assert!(late.to_string().contains("after 2026-03-02T12:00:00Z"), "{late}");
        assert!(w.check_date(parse_date("2125-12-31").unwrap(), now).is_ok());
        assert!(w.check_date(parse_date("9999-12-31").unwrap(), now).is_err());
        assert!(w.check_date(parse_date("1999-12-31").unwrap(), now).is_err());
    }

    #[test]
    fn dates_are_iso_only() {
        assert!(parse_date("2025-02-29").is_err());
        assert!(parse_date("01/03/2025").is_err());
        assert_eq!(parse_date(" 2024-02-29 ").unwrap().to_string(), "2024-02-29");
    }
}
