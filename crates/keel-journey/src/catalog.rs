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

/// How much usage history a metric reads, counting back from the day it is
/// computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum History {
    /// No usage.
    #[default]
    None,
    /// The last `n` days, the day itself included.
    Days(u32),
    /// Everything since the first event.
    All,
}

/// What computing a built-in metric reads besides the account itself: the
/// one declaration that loading ("needs"), the journey-map audit ("feeds")
/// and the documentation all derive from. A test in keel-engine computes
/// every metric from a history cut down to these reads and from the whole
/// history, and fails when they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reads {
    /// Usage, and how far back.
    pub usage: History,
    /// Contracts.
    pub contracts: bool,
    /// Contacts.
    pub contacts: bool,
    /// Tickets.
    pub tickets: bool,
    /// Survey responses.
    pub surveys: bool,
    /// Touchpoints.
    pub touchpoints: bool,
    /// Also whatever the journey's first-value milestone reads.
    pub first_value: bool,
    /// Known only while evaluating stages (the stage's entry day).
    pub stage: bool,
}

impl Reads {
    /// Nothing but the account.
    pub const NOTHING: Self = Self {
        usage: History::None,
        contracts: false,
        contacts: false,
        tickets: false,
        surveys: false,
        touchpoints: false,
        first_value: false,
        stage: false,
    };

    /// The last `days` days of usage.
    #[must_use]
    pub const fn usage(days: u32) -> Self {
        Self { usage: History::Days(days), ..Self::NOTHING }
    }

    /// All usage.
    pub const ALL_USAGE: Self = Self { usage: History::All, ..Self::NOTHING };
    /// Contracts.
    pub const CONTRACTS: Self = Self { contracts: true, ..Self::NOTHING };
    /// Contacts.
    pub const CONTACTS: Self = Self { contacts: true, ..Self::NOTHING };
    /// Tickets.
    pub const TICKETS: Self = Self { tickets: true, ..Self::NOTHING };
    /// Survey responses.
    pub const SURVEYS: Self = Self { surveys: true, ..Self::NOTHING };
    /// Touchpoints.
    pub const TOUCHPOINTS: Self = Self { touchpoints: true, ..Self::NOTHING };

    /// These reads and contracts.
    #[must_use]
    pub const fn and_contracts(self) -> Self {
        Self { contracts: true, ..self }
    }

    /// Everything either reads.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self {
            usage: self.usage.max(other.usage),
            contracts: self.contracts || other.contracts,
            contacts: self.contacts || other.contacts,
            tickets: self.tickets || other.tickets,
            surveys: self.surveys || other.surveys,
            touchpoints: self.touchpoints || other.touchpoints,
            first_value: self.first_value || other.first_value,
            stage: self.stage || other.stage,
        }
    }

    /// The kinds of records read, in the plural names of the command line
    /// (`events` for usage); `account` alone when nothing else.
    pub fn record_names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let flags = [
            (self.contracts, "contracts"),
            (self.contacts, "contacts"),
            (self.usage != History::None, "events"),
            (self.tickets, "tickets"),
            (self.surveys, "surveys"),
            (self.touchpoints, "touchpoints"),
        ];
        out.extend(flags.iter().filter(|(on, _)| *on).map(|(_, n)| *n));
        if out.is_empty() {
            out.push("account");
        }
        out
    }

    /// How far back usage goes, for the documentation.
    fn reach(&self) -> String {
        let mut parts = Vec::new();
        match self.usage {
            History::None => {}
            History::Days(d) => parts.push(format!("{d} days")),
            History::All => parts.push("all history".to_owned()),
        }
        if self.first_value {
            parts.push("+ first-value reads".to_owned());
        }
        if self.stage {
            parts.push("stage evaluation only".to_owned());
        }
        if parts.is_empty() { "—".to_owned() } else { parts.join(", ") }
    }
}

/// One built-in metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinMetric {
    /// The name expressions use (for a family, the prefix: the name is the
    /// prefix followed by a touchpoint kind).
    pub name: &'static str,
    /// Its type.
    pub ty: MetricType,
    /// Computed per product line (otherwise per account).
    pub per_product_line: bool,
    /// What it reads.
    pub reads: Reads,
    /// What it measures.
    pub description: &'static str,
}

const fn m(
    name: &'static str,
    ty: MetricType,
    per_product_line: bool,
    reads: Reads,
    description: &'static str,
) -> BuiltinMetric {
    BuiltinMetric { name, ty, per_product_line, reads, description }
}

use MetricType::{Bool, Double, Int};

/// Reads of the first-value milestone's metrics: everything it names, from
/// the first contract on.
const FIRST_VALUE: Reads = Reads { first_value: true, ..Reads::ALL_USAGE.and_contracts() };

/// The catalog, per account and (where marked) per product line, computed
/// from rollups as of a date.
pub const BUILTIN_METRICS: &[BuiltinMetric] = &[
    m("licensed_seats", Int, true, Reads::CONTRACTS, "seats licensed on the contracts active on the day"),
    m("active_users_7d", Int, false, Reads::usage(7), "distinct users with an event in the last 7 days"),
    m("active_users_28d", Int, false, Reads::usage(28), "distinct users with an event in the last 28 days"),
    m(
        "active_seat_ratio",
        Double,
        true,
        Reads::usage(28).and_contracts(),
        "active_users_28d / licensed_seats",
    ),
    m("core_features_weekly", Int, false, Reads::usage(7), "distinct core features used in the last 7 days"),
    m("feature_breadth", Int, false, Reads::usage(28), "distinct core features used in the last 28 days"),
    m(
        "events_per_active_user",
        Double,
        false,
        Reads::usage(28),
        "events in the last 28 days per active user",
    ),
    m(
        "usage_change_pct",
        Double,
        false,
        Reads::usage(56),
        "events in the last 28 days against the 28 before, in percent",
    ),
    m(
        "usage_trend",
        Double,
        false,
        Reads::usage(84),
        "slope of weekly events over the last 12 weeks, in percent of the mean per week",
    ),
    m("days_since_last_event", Int, false, Reads::ALL_USAGE, "days since the account's last event"),
    m("ttv_days", Int, true, FIRST_VALUE, "contract start to the first-value milestone, in days"),
    m("first_value_reached", Bool, true, FIRST_VALUE, "the first-value milestone has been reached"),
    m(
        "days_in_stage",
        Int,
        true,
        Reads { stage: true, ..Reads::CONTRACTS },
        "days since the product line entered its current stage",
    ),
    m("tenure_days", Int, false, Reads::CONTRACTS, "days since the account's first contract started"),
    m("days_to_renewal", Int, true, Reads::CONTRACTS, "days until the active contract ends"),
    m("mrr", Double, true, Reads::CONTRACTS, "monthly recurring revenue of the active contracts"),
    m("mrr_change_90d", Double, true, Reads::CONTRACTS, "MRR now minus MRR 90 days ago"),
    m("open_tickets", Int, false, Reads::TICKETS, "open support tickets"),
    m("open_tickets_sev1", Int, false, Reads::TICKETS, "open severity-1 tickets"),
    m("open_tickets_sev2", Int, false, Reads::TICKETS, "open severity-2 tickets"),
    m("open_tickets_sev3", Int, false, Reads::TICKETS, "open severity-3 tickets"),
    m("open_tickets_sev4", Int, false, Reads::TICKETS, "open severity-4 tickets"),
    m("tickets_30d", Int, false, Reads::TICKETS, "tickets opened in the last 30 days"),
    m(
        "tickets_30d_ratio",
        Double,
        false,
        Reads::TICKETS,
        "tickets_30d against the account's own 180-day monthly baseline",
    ),
    m("nps_latest", Int, false, Reads::SURVEYS, "the latest NPS score (0-10) of any contact"),
    m("nps_trend", Double, false, Reads::SURVEYS, "mean NPS of the last 90 days minus the 90 days before"),
    m("days_since_touchpoint", Int, false, Reads::TOUCHPOINTS, "days since the last touchpoint of any kind"),
    m("champion_present", Bool, false, Reads::CONTACTS, "an active contact holds the champion role"),
    m(
        "days_since_champion_change",
        Int,
        false,
        Reads::CONTACTS,
        "days since a champion's membership or role last ended",
    ),
    m(
        "executive_sponsor_present",
        Bool,
        false,
        Reads::CONTACTS,
        "an active contact holds the executive_sponsor role",
    ),
];

/// Families of built-in metrics, one per touchpoint kind: the name is the
/// prefix followed by the kind.
pub const BUILTIN_FAMILIES: &[BuiltinMetric] = &[
    m(
        "touchpoints_",
        Int,
        false,
        Reads::TOUCHPOINTS.and_contracts(),
        "touchpoints of that kind since the first contract started",
    ),
    m(
        "days_since_touchpoint_",
        Int,
        false,
        Reads::TOUCHPOINTS,
        "days since the last touchpoint of that kind",
    ),
];

/// The built-in metric (or family member) of this name. A family member's
/// kind is not checked here; `journey check` knows the journey's kinds.
pub fn builtin_metric(name: &str) -> Option<&'static BuiltinMetric> {
    BUILTIN_METRICS.iter().find(|m| m.name == name).or_else(|| {
        BUILTIN_FAMILIES.iter().find(|f| name.strip_prefix(f.name).is_some_and(|kind| !kind.is_empty()))
    })
}

/// The built-in metrics as a Markdown table (docs/journey.md holds it).
pub fn builtin_metric_table() -> String {
    let mut out = String::from("| metric | type | reads | usage window | meaning |\n|---|---|---|---|---|\n");
    let rows = BUILTIN_METRICS
        .iter()
        .map(|m| (format!("`{}`", m.name), m))
        .chain(BUILTIN_FAMILIES.iter().map(|m| (format!("`{}<kind>`", m.name), m)));
    for (name, m) in rows {
        let line = if m.per_product_line { " •" } else { "" };
        out.push_str(&format!(
            "| {name}{line} | {} | {} | {} | {} |\n",
            m.ty,
            m.reads.record_names().join(", "),
            m.reads.reach(),
            m.description,
        ));
    }
    out
}

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

/// One built-in detector of a moment that matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detector {
    /// The name `detect` uses.
    pub name: &'static str,
    /// The records whose flow the journey-map audit checks before it calls a
    /// cell linking this moment systematized.
    pub feeds: Reads,
    /// What it detects, with the settings it reads.
    pub description: &'static str,
}

const fn d(name: &'static str, feeds: Reads, description: &'static str) -> Detector {
    Detector { name, feeds, description }
}

/// The built-in detectors of moments that matter.
pub const DETECTORS: &[Detector] = &[
    d("first_value_reached", Reads::ALL_USAGE, "the first-value milestone was reached"),
    d("first_value_slip", Reads::ALL_USAGE, "no first value by the segment's ttv_target_days"),
    d("first_ebr_due", Reads::TOUCHPOINTS, "no EBR yet, first_ebr_due_days is within 30 days"),
    d("first_ebr_overdue", Reads::TOUCHPOINTS, "no EBR by first_ebr_due_days"),
    d(
        "champion_change",
        Reads::CONTACTS,
        "the champion left, changed role, or went inactive for champion_inactive_days",
    ),
    d(
        "usage_cliff",
        Reads::ALL_USAGE,
        "two consecutive weeks at least usage_cliff_drop_pct below the 8-week baseline",
    ),
    d(
        "support_escalation_spike",
        Reads::TICKETS,
        "sev-1/2 tickets in 30 days at escalation_ratio times the 180-day baseline",
    ),
    d("silence", Reads::TOUCHPOINTS, "no touchpoint for silence_days on a high-touch account"),
    d("renewal_window_opened", Reads::CONTRACTS, "the renewal window opened"),
    d(
        "expansion_intent",
        Reads::ALL_USAGE,
        "seat utilisation at expansion_seat_utilisation, or a new core feature adopted",
    ),
    d("advocacy_candidate", Reads::SURVEYS, "NPS at advocacy_min_nps, green health, no open sev-1/2"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_metrics_have_distinct_names_and_families_find_their_members() {
        let mut names: Vec<&str> = BUILTIN_METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BUILTIN_METRICS.len());
        assert_eq!(builtin_metric("mrr").map(|m| m.name), Some("mrr"));
        assert_eq!(builtin_metric("touchpoints_ebr").map(|m| m.name), Some("touchpoints_"));
        assert_eq!(builtin_metric("days_since_touchpoint").map(|m| m.name), Some("days_since_touchpoint"));
        assert_eq!(
            builtin_metric("days_since_touchpoint_ebr").map(|m| m.name),
            Some("days_since_touchpoint_")
        );
        assert_eq!(builtin_metric("touchpoints_"), None);
        assert_eq!(builtin_metric("mobile_sessions_28d"), None);
    }

    /// docs/journey.md holds the table generated from [`BUILTIN_METRICS`]. Run
    /// the test with `KEEL_WRITE_DOCS=1` to rewrite it after changing one.
    #[test]
    fn the_metric_table_in_docs_journey_md_is_generated_from_the_catalog() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/journey.md");
        let doc = std::fs::read_to_string(path).expect("docs/journey.md");
        let (start, end) = ("<!-- builtin-metrics:start -->\n", "<!-- builtin-metrics:end -->");
        let from = doc.find(start).expect("the start marker") + start.len();
        let to = doc.find(end).expect("the end marker");
        let table = builtin_metric_table();
        if std::env::var_os("KEEL_WRITE_DOCS").is_some() {
            std::fs::write(path, format!("{}{table}{}", &doc[..from], &doc[to..]))
                .expect("writes docs/journey.md");
        } else {
            assert_eq!(
                &doc[from..to],
                table,
                "docs/journey.md's metric table is stale: run with KEEL_WRITE_DOCS=1"
            );
        }
    }
}
