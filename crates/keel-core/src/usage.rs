//! Product usage as evaluation reads it: one account-day at a time.

/// One account's usage on one day, as known by one day.
///
/// Events are counted per user and per event name; users and names are
/// small integer ids (stable within a workspace), so that evaluation counts
/// distinct users and features without touching strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayUsage {
    /// The day the events happened.
    pub day: crate::Date,
    /// The day they were received; an evaluation as of an earlier date ignores them.
    pub known: crate::Date,
    /// How many events.
    pub events: u64,
    /// (user id, events), sorted by user id.
    pub users: Vec<(u64, u64)>,
    /// (event name id, events), sorted by name id.
    pub names: Vec<(u64, u64)>,
}
