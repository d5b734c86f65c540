//! The feature table for learning (`keel features`): one row per account
//! active on each date asked, with what Keel concluded about it that day —
//! segment, health, every metric of the journey, as known that day — and
//! what followed: churn, contraction and expansion within 30, 90 and 180
//! days (unknown while the horizon runs past the day the data is known to).
//!
//! The facts come from the timeline kept under the journey version; an
//! account the timeline does not cover is evaluated as of each date, which
//! answers the same (the timeline's days equal evaluations as of them).

use keel_core::{Date, ExternalId};
use keel_engine::{AccountHistory, Plan};
use keel_store::{RecordKinds, Store, WorkspaceId};
use keel_timeline::{Fact, Facts};
use rust_decimal::Decimal;

use crate::load::{Usage, account_ids, load_list};
use crate::timeline::{TimelineError, read_days};

/// The outcome horizons, in days.
pub const HORIZONS: [u64; 3] = [30, 90, 180];

/// What followed a date within a horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// A day in the horizon with no line in force (checked on each line's
    /// end in it), as the health backtest counts churn (docs/metrics.md).
    pub churned: bool,
    /// Not churned, and less MRR in force at the horizon's end than on the date.
    pub contracted: bool,
    /// Not churned, and more MRR in force at the horizon's end than on the date.
    pub expanded: bool,
}

/// One account on one date.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    /// The account.
    pub account: ExternalId,
    /// The date.
    pub on: Date,
    /// What Keel concluded about it that day.
    pub facts: Facts,
    /// Per horizon of [`HORIZONS`], what followed (`None`: not known yet).
    pub outcomes: [Option<Outcome>; 3],
}

/// How the table was made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Made {
    /// Rows.
    pub rows: u64,
    /// Accounts read from the timeline.
    pub from_timeline: u64,
    /// Accounts evaluated (the timeline did not cover them).
    pub evaluated: u64,
}

/// The table's columns: account, date, segment, health, each metric the
/// journey declares (by name), then churned/contracted/expanded per horizon.
pub fn columns(plan: &Plan) -> Vec<String> {
    let mut c: Vec<String> = ["account", "date", "segment", "health_score", "health_band", "health_coverage"]
        .map(String::from)
        .into();
    c.extend(plan.journey().metric_types.keys().cloned());
    for h in HORIZONS {
        c.extend(["churned", "contracted", "expanded"].map(|what| format!("{what}_{h}d")));
    }
    c
}

/// A row's values, in [`columns`] order (empty: no value).
pub fn values(plan: &Plan, row: &FeatureRow) -> Vec<String> {
    let fact = |path: &str| row.facts.get(path).map_or_else(String::new, show);
    let mut v = vec![
        row.account.to_string(),
        row.on.to_string(),
        fact("segment"),
        fact("health/score"),
        fact("health/band"),
        fact("health/coverage"),
    ];
    v.extend(plan.journey().metric_types.keys().map(|name| fact(&format!("metric/{name}"))));
    for o in row.outcomes {
        let flag =
            |b: fn(&Outcome) -> bool| o.as_ref().map_or_else(String::new, |o| u8::from(b(o)).to_string());
        v.extend([flag(|o| o.churned), flag(|o| o.contracted), flag(|o| o.expanded)]);
    }
    v
}

fn show(f: &Fact) -> String {
    match f {
        Fact::Bool(b) => b.to_string(),
        Fact::Int(i) => i.to_string(),
        Fact::Num(x) => x.to_string(),
        Fact::Text(t) => t.clone(),
        // Facts read back are plain values; a stored anchor never reaches here.
        Fact::Since { since } => since.to_string(),
        Fact::Until { until } => until.to_string(),
    }
}

/// MRR in force on `d`.
fn mrr_on(h: &AccountHistory, d: Date) -> Decimal {
    h.contracts.iter().filter(|c| c.is_in_force(d)).map(|c| c.mrr.amount).sum()
}

/// What followed `on` within `days`, when `known` reaches the horizon's end.
pub fn outcome(h: &AccountHistory, on: Date, days: u64, known: Date) -> Option<Outcome> {
    let end = on + chrono::Days::new(days);
    if end > known {
        return None;
    }
    let active = |d: Date| keel_analytics::retention::active_on(&h.contracts, d);
    let churned = h.contracts.iter().filter_map(|c| c.end).any(|e| e > on && e <= end && !active(e));
    let (before, after) = (mrr_on(h, on), mrr_on(h, end));
    Some(Outcome { churned, contracted: !churned && after < before, expanded: !churned && after > before })
}

/// The rows of every account active on each of `dates` (ascending), with
/// outcomes known by `known`, handed to `out` a chunk of accounts at a time
/// (in account order, each account's in date order).
pub async fn features(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &Plan,
    version: &str,
    dates: &[Date],
    known: Date,
    mut out: impl FnMut(Vec<FeatureRow>) -> std::io::Result<()>,
) -> Result<Made, FeaturesError> {
    let mut made = Made::default();
    let ids = account_ids(store, ws).await?;
    for chunk in ids.chunks(crate::load::CHUNK) {
        let read = read_days(store, ws, version, chunk, dates).await?;
        let contracts = RecordKinds { contracts: true, ..RecordKinds::default() };
        let covered: Vec<ExternalId> =
            chunk.iter().filter(|id| read.facts.contains_key(*id)).cloned().collect();
        let mut rows = Vec::new();
        for h in load_list(store, ws, &covered, contracts, Usage::None).await? {
            let Some(facts) = read.facts.get(&h.account.id) else { continue };
            made.from_timeline += 1;
            rows.extend(rows_of(&h, dates, known, |i, _| facts[i].clone()));
        }
        let missing = load_list(store, ws, &read.missing, RecordKinds::ALL, Usage::Since(None, true)).await?;
        made.evaluated += missing.len() as u64;
        let evaluated = crate::load::on_every_core(&missing, |h| {
            rows_of(h, dates, known, |_, on| Some(keel_timeline::facts(&keel_engine::evaluate(plan, h, on))))
        })
        .await;
        rows.extend(evaluated.into_iter().flatten());
        rows.sort_by(|a, b| (&a.account, a.on).cmp(&(&b.account, b.on)));
        made.rows += rows.len() as u64;
        out(rows)?;
    }
    Ok(made)
}

fn rows_of(
    h: &AccountHistory,
    dates: &[Date],
    known: Date,
    facts: impl Fn(usize, Date) -> Option<Facts>,
) -> Vec<FeatureRow> {
    let mut rows = Vec::new();
    for (i, &on) in dates.iter().enumerate() {
        if !keel_analytics::retention::active_on(&h.contracts, on) {
            continue;
        }
        let Some(facts) = facts(i, on) else { continue };
        let outcomes = HORIZONS.map(|days| outcome(h, on, days, known));
        rows.push(FeatureRow { account: h.account.id.clone(), on, facts, outcomes });
    }
    rows
}

/// Why the table could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] keel_store::StoreError),
    /// The timeline could not be read.
    #[error(transparent)]
    Timeline(#[from] TimelineError),
    /// Writing the rows failed.
    #[error("writing the feature rows: {0}")]
    Write(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use keel_core::{Account, Label, Money, parse_date};

    use super::*;

    fn day(s: &str) -> Date {
        parse_date(s).expect("a date")
    }

    fn contract(n: u32, start: &str, end: Option<&str>, mrr: &str) -> keel_core::Contract {
        let id = |s: &str| ExternalId::parse(s).expect("an id");
        keel_core::Contract {
            id: id(&format!("c-{n}")),
            account: id("acme"),
            product: Label::parse("platform").expect("a label"),
            start: day(start),
            end: end.map(day),
            mrr: Money::parse(mrr, "EUR").expect("money"),
            seats: 10,
            billing_period: keel_core::BillingPeriod::Monthly,
        }
    }

    fn account(contracts: Vec<keel_core::Contract>) -> AccountHistory {
        let mut h = AccountHistory::new(Account {
            id: ExternalId::parse("acme").expect("an id"),
            name: "Acme".into(),
            attributes: Default::default(),
            owner: None,
            parent: None,
            created: day("2025-01-01"),
        });
        h.contracts = contracts;
        h
    }

    #[test]
    fn outcomes_say_churn_contraction_and_expansion_within_the_horizon_once_it_is_known() {
        let known = day("2026-12-31");
        let on = day("2025-12-31");
        // Renewed at less on 2026-03-01: contracted within 90 and 180 days, not within 30.
        let h = account(vec![
            contract(1, "2025-01-01", Some("2026-03-01"), "100"),
            contract(2, "2026-03-01", None, "80"),
        ]);
        let o = |days| outcome(&h, on, days, known);
        assert_eq!(o(30), Some(Outcome { churned: false, contracted: false, expanded: false }));
        assert_eq!(o(90), Some(Outcome { churned: false, contracted: true, expanded: false }));
        assert_eq!(o(180), Some(Outcome { churned: false, contracted: true, expanded: false }));
        // Not renewed: churned on its end, neither contracted nor expanded.
        let h = account(vec![contract(1, "2025-01-01", Some("2026-02-15"), "100")]);
        assert_eq!(
            outcome(&h, on, 90, known),
            Some(Outcome { churned: true, contracted: false, expanded: false })
        );
        assert_eq!(outcome(&h, on, 30, known).map(|o| o.churned), Some(false), "the end is 46 days on");
        // A second line added: expanded.
        let mut more = account(vec![contract(1, "2025-01-01", None, "100")]);
        more.contracts.push(contract(2, "2026-01-15", None, "50"));
        assert_eq!(outcome(&more, on, 30, known).map(|o| o.expanded), Some(true));
        // Not known until the horizon has passed.
        assert_eq!(outcome(&more, on, 30, day("2026-01-29")), None);
        assert!(outcome(&more, on, 30, day("2026-01-30")).is_some());
    }
}
