//! Revenue retention over a period `[from, to)`, from contract lines in
//! force on a date (docs/metrics.md states every formula):
//!
//! - a line is in force on day `d` when `start ≤ d < end` (no end: always
//!   from its start); an account's MRR on `d` is the sum over its lines in
//!   force on `d`, and the account is *active* on `d` when it has any;
//! - the starting accounts are those active on `from`; their MRR on `from`
//!   is the starting MRR and their MRR on `to` the ending MRR;
//! - NRR = ending / starting; GRR = Σ min(start, end) / starting;
//! - churned MRR is the starting MRR of starting accounts not active on
//!   `to`; expansion and contraction are the rises and falls of the others;
//! - logo churn = starting accounts not active on `to` / starting accounts;
//! - renewal rate over lines due in the period (last day in force within it:
//!   `from < end ≤ to`): renewed when the account has a line in force on the
//!   line's `end` day, the day after its last.

use std::collections::{BTreeMap, BTreeSet};

use keel_core::{Contract, Date, ExternalId};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::{AnalyticsError, Period, ratio};

/// What happened to one starting account's MRR over the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Not active on `to`.
    Churned,
    /// Active on `to` with less MRR.
    Contracted,
    /// The same MRR.
    Retained,
    /// More MRR.
    Expanded,
}

impl Class {
    /// The name reports print.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Churned => "churned",
            Class::Contracted => "contracted",
            Class::Retained => "retained",
            Class::Expanded => "expanded",
        }
    }
}

/// One starting account in the explanation of a headline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = RetentionAccountRow))]
pub struct AccountRow {
    /// The account.
    pub account: ExternalId,
    /// MRR on `from`.
    pub start_mrr: Decimal,
    /// MRR on `to`.
    pub end_mrr: Decimal,
    /// What happened.
    pub class: Class,
}

/// One line due for renewal in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenewalRow {
    /// The line.
    pub line: ExternalId,
    /// Its account.
    pub account: ExternalId,
    /// First day no longer in force.
    pub end: Date,
    /// Its MRR.
    pub mrr: Decimal,
    /// Whether the account had a line in force on `end`.
    pub renewed: bool,
}

/// Revenue retention of one set of lines over one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Retention {
    /// The period.
    pub period: Period,
    /// Accounts active on `from`.
    pub starting_accounts: u64,
    /// Their MRR on `from`.
    pub starting_mrr: Decimal,
    /// Their MRR on `to`.
    pub ending_mrr: Decimal,
    /// Rises of starting accounts active on `to`.
    pub expansion_mrr: Decimal,
    /// Falls of starting accounts active on `to`.
    pub contraction_mrr: Decimal,
    /// Starting MRR of starting accounts not active on `to`.
    pub churned_mrr: Decimal,
    /// Starting accounts not active on `to`.
    pub churned_accounts: u64,
    /// Accounts active on `to` but not on `from` (outside NRR and GRR).
    pub new_accounts: u64,
    /// Their MRR on `to`.
    pub new_mrr: Decimal,
    /// Ending / starting MRR; none when nothing started.
    pub nrr: Option<f64>,
    /// Σ min(start, end) / starting MRR; none when nothing started.
    pub grr: Option<f64>,
    /// Churned / starting accounts; none when none started.
    pub logo_churn: Option<f64>,
    /// Lines due in the period.
    pub renewals_due: u64,
    /// Of which renewed.
    pub renewals_renewed: u64,
    /// Renewed / due lines; none when none were due.
    pub renewal_rate: Option<f64>,
    /// The same, weighted by the lines' MRR.
    pub renewal_rate_mrr: Option<f64>,
    /// Every starting account, by id (`--explain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountRow>,
    /// Every line due, by end then id (`--explain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub renewals: Vec<RenewalRow>,
}

/// Contract lines grouped by account, in one currency, ready to be asked
/// about any date.
#[derive(Debug, Clone, Default)]
pub struct Book<'a> {
    lines: BTreeMap<&'a ExternalId, Vec<&'a Contract>>,
    currency: Option<String>,
}

impl<'a> Book<'a> {
    /// The lines in `currency`, or — when none is given — every line, which
    /// must then share one currency.
    pub fn new(contracts: &'a [Contract], currency: Option<&str>) -> Result<Self, AnalyticsError> {
        let mut lines: BTreeMap<&ExternalId, Vec<&Contract>> = BTreeMap::new();
        let mut currencies = BTreeSet::new();
        for c in contracts {
            let code = c.mrr.currency.to_string();
            if currency.is_some_and(|want| !want.eq_ignore_ascii_case(&code)) {
                continue;
            }
            currencies.insert(code);
            lines.entry(&c.account).or_default().push(c);
        }
        if currencies.len() > 1 {
            return Err(AnalyticsError::MixedCurrencies { currencies: currencies.into_iter().collect() });
        }
        Ok(Self { lines, currency: currencies.pop_first() })
    }

    /// The same book restricted to lines `keep` accepts (a product line, the
    /// accounts of a segment).
    pub fn filter(&self, keep: impl Fn(&Contract) -> bool) -> Book<'a> {
        let lines = self
            .lines
            .iter()
            .filter_map(|(a, ls)| {
                let kept: Vec<&Contract> = ls.iter().copied().filter(|c| keep(c)).collect();
                (!kept.is_empty()).then_some((*a, kept))
            })
            .collect();
        Book { lines, currency: self.currency.clone() }
    }

    /// The currency of every line (none when there are no lines).
    pub fn currency(&self) -> Option<&str> {
        self.currency.as_deref()
    }

    /// Every line, by account.
    pub fn lines(&self) -> impl Iterator<Item = &'a Contract> + '_ {
        self.lines.values().flat_map(|ls| ls.iter().copied())
    }

    /// The accounts with any line.
    pub fn accounts(&self) -> impl Iterator<Item = &'a ExternalId> + '_ {
        self.lines.keys().copied()
    }

    /// The account's first line start.
    pub fn first_start(&self, account: &ExternalId) -> Option<Date> {
        self.lines.get(account)?.iter().map(|c| c.start).min()
    }

    /// The account's MRR on `d`, or `None` when no line is in force.
    pub fn mrr_on(&self, account: &ExternalId, d: Date) -> Option<Decimal> {
        mrr_on(self.lines.get(account)?, d)
    }

    /// Revenue retention over `period`.
    pub fn retention(&self, period: Period) -> Retention {
        let mut r = Retention {
            period,
            starting_accounts: 0,
            starting_mrr: Decimal::ZERO,
            ending_mrr: Decimal::ZERO,
            expansion_mrr: Decimal::ZERO,
            contraction_mrr: Decimal::ZERO,
            churned_mrr: Decimal::ZERO,
            churned_accounts: 0,
            new_accounts: 0,
            new_mrr: Decimal::ZERO,
            nrr: None,
            grr: None,
            logo_churn: None,
            renewals_due: 0,
            renewals_renewed: 0,
            renewal_rate: None,
            renewal_rate_mrr: None,
            accounts: Vec::new(),
            renewals: Vec::new(),
        };
        let mut kept = Decimal::ZERO;
        let (mut due_mrr, mut renewed_mrr) = (Decimal::ZERO, Decimal::ZERO);
        for (account, lines) in &self.lines {
            let start = mrr_on(lines, period.from);
            let end = mrr_on(lines, period.to);
            for line in lines.iter().filter(|c| c.end.is_some_and(|e| period.from < e && e <= period.to)) {
                let end_day = line.end.expect("filtered on an end");
                let renewed = mrr_on(lines, end_day).is_some();
                r.renewals_due += 1;
                due_mrr += line.mrr.amount;
                if renewed {
                    r.renewals_renewed += 1;
                    renewed_mrr += line.mrr.amount;
                }
                r.renewals.push(RenewalRow {
                    line: line.id.clone(),
                    account: (*account).clone(),
                    end: end_day,
                    mrr: line.mrr.amount,
                    renewed,
                });
            }
            let Some(start) = start else {
                if let Some(end) = end {
                    r.new_accounts += 1;
                    r.new_mrr += end;
                }
                continue;
            };
            r.starting_accounts += 1;
            r.starting_mrr += start;
            let class = match end {
                None => {
                    r.churned_accounts += 1;
                    r.churned_mrr += start;
                    Class::Churned
                }
                Some(end) => {
                    r.ending_mrr += end;
                    kept += start.min(end);
                    if end > start {
                        r.expansion_mrr += end - start;
                        Class::Expanded
                    } else if end < start {
                        r.contraction_mrr += start - end;
                        Class::Contracted
                    } else {
                        Class::Retained
                    }
                }
            };
            r.accounts.push(AccountRow {
                account: (*account).clone(),
                start_mrr: start,
                end_mrr: end.unwrap_or(Decimal::ZERO),
                class,
            });
        }
        let f = |d: Decimal| d.to_f64().unwrap_or(0.0);
        r.nrr = ratio(f(r.ending_mrr), f(r.starting_mrr));
        r.grr = ratio(f(kept), f(r.starting_mrr));
        r.logo_churn = ratio(r.churned_accounts as f64, r.starting_accounts as f64);
        r.renewal_rate = ratio(r.renewals_renewed as f64, r.renewals_due as f64);
        r.renewal_rate_mrr = ratio(f(renewed_mrr), f(due_mrr));
        r.renewals.sort_by(|a, b| (a.end, &a.line).cmp(&(b.end, &b.line)));
        r
    }
}

/// Whether any of `contracts` is in force on `d` (in whatever currency).
pub fn active_on(contracts: &[Contract], d: Date) -> bool {
    contracts.iter().any(|c| c.is_in_force(d))
}

fn mrr_on(lines: &[&Contract], d: Date) -> Option<Decimal> {
    let mut total = None;
    for c in lines {
        if c.is_in_force(d) {
            *total.get_or_insert(Decimal::ZERO) += c.mrr.amount;
        }
    }
    total
}

/// The seed-000 split: GRR is decided in months 1–6 of tenure, NRR in
/// months 7 and later. Starting accounts are split by their tenure month on
/// `from` (counted from their first line's start).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenureSplit {
    /// Accounts in months 1–6 of tenure on `from`.
    pub early: Retention,
    /// Accounts in month 7 or later.
    pub late: Retention,
    /// Said when early GRR is below 85%: where to look.
    pub diagnostic: Option<String>,
    /// With the diagnostic, when the journey is known: the early stages'
    /// exit gates and the moments of months 1–3 the early losses show most
    /// ([`early_pointers`]).
    pub pointers: Vec<EarlyPointer>,
}

/// What one account in months 1–6 of tenure showed by the end of its month 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlyObs {
    /// The account.
    pub account: ExternalId,
    /// It churned in the period.
    pub churned: bool,
    /// Stages whose exit gate a line of it had not passed by the end of month 3.
    pub gates_open: Vec<String>,
    /// Moments that fired for it in months 1–3.
    pub moments: Vec<String>,
}

/// What a pointer points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PointerKind {
    /// A stage's exit gate, not passed by the end of month 3.
    Gate,
    /// A moment that fired in months 1–3.
    Moment,
}

/// A gate or moment that the early losses show.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EarlyPointer {
    /// Gate or moment.
    pub kind: PointerKind,
    /// The stage (for a gate) or moment id.
    pub id: String,
    /// Early accounts showing it.
    pub accounts: u64,
    /// Their share of the early accounts observed.
    pub share: Option<f64>,
    /// Churned accounts among them.
    pub churned: u64,
    /// Logo churn among the accounts showing it.
    pub churn_showing: Option<f64>,
    /// Logo churn among the other early accounts.
    pub churn_rest: Option<f64>,
}

/// The pointers the early losses show: every gate left open and every
/// moment fired by at least one churned early account, among whose accounts
/// churn is higher than among the rest (a moment that goes with staying,
/// like reaching first value, or that every account shows, points nowhere); most churned accounts first,
/// then the larger churn difference; at most `limit`.
pub fn early_pointers(obs: &[EarlyObs], limit: usize) -> Vec<EarlyPointer> {
    let mut found: BTreeMap<(u8, &str), (u64, u64)> = BTreeMap::new();
    for o in obs {
        let kinds = o.gates_open.iter().map(|g| (0u8, g)).chain(o.moments.iter().map(|m| (1u8, m)));
        let mut seen = BTreeSet::new();
        for (kind, id) in kinds {
            if seen.insert((kind, id.as_str())) {
                let slot = found.entry((kind, id.as_str())).or_default();
                slot.0 += 1;
                slot.1 += u64::from(o.churned);
            }
        }
    }
    let n = obs.len() as u64;
    let churned_all = obs.iter().filter(|o| o.churned).count() as u64;
    let mut pointers: Vec<EarlyPointer> = found
        .into_iter()
        .filter(|(_, (_, churned))| *churned > 0)
        .map(|((kind, id), (accounts, churned))| EarlyPointer {
            kind: if kind == 0 { PointerKind::Gate } else { PointerKind::Moment },
            id: id.to_owned(),
            accounts,
            share: ratio(accounts as f64, n as f64),
            churned,
            churn_showing: ratio(churned as f64, accounts as f64),
            churn_rest: ratio((churned_all - churned) as f64, (n - accounts) as f64),
        })
        .collect();
    let lift = |p: &EarlyPointer| p.churn_showing.unwrap_or(0.0) - p.churn_rest.unwrap_or(0.0);
    // Something every early account shows compares with nothing.
    pointers.retain(|p| p.churn_rest.is_some() && lift(p) > 0.0);
    pointers.sort_by(|a, b| b.churned.cmp(&a.churned).then(lift(b).total_cmp(&lift(a))));
    pointers.truncate(limit);
    pointers
}

/// Early GRR below this is "a months 1–3 problem" (seed 000).
pub const EARLY_GRR_ALARM: f64 = 0.85;

/// Splits `book`'s retention over `period` by tenure on `from`.
pub fn tenure_split(book: &Book<'_>, period: Period) -> TenureSplit {
    let early_accounts: BTreeSet<ExternalId> = book
        .accounts()
        .filter(|a| {
            book.first_start(a).is_some_and(|s| (1..=6).contains(&crate::tenure_month(s, period.from)))
        })
        .cloned()
        .collect();
    let early = book.filter(|c| early_accounts.contains(&c.account)).retention(period);
    let late = book.filter(|c| !early_accounts.contains(&c.account)).retention(period);
    let diagnostic = early.grr.filter(|g| *g < EARLY_GRR_ALARM).map(|g| {
        format!(
            "GRR among accounts in months 1–6 is {:.1}% (below {:.0}%): losses this early come from onboarding — \
             first value, kickoff, a defined success metric. Look at the early stages' exit gates and at the moments \
             that fire in months 1–3.",
            g * 100.0,
            EARLY_GRR_ALARM * 100.0
        )
    });
    TenureSplit { early, late, diagnostic, pointers: Vec::new() }
}

/// How a retention report breaks its headline down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// Each calendar month of the period.
    Month,
    /// The segment the journey gives each account as of `from`.
    Segment,
    /// Each product line on its own lines.
    Product,
    /// The month of each account's first line start.
    Cohort,
}

/// One row of a breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Group {
    /// The month (`YYYY-MM`), segment, product line or cohort month.
    pub key: String,
    /// Its retention.
    pub retention: Retention,
}

/// `keel report retention`: the headline, an optional breakdown, and the
/// tenure split.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionReport {
    /// The currency of every amount (none when there are no lines).
    pub currency: Option<String>,
    /// Over the whole period.
    pub total: Retention,
    /// The breakdown asked for.
    pub by: Option<By>,
    /// Its rows, in key order.
    pub groups: Vec<Group>,
    /// Months 1–6 vs 7+ of tenure.
    pub tenure_split: TenureSplit,
}

/// Assembles the report; `segments` gives each account's segment as of
/// `from` (accounts it lacks are grouped as `(none)`).
pub fn report(
    book: &Book<'_>,
    period: Period,
    by: Option<By>,
    segments: &BTreeMap<ExternalId, String>,
) -> RetentionReport {
    let none = "(none)".to_owned();
    let groups = match by {
        None => Vec::new(),
        Some(By::Month) => period
            .months()
            .into_iter()
            .map(|m| Group { key: m.from.format("%Y-%m").to_string(), retention: book.retention(m) })
            .collect(),
        Some(By::Product) => {
            let products: BTreeSet<&str> = book.lines().map(|c| c.product.as_str()).collect();
            products
                .into_iter()
                .map(|p| Group {
                    key: p.to_owned(),
                    retention: book.filter(|c| c.product.as_str() == p).retention(period),
                })
                .collect()
        }
        Some(By::Segment) => {
            let keys: BTreeSet<&String> = book.accounts().map(|a| segments.get(a).unwrap_or(&none)).collect();
            keys.into_iter()
                .map(|k| Group {
                    key: k.clone(),
                    retention: book
                        .filter(|c| segments.get(&c.account).unwrap_or(&none) == k)
                        .retention(period),
                })
                .collect()
        }
        Some(By::Cohort) => {
            let cohort = |a: &ExternalId| book.first_start(a).map(|d| d.format("%Y-%m").to_string());
            let of: BTreeMap<&ExternalId, String> =
                book.accounts().filter_map(|a| Some((a, cohort(a)?))).collect();
            let keys: BTreeSet<&String> = of.values().collect();
            keys.into_iter()
                .map(|k| Group {
                    key: k.clone(),
                    retention: book.filter(|c| of.get(&c.account) == Some(k)).retention(period),
                })
                .collect()
        }
    };
    RetentionReport {
        currency: book.currency.clone(),
        total: book.retention(period),
        by,
        groups,
        tenure_split: tenure_split(book, period),
    }
}

#[cfg(test)]
mod tests;
