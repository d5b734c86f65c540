//! The generative model's parameters: the planted effects, in one place.
//!
//! `docs/demo.md` explains each number; tests in `tests/` check that the
//! generated data shows them.

/// Baseline log-odds of renewal with no risk factor (about 92%).
pub const RENEW_BASE_LOGIT: f64 = 2.4;
/// Log-odds effect of no first value by day 60.
pub const NO_FIRST_VALUE_BY_60: f64 = -1.6;
/// Log-odds effect of a champion who left with no replacement by the renewal.
pub const CHAMPION_GONE: f64 = -1.2;
/// Log-odds effect of a sustained usage decline before the renewal.
pub const USAGE_DECLINE: f64 = -1.0;
/// Log-odds effect of a sev-1 ticket unresolved for more than 14 days in the 90 days before renewal.
pub const UNRESOLVED_SEV1: f64 = -0.9;
/// Log-odds effect of broad seat adoption (≥ 60% of seats active in the last 28 days).
pub const BROAD_ADOPTION_RENEW: f64 = 0.4;
/// Mobile-session rate: no effect on anything (the decoy metric).
pub const MOBILE_SESSIONS: f64 = 0.0;

/// Baseline log-odds of expanding at a renewal (about 18%).
pub const EXPAND_BASE_LOGIT: f64 = -1.5;
/// Log-odds effect of broad seat adoption on expanding at renewal.
pub const BROAD_ADOPTION_EXPAND: f64 = 1.5;
/// Probability of a contraction at renewal while usage is declining.
pub const CONTRACT_IF_DECLINING: f64 = 0.3;
/// Probability, per 6 months of broad adoption, of a mid-term seat add-on.
pub const MIDTERM_ADDON: f64 = 0.25;

/// Median days to first value by segment (enterprise, mid-market, SMB).
pub const TTV_MEDIAN_DAYS: [f64; 3] = [40.0, 28.0, 14.0];
/// Spread (log-normal sigma) of days to first value.
pub const TTV_SIGMA: f64 = 0.6;
/// Days to first value are multiplied by this without an internal kickoff.
pub const TTV_NO_IKT_FACTOR: f64 = 1.6;
/// Probability of never reaching first value, with and without an internal kickoff.
pub const STALL_P: [f64; 2] = [0.10, 0.25];
/// Probability of an internal kickoff by segment.
pub const IKT_P: [f64; 3] = [0.75, 0.5, 0.2];

/// Yearly probability that the champion leaves.
pub const CHAMPION_LEAVES_PER_YEAR: f64 = 0.25;
/// Probability that a departed champion is replaced (within 14–45 days).
pub const CHAMPION_REPLACED_P: f64 = 0.5;
/// Probability that an account enters a sustained usage decline (after day 120).
pub const USAGE_DECLINE_P: f64 = 0.2;
/// Activity multiplier once the decline has set in.
pub const USAGE_DECLINE_FACTOR: f64 = 0.35;
/// Tickets per month by segment.
pub const TICKETS_PER_MONTH: [f64; 3] = [1.6, 0.8, 0.3];
/// Share of sev-1 tickets that stay unresolved for 30–60 days.
pub const SEV1_STUCK_P: f64 = 0.3;

/// Chance that a user who is provisioned is active on a weekday.
pub const ACTIVE_WEEKDAY_P: f64 = 0.14;
/// Weekend activity relative to weekdays.
pub const WEEKEND_FACTOR: f64 = 0.25;
/// Share of events that arrive late (1–3 days after they happened).
pub const LATE_ARRIVAL_P: f64 = 0.01;

/// The planted play effects draw from a stream of their own, seeded with this.
pub const PLAYS_SEED: u64 = 0x706c_6179_7321;
/// The default journey's `ttv_target_days` per segment (enterprise, mid-market, SMB):
/// when `first_value_slip` fires and the rescue play starts.
pub const TTV_TARGET_DAYS: [i64; 3] = [60, 45, 30];
/// The first-value rescue play of the default journey, and its holdout.
pub const RESCUE_PLAY: &str = "rescue_onboarding";
/// Must equal `holdout_pct` of `rescue_onboarding` in the default journey.
pub const RESCUE_HOLDOUT_PCT: f64 = 20.0;
/// Probability that the rescue brings first value 10–28 days after the target (treated accounts only).
pub const RESCUE_WORKS_P: f64 = 0.5;
/// The champion-change play of the default journey, and its holdout.
pub const CHAMPION_PLAY: &str = "rebuild_champion";
/// Must equal `holdout_pct` of `rebuild_champion` in the default journey.
pub const CHAMPION_HOLDOUT_PCT: f64 = 20.0;
/// Probability that the play finds a new champion where none would have been found
/// (treated accounts: 0.5 + 0.5 × 0.6 = 0.8 replaced, against 0.5 held out).
pub const CHAMPION_PLAY_RESCUE_P: f64 = 0.6;

/// The logistic function.
pub fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
