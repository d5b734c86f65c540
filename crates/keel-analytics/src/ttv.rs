//! Time to value (docs/metrics.md): how long accounts took from their first
//! contract's start to the first day the journey's first-value milestone
//! held, as of a date, overall, per segment and per start cohort.
//!
//! - Percentiles are taken over the accounts that reached first value by
//!   `as_of`, by linear interpolation between order statistics.
//! - The share within target counts only accounts that had the whole target
//!   window: reached within target / (reached, or tenure ≥ target).
//! - Accounts that have not reached first value are listed, those past their
//!   segment's target first.
//! - The histogram counts accounts that reached first value in bins of equal
//!   width `[k·w, (k+1)·w)` days from 0, `w` the smallest of 1, 2, 5, 7, 10,
//!   14, 15, 30, 45, 60, 90, 180 days that needs at most 20 bins.

use std::collections::BTreeMap;

use keel_core::{Date, ExternalId};
use serde::Serialize;

use crate::ratio;

/// One account as the engine saw it on `as_of`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TtvRow {
    /// The account.
    pub account: ExternalId,
    /// Its segment on `as_of`.
    pub segment: Option<String>,
    /// Its first contract's start.
    pub start: Date,
    /// Days to first value (None: not reached by `as_of`).
    pub ttv_days: Option<i64>,
    /// Days from `start` to `as_of`.
    pub tenure_days: i64,
    /// Its segment's target.
    pub target_days: Option<f64>,
}

/// The distribution over one group of accounts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TtvStats {
    /// Accounts whose first contract started by `as_of`.
    pub accounts: u64,
    /// Of which reached first value.
    pub reached: u64,
    /// Percentiles of days to first value among those that reached it.
    pub p25: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// Third quartile.
    pub p75: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// Accounts that had their whole target window: reached, or tenure ≥ target.
    pub eligible: u64,
    /// Of which reached first value within the target.
    pub within_target: u64,
    /// within_target / eligible.
    pub share_within_target: Option<f64>,
    /// Not reached, tenure past the target.
    pub overdue: u64,
    /// Not reached, still inside the target window (or no target).
    pub waiting: u64,
    /// The target every account of the group shares (None: no target, or
    /// accounts with different targets).
    pub target_days: Option<f64>,
}

/// An account that has not reached first value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotReached {
    /// The account.
    pub account: ExternalId,
    /// Its segment.
    pub segment: Option<String>,
    /// Its first contract's start.
    pub start: Date,
    /// Days since.
    pub tenure_days: i64,
    /// Its target.
    pub target_days: Option<f64>,
    /// Whether the tenure is past the target.
    pub overdue: bool,
}

/// `keel report ttv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TtvReport {
    /// The date the accounts were evaluated as of.
    pub as_of: Date,
    /// Every account.
    pub total: TtvStats,
    /// Per segment (`(none)` for accounts no rule takes).
    pub by_segment: BTreeMap<String, TtvStats>,
    /// Per start month, `YYYY-MM`.
    pub by_cohort: BTreeMap<String, TtvStats>,
    /// Accounts without first value: overdue first, then by tenure, longest first.
    pub not_reached: Vec<NotReached>,
    /// Days to first value of the accounts that reached it, in bins.
    pub histogram: Vec<TtvBin>,
}

/// Accounts that reached first value in `[from_days, to_days)` days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TtvBin {
    /// First day of the bin.
    pub from_days: i64,
    /// First day after it.
    pub to_days: i64,
    /// Accounts in it.
    pub accounts: u64,
}

/// Bin widths the histogram chooses from, in days.
const WIDTHS: [i64; 12] = [1, 2, 5, 7, 10, 14, 15, 30, 45, 60, 90, 180];

/// The histogram of `days` (see the module docs); empty when no day is given.
pub fn histogram(days: &[i64]) -> Vec<TtvBin> {
    let Some(&max) = days.iter().max() else { return Vec::new() };
    let max = max.max(0);
    let width = WIDTHS.iter().copied().find(|w| max / w < 20).unwrap_or_else(|| max / 19 + 1);
    let mut bins: Vec<TtvBin> = (0..=max / width)
        .map(|k| TtvBin { from_days: k * width, to_days: (k + 1) * width, accounts: 0 })
        .collect();
    for d in days {
        bins[(d.max(&0) / width) as usize].accounts += 1;
    }
    bins
}

/// The `q`-quantile (0 ≤ q ≤ 1) of sorted values: with `h = (n − 1)·q`,
/// `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])` (0-based); none when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

fn stats<'a>(rows: impl Iterator<Item = &'a TtvRow>) -> TtvStats {
    let mut days = Vec::new();
    let mut s = TtvStats {
        accounts: 0,
        reached: 0,
        p25: None,
        p50: None,
        p75: None,
        p90: None,
        eligible: 0,
        within_target: 0,
        share_within_target: None,
        overdue: 0,
        waiting: 0,
        target_days: None,
    };
    let mut targets: Vec<Option<f64>> = Vec::new();
    for r in rows {
        s.accounts += 1;
        if !targets.contains(&r.target_days) {
            targets.push(r.target_days);
        }
        match (r.ttv_days, r.target_days) {
            (Some(d), target) => {
                s.reached += 1;
                days.push(d as f64);
                if let Some(t) = target {
                    s.eligible += 1;
                    if d as f64 <= t {
                        s.within_target += 1;
                    }
                }
            }
            (None, Some(t)) if r.tenure_days as f64 >= t => {
                s.eligible += 1;
                s.overdue += 1;
            }
            (None, _) => s.waiting += 1,
        }
    }
    days.sort_by(f64::total_cmp);
    s.p25 = quantile(&days, 0.25);
    s.p50 = quantile(&days, 0.5);
    s.p75 = quantile(&days, 0.75);
    s.p90 = quantile(&days, 0.9);
    s.share_within_target = ratio(s.within_target as f64, s.eligible as f64);
    s.target_days = match targets.as_slice() {
        [one] => *one,
        _ => None,
    };
    s
}

/// The report over `rows` (accounts whose first contract started by `as_of`).
pub fn report(rows: &[TtvRow], as_of: Date) -> TtvReport {
    let none = "(none)".to_owned();
    let mut by_segment: BTreeMap<String, Vec<&TtvRow>> = BTreeMap::new();
    let mut by_cohort: BTreeMap<String, Vec<&TtvRow>> = BTreeMap::new();
    for r in rows {
        by_segment.entry(r.segment.clone().unwrap_or_else(|| none.clone())).or_default().push(r);
        by_cohort.entry(r.start.format("%Y-%m").to_string()).or_default().push(r);
    }
    let mut not_reached: Vec<NotReached> = rows
        .iter()
        .filter(|r| r.ttv_days.is_none())
        .map(|r| NotReached {
            account: r.account.clone(),
            segment: r.segment.clone(),
            start: r.start,
            tenure_days: r.tenure_days,
            target_days: r.target_days,
            overdue: r.target_days.is_some_and(|t| r.tenure_days as f64 >= t),
        })
        .collect();
    not_reached
        .sort_by(|a, b| (b.overdue, b.tenure_days, &a.account).cmp(&(a.overdue, a.tenure_days, &b.account)));
    TtvReport {
        as_of,
        total: stats(rows.iter()),
        by_segment: by_segment.into_iter().map(|(k, v)| (k, stats(v.into_iter()))).collect(),
        by_cohort: by_cohort.into_iter().map(|(k, v)| (k, stats(v.into_iter()))).collect(),
        not_reached,
        histogram: histogram(&rows.iter().filter_map(|r| r.ttv_days).collect::<Vec<_>>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(account: &str, segment: &str, start: &str, ttv: Option<i64>, tenure: i64, target: f64) -> TtvRow {
        TtvRow {
            account: ExternalId::parse(account).unwrap(),
            segment: Some(segment.to_owned()),
            start: start.parse().unwrap(),
            ttv_days: ttv,
            tenure_days: tenure,
            target_days: Some(target),
        }
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let x = [10.0, 20.0, 30.0, 40.0];
        // h = 3·q: 0.75 → 10 + 0.75·10; 1.5 → 25; 2.25 → 32.5; 2.7 → 37.
        assert_eq!(quantile(&x, 0.25), Some(17.5));
        assert_eq!(quantile(&x, 0.5), Some(25.0));
        assert_eq!(quantile(&x, 0.75), Some(32.5));
        assert!((quantile(&x, 0.9).unwrap() - 37.0).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    /// Six SMB accounts (target 30 days) and two enterprise ones (target 60),
    /// worked out by hand.
    #[test]
    fn the_distribution_and_the_target_share_by_hand() {
        let rows = vec![
            row("a", "smb", "2025-01-10", Some(10), 300, 30.0),
            row("b", "smb", "2025-01-20", Some(20), 290, 30.0),
            row("c", "smb", "2025-02-01", Some(40), 280, 30.0),
            row("d", "smb", "2025-02-05", None, 270, 30.0), // overdue
            row("e", "smb", "2025-10-20", None, 12, 30.0),  // still in its window
            row("f", "smb", "2025-03-01", Some(30), 250, 30.0),
            row("g", "enterprise", "2025-01-05", Some(50), 305, 60.0),
            row("h", "enterprise", "2025-02-10", None, 265, 60.0), // overdue
        ];
        let r = report(&rows, "2025-11-01".parse().unwrap());
        // Reached: 10, 20, 30, 40, 50 → p25 20, p50 30, p75 40, p90 46.
        let t = &r.total;
        assert_eq!((t.accounts, t.reached, t.overdue, t.waiting), (8, 5, 2, 1));
        assert_eq!((t.p25, t.p50, t.p75), (Some(20.0), Some(30.0), Some(40.0)));
        assert!((t.p90.unwrap() - 46.0).abs() < 1e-12);
        // Eligible: the five reached and the two overdue; within: a, b, f (smb ≤ 30) and g (≤ 60).
        assert_eq!((t.eligible, t.within_target), (7, 4));
        assert!((t.share_within_target.unwrap() - 4.0 / 7.0).abs() < 1e-12);
        let smb = &r.by_segment["smb"];
        assert_eq!((smb.accounts, smb.reached, smb.eligible, smb.within_target), (6, 4, 5, 3));
        assert_eq!(smb.p50, Some(25.0));
        assert_eq!(
            (smb.target_days, t.target_days),
            (Some(30.0), None),
            "a shared target, or none when mixed"
        );
        assert_eq!(r.by_cohort["2025-01"].accounts, 3);
        assert_eq!(r.by_cohort["2025-02"].reached, 1);
        let order: Vec<(&str, bool)> =
            r.not_reached.iter().map(|n| (n.account.as_str(), n.overdue)).collect();
        assert_eq!(order, [("d", true), ("h", true), ("e", false)]);
    }

    #[test]
    fn the_histogram_picks_the_narrowest_width_under_twenty_bins() {
        assert_eq!(histogram(&[]), vec![]);
        // Max 19: width 1, twenty bins 0..20.
        let h = histogram(&[0, 3, 3, 19]);
        assert_eq!((h.len(), h[0].accounts, h[3].accounts, h[19].accounts), (20, 1, 2, 1));
        // Max 20 needs 21 bins of 1, so width 2: [0,2) … [20,22).
        let h = histogram(&[1, 2, 20]);
        assert_eq!(h.len(), 11);
        assert_eq!(
            (h[0].accounts, h[1].accounts, h[10].from_days, h[10].to_days, h[10].accounts),
            (1, 1, 20, 22, 1)
        );
        // Max 130: width 7 (130/7 = 18 < 20), and every account is counted once.
        let days = [0, 6, 7, 64, 130];
        let h = histogram(&days);
        assert_eq!((h[0].to_days, h.len()), (7, 19));
        assert_eq!(h.iter().map(|b| b.accounts).sum::<u64>(), days.len() as u64);
        assert_eq!((h[0].accounts, h[1].accounts, h[9].accounts, h[18].accounts), (2, 1, 1, 1));
    }

    #[test]
    fn no_reached_account_leaves_the_percentiles_empty() {
        let rows = vec![row("a", "smb", "2025-10-01", None, 5, 30.0)];
        let r = report(&rows, "2025-10-06".parse().unwrap());
        assert_eq!((r.total.p50, r.total.share_within_target, r.total.waiting), (None, None, 1));
    }
}
