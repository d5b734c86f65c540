//! Per-day usage rollups: what evaluation reads instead of raw events.

use rustc_hash::FxHashMap as HashMap;

use chrono::NaiveDate;
use keel_core::{Date, Event, Timestamp};
use serde::Serialize;

/// Days since 1970-01-01 of a timestamp's UTC date.
pub fn day_number(t: Timestamp) -> i32 {
    (t.timestamp().div_euclid(86_400)) as i32
}

/// The date a day number stands for.
pub fn day_from_number(day: i32) -> Date {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).unwrap_or_default()
}

/// How many events one user did on one day (known by `known_day`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct UserDay {
    /// Days since 1970-01-01 (UTC) the events happened on.
    pub day: i32,
    /// The user.
    pub user: String,
    /// The day the events were received.
    pub known_day: i32,
    /// How many events.
    pub events: i64,
}

/// How many events of one name happened on one day (known by `known_day`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EventDay {
    /// Days since 1970-01-01 (UTC) the events happened on.
    pub day: i32,
    /// The event name.
    pub name: String,
    /// The day the events were received.
    pub known_day: i32,
    /// How many events.
    pub events: i64,
}

/// An account's rollups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageRollup {
    /// Per user and day.
    pub users: Vec<UserDay>,
    /// Per event name and day.
    pub events: Vec<EventDay>,
}

/// A rollup row's key: (internal account id, day, user id or event name, known day).
pub(crate) type RollupKey<'a> = (i64, i32, &'a str, i32);
/// Rollup increments sorted by key.
pub(crate) type SortedDeltas<'a> = Vec<(RollupKey<'a>, i64)>;

/// Rollup increments for a batch of events, keyed by internal account id.
#[derive(Debug, Default)]
pub(crate) struct RollupDelta<'a> {
    pub users: HashMap<RollupKey<'a>, i64>,
    pub names: HashMap<RollupKey<'a>, i64>,
}

impl<'a> RollupDelta<'a> {
    pub fn add(&mut self, account: i64, event: &'a Event) {
        let day = day_number(event.timestamp);
        let known = day_number(event.received_at);
        *self.users.entry((account, day, event.user.as_str(), known)).or_default() += 1;
        *self.names.entry((account, day, event.name.as_str(), known)).or_default() += 1;
    }

    /// The increments sorted by key, so that upserts walk each B-tree in order.
    pub fn sorted(self) -> (SortedDeltas<'a>, SortedDeltas<'a>) {
        let mut users: Vec<_> = self.users.into_iter().collect();
        let mut names: Vec<_> = self.names.into_iter().collect();
        users.sort_unstable();
        names.sort_unstable();
        (users, names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_numbers_round_trip_through_dates() {
        let t = keel_core::parse_timestamp("2025-03-01T23:59:59Z").unwrap();
        let d = day_number(t);
        assert_eq!(day_from_number(d).to_string(), "2025-03-01");
        let before_epoch = keel_core::parse_timestamp("1969-12-31T12:00:00Z").unwrap();
        assert_eq!(day_number(before_epoch), -1);
        assert_eq!(day_from_number(0).to_string(), "1970-01-01");
    }
}
