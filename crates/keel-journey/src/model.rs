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

/// The 12-month × 8-row journey map.
#[derive(Debug, Clone, Default)]
pub struct JourneyMap {
    /// Phases.
    pub phases: Vec<Phase>,
    /// Cells.
    pub cells: Vec<Cell>,
}
