//! The account timeline in the store: rebuilt from history, read as of a day.

use std::collections::HashMap;

use chrono::TimeZone as _;
use keel_core::{Date, ExternalId, Timestamp};
use keel_engine::{AccountHistory, Plan};
use keel_store::{RecordKinds, Store, StoreError, TimelineHead, TimelineRow, TimelineWrite, WorkspaceId};
use keel_timeline::{Facts, Row};

use crate::load::{Usage, account_ids, load_chunk};

/// Why the timeline could not be kept or read.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored row does not decode (or a row does not encode).
    #[error("timeline row of {account} on {day}: {source}")]
    Row {
        /// The account.
        account: String,
        /// The row's day.
        day: Date,
        /// Why.
        source: serde_json::Error,
    },
}

fn to_store(account: &ExternalId, row: &Row) -> Result<TimelineRow, TimelineError> {
    let facts = serde_json::to_string(&row.facts).map_err(|source| TimelineError::Row {
        account: account.to_string(),
        day: row.day,
        source,
    })?;
    Ok(TimelineRow { day: row.day, checkpoint: row.checkpoint, facts })
}

fn from_store(account: &ExternalId, row: &TimelineRow) -> Result<Row, TimelineError> {
    let facts = serde_json::from_str(&row.facts).map_err(|source| TimelineError::Row {
        account: account.to_string(),
        day: row.day,
        source,
    })?;
    Ok(Row { day: row.day, checkpoint: row.checkpoint, facts })
}

/// The first day an account has anything to conclude about: its first
/// contract's start or its first day of usage, whichever is earlier.
pub fn first_day(h: &AccountHistory) -> Option<Date> {
    let contract = h.contracts.iter().map(|c| c.start).min();
    let usage = h.usage.iter().map(|u| u.day).min();
    contract.into_iter().chain(usage).min()
}

/// Today in a timezone (an IANA name; UTC when unknown): the day the
/// timeline is kept through, which rolls at that timezone's midnight.
pub fn today(now: Timestamp, timezone: &str) -> Date {
    match timezone.parse::<chrono_tz::Tz>() {
        Ok(tz) => now.with_timezone(&tz).date_naive(),
        Err(_) => now.date_naive(),
    }
}

/// The next midnight in a timezone after `now` (when the day rolls).
pub fn next_midnight(now: Timestamp, timezone: &str) -> Timestamp {
    let tz = timezone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::UTC);
    let mut day = today(now, timezone);
    loop {
        day = day.succ_opt().unwrap_or(day);
        // A midnight a clock change skips is taken at the first instant after it.
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        let at = (0..=4)
            .find_map(|h| tz.from_local_datetime(&(midnight + chrono::Duration::hours(h))).earliest())
            .map(|t| t.with_timezone(&chrono::Utc));
        match at {
            Some(at) if at > now => return at,
            Some(_) => continue,
            None => return now + chrono::Duration::days(1),
        }
    }
}

/// What an account's timeline needs to be kept through a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: it is kept through the day from what is known now.
    Nothing,
    /// Its days from this one on (the stored days before it still hold).
    From(Date),
    /// All of it: none is kept, or what it rests on was restated (the
    /// account or a contract edited, a record dated in the past).
    Whole,
}

/// The head an account's timeline kept through `through` gets.
pub fn head_of(h: &AccountHistory, through: Date) -> TimelineHead {
    let f = keel_engine::fingerprint(h, through);
    TimelineHead { through, records: f.records, known_before: f.known_before, known_upto: f.known_upto }
}

/// What the timeline of `h` (kept as far as `head` says) needs to be kept
/// through `through`. Evaluations as of a day read what was known that day
/// (usage received by then, dated records as they stood), so the stored
/// days stay right while the fingerprint on the head's day is unchanged;
/// data received or dated on that day restates that day only; an edit of
/// the account or a contract, or of what was known before, restates all.
pub fn need(head: Option<&TimelineHead>, h: &AccountHistory, through: Date) -> Need {
    let Some(head) = head else { return Need::Whole };
    if head.through > through {
        return Need::Whole;
    }
    let now = keel_engine::fingerprint(h, head.through);
    if now.records != head.records || now.known_before != head.known_before {
        Need::Whole
    } else if now.known_upto != head.known_upto {
        Need::From(head.through)
    } else if head.through == through {
        Need::Nothing
    } else {
        Need::From(head.through.succ_opt().unwrap_or(head.through))
    }
}

/// The write that keeps `h`'s timeline through `through`, given what it
/// needs and, for [`Need::From`], its stored rows before that day (from a
/// checkpoint on); `on_through` is its evaluation as of `through` when the
/// caller has it. `None`: nothing to write.
pub fn kept(
    plan: &Plan,
    h: &AccountHistory,
    need: Need,
    before: &[Row],
    through: Date,
    on_through: Option<&keel_engine::AccountState>,
) -> Option<(Option<Date>, Vec<Row>)> {
    let (from, before) = match need {
        Need::Nothing => return None,
        Need::From(day) => (Some(day), before),
        Need::Whole => (None, &[][..]),
    };
    // Nothing is concluded before the account's first day.
    let start = match (from, first_day(h)) {
        (Some(from), Some(first)) => Some(from.max(first)),
        (None, first) => first,
        (Some(_), None) => None,
    };
    let rows = match start {
        Some(start) if start <= through => keel_timeline::extend(plan, h, before, start, through, on_through),
        _ => Vec::new(),
    };
    Some((from, rows))
}

/// The stored form of a kept account's write.
pub fn write(
    h: &AccountHistory,
    from: Option<Date>,
    rows: &[Row],
    through: Date,
) -> Result<TimelineWrite, TimelineError> {
    let id = &h.account.id;
    Ok(TimelineWrite {
        account: id.clone(),
        from,
        rows: rows.iter().map(|r| to_store(id, r)).collect::<Result<_, _>>()?,
        head: head_of(h, through),
    })
}

/// An account's stored rows before `day` (from the last checkpoint before
/// it on), decoded: what [`kept`] continues from.
pub async fn rows_before(
    store: &dyn Store,
    ws: WorkspaceId,
    account: &ExternalId,
    version: &str,
    day: Date,
) -> Result<Vec<Row>, TimelineError> {
    let Some(last) = day.pred_opt() else { return Ok(Vec::new()) };
    let stored = store.timeline_rows(ws, account, version, Some(last)).await?;
    stored.iter().map(|r| from_store(account, r)).collect()
}

/// What keeping timelines did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// Accounts whose timeline was written.
    pub accounts: usize,
    /// Days concluded (one evaluation each).
    pub days: u64,
    /// Rows stored.
    pub rows: u64,
}

/// What timelines are kept under, and through which day.
#[derive(Clone, Copy)]
pub struct Under<'a> {
    /// The journey's plan.
    pub plan: &'a Plan,
    /// The journey's version (every row records it).
    pub version: &'a str,
    /// The last day concluded.
    pub through: Date,
}

/// Which accounts to keep.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// Every account of the workspace.
    All,
    /// These.
    Some(&'a [ExternalId]),
}

/// Accounts read and kept per chunk (the server's keeper asks for fewer
/// at a time, so heavy work waiting behind it waits for one batch only).
const KEEP_CHUNK: usize = crate::load::CHUNK;

/// Rows written per transaction: the store's writer (and so ingest) waits
/// at most one such transaction.
const ROWS_PER_WRITE: usize = 2_000;

/// Keeps the timelines of some accounts under `version` through `through`:
/// each is appended, restated from a day, or rebuilt whole as its head
/// says ([`need`]); with `rebuild`, every one is rebuilt whole. `progress`
/// is told how many accounts each chunk held. The days are evaluated on
/// every core at the lowest CPU priority, and written a few accounts per
/// transaction.
pub async fn keep(
    store: &dyn Store,
    ws: WorkspaceId,
    under: Under<'_>,
    which: Which<'_>,
    rebuild: bool,
    mut progress: impl FnMut(usize),
) -> Result<Kept, TimelineError> {
    let Under { plan, version, through } = under;
    let all;
    let ids = match which {
        Which::All => {
            all = account_ids(store, ws).await?;
            &all[..]
        }
        Which::Some(ids) => ids,
    };
    let mut done = Kept::default();
    // Each chunk's rows are written while the next chunk is evaluated.
    let mut unwritten: Vec<TimelineWrite> = Vec::new();
    for chunk in ids.chunks(KEEP_CHUNK) {
        let histories = load_chunk(store, ws, chunk, RecordKinds::ALL, Usage::Since(None, true)).await?;
        let heads = store.timeline_heads(ws, version, chunk).await?;
        let mut work = Vec::new();
        for h in histories {
            let need = if rebuild { Need::Whole } else { need(heads.get(&h.account.id), &h, through) };
            let before = match need {
                Need::From(day) => rows_before(store, ws, &h.account.id, version, day).await?,
                _ => Vec::new(),
            };
            if need != Need::Nothing {
                work.push((h, need, before));
            }
        }
        let compute = |(h, need, before): &(AccountHistory, Need, Vec<Row>)| {
            let (from, rows) = kept(plan, h, *need, before, through, None)?;
            let days = match (need, first_day(h)) {
                (Need::From(day), _) => (through - *day).num_days() as u64 + 1,
                (_, Some(first)) if first <= through => (through - first).num_days() as u64 + 1,
                _ => 0,
            };
            Some((days, rows.len() as u64, write(h, from, &rows, through)))
        };
        let previous = std::mem::take(&mut unwritten);
        let computed = match tokio::runtime::Handle::try_current() {
            Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                let write = || rt.block_on(put_all(store, ws, version, previous));
                let (computed, written) = tokio::task::block_in_place(|| {
                    std::thread::scope(|s| {
                        let writer = s.spawn(write);
                        let computed = crate::load::spread_items(&work, compute);
                        (computed, writer.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    })
                });
                written?;
                computed
            }
            _ => {
                put_all(store, ws, version, previous).await?;
                crate::load::spread_items(&work, compute)
            }
        };
        for (days, rows, write) in computed.into_iter().flatten() {
            done.accounts += 1;
            done.days += days;
            done.rows += rows;
            unwritten.push(write?);
        }
        progress(chunk.len());
    }
    put_all(store, ws, version, unwritten).await?;
    Ok(done)
}

/// Writes `writes`, a transaction per [`ROWS_PER_WRITE`] rows or so.
async fn put_all(
    store: &dyn Store,
    ws: WorkspaceId,
    version: &str,
    writes: Vec<TimelineWrite>,
) -> Result<(), TimelineError> {
    let mut batch = Vec::new();
    let mut rows = 0;
    for w in writes {
        rows += w.rows.len();
        batch.push(w);
        if rows >= ROWS_PER_WRITE {
            store.put_timelines(ws, version, &std::mem::take(&mut batch)).await?;
            rows = 0;
        }
    }
    if !batch.is_empty() {
        store.put_timelines(ws, version, &batch).await?;
    }
    Ok(())
}

/// Rebuilds every account's timeline under `version` from its first day to
/// `through`, replacing what was stored under that version; `progress` is
/// told how many accounts each chunk held.
pub async fn rebuild(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &Plan,
    version: &str,
    through: Date,
    progress: impl FnMut(usize),
) -> Result<Kept, TimelineError> {
    keep(store, ws, Under { plan, version, through }, Which::All, true, progress).await
}

/// The facts Keel concluded about an account on `day` under `version`
/// (None: its timeline starts later, or was not built).
pub async fn facts_on(
    store: &dyn Store,
    ws: WorkspaceId,
    account: &ExternalId,
    version: &str,
    day: Date,
) -> Result<Option<Facts>, TimelineError> {
    let stored = store.timeline_rows(ws, account, version, Some(day)).await?;
    let rows = stored.iter().map(|r| from_store(account, r)).collect::<Result<Vec<_>, _>>()?;
    Ok(keel_timeline::facts_on(&rows, day))
}

/// What the timeline holds of a set of accounts on some days.
#[derive(Debug, Default)]
pub struct Read {
    /// The accounts whose timeline is concluded through the last day asked
    /// (their head says so), with their facts on each day asked (`None`:
    /// before the account's first day).
    pub facts: HashMap<ExternalId, Vec<Option<Facts>>>,
    /// The accounts the timeline does not cover (no head under the
    /// version, or one kept to an earlier day): a reader evaluates them.
    pub missing: Vec<ExternalId>,
}

/// The facts of `ids` on each of `days` (ascending) as the timeline under
/// `version` holds them. A head certifies its account's rows through its
/// day (a restatement withdraws it until the rows are rewritten), so an
/// account with a head at or after the last day is read; the rest are
/// [`Read::missing`].
pub async fn read_days(
    store: &dyn Store,
    ws: WorkspaceId,
    version: &str,
    ids: &[ExternalId],
    days: &[Date],
) -> Result<Read, TimelineError> {
    let Some(&last) = days.last() else {
        return Ok(Read { facts: HashMap::new(), missing: Vec::new() });
    };
    let heads = store.timeline_heads(ws, version, ids).await?;
    let (covered, missing): (Vec<ExternalId>, Vec<ExternalId>) =
        ids.iter().cloned().partition(|id| heads.get(id).is_some_and(|h| h.through >= last));
    let mut stored = store.timelines_upto(ws, version, &covered, last).await?;
    let rows: Vec<(ExternalId, Vec<TimelineRow>)> = covered
        .into_iter()
        .map(|id| {
            let rows = stored.remove(&id).unwrap_or_default();
            (id, rows)
        })
        .collect();
    let decoded = crate::load::spread_items(&rows, |(id, rows)| {
        let rows = rows.iter().map(|r| from_store(id, r)).collect::<Result<Vec<_>, _>>()?;
        Ok::<_, TimelineError>(keel_timeline::facts_at(&rows, days))
    });
    let mut facts = HashMap::with_capacity(rows.len());
    for ((id, _), on) in rows.into_iter().zip(decoded) {
        facts.insert(id, on?);
    }
    Ok(Read { facts, missing })
}

#[cfg(test)]
mod tests {
    use keel_core::{
        Account, Label, Money, Severity, Ticket, TicketStatus, Touchpoint, parse_date, parse_timestamp,
    };

    use super::*;

    fn id(s: &str) -> ExternalId {
        ExternalId::parse(s).expect("an id")
    }

    fn history() -> AccountHistory {
        let mut h = AccountHistory::new(Account {
            id: id("acme"),
            name: "Acme".into(),
            attributes: Default::default(),
            owner: None,
            parent: None,
            created: parse_date("2025-01-01").expect("a date"),
        });
        h.contracts.push(keel_core::Contract {
            id: id("c-1"),
            account: id("acme"),
            product: Label::parse("platform").expect("a label"),
            start: parse_date("2025-01-01").expect("a date"),
            end: None,
            mrr: Money::parse("100", "EUR").expect("money"),
            seats: 10,
            billing_period: keel_core::BillingPeriod::Monthly,
        });
        h.tickets.push(Ticket {
            id: id("t-1"),
            account: id("acme"),
            opened: parse_timestamp("2025-06-01T09:00:00Z").expect("a time"),
            closed: None,
            severity: Severity::try_from(2).expect("a severity"),
            status: TicketStatus::Open,
            csat: None,
        });
        h
    }

    /// Which days an account's stored timeline must be concluded again,
    /// as what it rests on changes.
    #[test]
    fn the_head_tells_whether_to_append_restate_the_last_day_or_start_over() {
        let day = |d: &str| parse_date(d).expect("a date");
        let h = history();
        let head = head_of(&h, day("2025-07-01"));
        assert_eq!(need(None, &h, day("2025-07-01")), Need::Whole, "nothing kept yet");
        assert_eq!(need(Some(&head), &h, day("2025-07-01")), Need::Nothing);
        assert_eq!(need(Some(&head), &h, day("2025-07-03")), Need::From(day("2025-07-02")), "days passed");
        assert_eq!(need(Some(&head), &h, day("2025-06-30")), Need::Whole, "the clock went back");
        // Closed on the head's day: that day only (before it, it was open).
        let mut closed = h.clone();
        closed.tickets[0].closed = Some(parse_timestamp("2025-07-01T15:00:00Z").expect("a time"));
        closed.tickets[0].status = TicketStatus::Solved;
        assert_eq!(need(Some(&head), &closed, day("2025-07-02")), Need::From(day("2025-07-01")));
        // A touchpoint logged later (dated later) changes nothing stored.
        let mut later = h.clone();
        later.touchpoints.push(Touchpoint {
            id: id("p-1"),
            account: id("acme"),
            kind: Label::parse("call").expect("a label"),
            occurred: parse_timestamp("2025-07-02T10:00:00Z").expect("a time"),
            owner: None,
            notes: None,
            outcome: None,
        });
        assert_eq!(need(Some(&head), &later, day("2025-07-02")), Need::From(day("2025-07-02")));
        // Dated in the past, or a contract edited: everything again.
        let mut backdated = later.clone();
        backdated.touchpoints[0].occurred = parse_timestamp("2025-06-20T10:00:00Z").expect("a time");
        assert_eq!(need(Some(&head), &backdated, day("2025-07-02")), Need::Whole);
        let mut edited = h.clone();
        edited.contracts[0].seats = 12;
        assert_eq!(need(Some(&head), &edited, day("2025-07-01")), Need::Whole);
        let mut reclosed = closed.clone();
        reclosed.tickets[0].closed = Some(parse_timestamp("2025-06-15T15:00:00Z").expect("a time"));
        assert_eq!(need(Some(&head), &reclosed, day("2025-07-01")), Need::Whole, "closed in the past");
    }

    #[test]
    fn the_day_rolls_at_midnight_in_the_workspace_timezone() {
        let t = |s: &str| parse_timestamp(s).expect("a time");
        assert_eq!(today(t("2026-03-01T23:30:00Z"), "UTC"), parse_date("2026-03-01").expect("a date"));
        assert_eq!(
            today(t("2026-03-01T23:30:00Z"), "Europe/Berlin"),
            parse_date("2026-03-02").expect("a date")
        );
        assert_eq!(today(t("2026-03-01T23:30:00Z"), "Not/AZone"), parse_date("2026-03-01").expect("a date"));
        assert_eq!(next_midnight(t("2026-03-01T23:30:00Z"), "Europe/Berlin"), t("2026-03-02T23:00:00Z"));
        assert_eq!(next_midnight(t("2026-03-01T12:00:00Z"), "UTC"), t("2026-03-02T00:00:00Z"));
        // New York springs forward on 2026-03-08 (at 02:00, so midnight exists).
        assert_eq!(next_midnight(t("2026-03-08T12:00:00Z"), "America/New_York"), t("2026-03-09T04:00:00Z"));
    }
}
