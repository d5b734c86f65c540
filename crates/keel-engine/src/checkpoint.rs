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

fn records_digest(h: &AccountHistory) -> u64 {
    let mut d = FxHasher::default();
    // Serializing these plain records cannot fail; if it did, the digest
    // would only differ, and the evaluation replay in full.
    let records =
        (&h.account, &h.contracts, &h.contacts, &h.tickets, &h.surveys, &h.touchpoints, &h.opportunities);
    d.write(&postcard::to_allocvec(&records).unwrap_or_default());
    for (id, user) in &h.users {
        d.write_u64(*id);
        d.write(user.as_bytes());
    }
    d.finish()
}

fn usage_digest(h: &AccountHistory, known: i32) -> u64 {
    let mut d = FxHasher::default();
    for u in h.usage.iter().filter(|u| dn(u.known) <= known) {
        d.write_i32(dn(u.day));
        d.write_i32(dn(u.known));
        d.write_u64(u.events);
        for (a, b) in u.users.iter().chain(&u.names) {
            d.write_u64(*a);
            d.write_u64(*b);
        }
        d.write_u8(0xff);
    }
    d.finish()
}
