//! The journey-map audit (docs/metrics.md): every cell of the 12-month ×
//! 8-row map classified from what the data shows for the accounts that lived
//! through the cell's months — systematized, documented only, heroic or
//! missing — with the risk inventory (the heroic cells, and what renewal
//! looked like where the heroics happened and where they did not) and the
//! gaps between the loyalty blockers and the loyalty builders month by month.
//!
//! What "happens" for one account in a cell's months `[a, b]` of its tenure:
//! a linked **touchpoint** kind was logged; a linked **stage** was held by
//! one of its product lines; a linked **moment** fired (for the blocker /
//! builder gaps). What is **live**: a touchpoint or stage that happened; a
//! linked **metric** or **moment** whose feeds (the kinds of records it is
//! computed from) flowed — events, contracts and contacts per account,
//! sparse feeds (tickets, surveys, touchpoints, opportunities) when any
//! account in the cell had such a record in those months (no ticket is a
//! reading once the support feed is wired). A linked **play** is live for an
//! account when a run of it started in the cell's months — treated, held
//! out or suppressed alike: the system caught the moment and decided.

use std::collections::BTreeSet;

use keel_core::{EntityKind, ExternalId};
use serde::Serialize;

use crate::gates::Split;

/// "Most accounts": the share at which a link counts as systematized.
pub const MOST: f64 = 0.5;

/// The row of blockers and of builders, as the journey names them.
pub const BLOCKERS_ROW: &str = "loyalty_blockers";
/// See [`BLOCKERS_ROW`].
pub const BUILDERS_ROW: &str = "loyalty_builders";

/// What a cell of the map is, as the data shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A link is live for most accounts in the cell's months.
    Systematized,
    /// A link is live for some accounts, fewer than most: it depends on who
    /// happens to do it.
    Heroic,
    /// Text, but no link live for any account.
    DocumentedOnly,
    /// No text.
    Missing,
}

impl Status {
    /// The name used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Systematized => "systematized",
            Self::Heroic => "heroic",
            Self::DocumentedOnly => "documented_only",
            Self::Missing => "missing",
        }
    }
}

/// What a link points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A stage id.
    Stage,
    /// A moment id.
    Moment,
    /// A metric name.
    Metric,
    /// A touchpoint kind.
    Touchpoint,
    /// A play id.
    Play,
}

impl LinkKind {
    /// The name used in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stage => "stage",
            Self::Moment => "moment",
            Self::Metric => "metric",
            Self::Touchpoint => "touchpoint",
            Self::Play => "play",
        }
    }
}

/// One link of a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// What it points at.
    pub kind: LinkKind,
    /// Its id.
    pub id: String,
    /// For metrics and moments, the feeds it reads.
    pub feeds: Vec<EntityKind>,
}

/// One cell of the journey map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellSpec {
    /// The row.
    pub row: String,
    /// First and last month, 1–12.
    pub months: (u8, u8),
    /// The text.
    pub text: String,
    /// Its links.
    pub links: Vec<Link>,
}

/// What one account showed in one month of its tenure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthObs {
    /// The tenure month, 1–12 (month m is `[start + (m−1) months, start + m months)`).
    pub month: u8,
    /// A contract line was in force on the month's first day.
    pub active_at_start: bool,
    /// The segment on the month's last day.
    pub segment: Option<String>,
    /// Stages any product line held during the month.
    pub stages: Vec<String>,
    /// Moments that fired on any day sampled in the month.
    pub fired: Vec<String>,
    /// Feeds with a record dated in the month.
    pub feeds: Vec<EntityKind>,
    /// Touchpoint kinds logged in the month (month 1 includes the 90 days
    /// before the start, where the sales-to-CS handoff happens).
    pub touchpoints: Vec<String>,
    /// Plays with a run that started in the month (month 1, like touchpoints,
    /// includes the 90 days before the start).
    pub plays: Vec<String>,
}

/// One account's first twelve months, as far as they are over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountMonths {
    /// The account.
    pub account: ExternalId,
    /// Renewed at its first renewal decision (None: not decided yet).
    pub renewed: Option<bool>,
    /// Its months, in order; only months whose last day is on or before the
    /// audit's date.
    pub months: Vec<MonthObs>,
}

/// One account in one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellObs {
    /// Its segment on the cell's last month.
    pub segment: Option<String>,
    /// Feeds that had a record in the cell's months (a bit per kind).
    feeds: u16,
    /// Per link: it happened (touchpoint logged, stage held, moment fired).
    pub happened: Vec<bool>,
}

/// One account across every cell: None where it is not in the cell (the
/// cell's last month is not over, or no line was in force when it began).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountCells {
    /// The account.
    pub account: ExternalId,
    /// Renewed at its first renewal decision.
    pub renewed: Option<bool>,
    /// Per cell of the journey, in the journey's order.
    pub cells: Vec<Option<CellObs>>,
}

fn bit(kind: EntityKind) -> u16 {
    1 << EntityKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

fn mask(kinds: &[EntityKind]) -> u16 {
    kinds.iter().fold(0, |m, k| m | bit(*k))
}

/// Feeds whose absence for one account is itself a reading.
fn sparse() -> u16 {
    mask(&[EntityKind::Tickets, EntityKind::Surveys, EntityKind::Touchpoints, EntityKind::Opportunities])
}

/// Reduces one account's months to what each cell needs.
pub fn observe(cells: &[CellSpec], account: &AccountMonths) -> AccountCells {
    let cells = cells
        .iter()
        .map(|cell| {
            let (a, b) = cell.months;
            let months: Vec<&MonthObs> =
                account.months.iter().filter(|m| a <= m.month && m.month <= b).collect();
            let first = months.first()?;
            let last = months.last()?;
            if first.month != a || last.month != b || !first.active_at_start {
                return None;
            }
            let feeds = months.iter().fold(0, |acc, m| acc | mask(&m.feeds));
            let any = |f: &dyn Fn(&MonthObs) -> bool| months.iter().any(|m| f(m));
            let happened = cell
                .links
                .iter()
                .map(|l| match l.kind {
                    LinkKind::Touchpoint => any(&|m| m.touchpoints.contains(&l.id)),
                    LinkKind::Stage => any(&|m| m.stages.contains(&l.id)),
                    LinkKind::Moment => any(&|m| m.fired.contains(&l.id)),
                    LinkKind::Play => any(&|m| m.plays.contains(&l.id)),
                    LinkKind::Metric => false,
                })
                .collect();
            Some(CellObs { segment: last.segment.clone(), feeds, happened })
        })
        .collect();
    AccountCells { account: account.account.clone(), renewed: account.renewed, cells }
}

/// One link of a cell, as the data shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkAudit {
    /// What it points at.
    pub kind: LinkKind,
    /// Its id.
    pub id: String,
    /// The feeds it reads (metrics and moments).
    pub feeds: Vec<&'static str>,
    /// Accounts for which it is live.
    pub live: u64,
    /// Their share of the cell's accounts.
    pub live_share: Option<f64>,
    /// Moments: accounts for which it fired.
    pub fired: Option<u64>,
}

/// One cell of the map, classified.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CellAudit {
    /// The row.
    pub row: String,
    /// First and last month.
    pub months: (u8, u8),
    /// The text.
    pub text: String,
    /// The classification.
    pub status: Status,
    /// Accounts that lived through the cell's months.
    pub accounts: u64,
    /// Its links.
    pub links: Vec<LinkAudit>,
}

/// A cell that depends on heroics, and what it is worth.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RiskRow {
    /// The row.
    pub row: String,
    /// First and last month.
    pub months: (u8, u8),
    /// The text.
    pub text: String,
    /// Accounts in the cell.
    pub accounts: u64,
    /// Accounts where any of its links happened or was live.
    pub covered: u64,
    /// Renewal at the first renewal decision where it did ("passed") vs
    /// where it did not ("failed").
    pub renewal: Split,
}

/// The blockers against the builders over some months.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GapRow {
    /// First and last month.
    pub months: (u8, u8),
    /// The blocker cell's text and status (None: no cell).
    pub blocker: Option<(String, Status)>,
    /// The builder cell's text and status.
    pub builder: Option<(String, Status)>,
    /// Accounts in both cells (or in the one that exists).
    pub accounts: u64,
    /// Accounts where a blocker moment fired (None: the blocker cell links
    /// no moment, so the data cannot show it).
    pub blocked: Option<u64>,
    /// Accounts where a builder happened.
    pub built: u64,
    /// Accounts blocked with no builder.
    pub blocked_not_built: Option<u64>,
    /// Its share of `accounts`: the gap.
    pub gap: Option<f64>,
}

/// `keel report audit`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditReport {
    /// Accounts audited (after the segment filter: in at least one cell).
    pub accounts: u64,
    /// The rows × 12 months, a status per month.
    pub grid: Vec<(String, Vec<Status>)>,
    /// Grid cells per status.
    pub counts: Vec<(Status, u64)>,
    /// Every cell of the journey.
    pub cells: Vec<CellAudit>,
    /// The heroic cells, most costly first.
    pub risk_inventory: Vec<RiskRow>,
    /// Blockers against builders, largest gap first.
    pub gaps: Vec<GapRow>,
}

/// The audit of the journey's `cells`, laid out in `rows`, over `accounts`
/// (in `segment` when given).
pub fn report<'a>(
    cells: &[CellSpec],
    rows: &[&str],
    accounts: &'a [AccountCells],
    segment: Option<&str>,
) -> AuditReport {
    let in_cell = |a: &'a AccountCells, i: usize| in_segment(a, i, segment);
    let mut audited = BTreeSet::new();
    let mut audits = Vec::new();
    // Per cell, per account in it: (account index, per link live).
    let mut live_sets: Vec<Vec<(usize, Vec<bool>)>> = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        let members: Vec<(usize, &CellObs)> =
            accounts.iter().enumerate().filter_map(|(k, a)| in_cell(a, i).map(|o| (k, o))).collect();
        audited.extend(members.iter().map(|(k, _)| *k));
        let wired = members.iter().fold(0, |acc, (_, o)| acc | o.feeds) & sparse();
        let live: Vec<(usize, Vec<bool>)> = members
            .iter()
            .map(|(k, o)| {
                let flags = cell
                    .links
                    .iter()
                    .zip(&o.happened)
                    .map(|(l, happened)| match l.kind {
                        LinkKind::Touchpoint | LinkKind::Stage | LinkKind::Play => *happened,
                        LinkKind::Metric | LinkKind::Moment => {
                            let need = mask(&l.feeds);
                            let have = (o.feeds & !sparse()) | wired;
                            *happened || (need != 0 && need & have == need)
                        }
                    })
                    .collect();
                (*k, flags)
            })
            .collect();
        let n = members.len() as u64;
        let links: Vec<LinkAudit> = cell
            .links
            .iter()
            .enumerate()
            .map(|(j, l)| {
                let count = live.iter().filter(|(_, f)| f[j]).count() as u64;
                LinkAudit {
                    kind: l.kind,
                    id: l.id.clone(),
                    feeds: l.feeds.iter().map(|k| k.as_str()).collect(),
                    live: count,
                    live_share: crate::ratio(count as f64, n as f64),
                    fired: (l.kind == LinkKind::Moment)
                        .then(|| members.iter().filter(|(_, o)| o.happened[j]).count() as u64),
                }
            })
            .collect();
        let status = if cell.text.trim().is_empty() {
            Status::Missing
        } else if links.iter().any(|l| l.live_share.is_some_and(|s| s >= MOST)) {
            Status::Systematized
        } else if links.iter().any(|l| l.live > 0) {
            Status::Heroic
        } else {
            Status::DocumentedOnly
        };
        audits.push(CellAudit {
            row: cell.row.clone(),
            months: cell.months,
            text: cell.text.clone(),
            status,
            accounts: n,
            links,
        });
        live_sets.push(live);
    }

    let covering = |row: &str, month: u8| {
        cells.iter().position(|c| c.row == row && c.months.0 <= month && month <= c.months.1)
    };
    let grid: Vec<(String, Vec<Status>)> = rows
        .iter()
        .map(|row| {
            let statuses =
                (1..=12).map(|m| covering(row, m).map_or(Status::Missing, |i| audits[i].status)).collect();
            ((*row).to_owned(), statuses)
        })
        .collect();
    let counts = [Status::Systematized, Status::Heroic, Status::DocumentedOnly, Status::Missing]
        .map(|s| (s, grid.iter().flat_map(|(_, v)| v).filter(|x| **x == s).count() as u64))
        .to_vec();

    let mut risk_inventory: Vec<RiskRow> = audits
        .iter()
        .enumerate()
        .filter(|(_, a)| a.status == Status::Heroic)
        .map(|(i, a)| {
            let (mut with, mut without) = ((0, 0), (0, 0));
            let mut covered = 0;
            for (k, flags) in &live_sets[i] {
                let hit = flags.iter().any(|f| *f);
                covered += u64::from(hit);
                if let Some(renewed) = accounts[*k].renewed {
                    let slot = if hit { &mut with } else { &mut without };
                    slot.1 += 1;
                    slot.0 += u64::from(renewed);
                }
            }
            RiskRow {
                row: a.row.clone(),
                months: a.months,
                text: a.text.clone(),
                accounts: a.accounts,
                covered,
                renewal: Split::new(with, without),
            }
        })
        .collect();
    risk_inventory.sort_by(|a, b| {
        let d = |r: &RiskRow| r.renewal.difference.unwrap_or(f64::NEG_INFINITY);
        d(b).total_cmp(&d(a))
    });

    let mut gaps: Vec<GapRow> = Vec::new();
    let mut m = 1u8;
    while m <= 12 {
        let pair = (covering(BLOCKERS_ROW, m), covering(BUILDERS_ROW, m));
        let mut last = m;
        while last < 12 && (covering(BLOCKERS_ROW, last + 1), covering(BUILDERS_ROW, last + 1)) == pair {
            last += 1;
        }
        if pair != (None, None) {
            gaps.push(gap(cells, &audits, accounts, &in_cell, pair, (m, last)));
        }
        m = last + 1;
    }
    gaps.sort_by(|a, b| {
        b.gap.unwrap_or(-1.0).total_cmp(&a.gap.unwrap_or(-1.0)).then(a.months.cmp(&b.months))
    });

    AuditReport { accounts: audited.len() as u64, grid, counts, cells: audits, risk_inventory, gaps }
}

fn in_segment<'a>(a: &'a AccountCells, i: usize, segment: Option<&str>) -> Option<&'a CellObs> {
    a.cells.get(i)?.as_ref().filter(|o| segment.is_none_or(|s| o.segment.as_deref() == Some(s)))
}

fn gap<'a>(
    cells: &[CellSpec],
    audits: &[CellAudit],
    accounts: &'a [AccountCells],
    in_cell: &dyn Fn(&'a AccountCells, usize) -> Option<&'a CellObs>,
    (blocker, builder): (Option<usize>, Option<usize>),
    months: (u8, u8),
) -> GapRow {
    let moments: Vec<usize> = blocker
        .map(|i| {
            cells[i].links.iter().enumerate().filter(|(_, l)| l.kind == LinkKind::Moment).map(|(j, _)| j)
        })
        .into_iter()
        .flatten()
        .collect();
    let (mut n, mut blocked, mut built, mut both_missing) = (0u64, 0u64, 0u64, 0u64);
    for a in accounts {
        let bl = blocker.map(|i| in_cell(a, i));
        let bu = builder.map(|i| in_cell(a, i));
        if bl.is_some_and(|o| o.is_none()) || bu.is_some_and(|o| o.is_none()) {
            continue;
        }
        n += 1;
        let is_blocked = bl.flatten().is_some_and(|o| moments.iter().any(|j| o.happened[*j]));
        let is_built = bu.flatten().is_some_and(|o| o.happened.iter().any(|h| *h));
        blocked += u64::from(is_blocked);
        built += u64::from(is_built);
        both_missing += u64::from(is_blocked && !is_built);
    }
    let measurable = !moments.is_empty();
    let text = |i: Option<usize>| i.map(|i| (audits[i].text.clone(), audits[i].status));
    GapRow {
        months,
        blocker: text(blocker),
        builder: text(builder),
        accounts: n,
        blocked: measurable.then_some(blocked),
        built,
        blocked_not_built: measurable.then_some(both_missing),
        gap: if measurable { crate::ratio(both_missing as f64, n as f64) } else { None },
    }
}

#[cfg(test)]
mod tests;
