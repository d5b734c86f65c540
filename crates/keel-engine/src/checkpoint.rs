//! Checkpoints: what an evaluation leaves for the next one to continue from.
//!
//! An evaluation as of `A` replays each product line's stage rules weekly
//! from its first contract. A [`Checkpoint`] keeps where those replays stood
//! after their weekly steps, with the knowledge cutoff they were computed
//! under (`A`: usage received after it was not seen) and digests of what
//! they read. [`evaluate_from`](crate::evaluate_from) continues from it as
//! of a later date when that gives exactly what a full replay gives:
//!
//! - the records (account, contracts, contacts, tickets, surveys,
//!   touchpoints, opportunities, users) are the same — an edit after the
//!   fact restates the past, so it starts over;
//! - the usage known by the cutoff is the same;
//! - no usage received after the cutoff is dated on or before a step the
//!   checkpoint took (a late arrival re-judges those steps).
//!
//! It must also come from the same plan (journey version and the event
//! names it binds). Otherwise it replays from the start: full replay stays
//! the reference.

use std::hash::Hasher;

use rustc_hash::FxHasher;

use super::*;
use crate::metrics::dn_ts;
use crate::stages::LineReplay;

/// Where an account's evaluation stood, for the next one to continue from.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The identity of the plan that made it.
    pub(crate) plan: u64,
    /// The knowledge cutoff: the as-of date of the evaluation that made it.
    pub(crate) known: i32,
    /// Digest of every record but usage.
    pub(crate) records: u64,
    /// Digest of the usage known by `known`.
    pub(crate) usage: u64,
    /// Per product line, the replay after its weekly steps.
    pub(crate) lines: Vec<LineReplay>,
}

impl Checkpoint {
    /// The as-of date of the evaluation that made it.
    pub fn as_of(&self) -> Date {
        date(self.known)
    }

    /// Whether an evaluation of `history` as of `as_of` under `plan` would
    /// continue from here rather than replay in full.
    pub fn holds(&self, plan: &Plan, history: &AccountHistory, as_of: Date) -> bool {
        self.plan == plan.identity && self.holds_for(history, dn(as_of))
    }

    /// The latest weekly step any line took (None: no line started).
    fn last_step(&self) -> Option<i32> {
        self.lines.iter().map(|l| l.step).max()
    }

    pub(crate) fn of(plan: &Plan, history: &AccountHistory, known: i32, lines: Vec<LineReplay>) -> Self {
        Self {
            plan: plan.identity,
            known,
            records: records_digest(history),
            usage: usage_digest(history, known),
            lines,
        }
    }

    /// Whether an evaluation of `history` as of `as_of` may continue from
    /// here (see the module docs).
    pub(crate) fn holds_for(&self, history: &AccountHistory, as_of: i32) -> bool {
        if as_of < self.known || records_digest(history) != self.records {
            return false;
        }
        if usage_digest(history, self.known) != self.usage {
            return false;
        }
        let Some(last) = self.last_step() else { return true };
        !history.usage.iter().any(|u| {
            let (day, known) = (dn(u.day), dn(u.known));
            known > self.known && known <= as_of && day <= last
        })
    }
}

/// Digest of every record but usage and users.
fn plain_records(h: &AccountHistory) -> FxHasher {
    let mut d = FxHasher::default();
    // Serializing these plain records cannot fail; if it did, the digest
    // would only differ, and the evaluation replay in full.
    let records =
        (&h.account, &h.contracts, &h.contacts, &h.tickets, &h.surveys, &h.touchpoints, &h.opportunities);
    d.write(&postcard::to_allocvec(&records).unwrap_or_default());
    d
}

fn records_digest(h: &AccountHistory) -> u64 {
    let mut d = plain_records(h);
    for (id, user) in &h.users {
        d.write_u64(*id);
        d.write(user.as_bytes());
    }
    d.finish()
}

fn usage_digest(h: &AccountHistory, known: i32) -> u64 {
    let mut d = FxHasher::default();
    for u in h.usage.iter().filter(|u| dn(u.known) <= known) {
        feed(&mut d, u);
    }
    d.finish()
}

fn feed(d: &mut FxHasher, u: &DayUsage) {
    d.write_i32(dn(u.day));
    d.write_i32(dn(u.known));
    d.write_u64(u.events);
    for (a, b) in u.users.iter().chain(&u.names) {
        d.write_u64(*a);
        d.write_u64(*b);
    }
    d.write_u8(0xff);
}

/// What an account's conclusions up to a day rest on, as digests: what is
/// kept from one day's evaluation to tell, later, whether the days up to
/// it would still be concluded the same way (see [`fingerprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// The account and its contracts, read from any day (a renewal date
    /// ahead, a contract's start): an edit restates every day.
    pub records: u64,
    /// What was known before the day: usage received before it, and the
    /// dated records (contacts, tickets, surveys, touchpoints,
    /// opportunities) as they stood the day before. A change restates
    /// days before the day.
    pub known_before: u64,
    /// The same on the day itself: a change (data received or dated that
    /// day) restates the day only.
    pub known_upto: u64,
}

/// The fingerprint of `history` on `day`. An evaluation as of a day reads
/// usage received by then and every dated record as it stood then (a
/// ticket closed later is open; a touchpoint logged later is not there),
/// so while the fingerprint of a later history on `day` is the same, so is
/// every evaluation as of a day up to it. Users' ids are left out (a user
/// first seen later changes no earlier day).
pub fn fingerprint(history: &AccountHistory, day: Date) -> Fingerprint {
    let day = dn(day);
    let (mut before, mut upto) = (FxHasher::default(), FxHasher::default());
    for u in &history.usage {
        let known = dn(u.known);
        if known <= day {
            feed(&mut upto, u);
            if known < day {
                feed(&mut before, u);
            }
        }
    }
    dated(history, day - 1, &mut before);
    dated(history, day, &mut upto);
    let mut records = FxHasher::default();
    records.write(&postcard::to_allocvec(&(&history.account, &history.contracts)).unwrap_or_default());
    Fingerprint { records: records.finish(), known_before: before.finish(), known_upto: upto.finish() }
}

/// Feeds the dated records as they stood on day `t`: those that existed,
/// with what was known of them by then (a closing date after `t` is not).
fn dated(h: &AccountHistory, t: i32, d: &mut FxHasher) {
    let mut put = |what: u8, value: &dyn erased::Encode| {
        d.write_u8(what);
        d.write(&value.encode());
    };
    for c in h.contacts.iter().filter(|c| dn(c.active_from) <= t) {
        let to = c.active_to.filter(|e| dn(*e) <= t);
        put(1, &(&c.id, &c.email, &c.name, &c.role, c.active_from, to));
    }
    for k in h.tickets.iter().filter(|k| dn_ts(k.opened) <= t) {
        let closed = k.closed.filter(|c| dn_ts(*c) <= t);
        let after = closed.map(|_| (&k.status, k.csat));
        put(2, &(&k.id, k.opened, &k.severity, closed, after));
    }
    for s in h.surveys.iter().filter(|s| dn_ts(s.responded) <= t) {
        put(3, s);
    }
    for p in h.touchpoints.iter().filter(|p| dn_ts(p.occurred) <= t) {
        put(4, p);
    }
    for o in h.opportunities.iter().filter(|o| dn(o.created) <= t) {
        let closed = o.closed.filter(|c| dn(*c) <= t);
        let after = closed.map(|_| &o.status);
        put(5, &(&o.id, &o.kind, &o.source, &o.mrr_delta, &o.stage, o.created, closed, after));
    }
}

/// Encoding any serializable value for a digest, behind a trait object.
mod erased {
    pub(super) trait Encode {
        fn encode(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Encode for T {
        // A plain record always serializes; if it did not, the digest would
        // only differ, and the days be concluded again.
        fn encode(&self) -> Vec<u8> {
            postcard::to_allocvec(self).unwrap_or_default()
        }
    }
}
