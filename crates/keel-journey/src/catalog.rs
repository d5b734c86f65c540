//! The built-in metrics, detectors, touchpoint kinds, and the vocabulary of
//! `journey.toml` that is fixed by Keel.

use std::fmt;

/// The type of a metric as expressions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A whole number (counts, days).
    Int,
    /// A real number (ratios, percentages, money).
    Double,
    /// True or false.
    Bool,
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Int => "int",
            Self::Double => "double",
            Self::Bool => "bool",
        })
    }
}

/// One built-in metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinMetric {
    /// The name expressions use.
    pub name: &'static str,
    /// Its type.
    pub ty: MetricType,
    /// Computed per product line (otherwise per account).
    pub per_product_line: bool,
    /// What it measures.
    pub description: &'static str,
}

const fn m(
    name: &'static str,
    ty: MetricType,
    per_product_line: bool,
    description: &'static str,
) -> BuiltinMetric {
    BuiltinMetric { name, ty, per_product_line, description }
}

use MetricType::{Bool, Double, Int};

/// The catalog, per account and (where marked) per product line, computed
/// from rollups as of a date.
pub const BUILTIN_METRICS: &[BuiltinMetric] = &[
    m("licensed_seats", Int, true, "seats licensed on the contracts active on the day"),
    m("active_users_7d", Int, false, "distinct users with an event in the last 7 days"),
    m("active_users_28d", Int, false, "distinct users with an event in the last 28 days"),
    m("active_seat_ratio", Double, true, "active_users_28d / licensed_seats"),
    m("core_features_weekly", Int, false, "distinct core features used in the last 7 days"),
    m("feature_breadth", Int, false, "distinct core features used in the last 28 days"),
    m("events_per_active_user", Double, false, "events in the last 28 days per active user"),
    m("usage_change_pct", Double, false, "events in the last 28 days against the 28 before, in percent"),
    m(
        "usage_trend",
        Double,
        false,
        "slope of weekly events over the last 12 weeks, in percent of the mean per week",
    ),
    m("days_since_last_event", Int, false, "days since the account's last event"),
    m("ttv_days", Int, true, "contract start to the first-value milestone, in days"),
    m("first_value_reached", Bool, true, "the first-value milestone has been reached"),
    m("days_in_stage", Int, true, "days since the product line entered its current stage"),
    m("tenure_days", Int, false, "days since the account's first contract started"),
    m("days_to_renewal", Int, true, "days until the active contract ends"),
    m("mrr", Double, true, "monthly recurring revenue of the active contracts"),
    m("mrr_change_90d", Double, true, "MRR now minus MRR 90 days ago"),
    m("open_tickets", Int, false, "open support tickets"),
    m("open_tickets_sev1", Int, false, "open severity-1 tickets"),
    m("open_tickets_sev2", Int, false, "open severity-2 tickets"),
    m("open_tickets_sev3", Int, false, "open severity-3 tickets"),
    m("open_tickets_sev4", Int, false, "open severity-4 tickets"),
    m("tickets_30d", Int, false, "tickets opened in the last 30 days"),
    m("tickets_30d_ratio", Double, false, "tickets_30d against the account's own 180-day monthly baseline"),
    m("nps_latest", Int, false, "the latest NPS score (0-10) of any contact"),
    m("nps_trend", Double, false, "mean NPS of the last 90 days minus the 90 days before"),
    m("days_since_touchpoint", Int, false, "days since the last touchpoint of any kind"),
    m("champion_present", Bool, false, "an active contact holds the champion role"),
    m("days_since_champion_change", Int, false, "days since a champion's membership or role last ended"),
    m("executive_sponsor_present", Bool, false, "an active contact holds the executive_sponsor role"),
];

/// Touchpoint kinds Keel knows; each gets `touchpoints_<kind>` (count since
/// the contract started) and `days_since_touchpoint_<kind>`.
pub const TOUCHPOINT_KINDS: &[&str] = &[
    "internal_kickoff",
    "kickoff",
    "onboarding_session",
    "first_value_review",
    "ebr",
    "qbr",
    "alignment_meeting",
    "insights_shared",
    "success_plan_review",
    "celebration",
    "renewal_conversation",
    "email",
    "call",
    "training",
];

/// The built-in detectors of moments that matter, with the settings they read.
pub const DETECTORS: &[(&str, &str)] = &[
    ("first_value_reached", "the first-value milestone was reached"),
    ("first_value_slip", "no first value by the segment's ttv_target_days"),
    ("first_ebr_due", "no EBR yet, first_ebr_due_days is within 30 days"),
    ("first_ebr_overdue", "no EBR by first_ebr_due_days"),
    ("champion_change", "the champion left, changed role, or went inactive for champion_inactive_days"),
    ("usage_cliff", "two consecutive weeks at least usage_cliff_drop_pct below the 8-week baseline"),
    ("support_escalation_spike", "sev-1/2 tickets in 30 days at escalation_ratio times the 180-day baseline"),
    ("silence", "no touchpoint for silence_days on a high-touch account"),
    ("renewal_window_opened", "the renewal window opened"),
    ("expansion_intent", "seat utilisation at expansion_seat_utilisation, or a new core feature adopted"),
    ("advocacy_candidate", "NPS at advocacy_min_nps, green health, no open sev-1/2"),
];

/// Settings (targets and thresholds) and their defaults; `[settings]` and
/// segment overrides may change them.
pub const SETTINGS: &[(&str, f64)] = &[
    ("ttv_target_days", 45.0),
    ("silence_days", 45.0),
    ("first_ebr_due_days", 180.0),
    ("champion_inactive_days", 21.0),
    ("usage_cliff_drop_pct", 40.0),
    ("escalation_ratio", 2.0),
    ("expansion_seat_utilisation", 0.9),
    ("advocacy_min_nps", 9.0),
];

/// The eight rows of the journey map.
pub const MAP_ROWS: &[&str] = &[
    "customer_thoughts",
    "moments_of_truth",
    "customer_journey",
    "loyalty_blockers",
    "touchpoints",
    "service_blueprint",
    "loyalty_builders",
    "health_signals",
];

/// Touch models a segment may use.
pub const TOUCH_MODELS: &[&str] = &["high_touch", "tech_touch", "hybrid"];

/// Severities of a moment, lowest first.
pub const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];

/// Stage entry triggers that are not CEL expressions.
pub const ENTRY_TRIGGERS: &[&str] = &["contract_start", "previous_exit", "renewal_window"];

/// A variable play conditions and governance rules see besides the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayVariable {
    /// The name expressions use.
    pub name: &'static str,
    /// Its type (`None`: a string).
    pub ty: Option<MetricType>,
    /// What it holds.
    pub description: &'static str,
}

const fn pv(name: &'static str, ty: Option<MetricType>, description: &'static str) -> PlayVariable {
    PlayVariable { name, ty, description }
}

/// The variables of play conditions and governance rules.
pub const PLAY_VARIABLES: &[PlayVariable] = &[
    pv("segment", None, "the account's segment id"),
    pv("health_band", None, "green, yellow, red, or unknown when too little data"),
    pv("health_score", Some(Double), "the health score, 0-100 (0 when unknown)"),
    pv("arr", Some(Double), "annual recurring revenue: mrr × 12"),
    pv("in_renewal_window", Some(Bool), "an active contract ends within renewal_window_days"),
    pv("days_since_detractor", Some(Int), "days since a contact answered NPS 0-6 (100000 if never)"),
    pv("days_since_customer_touch", Some(Int), "days since the last customer-facing touch (100000 if never)"),
    pv("stage", None, "the primary product line's stage id (\"\" before the first contract)"),
];

/// Roles a stage, moment or play step may name as its owner; `[owners]` adds more.
pub const OWNER_ROLES: &[&str] = &[
    "csm",
    "account_manager",
    "onboarding_manager",
    "support_lead",
    "cs_ops",
    "cs_leader",
    "sales",
    "marketing",
];

/// Step kinds.
pub const STEP_KINDS: &[&str] =
    &["task", "email", "webhook", "wait", "branch", "log_touchpoint", "opportunity"];

/// The opportunity types an `opportunity` step may open.
pub const OPPORTUNITY_KINDS: &[&str] = &["expansion", "cross_sell"];

/// The top-level variables a step template may use.
pub const TEMPLATE_VARIABLES: &[(&str, &str)] = &[
    ("account", "id, name, owner, segment, stage, mrr, arr, renewal_date, attributes"),
    ("owner", "role, name (who the step is assigned to, or sends)"),
    ("contact", "name, email, role (email steps: the recipient)"),
    ("play", "id, name, type"),
    ("trigger", "kind, detail, date, evidence"),
    ("metrics", "every metric of the journey, by name"),
    ("health", "score, band, reasons"),
    ("as_of", "the day the step runs (YYYY-MM-DD)"),
    ("due_date", "task steps: the due date (YYYY-MM-DD)"),
];
