//! The shape of `journey.toml` as written, with the source span of every
//! value a diagnostic may need to point at. `check` turns it into a
//! [`crate::Journey`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A string with where it was written.
pub(crate) type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJourney {
    pub journey: RawHeader,
    pub first_value: RawFirstValue,
    #[serde(default)]
    pub settings: BTreeMap<String, Spanned<f64>>,
    #[serde(default)]
    pub segments: Vec<RawSegment>,
    #[serde(default)]
    pub metrics: BTreeMap<Text, RawMetric>,
    #[serde(default)]
    pub stages: Vec<RawStage>,
    #[serde(default)]
    pub moments: Vec<RawMoment>,
    pub health: RawHealth,
    #[serde(default)]
    pub map: RawMap,
    /// Role → who holds it when the account names nobody (a person or a queue).
    #[serde(default)]
    pub owners: BTreeMap<Text, Text>,
    #[serde(default)]
    pub governance: Option<RawGovernance>,
    #[serde(default)]
    pub plays: Vec<RawPlay>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeader {
    pub name: String,
    #[serde(default)]
    pub renewal_window_days: Option<Spanned<i64>>,
    /// The product's core features (event names).
    #[serde(default)]
    pub core_features: Vec<Text>,
    /// Touchpoint kinds beyond the built-in ones.
    #[serde(default)]
    pub touchpoint_kinds: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFirstValue {
    pub when: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSegment {
    pub id: Text,
    pub when: Text,
    pub touch: Text,
    #[serde(default)]
    pub overrides: BTreeMap<Text, Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetric {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub count: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub unique_users: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub window_days: Option<Spanned<RawWindow>>,
    #[serde(default)]
    pub expr: Option<Text>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawWindow {
    Days(i64),
    Named(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStage {
    pub id: Text,
    #[serde(default)]
    pub name: Option<String>,
    pub entry: Text,
    pub exit: Text,
    #[serde(default)]
    pub min_dwell_days: Option<Spanned<i64>>,
    pub watch: Text,
    pub owner: Text,
    #[serde(default)]
    pub target_days: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMoment {
    pub id: Text,
    #[serde(default)]
    pub detector: Option<Text>,
    #[serde(default)]
    pub when: Option<Text>,
    #[serde(default)]
    pub params: BTreeMap<Text, Spanned<f64>>,
    pub owner: Text,
    pub severity: Text,
    #[serde(default)]
    pub play: Option<Text>,
    #[serde(default)]
    pub cell: Option<Spanned<RawCellRef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCellRef {
    pub month: Spanned<i64>,
    pub row: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    pub bands: Spanned<RawBands>,
    #[serde(default)]
    pub min_coverage: Option<Spanned<f64>>,
    pub components: Vec<RawComponent>,
    #[serde(default)]
    pub segment_weights: BTreeMap<Text, BTreeMap<Text, Spanned<f64>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBands {
    pub red: f64,
    pub yellow: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawComponent {
    pub id: Text,
    pub metric: Text,
    pub weight: Spanned<f64>,
    pub curve: Spanned<Vec<(f64, f64)>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMap {
    #[serde(default)]
    pub phases: Vec<RawPhase>,
    #[serde(default)]
    pub cells: Vec<RawCell>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPhase {
    pub id: Text,
    pub months: Spanned<(i64, i64)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCell {
    pub row: Text,
    pub months: Spanned<(i64, i64)>,
    pub text: String,
    #[serde(default)]
    pub links: RawLinks,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLinks {
    #[serde(default)]
    pub stages: Vec<Text>,
    #[serde(default)]
    pub moments: Vec<Text>,
    #[serde(default)]
    pub touchpoints: Vec<Text>,
    #[serde(default)]
    pub plays: Vec<Text>,
    #[serde(default)]
    pub metrics: Vec<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGovernance {
    #[serde(default)]
    pub contact_budget: Option<Spanned<RawBudget>>,
    #[serde(default)]
    pub quiet_hours: Option<Spanned<RawQuietHours>>,
    #[serde(default)]
    pub default_timezone: Option<Text>,
    #[serde(default)]
    pub snooze_max_days: Option<Spanned<i64>>,
    #[serde(default)]
    pub suppress: Vec<RawRule>,
    #[serde(default)]
    pub approval: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudget {
    pub touches: Spanned<i64>,
    pub days: Spanned<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuietHours {
    pub from: Text,
    pub to: Text,
}

/// A suppression or approval rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub id: Text,
    pub when: Text,
    #[serde(default)]
    pub plays: Vec<Text>,
    #[serde(default)]
    pub play_types: Vec<Text>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Approval rules only: the role that approves.
    #[serde(default)]
    pub approver: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlay {
    pub id: Text,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Text,
    pub trigger: Spanned<RawTrigger>,
    #[serde(default)]
    pub audience: Option<RawAudience>,
    #[serde(default)]
    pub customer_facing: Option<Spanned<bool>>,
    #[serde(default)]
    pub holdout_pct: Option<Spanned<f64>>,
    #[serde(default)]
    pub cooldown_days: Option<Spanned<i64>>,
    #[serde(default)]
    pub outcome: Option<RawOutcome>,
    #[serde(default)]
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrigger {
    #[serde(default)]
    pub moment: Option<Text>,
    #[serde(default)]
    pub stage_entry: Option<Text>,
    #[serde(default)]
    pub stage_exit: Option<Text>,
    #[serde(default)]
    pub gate_slip: Option<Text>,
    #[serde(default)]
    pub days_before_renewal: Option<Spanned<i64>>,
    #[serde(default)]
    pub when: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudience {
    #[serde(default)]
    pub segments: Vec<Text>,
    #[serde(default)]
    pub when: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutcome {
    pub when: Text,
    pub within_days: Spanned<i64>,
}

/// One step; `kind` says which of the other fields apply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    #[serde(default)]
    pub id: Option<Text>,
    pub kind: Text,
    // task
    #[serde(default)]
    pub title: Option<Text>,
    #[serde(default)]
    pub description: Option<Text>,
    #[serde(default)]
    pub owner: Option<Text>,
    #[serde(default)]
    pub due_days: Option<Spanned<i64>>,
    #[serde(default)]
    pub priority: Option<Text>,
    // email
    #[serde(default)]
    pub to: Option<Text>,
    #[serde(default)]
    pub from: Option<Text>,
    #[serde(default)]
    pub subject: Option<Text>,
    #[serde(default)]
    pub body: Option<Text>,
    // webhook
    #[serde(default)]
    pub url: Option<Text>,
    #[serde(default)]
    pub secret_env: Option<Text>,
    // wait
    #[serde(default)]
    pub days: Option<Spanned<i64>>,
    #[serde(default)]
    pub until: Option<Text>,
    // branch
    #[serde(default)]
    pub when: Option<Text>,
    #[serde(default)]
    pub goto: Option<Text>,
    // log_touchpoint
    #[serde(default)]
    pub touchpoint: Option<Text>,
    #[serde(default)]
    pub note: Option<Text>,
    // opportunity
    #[serde(default)]
    pub opportunity: Option<Text>,
}
