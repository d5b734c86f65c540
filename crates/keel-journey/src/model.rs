//! A checked journey: every reference resolved, every expression type-checked.

use std::collections::BTreeMap;

use crate::catalog::MetricType;
use crate::expr::Expr;

/// The post-sale journey, as `journey.toml` describes it, checked.
#[derive(Debug, Clone)]
pub struct Journey {
    /// Display name.
    pub name: String,
    /// Renewal is entered this many days before a contract ends.
    pub renewal_window_days: u32,
    /// The first-value milestone: the first day this holds.
    pub first_value: Expr,
    /// Targets and thresholds (defaults merged with `[settings]`).
    pub settings: BTreeMap<String, f64>,
    /// Segments, first match wins.
    pub segments: Vec<Segment>,
    /// User-defined metrics, in dependency order (counts before expressions).
    pub metrics: Vec<UserMetric>,
    /// Every metric name expressions may use, with its type.
    pub metric_types: BTreeMap<String, MetricType>,
    /// Stages, in order.
    pub stages: Vec<Stage>,
    /// Moments that matter.
    pub moments: Vec<Moment>,
    /// The health model.
    pub health: HealthModel,
    /// The 12-month journey map.
    pub map: JourneyMap,
    /// Touchpoint kinds (built-in and declared).
    pub touchpoint_kinds: Vec<String>,
    /// Event names that count as core features.
    pub core_features: Vec<String>,
    /// Role → who holds it when the account does not say (`[owners]`).
    pub owners: BTreeMap<String, String>,
    /// Rules every customer-facing step passes first.
    pub governance: Governance,
    /// Plays: what runs when a moment fires or a stage changes.
    pub plays: Vec<Play>,
    /// A digest of the journey file's text (16 hex digits): the version
    /// stamped on every play decision.
    pub version: String,
}

/// How a segment is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// A named CSM runs the plays.
    HighTouch,
    /// Automated plays only.
    TechTouch,
    /// Pooled CSMs plus automation.
    Hybrid,
}

impl Touch {
    /// As written in journey.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HighTouch => "high_touch",
            Self::TechTouch => "tech_touch",
            Self::Hybrid => "hybrid",
        }
    }
}

/// A segment of accounts.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Id.
    pub id: String,
    /// Membership rule.
    pub when: Expr,
    /// Touch model.
    pub touch: Touch,
    /// Settings this segment overrides.
    pub overrides: BTreeMap<String, f64>,
}

/// Which events a counting metric looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    /// The last N days.
    Days(u32),
    /// Since the account's first contract started.
    Contract,
}

/// How a user metric is computed.
#[derive(Debug, Clone)]
pub enum MetricDef {
    /// Events with one of these names in the window.
    Count {
        /// Event names.
        events: Vec<String>,
        /// Window.
        window: Window,
    },
    /// Distinct users with one of these events in the window.
    UniqueUsers {
        /// Event names.
        events: Vec<String>,
        /// Window.
        window: Window,
    },
    /// A CEL expression over built-in and counting metrics.
    Expr(Expr),
}

/// A metric defined in journey.toml.
#[derive(Debug, Clone)]
pub struct UserMetric {
    /// Name.
    pub name: String,
    /// What it measures.
    pub description: Option<String>,
    /// Definition.
    pub def: MetricDef,
    /// Type.
    pub ty: MetricType,
}

/// When a product line may enter a stage.
#[derive(Debug, Clone)]
pub enum Entry {
    /// When its contract starts.
    ContractStart,
    /// When the previous stage's exit gate held (after its minimum dwell).
    PreviousExit,
    /// When the renewal window opens.
    RenewalWindow,
    /// When this holds.
    When(Expr),
}

/// A journey stage.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Entry trigger.
    pub entry: Entry,
    /// Exit gate.
    pub exit: Expr,
    /// Days before the exit gate may move the account on.
    pub min_dwell_days: u32,
    /// The metric to watch.
    pub watch: String,
    /// The owning role.
    pub owner: String,
    /// Target duration.
    pub target_days: Option<u32>,
}

/// How a moment is detected.
#[derive(Debug, Clone)]
pub enum Detection {
    /// A built-in detector, with parameters overriding settings.
    Detector {
        /// Detector name.
        name: String,
        /// Parameters.
        params: BTreeMap<String, f64>,
    },
    /// A CEL condition.
    When(Expr),
}

/// How much a moment matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// As written in journey.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// A moment that matters.
#[derive(Debug, Clone)]
pub struct Moment {
    /// Id.
    pub id: String,
    /// Detection.
    pub detection: Detection,
    /// The owning role.
    pub owner: String,
    /// Severity.
    pub severity: Severity,
    /// The play it triggers (checked once plays exist).
    pub play: Option<String>,
    /// The map cell it belongs to: (month 1–12, row).
    pub cell: Option<(u8, String)>,
}

/// A health component.
#[derive(Debug, Clone)]
pub struct Component {
    /// Id.
    pub id: String,
    /// The metric it scores.
    pub metric: String,
    /// Default weight.
    pub weight: f64,
    /// (metric value, score) points, increasing in value.
    pub curve: Vec<(f64, f64)>,
}

/// The health model.
#[derive(Debug, Clone)]
pub struct HealthModel {
    /// Below this score: red.
    pub red: f64,
    /// Below this score: yellow; otherwise green.
    pub yellow: f64,
    /// Below this share of weight with data, the score is uncertain.
    pub min_coverage: f64,
    /// Components.
    pub components: Vec<Component>,
    /// Per segment: component → weight.
    pub segment_weights: BTreeMap<String, BTreeMap<String, f64>>,
}

/// A lifecycle phase.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Id.
    pub id: String,
    /// First and last month (1–12, inclusive).
    pub months: (u8, u8),
}

/// What makes a map cell operational.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// Stage ids.
    pub stages: Vec<String>,
    /// Moment ids.
    pub moments: Vec<String>,
    /// Touchpoint kinds.
    pub touchpoints: Vec<String>,
    /// Play ids.
    pub plays: Vec<String>,
    /// Metric names.
    pub metrics: Vec<String>,
}

/// A cell of the journey map.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Row.
    pub row: String,
    /// First and last month.
    pub months: (u8, u8),
    /// Text.
    pub text: String,
    /// Links.
    pub links: Links,
}

/// What a play is for; suppression rules and tasks use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlayType {
    /// Churn risk.
    Risk,
    /// Expansion or advocacy.
    Opportunity,
    /// A step of the lifecycle (kickoff, EBR, renewal).
    Lifecycle,
    /// Routine activity.
    Activity,
}

impl PlayType {
    /// Every type, as written in journey.toml.
    pub const NAMES: &'static [&'static str] = &["risk", "opportunity", "lifecycle", "activity"];

    /// As written in journey.toml.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Parses a name from [`Self::NAMES`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Risk, Self::Opportunity, Self::Lifecycle, Self::Activity].into_iter().find(|t| t.as_str() == s)
    }
}

/// A task's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Low.
    Low,
    /// Normal.
    Normal,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

impl Priority {
    /// Every priority, as written in journey.toml.
    pub const NAMES: &'static [&'static str] = &["low", "normal", "high", "urgent"];

    /// As written in journey.toml.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Parses a name from [`Self::NAMES`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Low, Self::Normal, Self::High, Self::Urgent].into_iter().find(|t| t.as_str() == s)
    }
}

/// What starts a play.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A moment that matters fired.
    Moment(String),
    /// A product line entered this stage.
    StageEntry(String),
    /// A product line left this stage (its exit gate held).
    StageExit(String),
    /// A product line stayed in this stage past its `target_days`.
    GateSlip(String),
    /// This many days before the active contract ends.
    DaysBeforeRenewal(u32),
    /// The first day this condition holds (again).
    When(Expr),
}

impl Trigger {
    /// The trigger as journey.toml writes it, e.g. `moment = "usage_cliff"`.
    pub fn describe(&self) -> String {
        match self {
            Self::Moment(m) => format!("moment = \"{m}\""),
            Self::StageEntry(s) => format!("stage_entry = \"{s}\""),
            Self::StageExit(s) => format!("stage_exit = \"{s}\""),
            Self::GateSlip(s) => format!("gate_slip = \"{s}\""),
            Self::DaysBeforeRenewal(d) => format!("days_before_renewal = {d}"),
            Self::When(e) => format!("when = \"{}\"", e.source),
        }
    }
}

/// A template (minijinja syntax), checked against the variables a play run provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The template text.
    pub source: String,
    /// The metrics it reads (`metrics.<name>`).
    pub metrics: Vec<String>,
}

/// A step of a play.
#[derive(Debug, Clone)]
pub enum Step {
    /// A task for the owner.
    Task {
        /// Title template.
        title: Template,
        /// Description template.
        description: Template,
        /// The owning role.
        owner: String,
        /// Due this many days after the step runs.
        due_days: u32,
        /// Priority.
        priority: Priority,
        /// The touchpoint kind logged when the task is done.
        touchpoint: String,
    },
    /// An email to the contacts holding a role, from the owner.
    Email {
        /// Contact role.
        to: String,
        /// Sending role.
        from: String,
        /// Subject template.
        subject: Template,
        /// Body template.
        body: Template,
    },
    /// A signed HTTP POST.
    Webhook {
        /// Where to.
        url: String,
        /// JSON body template.
        body: Template,
        /// The environment variable holding the signing secret.
        secret_env: Option<String>,
    },
    /// Waits `days`, or until `until` holds (at most `days`).
    Wait {
        /// Days (the most it waits when `until` is set).
        days: u32,
        /// Stop waiting as soon as this holds.
        until: Option<Expr>,
    },
    /// Jumps forward to step `goto` (an index; `steps.len()` ends the run) when `when` holds.
    Branch {
        /// Condition.
        when: Expr,
        /// Target step index.
        goto: usize,
    },
    /// Records a touchpoint of this kind on the account.
    LogTouchpoint {
        /// Touchpoint kind.
        kind: String,
        /// Note template.
        note: Template,
    },
    /// Opens a CS-sourced opportunity on the account (the hand-off to sales).
    Opportunity {
        /// `expansion` or `cross_sell`.
        kind: String,
    },
}

impl Step {
    /// The step kind as written in journey.toml.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Task { .. } => "task",
            Self::Email { .. } => "email",
            Self::Webhook { .. } => "webhook",
            Self::Wait { .. } => "wait",
            Self::Branch { .. } => "branch",
            Self::LogTouchpoint { .. } => "log_touchpoint",
            Self::Opportunity { .. } => "opportunity",
        }
    }

    /// Whether the step reaches the customer (governance applies) in a
    /// play that is customer-facing.
    pub fn reaches_out(&self) -> bool {
        matches!(self, Self::Email { .. } | Self::Webhook { .. })
    }
}

/// What a play is meant to achieve, judged for treated and held-out runs alike.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Success: this holds on some day within the window.
    pub when: Expr,
    /// Days after the trigger.
    pub within_days: u32,
}

/// A play.
#[derive(Debug, Clone)]
pub struct Play {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it is for.
    pub kind: PlayType,
    /// What starts it.
    pub trigger: Trigger,
    /// Only these segments (empty: all).
    pub segments: Vec<String>,
    /// Only accounts where this holds.
    pub audience: Option<Expr>,
    /// Whether its email and webhook steps reach the customer.
    pub customer_facing: bool,
    /// Share of (account, play) pairs held out, in percent.
    pub holdout_pct: f64,
    /// Days after a run starts before the play may start again for the account.
    pub cooldown_days: u32,
    /// The expected outcome.
    pub outcome: Option<Outcome>,
    /// Steps, in order.
    pub steps: Vec<Step>,
}

/// A suppression or approval rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Id.
    pub id: String,
    /// When it applies.
    pub when: Expr,
    /// Only these plays (empty with empty `play_types`: every play).
    pub plays: Vec<String>,
    /// Only plays of these types.
    pub play_types: Vec<PlayType>,
    /// Why, in words.
    pub reason: String,
    /// Approval rules: the approving role.
    pub approver: Option<String>,
}

impl Rule {
    /// Whether the rule covers a play.
    pub fn covers(&self, play: &Play) -> bool {
        (self.plays.is_empty() && self.play_types.is_empty())
            || self.plays.contains(&play.id)
            || self.play_types.contains(&play.kind)
    }
}

/// Governance over customer-facing steps.
#[derive(Debug, Clone)]
pub struct Governance {
    /// At most `.0` customer-facing touches per account in any `.1` days.
    pub contact_budget: Option<(u32, u32)>,
    /// No sends between these minutes of the day (local time), `from` → `to`, wrapping midnight.
    pub quiet_hours: Option<(u16, u16)>,
    /// The timezone of accounts without a `timezone` attribute (IANA name).
    pub default_timezone: String,
    /// The longest a task may be snoozed, in days.
    pub snooze_max_days: u32,
    /// Suppression rules: a covered step does not run.
    pub suppress: Vec<Rule>,
    /// Approval rules: a covered step waits in the outbox.
    pub approval: Vec<Rule>,
}

impl Default for Governance {
    fn default() -> Self {
        Self {
            contact_budget: None,
            quiet_hours: None,
            default_timezone: "UTC".to_owned(),
            snooze_max_days: 30,
            suppress: Vec::new(),
            approval: Vec::new(),
        }
    }
}

/// The 12-month × 8-row journey map.
#[derive(Debug, Clone, Default)]
pub struct JourneyMap {
    /// Phases.
    pub phases: Vec<Phase>,
    /// Cells.
    pub cells: Vec<Cell>,
}
