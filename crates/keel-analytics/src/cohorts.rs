//! Cohort retention (docs/metrics.md): accounts grouped by the month their
//! first line started, followed month by month from each account's own start.
//!
//! For an account `a` starting on `s(a)` and `k` months later, `d(a, k) =
//! s(a) + k months` (the same day of the month, or the month's last day).
//! A cell (cohort `c`, month `k`) counts the accounts of `c` whose `d(a, k)`
//! is on or before `as_of`: logo retention is the share of them active on
//! `d(a, k)`, revenue retention `Σ MRR(a, d(a, k)) / Σ MRR(a, s(a))`.

use std::collections::BTreeMap;

use keel_core::Date;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::ratio;
use crate::retention::Book;

/// One cohort × month cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cell {
    /// Months since start.
    pub month: u32,
    /// Accounts observed (their `month`-th anniversary is on or before `as_of`).
    pub accounts: u64,
    /// Of which active then.
    pub active: u64,
    /// Their MRR on their start days.
    pub start_mrr: Decimal,
    /// Their MRR then.
    pub mrr: Decimal,
    /// active / accounts.
    pub logo_retention: Option<f64>,
    /// mrr / start_mrr.
    pub revenue_retention: Option<f64>,
}

/// One start month.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cohort {
    /// `YYYY-MM`.
    pub cohort: String,
    /// Accounts that started in it.
    pub accounts: u64,
    /// Month 0, 1, 2, … as far as `as_of` lets any of them be observed.
    pub cells: Vec<Cell>,
}

/// `keel report cohorts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CohortReport {
    /// The last day observed.
    pub as_of: Date,
    /// The currency of every amount.
    pub currency: Option<String>,
    /// Oldest first.
    pub cohorts: Vec<Cohort>,
}

/// `s` plus `k` months, on the month's last day when the day does not exist.
pub fn add_months(s: Date, k: u32) -> Option<Date> {
    s.checked_add_months(chrono::Months::new(k))
}

/// Cohort retention of `book`'s accounts that started on or before `as_of`,
/// up to `max_months` months since start.
pub fn report(book: &Book<'_>, as_of: Date, max_months: u32) -> CohortReport {
    let mut by_cohort: BTreeMap<String, Vec<(&keel_core::ExternalId, Date)>> = BTreeMap::new();
    for a in book.accounts() {
        if let Some(s) = book.first_start(a).filter(|s| *s <= as_of) {
            by_cohort.entry(s.format("%Y-%m").to_string()).or_default().push((a, s));
        }
    }
    let f = |d: Decimal| d.to_f64().unwrap_or(0.0);
    let cohorts = by_cohort
        .into_iter()
        .map(|(cohort, members)| {
            let mut cells = Vec::new();
            for k in 0..=max_months {
                let mut cell = Cell {
                    month: k,
                    accounts: 0,
                    active: 0,
                    start_mrr: Decimal::ZERO,
                    mrr: Decimal::ZERO,
                    logo_retention: None,
                    revenue_retention: None,
                };
                for (a, s) in &members {
                    let Some(d) = add_months(*s, k).filter(|d| *d <= as_of) else { continue };
                    cell.accounts += 1;
                    cell.start_mrr += book.mrr_on(a, *s).unwrap_or(Decimal::ZERO);
                    if let Some(mrr) = book.mrr_on(a, d) {
                        cell.active += 1;
                        cell.mrr += mrr;
                    }
                }
                if cell.accounts == 0 {
                    break;
                }
                cell.logo_retention = ratio(cell.active as f64, cell.accounts as f64);
                cell.revenue_retention = ratio(f(cell.mrr), f(cell.start_mrr));
                cells.push(cell);
            }
            Cohort { cohort, accounts: members.len() as u64, cells }
        })
        .collect();
    CohortReport { as_of, currency: book.currency().map(str::to_owned), cohorts }
}

#[cfg(test)]
mod tests {
    use keel_core::{BillingPeriod, Contract, ExternalId, Label, Money};

    use super::*;

    fn line(id: &str, account: &str, start: &str, end: Option<&str>, mrr: &str) -> Contract {
        Contract {
            id: ExternalId::parse(id).unwrap(),
            account: ExternalId::parse(account).unwrap(),
            product: Label::parse("platform").unwrap(),
            start: start.parse().unwrap(),
            end: end.map(|e| e.parse().unwrap()),
            mrr: Money::parse(mrr, "EUR").unwrap(),
            seats: 1,
            billing_period: BillingPeriod::Monthly,
        }
    }

    /// Three January accounts and one February account, by hand.
    #[test]
    fn cells_follow_each_account_from_its_own_start() {
        let lines = vec![
            // stays, doubles at month 2
            line("a1", "a", "2025-01-10", Some("2025-03-10"), "100"),
            line("a2", "a", "2025-03-10", None, "200"),
            // leaves after its first month (last day 2025-02-14)
            line("b1", "b", "2025-01-15", Some("2025-02-15"), "100"),
            // starts on the 31st: month 1 is 2025-02-28
            line("c1", "c", "2025-01-31", None, "50"),
            line("d1", "d", "2025-02-01", None, "80"),
        ];
        let book = Book::new(&lines, None).unwrap();
        let r = report(&book, "2025-03-20".parse().unwrap(), 12);
        assert_eq!(r.cohorts.len(), 2);
        let jan = &r.cohorts[0];
        assert_eq!((jan.cohort.as_str(), jan.accounts), ("2025-01", 3));
        // Month 0: all three active, 250 of 250.
        assert_eq!(
            (jan.cells[0].accounts, jan.cells[0].active, jan.cells[0].revenue_retention),
            (3, 3, Some(1.0))
        );
        // Month 1 (02-10, 02-15, 02-28): b is gone; a 100 + c 50 of 250.
        let m1 = &jan.cells[1];
        assert_eq!((m1.accounts, m1.active, m1.mrr), (3, 2, "150".parse().unwrap()));
        assert!((m1.logo_retention.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m1.revenue_retention, Some(0.6));
        // Month 2 (03-10, 03-15, 03-31): 03-31 is after as_of, so c is not observed yet.
        let m2 = &jan.cells[2];
        assert_eq!(
            (m2.accounts, m2.active, m2.start_mrr, m2.mrr),
            (2, 1, "200".parse().unwrap(), "200".parse().unwrap())
        );
        assert_eq!(m2.revenue_retention, Some(1.0));
        assert_eq!(jan.cells.len(), 3, "month 3 is observed for no one");
        let feb = &r.cohorts[1];
        assert_eq!((feb.cohort.as_str(), feb.cells.len()), ("2025-02", 2));
    }
}
