//! Portfolio reports over a workspace, for the CLI (`keel report`) and the
//! REST API alike: reads what a report needs from the store and hands it to
//! the pure computations of `keel-analytics`.

use keel_analytics::retention::{self, By, RetentionReport};
use keel_analytics::{AnalyticsError, Period};
use std::collections::HashMap;

use keel_core::{Date, ExternalId};
use keel_store::{Accounts, RecordKinds, Store, StoreError, WorkspaceId};

use crate::load::MetricTableError;

/// What a retention report covers. Missing bounds default to the twelve
/// months before the first day of `as_of`'s month.
#[derive(Debug, Clone, Default)]
pub struct RetentionQuery {
    /// First day of the period.
    pub from: Option<Date>,
    /// First day after it.
    pub to: Option<Date>,
    /// The day the default period is counted back from.
    pub as_of: Date,
    /// Only accounts in this segment on `from`.
    pub segment: Option<String>,
    /// Only lines of this product line.
    pub product: Option<String>,
    /// Only lines in this currency.
    pub currency: Option<String>,
    /// The breakdown.
    pub by: Option<By>,
    /// Keep the per-account and per-line rows.
    pub explain: bool,
}

impl RetentionQuery {
    /// The period asked for, with its defaults.
    pub fn period(&self) -> Result<Period, AnalyticsError> {
        use chrono::Datelike as _;
        let to = self.to.unwrap_or_else(|| self.as_of.with_day(1).unwrap_or(self.as_of));
        let from = self.from.unwrap_or_else(|| to.checked_sub_months(chrono::Months::new(12)).unwrap_or(to));
        Period::new(from, to)
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The query is not answerable as asked (the message names the field).
    #[error(transparent)]
    Analytics(#[from] AnalyticsError),
    /// A segment the journey does not define.
    #[error("segment {asked:?}: the journey has no such segment (it has {known})")]
    UnknownSegment {
        /// As asked.
        asked: String,
        /// The journey's segments.
        known: String,
    },
    /// Segments come from the journey, and there is none.
    #[error("segments come from the journey, and none is loaded")]
    NoJourney,
    /// A segment rule reads a metric the engine cannot compute per account.
    #[error(transparent)]
    Metric(MetricTableError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The timeline could not be read.
    #[error(transparent)]
    Timeline(#[from] crate::timeline::TimelineError),
    /// The computation itself stopped (a panic in a report task).
    #[error("{0}")]
    Failed(String),
}

impl From<MetricTableError> for ReportError {
    fn from(e: MetricTableError) -> Self {
        match e {
            MetricTableError::Store(e) => Self::Store(e),
            other => Self::Metric(other),
        }
    }
}

/// A segment filter asked with a journey loaded, for a known segment.
fn segment_filter(plan: Option<&keel_engine::Plan>, segment: Option<&str>) -> Result<(), ReportError> {
    match (plan, segment) {
        (_, None) => Ok(()),
        (None, Some(_)) => Err(ReportError::NoJourney),
        (Some(plan), Some(s)) => known_segment(plan, s),
    }
}

/// Whether an account's segment (as the engine found it) passes the filter.
fn in_segment(found: Option<&str>, segment: Option<&str>) -> bool {
    segment.is_none_or(|s| found == Some(s))
}

/// Refuses a segment the journey does not define.
pub fn known_segment(plan: &keel_engine::Plan, asked: &str) -> Result<(), ReportError> {
    let known: Vec<&str> = plan.journey().segments.iter().map(|s| s.id.as_str()).collect();
    if known.contains(&asked) {
        Ok(())
    } else {
        Err(ReportError::UnknownSegment { asked: asked.to_owned(), known: known.join(", ") })
    }
}

async fn contracts(store: &dyn Store, ws: WorkspaceId) -> Result<Vec<keel_core::Contract>, StoreError> {
    let kinds = RecordKinds {
        contracts: true,
        contacts: false,
        tickets: false,
        surveys: false,
        touchpoints: false,
        opportunities: false,
    };
    Ok(store.records(ws, Accounts::All, kinds).await?.contracts)
}

/// How many gates and moments the early-GRR diagnostic names.
const POINTERS: usize = 5;

/// For the early-GRR diagnostic: each early starting account evaluated on
/// the last day of its month 3 (or of the period, when that comes first) —
/// the exit gates of the stages its lines were still in — and sampled weekly
/// through months 1–3 for the moments that fired; ranked by the churned
/// accounts showing each.
async fn early_pointers(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &keel_engine::Plan,
    early: &retention::Retention,
    book: &retention::Book<'_>,
    to: Date,
) -> Result<Vec<retention::EarlyPointer>, ReportError> {
    let last = to.pred_opt().unwrap_or(to);
    let churned: std::collections::BTreeMap<keel_core::ExternalId, bool> =
        early.accounts.iter().map(|a| (a.account.clone(), a.class == retention::Class::Churned)).collect();
    let ids: Vec<keel_core::ExternalId> = churned.keys().cloned().collect();
    let mut observed = Vec::new();
    let mut chunks = FullChunks::of(store, ws, ids);
    while let Some(histories) = chunks.next().await? {
        let found = crate::load::on_every_core(&histories, |h| {
            let start = book.first_start(&h.account.id)?;
            // Nothing after the period counts.
            let month3_end = start.checked_add_months(chrono::Months::new(3))?.pred_opt()?.min(last);
            let state = keel_engine::evaluate(plan, h, month3_end);
            let mut gates_open: Vec<String> =
                state.lines.iter().filter(|l| !l.gate_passed).filter_map(|l| l.stage.clone()).collect();
            gates_open.sort();
            gates_open.dedup();
            let mut moments = Vec::new();
            let mut on = start + chrono::Days::new(6);
            while on <= month3_end {
                moments.extend(keel_engine::signals(plan, h, on).fired);
                on = on + chrono::Days::new(7);
            }
            moments.extend(keel_engine::signals(plan, h, month3_end).fired);
            moments.sort();
            moments.dedup();
            Some(retention::EarlyObs {
                account: h.account.id.clone(),
                churned: churned.get(&h.account.id).copied().unwrap_or(false),
                gates_open,
                moments,
            })
        })
        .await;
        observed.extend(found.into_iter().flatten());
    }
    Ok(retention::early_pointers(&observed, POINTERS))
}

/// Logo and revenue retention by start month × months since start, as of
/// `as_of`, over the lines of `product` (all when none) in `currency`, of
/// the accounts in `segment` on `as_of` when given (needs `plan`).
#[allow(clippy::too_many_arguments)] // each is one of the report's own parameters, as the CLI and API name them
pub async fn cohorts(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: Option<&keel_engine::Plan>,
    as_of: Date,
    max_months: u32,
    product: Option<&str>,
    currency: Option<&str>,
    segment: Option<&str>,
) -> Result<keel_analytics::cohorts::CohortReport, ReportError> {
    segment_filter(plan, segment)?;
    let segments = match (plan, segment) {
        (Some(plan), Some(_)) => crate::load::segments(store, ws, plan, as_of).await?,
        _ => Default::default(),
    };
    let lines = contracts(store, ws).await?;
    let book = retention::Book::new(&lines, currency)?;
    let book = book.filter(|c| {
        product.is_none_or(|p| c.product.as_str() == p)
            && in_segment(segments.get(&c.account).map(String::as_str), segment)
    });
    Ok(keel_analytics::cohorts::report(&book, as_of, max_months))
}

/// Revenue retention of the workspace (docs/metrics.md).
pub async fn retention(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: Option<&keel_engine::Plan>,
    q: &RetentionQuery,
) -> Result<RetentionReport, ReportError> {
    let period = q.period()?;
    let lines = contracts(store, ws).await?;
    let segments = if q.segment.is_some() || q.by == Some(By::Segment) {
        let plan = plan.ok_or(ReportError::NoJourney)?;
        if let Some(asked) = &q.segment {
            known_segment(plan, asked)?;
        }
        crate::load::segments(store, ws, plan, period.from).await?
    } else {
        Default::default()
    };
    let book = retention::Book::new(&lines, q.currency.as_deref())?;
    let book = book.filter(|c| {
        q.product.as_ref().is_none_or(|p| c.product.as_str() == p)
            && q.segment.as_ref().is_none_or(|s| segments.get(&c.account) == Some(s))
    });
    let mut report = retention::report(&book, period, q.by, &segments);
    if let Some(plan) = plan.filter(|_| report.tenure_split.diagnostic.is_some()) {
        report.tenure_split.pointers =
            early_pointers(store, ws, plan, &report.tenure_split.early, &book, period.to).await?;
    }
    if !q.explain {
        for r in std::iter::once(&mut report.total)
            .chain(report.groups.iter_mut().map(|g| &mut g.retention))
            .chain([&mut report.tenure_split.early, &mut report.tenure_split.late])
        {
            r.accounts = Vec::new();
            r.renewals = Vec::new();
        }
    }
    Ok(report)
}

/// Time to value of every account whose first contract started by `as_of`
/// (and, when given, on or after `from` and before `to`), evaluated as of
/// `as_of`, in `segment` on `as_of` when given (docs/metrics.md).
pub async fn ttv(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &keel_engine::Plan,
    as_of: Date,
    started: (Option<Date>, Option<Date>),
    segment: Option<&str>,
) -> Result<keel_analytics::ttv::TtvReport, ReportError> {
    starts_window(started)?;
    segment_filter(Some(plan), segment)?;
    let needs = plan
        .value_needs()
        .map_err(|source| MetricTableError::Metric { name: "first_value".to_owned(), source })?;
    let mut rows = Vec::new();
    crate::load::each_chunk(store, ws, needs, as_of, |histories| {
        let facts =
            crate::load::on_every_core_in_turn(&histories, |h| keel_engine::value_facts(plan, h, as_of));
        for (h, f) in histories.iter().zip(facts) {
            let (Some(start), Some(tenure_days)) = (f.start, f.tenure_days) else { continue };
            if started.0.is_some_and(|from| start < from)
                || started.1.is_some_and(|to| start >= to)
                || !in_segment(f.segment.as_deref(), segment)
            {
                continue;
            }
            rows.push(keel_analytics::ttv::TtvRow {
                account: h.account.id.clone(),
                segment: f.segment,
                start,
                ttv_days: f.ttv_days,
                tenure_days,
                target_days: f.target_days,
            });
        }
    })
    .await?;
    Ok(keel_analytics::ttv::report(&rows, as_of))
}

/// The stage funnel per product line, from the stage history every account's
/// evaluation as of `as_of` rebuilds, over the accounts in `segment` on
/// `as_of` when given (docs/metrics.md).
pub async fn funnel(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &keel_engine::Plan,
    as_of: Date,
    segment: Option<&str>,
) -> Result<keel_analytics::funnel::FunnelReport, ReportError> {
    segment_filter(Some(plan), segment)?;
    use keel_analytics::funnel::{Change, LineHistory};
    let mut lines = Vec::new();
    let mut chunks = FullChunks::new(store, ws).await?;
    while let Some(histories) = chunks.next().await? {
        let states = crate::load::on_every_core(&histories, |h| keel_engine::evaluate(plan, h, as_of)).await;
        for (h, state) in histories.iter().zip(states) {
            if !in_segment(state.segment.as_deref(), segment) {
                continue;
            }
            for line in state.lines {
                let Some(start) = line.transitions.first().map(|t| t.on) else { continue };
                lines.push(LineHistory {
                    account: h.account.id.clone(),
                    product_line: line.product_line,
                    segment: state.segment.clone(),
                    start,
                    changes: line.transitions.into_iter().map(|t| Change { on: t.on, to: t.to }).collect(),
                });
            }
        }
    }
    let order: Vec<String> = plan.journey().stages.iter().map(|s| s.id.clone()).collect();
    Ok(keel_analytics::funnel::report(&lines, &order, as_of))
}

/// The month ends in `[from, to)` whose following 90 days end by `as_of`.
pub fn snapshot_dates(from: Date, to: Date, as_of: Date) -> Vec<Date> {
    let horizon = chrono::Days::new(keel_analytics::backtest::HORIZON_DAYS);
    month_ends(from, to).into_iter().filter(|end| *end + horizon <= as_of).collect()
}

/// The last days of the months in `[from, to)` (each on or after `from`
/// and before `to`).
pub fn month_ends(from: Date, to: Date) -> Vec<Date> {
    let mut month = keel_analytics::Period { from, to }.months();
    month.retain(|m| m.to == keel_analytics::first_of_next_month(m.from));
    month
        .into_iter()
        .map(|m| m.to.pred_opt().unwrap_or(m.to))
        .filter(|end| *end >= from && *end < to)
        .collect()
}

/// The health backtest: every account active on each month end in
/// `[from, to)`, evaluated as of that day, against churn within the next 90
/// days (docs/metrics.md); with `segment`, only the snapshots where the
/// account was in it. The health and segment concluded on each day are
/// read from the timeline kept under `version` (when given); accounts it
/// does not cover are evaluated.
pub async fn health_backtest(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &keel_engine::Plan,
    version: Option<&str>,
    dates: &[Date],
    segment: Option<&str>,
) -> Result<keel_analytics::backtest::HealthBacktest, ReportError> {
    segment_filter(Some(plan), segment)?;
    let mut all = Vec::new();
    let ids = crate::load::account_ids(store, ws).await?;
    for chunk in ids.chunks(crate::load::CHUNK) {
        let read = match version {
            Some(version) => crate::timeline::read_days(store, ws, version, chunk, dates).await?,
            None => crate::timeline::Read { missing: chunk.to_vec(), ..Default::default() },
        };
        // Read from the timeline: only the contracts are needed besides.
        let covered: Vec<keel_core::ExternalId> =
            chunk.iter().filter(|id| read.facts.contains_key(*id)).cloned().collect();
        let contracts = RecordKinds { contracts: true, ..RecordKinds::default() };
        for h in crate::load::load_list(store, ws, &covered, contracts, crate::load::Usage::None).await? {
            let Some(facts) = read.facts.get(&h.account.id) else { continue };
            all.extend(backtest_snapshots(&h, dates, segment, |i, _| timeline_health(facts[i].as_ref())));
        }
        // Not covered: evaluated on each date.
        let mut missing = FullChunks::of(store, ws, read.missing);
        while let Some(histories) = missing.next().await? {
            let found = crate::load::on_every_core(&histories, |h| {
                backtest_snapshots(h, dates, segment, |_, on| {
                    let state = keel_engine::evaluate(plan, h, on);
                    (state.segment, state.health.score, state.health.band)
                })
            })
            .await;
            all.extend(found.into_iter().flatten());
        }
    }
    // In account order, each account's in date order, wherever they were read.
    all.sort_by(|a, b| (&a.account, a.on).cmp(&(&b.account, b.on)));
    Ok(keel_analytics::backtest::report(&all))
}

/// An account's backtest snapshots on `dates` where it was active, given
/// its segment, score and band on each (by index and day).
fn backtest_snapshots(
    h: &keel_engine::AccountHistory,
    dates: &[Date],
    segment: Option<&str>,
    on: impl Fn(usize, Date) -> (Option<String>, Option<f64>, Option<keel_core::Band>),
) -> Vec<keel_analytics::backtest::Snapshot> {
    use keel_analytics::backtest::HORIZON_DAYS;
    let mut out = Vec::new();
    let active = |d: Date| retention::active_on(&h.contracts, d);
    for (i, &day) in dates.iter().enumerate() {
        if !active(day) {
            continue;
        }
        let horizon = day + chrono::Days::new(HORIZON_DAYS);
        let mut ends: Vec<Date> =
            h.contracts.iter().filter_map(|c| c.end).filter(|e| *e > day && *e <= horizon).collect();
        ends.sort();
        let churned_on = ends.into_iter().find(|e| !active(*e));
        let (in_seg, score, band) = on(i, day);
        if !in_segment(in_seg.as_deref(), segment) {
            continue;
        }
        out.push(keel_analytics::backtest::Snapshot {
            account: h.account.id.clone(),
            on: day,
            score,
            band,
            churned_on,
        });
    }
    out
}

/// The segment, health score and band a day's facts hold.
fn timeline_health(
    facts: Option<&keel_timeline::Facts>,
) -> (Option<String>, Option<f64>, Option<keel_core::Band>) {
    use keel_timeline::Fact;
    let get = |path: &str| facts.and_then(|f| f.get(path));
    let segment = match get("segment") {
        Some(Fact::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let score = match get("health/score") {
        Some(Fact::Num(x)) => Some(*x),
        Some(Fact::Int(n)) => Some(*n as f64),
        _ => None,
    };
    let band = match get("health/band") {
        Some(Fact::Text(b)) => keel_core::Band::ALL.into_iter().find(|band| band.as_str() == b),
        _ => None,
    };
    (segment, score, band)
}

/// Every account's whole history — all records, all usage with users, as
/// `keel evaluate` reads it (stages and health may rest on any metric) —
/// chunk by chunk in account order.
struct FullChunks<'a> {
    store: &'a dyn Store,
    ws: WorkspaceId,
    ids: Vec<keel_core::ExternalId>,
    at: usize,
    /// `ids` is a selection, not every account: read exactly those.
    sparse: bool,
}

impl<'a> FullChunks<'a> {
    async fn new(store: &'a dyn Store, ws: WorkspaceId) -> Result<Self, StoreError> {
        Ok(Self { store, ws, ids: crate::load::account_ids(store, ws).await?, at: 0, sparse: false })
    }

    /// Only these accounts.
    fn of(store: &'a dyn Store, ws: WorkspaceId, mut ids: Vec<keel_core::ExternalId>) -> Self {
        ids.sort();
        Self { store, ws, ids, at: 0, sparse: true }
    }

    async fn next(&mut self) -> Result<Option<Vec<keel_engine::AccountHistory>>, StoreError> {
        if self.at >= self.ids.len() {
            return Ok(None);
        }
        let chunk = &self.ids[self.at..(self.at + crate::load::CHUNK).min(self.ids.len())];
        self.at += chunk.len();
        let usage = crate::load::Usage::Since(None, true);
        Ok(Some(if self.sparse {
            crate::load::load_list(self.store, self.ws, chunk, RecordKinds::ALL, usage).await?
        } else {
            crate::load::load_chunk(self.store, self.ws, chunk, RecordKinds::ALL, usage).await?
        }))
    }
}

/// The health backtest's default window: month ends in the twelve months
/// before `to`, and `to` 90 days before `as_of`.
pub fn health_window(from: Option<Date>, to: Option<Date>, as_of: Date) -> (Date, Date) {
    let to = to.unwrap_or(as_of - chrono::Days::new(keel_analytics::backtest::HORIZON_DAYS));
    let from = from.unwrap_or_else(|| to.checked_sub_months(chrono::Months::new(12)).unwrap_or(to));
    (from, to)
}

/// Gate validation over the renewal decisions in `period` (lines due:
/// `from < end ≤ to`, and `end ≤ as_of` so the outcome is known), each read
/// `lead_days` before the decision (docs/metrics.md); with `segment`, the
/// decisions whose account was in it on that day.
#[allow(clippy::too_many_arguments)] // each is one of the report's own parameters, as the CLI and API name them
pub async fn gates(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &keel_engine::Plan,
    period: Period,
    as_of: Date,
    lead_days: u64,
    extra: &[keel_journey::Expr],
    segment: Option<&str>,
) -> Result<keel_analytics::gates::GateReport, ReportError> {
    segment_filter(Some(plan), segment)?;
    use keel_analytics::gates::GateObservation;
    let mut observations = Vec::new();
    let mut chunks = FullChunks::new(store, ws).await?;
    while let Some(histories) = chunks.next().await? {
        let found = crate::load::on_every_core(&histories, |h| {
            let mut out = Vec::new();

            for line in &h.contracts {
                let Some(end) = line.end.filter(|e| period.from < *e && *e <= period.to && *e <= as_of)
                else {
                    continue;
                };
                let observed_on = end - chrono::Days::new(lead_days);
                if observed_on < line.start {
                    continue;
                }
                let state = keel_engine::evaluate(plan, h, observed_on);
                if !in_segment(state.segment.as_deref(), segment) {
                    continue;
                }
                let Some(ls) = state.lines.iter().find(|l| l.product_line == line.product.as_str()) else {
                    continue;
                };
                out.push(GateObservation {
                    account: h.account.id.clone(),
                    product_line: ls.product_line.clone(),
                    observed_on,
                    decided_on: end,
                    changes: ls
                        .transitions
                        .iter()
                        .map(|t| keel_analytics::funnel::Change { on: t.on, to: t.to.clone() })
                        .collect(),
                    stage: ls.stage.clone(),
                    conditions: ls.gate.iter().map(|c| (c.expr.clone(), c.holds)).collect(),
                    extra: extra
                        .iter()
                        .map(|e| keel_engine::account_condition(plan, h, observed_on, e))
                        .collect(),
                    renewed: retention::active_on(&h.contracts, end),
                });
            }
            out
        })
        .await;
        observations.extend(found.into_iter().flatten());
    }
    let gates: Vec<(String, String)> =
        plan.journey().stages.iter().map(|s| (s.id.clone(), s.exit.source.clone())).collect();
    let names: Vec<String> = extra.iter().map(|e| e.source.clone()).collect();
    Ok(keel_analytics::gates::report(&observations, &gates, &names, lead_days))
}

/// Gate validation's default window: decisions in the two quarters before
/// the first day of `as_of`'s month.
pub fn gate_window(from: Option<Date>, to: Option<Date>, as_of: Date) -> Result<Period, AnalyticsError> {
    use chrono::Datelike as _;
    let to = to.unwrap_or_else(|| as_of.with_day(1).unwrap_or(as_of));
    let from = from.unwrap_or_else(|| to.checked_sub_months(chrono::Months::new(6)).unwrap_or(to));
    Period::new(from, to)
}

/// Expansion pipeline and won MRR by source, and advocacy candidates with
/// the asks made of them, over `period` (docs/metrics.md). A promoter needs
/// the journey's `advocacy_min_nps` setting (9 without a journey). With
/// `segment`, only the accounts in it on `period.to`.
pub async fn expansion(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: Option<&keel_engine::Plan>,
    period: Period,
    currency: Option<&str>,
    segment: Option<&str>,
) -> Result<keel_analytics::expansion::ExpansionReport, ReportError> {
    segment_filter(plan, segment)?;
    let segments = match (plan, segment) {
        (Some(plan), Some(_)) => crate::load::segments(store, ws, plan, period.to).await?,
        _ => Default::default(),
    };
    let keep = |a: &keel_core::ExternalId| in_segment(segments.get(a).map(String::as_str), segment);
    let kinds = RecordKinds {
        contracts: true,
        contacts: false,
        tickets: false,
        surveys: true,
        touchpoints: true,
        opportunities: true,
    };
    let mut snapshot = store.records(ws, Accounts::All, kinds).await?;
    if segment.is_some() {
        snapshot.contracts.retain(|c| keep(&c.account));
        snapshot.opportunities.retain(|o| keep(&o.account));
        snapshot.surveys.retain(|s| keep(&s.account));
        snapshot.touchpoints.retain(|t| keep(&t.account));
    }
    let mut lines: std::collections::BTreeMap<&keel_core::ExternalId, Vec<keel_core::Contract>> =
        Default::default();
    for c in &snapshot.contracts {
        lines.entry(&c.account).or_default().push(c.clone());
    }
    let active = lines
        .iter()
        .filter(|(_, ls)| retention::active_on(ls, period.to))
        .map(|(a, _)| (*a).clone())
        .collect();
    let min_nps = plan
        .and_then(|p| p.journey().settings.get("advocacy_min_nps").copied())
        .map_or(9, |n| n.clamp(0.0, 10.0) as u8);
    let inputs = keel_analytics::expansion::Inputs {
        opportunities: &snapshot.opportunities,
        surveys: &snapshot.surveys,
        touchpoints: &snapshot.touchpoints,
        active: &active,
    };
    Ok(keel_analytics::expansion::report(inputs, period, currency, min_nps)?)
}

/// Failure patterns over every account whose first renewal decision (the
/// end of its first term) is on or before `as_of`, in `segment` on that day
/// when given (docs/metrics.md).
pub async fn patterns(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &keel_engine::Plan,
    as_of: Date,
    segment: Option<&str>,
) -> Result<keel_analytics::patterns::PatternReport, ReportError> {
    use keel_analytics::patterns::FirstTerm;
    segment_filter(Some(plan), segment)?;
    let needs = plan
        .value_needs()
        .map_err(|source| MetricTableError::Metric { name: "first_value".to_owned(), source })?
        .union(keel_engine::Needs { touchpoints: true, ..keel_engine::Needs::default() });
    let mut terms = Vec::new();
    crate::load::each_chunk(store, ws, needs, as_of, |histories| {
        let found = crate::load::on_every_core_in_turn(&histories, |h| {
            let start = h.contracts.iter().map(|c| c.start).min()?;
            let decided_on = h.contracts.iter().filter(|c| c.start == start).filter_map(|c| c.end).min()?;
            if decided_on > as_of {
                return None;
            }
            let facts = keel_engine::value_facts(plan, h, decided_on);
            if !in_segment(facts.segment.as_deref(), segment) {
                return None;
            }
            Some(FirstTerm {
                account: h.account.id.clone(),
                start,
                decided_on,
                renewed: retention::active_on(&h.contracts, decided_on),
                ttv_days: facts.ttv_days,
                touchpoints: h
                    .touchpoints
                    .iter()
                    .map(|t| (t.kind.to_string(), t.occurred.date_naive()))
                    .collect(),
            })
        });
        terms.extend(found.into_iter().flatten());
    })
    .await?;
    Ok(keel_analytics::patterns::report(&terms))
}

/// A window of first-contract starts `[from, to)` must not be empty.
fn starts_window(started: (Option<Date>, Option<Date>)) -> Result<(), ReportError> {
    match started {
        (Some(from), Some(to)) if from >= to => Err(AnalyticsError::EmptyPeriod { from, to }.into()),
        _ => Ok(()),
    }
}

/// The journey's map cells with their links, as the audit reads them: the
/// feeds each linked metric and moment is computed from.
pub fn audit_cells(plan: &keel_engine::Plan) -> Vec<keel_analytics::audit::CellSpec> {
    use keel_analytics::audit::{CellSpec, Link, LinkKind};
    let j = plan.journey();
    j.map
        .cells
        .iter()
        .map(|c| {
            let plain = |kind: LinkKind, ids: &[String]| -> Vec<Link> {
                ids.iter().map(|id| Link { kind, id: id.clone(), feeds: Vec::new() }).collect()
            };
            let mut links = plain(LinkKind::Stage, &c.links.stages);
            links.extend(c.links.moments.iter().map(|id| Link {
                kind: LinkKind::Moment,
                id: id.clone(),
                feeds:
                    j.moments.iter().find(|m| &m.id == id).map(|m| plan.moment_feeds(m)).unwrap_or_default(),
            }));
            links.extend(c.links.metrics.iter().map(|id| Link {
                kind: LinkKind::Metric,
                id: id.clone(),
                feeds: plan.metric_feeds(id),
            }));
            links.extend(plain(LinkKind::Touchpoint, &c.links.touchpoints));
            links.extend(plain(LinkKind::Play, &c.links.plays));
            CellSpec { row: c.row.clone(), months: c.months, text: c.text.clone(), links }
        })
        .collect()
}

/// What one account showed in each month of its first year that is over by
/// `as_of`: stages from one evaluation as of the last such month's end,
/// moments from weekly samples, feeds and touchpoints from its records.
/// `runs` are the account's play runs: (play, the day it started).
fn account_months(
    plan: &keel_engine::Plan,
    h: &keel_engine::AccountHistory,
    runs: &[(String, Date)],
    as_of: Date,
) -> Option<keel_analytics::audit::AccountMonths> {
    use keel_analytics::audit::{AccountMonths, MonthObs};
    use keel_core::EntityKind;
    let start = h.contracts.iter().map(|c| c.start).min()?;
    let month_start = |m: u32| start.checked_add_months(chrono::Months::new(m - 1));
    let mut bounds = Vec::new();
    for m in 1..=12u32 {
        let (Some(from), Some(to)) = (month_start(m), month_start(m + 1)) else { break };
        if to.pred_opt().is_none_or(|last| last > as_of) {
            break;
        }
        bounds.push((m as u8, from, to));
    }
    let decided_on = h.contracts.iter().filter(|c| c.start == start).filter_map(|c| c.end).min();
    let renewed = decided_on.filter(|d| *d <= as_of).map(|d| retention::active_on(&h.contracts, d));
    let &(_, _, end) = bounds.last()?;
    let state = keel_engine::evaluate(plan, h, end.pred_opt().unwrap_or(end));
    let day = |t: &keel_core::Timestamp| t.date_naive();
    let months = bounds
        .iter()
        .map(|&(month, from, to)| {
            let within = |d: Date| from <= d && d < to;
            let mut stages: Vec<String> = Vec::new();
            for line in &state.lines {
                let held_at_start =
                    line.transitions.iter().rev().find(|t| t.on <= from).and_then(|t| t.to.clone());
                stages.extend(held_at_start);
                stages.extend(
                    line.transitions.iter().filter(|t| from < t.on && t.on < to).filter_map(|t| t.to.clone()),
                );
            }
            stages.sort();
            stages.dedup();
            let last = to.pred_opt().unwrap_or(to);
            let mut fired: Vec<String> = Vec::new();
            let mut on = from + chrono::Days::new(6);
            let segment = loop {
                let on_day = on.min(last);
                let signals = keel_engine::signals(plan, h, on_day);
                fired.extend(signals.fired);
                if on_day == last {
                    break signals.segment;
                }
                on = on + chrono::Days::new(7);
            };
            fired.sort();
            fired.dedup();
            let touch_from = if month == 1 { from - chrono::Days::new(90) } else { from };
            let touched: Vec<&keel_core::Touchpoint> = h
                .touchpoints
                .iter()
                .filter(|t| touch_from <= day(&t.occurred) && day(&t.occurred) < to)
                .collect();
            let mut touchpoints: Vec<String> = touched.iter().map(|t| t.kind.to_string()).collect();
            touchpoints.sort();
            touchpoints.dedup();
            let mut plays: Vec<String> = runs
                .iter()
                .filter(|(_, on)| touch_from <= *on && *on < to && *on <= as_of)
                .map(|(p, _)| p.clone())
                .collect();
            plays.sort();
            plays.dedup();
            let mut feeds = Vec::new();
            let mut feed = |kind: EntityKind, present: bool| {
                if present {
                    feeds.push(kind);
                }
            };
            feed(EntityKind::Contracts, h.contracts.iter().any(|c| c.is_in_force_during(from, to)));
            feed(
                EntityKind::Events,
                h.usage.iter().any(|u| within(u.day) && u.events > 0 && u.known <= as_of),
            );
            feed(
                EntityKind::Contacts,
                h.contacts.iter().any(|c| c.active_from < to && c.active_to.is_none_or(|e| e > from)),
            );
            feed(EntityKind::Tickets, h.tickets.iter().any(|t| within(day(&t.opened))));
            feed(EntityKind::Surveys, h.surveys.iter().any(|s| within(day(&s.responded))));
            feed(EntityKind::Touchpoints, !touched.is_empty());
            feed(EntityKind::Opportunities, h.opportunities.iter().any(|o| within(o.created)));
            MonthObs {
                month,
                active_at_start: retention::active_on(&h.contracts, from),
                segment,
                stages,
                fired,
                feeds,
                touchpoints,
                plays,
            }
        })
        .collect();
    Some(AccountMonths { account: h.account.id.clone(), renewed, months })
}

/// The journey-map audit over every account whose first contract started
/// in `[started.0, started.1)` (all when open), as of `as_of`, in `segment`
/// when given (docs/metrics.md).
pub async fn audit(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &keel_engine::Plan,
    as_of: Date,
    started: (Option<Date>, Option<Date>),
    segment: Option<&str>,
) -> Result<keel_analytics::audit::AuditReport, ReportError> {
    starts_window(started)?;
    segment_filter(Some(plan), segment)?;
    let cells = audit_cells(plan);
    let mut runs: HashMap<ExternalId, Vec<(String, Date)>> = HashMap::new();
    for r in store.play_runs(ws, None, None).await? {
        runs.entry(r.account).or_default().push((r.play, r.started));
    }
    let mut accounts = Vec::new();
    let mut chunks = FullChunks::new(store, ws).await?;
    while let Some(histories) = chunks.next().await? {
        let found = crate::load::on_every_core(&histories, |h| {
            let start = h.contracts.iter().map(|c| c.start).min()?;
            if started.0.is_some_and(|from| start < from) || started.1.is_some_and(|to| start >= to) {
                return None;
            }
            let ran = runs.get(&h.account.id).map_or(&[][..], Vec::as_slice);
            account_months(plan, h, ran, as_of).map(|a| keel_analytics::audit::observe(&cells, &a))
        })
        .await;
        accounts.extend(found.into_iter().flatten());
    }
    Ok(keel_analytics::audit::report(&cells, keel_journey::catalog::MAP_ROWS, &accounts, segment))
}

/// The plays report: every play's runs, suppressions, approvals and outcome
/// uplift against its holdout; every owner's open and overdue tasks.
pub async fn plays(
    store: &dyn Store,
    ws: WorkspaceId,
    journey: &keel_journey::Journey,
    as_of: Date,
) -> Result<keel_analytics::plays::PlaysReport, ReportError> {
    use keel_analytics::plays::{DecisionObs, RunObs, TaskObs};
    let runs: Vec<RunObs> = store
        .play_runs(ws, None, None)
        .await?
        .into_iter()
        .map(|r| RunObs {
            account: r.account.to_string(),
            started: r.started,
            play: r.play,
            status: r.status,
            holdout: r.holdout,
            outcome: r.outcome,
        })
        .collect();
    let decisions: Vec<DecisionObs> = store
        .play_decisions(ws, None, None)
        .await?
        .into_iter()
        .map(|d| DecisionObs { play: d.play, decision: d.decision, rule: d.rule })
        .collect();
    let tasks: Vec<TaskObs> = store
        .tasks(ws, &keel_store::TaskQuery::default())
        .await?
        .into_iter()
        .map(|t| TaskObs { owner: t.owner, status: t.status, due: t.due })
        .collect();
    let plays: Vec<(String, String)> = journey.plays.iter().map(|p| (p.id.clone(), p.name.clone())).collect();
    let has_outcome = |id: &str| journey.plays.iter().any(|p| p.id == id && p.outcome.is_some());
    Ok(keel_analytics::plays::report(&plays, &runs, &decisions, &tasks, &has_outcome, as_of))
}

/// One account's health band on two days.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BandMove {
    /// The account.
    pub account: ExternalId,
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: Option<String>,
    /// Band on the first day (None: no data, or no line in force).
    pub before: Option<String>,
    /// Band on the second day.
    pub after: Option<String>,
    /// Score on the second day.
    pub score: Option<f64>,
}

/// Health bands moved between two days: every account with a line in force
/// on `to`, its band as of `from` and as of `to` (each evaluated as of its
/// own day, so nothing later than `from` colours the first).
pub async fn band_movements(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &keel_engine::Plan,
    from: Date,
    to: Date,
) -> Result<Vec<BandMove>, ReportError> {
    let mut out = Vec::new();
    let mut chunks = FullChunks::new(store, ws).await?;
    while let Some(histories) = chunks.next().await? {
        let found = crate::load::on_every_core(&histories, |h| {
            if !retention::active_on(&h.contracts, to) {
                return None;
            }
            let band_on = |d: Date| {
                if !retention::active_on(&h.contracts, d) {
                    return (None, None);
                }
                let (_, health) = keel_engine::health_as_of(plan, h, d);
                (health.band.map(|b| b.as_str().to_owned()), health.score)
            };
            let (before, _) = band_on(from);
            let (after, score) = band_on(to);
            Some(BandMove {
                account: h.account.id.clone(),
                name: h.account.name.clone(),
                owner: h.account.owner.clone(),
                before,
                after,
                score,
            })
        })
        .await;
        out.extend(found.into_iter().flatten());
    }
    Ok(out)
}

/// Accounts and MRR in one group.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tally {
    /// Accounts.
    pub accounts: u64,
    /// Their MRR.
    pub mrr: f64,
}

impl Tally {
    fn add(&mut self, accounts: u64, mrr: f64) {
        self.accounts += accounts;
        self.mrr += mrr;
    }
}

/// The portfolio in brief, from each account's latest evaluation: the same
/// book ([`Store::book`]) the dashboard's portfolio page reads, so the two
/// never disagree on bands or renewals.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Portfolio {
    /// The date renewals are counted from.
    pub as_of: Date,
    /// Every account.
    pub accounts: u64,
    /// Accounts not evaluated yet.
    pub not_evaluated: u64,
    /// Evaluated accounts without MRR in force (churned, or not started).
    pub former: u64,
    /// Accounts with MRR in force, by health band (`none`: no data).
    pub by_band: std::collections::BTreeMap<String, Tally>,
    /// Accounts with MRR in force, by segment (`none`: no segment matched).
    pub by_segment: std::collections::BTreeMap<String, Tally>,
    /// Accounts with MRR in force, by `line:stage`.
    pub by_stage: std::collections::BTreeMap<String, Tally>,
    /// Accounts with MRR in force renewing in the next 90 days.
    pub renewing_90d: Tally,
    /// The same within 180 days.
    pub renewing_180d: Tally,
}

/// The portfolio as of `today`: bands and renewals from [`Store::book`],
/// segments and stages from the stored states of the same accounts.
pub async fn portfolio(store: &dyn Store, ws: WorkspaceId, today: Date) -> Result<Portfolio, StoreError> {
    let book = store.book(ws, None, today).await?;
    let mut out = Portfolio {
        as_of: today,
        not_evaluated: book.not_evaluated,
        former: book.former,
        accounts: book.not_evaluated + book.former,
        ..Portfolio::default()
    };
    for b in &book.bands {
        out.accounts += b.accounts;
        out.by_band
            .entry(b.band.clone().unwrap_or_else(|| "none".into()))
            .or_default()
            .add(b.accounts, b.mrr);
        out.renewing_90d.add(b.renewing_90.0, b.renewing_90.1);
        out.renewing_180d.add(b.renewing_180.0, b.renewing_180.1);
    }
    let mut query =
        keel_store::AccountQuery { sort: keel_store::AccountSort::Id, limit: 1000, ..Default::default() };
    loop {
        let page = store.list_accounts(ws, &query).await?;
        for row in &page.rows {
            let Some((_, s)) = &row.evaluated else { continue };
            let Some(mrr) = s.mrr.filter(|m| *m > 0.0) else { continue };
            out.by_segment.entry(s.segment.clone().unwrap_or_else(|| "none".into())).or_default().add(1, mrr);
            for (line, stage) in &s.stages {
                if let Some(stage) = stage {
                    out.by_stage.entry(format!("{line}:{stage}")).or_default().add(1, mrr);
                }
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    Ok(out)
}
