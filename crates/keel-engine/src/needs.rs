//! What computing a metric reads — how far back usage must go and which kinds
//! of records — so that a caller computing a few metrics loads only that, and
//! the journey-map audit knows which feeds a metric or moment depends on.
//! Both derive from the one declaration per built-in metric in
//! [`keel_journey::catalog`]; journey metrics add what their definition reads.

use keel_core::EntityKind;
use keel_journey::catalog::{self, History, Reads};
use keel_journey::{Detection, MetricDef, Moment, Window};

use crate::Plan;

/// What a set of metrics reads. Accounts (and their attributes) are always
/// read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Usage.
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
}

impl Needs {
    /// Everything either reads.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self::from(Reads::from(self).union(Reads::from(other)))
    }

    /// The kinds of records these needs read (usage: events), in
    /// [`EntityKind::ALL`] order.
    pub fn kinds(&self) -> Vec<EntityKind> {
        let on = |k: EntityKind| match k {
            EntityKind::Contracts => self.contracts,
            EntityKind::Contacts => self.contacts,
            EntityKind::Events => self.usage != History::None,
            EntityKind::Tickets => self.tickets,
            EntityKind::Surveys => self.surveys,
            EntityKind::Touchpoints => self.touchpoints,
            EntityKind::Accounts | EntityKind::Opportunities => false,
        };
        EntityKind::ALL.into_iter().filter(|k| on(*k)).collect()
    }
}

impl From<Reads> for Needs {
    fn from(r: Reads) -> Self {
        Self {
            usage: r.usage,
            contracts: r.contracts,
            contacts: r.contacts,
            tickets: r.tickets,
            surveys: r.surveys,
            touchpoints: r.touchpoints,
        }
    }
}

impl From<Needs> for Reads {
    fn from(n: Needs) -> Self {
        Self {
            usage: n.usage,
            contracts: n.contracts,
            contacts: n.contacts,
            tickets: n.tickets,
            surveys: n.surveys,
            touchpoints: n.touchpoints,
            ..Reads::NOTHING
        }
    }
}

/// Why a metric cannot be computed on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NeedsError {
    /// No built-in or journey metric has this name.
    #[error("unknown metric `{0}`")]
    Unknown(String),
    /// The metric only exists inside stage evaluation.
    #[error("`{0}` is known only while evaluating stages (use `keel evaluate` or `keel account`)")]
    StageOnly(String),
}

impl Plan {
    /// What deciding an account's segment reads: the union of what every
    /// segment rule reads.
    pub fn segment_needs(&self) -> Result<Needs, NeedsError> {
        let mut needs = Needs::default();
        for s in &self.journey().segments {
            for metric in s.when.reads.iter().filter(|r| r.as_str() != "account") {
                needs = needs.union(self.needs(metric)?);
            }
        }
        Ok(needs)
    }

    /// What [`crate::value_facts`] reads: segments, time to value, tenure.
    pub fn value_needs(&self) -> Result<Needs, NeedsError> {
        Ok(self.segment_needs()?.union(self.needs("ttv_days")?).union(self.needs("tenure_days")?))
    }

    /// What computing `metric` for an account reads.
    pub fn needs(&self, metric: &str) -> Result<Needs, NeedsError> {
        let reads = self.reads(metric, 0)?;
        if reads.stage {
            return Err(NeedsError::StageOnly(metric.to_owned()));
        }
        Ok(Needs::from(reads))
    }

    /// The kinds of records `metric` is computed from (a metric known only
    /// inside stage evaluation: what its declaration names). An unknown
    /// metric reads nothing.
    pub fn metric_feeds(&self, metric: &str) -> Vec<EntityKind> {
        self.reads(metric, 0).map(|r| Needs::from(r).kinds()).unwrap_or_default()
    }

    /// The kinds of records a moment's detection reads, each once.
    pub fn moment_feeds(&self, moment: &Moment) -> Vec<EntityKind> {
        let reads = match &moment.detection {
            Detection::Detector { name, .. } => {
                catalog::DETECTORS.iter().find(|d| d.name == name).map_or(Reads::NOTHING, |d| d.feeds)
            }
            Detection::When(e) => e
                .reads
                .iter()
                .filter(|r| r.as_str() != "account")
                .filter_map(|r| self.reads(r, 0).ok())
                .fold(Reads::NOTHING, Reads::union),
        };
        Needs::from(reads).kinds()
    }

    /// Everything `metric` reads, its dependencies' reads resolved.
    fn reads(&self, metric: &str, depth: u32) -> Result<Reads, NeedsError> {
        let unknown = || NeedsError::Unknown(metric.to_owned());
        // `journey check` rejects cycles; this only guards against a journey
        // that skipped it.
        if depth > 32 {
            return Err(unknown());
        }
        let of_all = |names: &[String]| {
            names
                .iter()
                .filter(|r| r.as_str() != "account")
                .try_fold(Reads::NOTHING, |n, r| Ok(n.union(self.reads(r, depth + 1)?)))
        };
        if metric == "account" {
            return Ok(Reads::NOTHING);
        }
        if let Some(b) = catalog::builtin_metric(metric) {
            let mut reads = b.reads;
            if reads.first_value {
                reads = reads.union(of_all(&self.journey().first_value.reads)?);
                reads.first_value = false;
            }
            return Ok(reads);
        }
        let m = self.journey().metrics.iter().find(|m| m.name == metric).ok_or_else(unknown)?;
        let window = |w: &Window| match w {
            Window::Days(d) => Reads::usage(*d),
            // Since the first contract started.
            Window::Contract => Reads::ALL_USAGE.and_contracts(),
        };
        match &m.def {
            MetricDef::Count { window: w, .. } | MetricDef::UniqueUsers { window: w, .. } => Ok(window(w)),
            MetricDef::Expr(expr) => of_all(&expr.reads),
        }
    }
}
