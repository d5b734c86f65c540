//! Portfolio analytics. Every report is a pure function of records (and,
//! for the journey reports, of states the engine evaluated as of given
//! dates): no I/O, deterministic, each definition written as a formula in
//! docs/metrics.md and checked against hand-computed fixtures.

pub mod audit;
pub mod backtest;
pub mod cohorts;
pub mod expansion;
pub mod funnel;
pub mod gates;
pub mod patterns;
pub mod plays;
pub mod retention;
pub mod ttv;

use keel_core::Date;
use serde::Serialize;

/// A half-open span of days, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Period {
    /// First day in the period.
    pub from: Date,
    /// First day after it.
    pub to: Date,
}

impl Period {
    /// `[from, to)`; `from` must come before `to`.
    pub fn new(from: Date, to: Date) -> Result<Self, AnalyticsError> {
        if from < to { Ok(Self { from, to }) } else { Err(AnalyticsError::EmptyPeriod { from, to }) }
    }

    /// The calendar months the period touches, each clipped to the period.
    pub fn months(self) -> Vec<Period> {
        let mut out = Vec::new();
        let mut start = self.from;
        while start < self.to {
            let next = first_of_next_month(start).min(self.to);
            out.push(Period { from: start, to: next });
            start = next;
        }
        out
    }
}

/// The first day of the month after `d`'s.
pub fn first_of_next_month(d: Date) -> Date {
    use chrono::Datelike;
    let (y, m) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
    Date::from_ymd_opt(y, m, 1).expect("the first of a month exists")
}

/// Which month of its tenure `on` falls in for an account that started on
/// `start`: 1 from the start day until the day before the same day of the
/// next month, and so on (a start on the 31st rolls over at each month's
/// end). 0 before the start.
pub fn tenure_month(start: Date, on: Date) -> u32 {
    use chrono::Datelike;
    if on < start {
        return 0;
    }
    let months = (on.year() - start.year()) * 12 + on.month() as i32 - start.month() as i32;
    let whole = if on.day() < start.day() && !is_last_day(on) { months - 1 } else { months };
    whole.max(0) as u32 + 1
}

fn is_last_day(d: Date) -> bool {
    first_of_next_month(d).pred_opt() == Some(d)
}

/// A ratio that is undefined (not zero) when the denominator is zero.
pub fn ratio(num: f64, den: f64) -> Option<f64> {
    (den != 0.0).then(|| num / den)
}

/// Why a report could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalyticsError {
    /// `from` is not before `to`.
    #[error("the period {from} .. {to} is empty: --from must come before --to")]
    EmptyPeriod {
        /// The start given.
        from: Date,
        /// The end given.
        to: Date,
    },
    /// MRR in several currencies cannot be added up.
    #[error(
        "contract lines are in several currencies ({}); choose one (--currency, or the currency parameter)",
        currencies.join(", ")
    )]
    MixedCurrencies {
        /// The currencies found, sorted.
        currencies: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn tenure_months_count_from_the_start_day() {
        assert_eq!(tenure_month(d("2025-01-15"), d("2025-01-14")), 0);
        assert_eq!(tenure_month(d("2025-01-15"), d("2025-01-15")), 1);
        assert_eq!(tenure_month(d("2025-01-15"), d("2025-02-14")), 1);
        assert_eq!(tenure_month(d("2025-01-15"), d("2025-02-15")), 2);
        assert_eq!(tenure_month(d("2025-01-15"), d("2026-01-15")), 13);
        // A start on the 31st: month 2 begins on the last day of February.
        assert_eq!(tenure_month(d("2025-01-31"), d("2025-02-27")), 1);
        assert_eq!(tenure_month(d("2025-01-31"), d("2025-02-28")), 2);
        assert_eq!(tenure_month(d("2025-01-31"), d("2025-03-30")), 2);
        assert_eq!(tenure_month(d("2025-01-31"), d("2025-03-31")), 3);
    }

    #[test]
    fn a_period_splits_into_calendar_months_clipped_to_it() {
        let p = Period::new(d("2025-01-15"), d("2025-03-10")).unwrap();
        let months: Vec<(String, String)> =
            p.months().iter().map(|m| (m.from.to_string(), m.to.to_string())).collect();
        assert_eq!(
            months,
            [
                ("2025-01-15".into(), "2025-02-01".into()),
                ("2025-02-01".into(), "2025-03-01".into()),
                ("2025-03-01".into(), "2025-03-10".into())
            ]
        );
        assert!(Period::new(d("2025-01-01"), d("2025-01-01")).is_err());
    }
}
