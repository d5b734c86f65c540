//! Per-day usage rollups: what evaluation reads instead of raw events.

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

/// (users.id or event_names.id, count) pairs, sorted by id: one account-day's
/// users or event names as stored in `usage_day`.
pub(crate) type Counts = Vec<(u64, u64)>;

/// Rollup increments for a batch of events.
#[derive(Debug, Default)]
pub(crate) struct RollupDelta {
    /// (internal account id, day, known day, user id, event name id) per event.
    events: Vec<(i64, i32, i32, u64, u64)>,
}

/// The increments to one stored `usage_day` row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DayDelta {
    pub account: i64,
    pub day: i32,
    pub known_day: i32,
    pub events: u64,
    pub users: Counts,
    pub names: Counts,
}

/// Counts equal ids.
fn count_ids(ids: &mut [u64]) -> Counts {
    ids.sort_unstable();
    let mut out: Counts = Vec::new();
    for &id in ids.iter() {
        match out.last_mut() {
            Some((last, n)) if *last == id => *n += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}

impl RollupDelta {
    /// Counts one event of `account` by interned user and event name.
    pub fn add(&mut self, account: i64, event: &Event, user: u64, name: u64) {
        let day = day_number(event.timestamp);
        let known = day_number(event.received_at);
        self.events.push((account, day, known, user, name));
    }

    /// The increments grouped per stored row, in key order, so that writes
    /// walk the B-tree in order.
    pub fn into_days(mut self) -> Vec<DayDelta> {
        // Event files mostly run account by account and forward in time, so
        // this sort finds long sorted runs and the groups are small.
        self.events.sort_by_key(|e| (e.0, e.1, e.2));
        let mut days = Vec::new();
        let (mut users, mut names) = (Vec::new(), Vec::new());
        for group in self.events.chunk_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2)) {
            users.clear();
            names.clear();
            users.extend(group.iter().map(|e| e.3));
            names.extend(group.iter().map(|e| e.4));
            let (account, day, known_day, ..) = group[0];
            days.push(DayDelta {
                account,
                day,
                known_day,
                events: group.len() as u64,
                users: count_ids(&mut users),
                names: count_ids(&mut names),
            });
        }
        days
    }
}

/// Encodes counts as stored in `usage_day` (postcard: varints).
pub(crate) fn encode_counts(counts: &[(u64, u64)], out: &mut Vec<u8>) {
    out.clear();
    if let Ok(bytes) = postcard::to_extend(counts, std::mem::take(out)) {
        *out = bytes;
    }
}

/// Decodes counts stored in `usage_day`.
pub(crate) fn decode_counts(bytes: &[u8]) -> Result<Counts, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("undecodable usage counts: {e}"))
}

/// Adds two id-sorted count lists id by id.
pub(crate) fn merge_counts(a: &[(u64, u64)], b: &[(u64, u64)]) -> Counts {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1 + b[j].1));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
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

    #[test]
    fn counts_round_trip_and_merge_key_by_key() {
        let a = [(1, 2), (7, 1)];
        let b = [(7, 3), (300, 1)];
        let mut bytes = Vec::new();
        encode_counts(&a, &mut bytes);
        assert_eq!(decode_counts(&bytes).unwrap(), a.to_vec());
        assert_eq!(merge_counts(&a, &b), vec![(1, 2), (7, 4), (300, 1)]);
        assert!(decode_counts(&[0xff, 0xff]).is_err());
    }
}
