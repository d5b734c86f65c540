//! What computing a metric reads — how far back usage must go and which kinds
//! of records — so that a caller computing a few metrics loads only that.

use keel_journey::{MetricDef, Window};

use crate::Plan;

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
        Self {
            usage: self.usage.max(other.usage),
            contracts: self.contracts || other.contracts,
            contacts: self.contacts || other.contacts,
            tickets: self.tickets || other.tickets,
            surveys: self.surveys || other.surveys,
            touchpoints: self.touchpoints || other.touchpoints,
        }
    }

    const NOTHING: Self = Self {
        usage: History::None,
        contracts: false,
        contacts: false,
        tickets: false,
        surveys: false,
        touchpoints: false,
    };

    const fn usage(days: u32) -> Self {
        Self { usage: History::Days(days), ..Self::NOTHING }
    }

    const CONTRACTS: Self = Self { contracts: true, ..Self::NOTHING };
    const TICKETS: Self = Self { tickets: true, ..Self::NOTHING };
    const SURVEYS: Self = Self { surveys: true, ..Self::NOTHING };
    const CONTACTS: Self = Self { contacts: true, ..Self::NOTHING };
    const TOUCHPOINTS: Self = Self { touchpoints: true, ..Self::NOTHING };
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
        Ok(self.segment_needs()?.union(self.needs("ttv_days")?).union(Needs::CONTRACTS))
    }

    /// What computing `metric` for an account reads.
    pub fn needs(&self, metric: &str) -> Result<Needs, NeedsError> {
        self.needs_at_depth(metric, 0)
    }

    fn needs_at_depth(&self, metric: &str, depth: u32) -> Result<Needs, NeedsError> {
        let unknown = || NeedsError::Unknown(metric.to_owned());
        // `journey check` rejects cycles; this only guards against a journey
        // that skipped it.
        if depth > 32 {
            return Err(unknown());
        }
        let all = Needs { usage: History::All, ..Needs::CONTRACTS };
        Ok(match metric {
            "account" => Needs::NOTHING,
            "licensed_seats" | "tenure_days" | "days_to_renewal" | "mrr" | "mrr_change_90d" => {
                Needs::CONTRACTS
            }
            "active_users_7d" | "core_features_weekly" => Needs::usage(7),
            "active_users_28d" | "feature_breadth" | "events_per_active_user" => Needs::usage(28),
            "active_seat_ratio" => Needs { contracts: true, ..Needs::usage(28) },
            "usage_change_pct" => Needs::usage(56),
            "usage_trend" => Needs::usage(84),
            "days_since_last_event" => Needs { usage: History::All, ..Needs::NOTHING },
            "ttv_days" | "first_value_reached" => {
                let reads = &self.journey().first_value.reads;
                reads.iter().try_fold(all, |n, r| Ok(n.union(self.needs_at_depth(r, depth + 1)?)))?
            }
            "days_in_stage" => return Err(NeedsError::StageOnly(metric.to_owned())),
            "open_tickets" | "open_tickets_sev1" | "open_tickets_sev2" | "open_tickets_sev3"
            | "open_tickets_sev4" | "tickets_30d" | "tickets_30d_ratio" => Needs::TICKETS,
            "nps_latest" | "nps_trend" => Needs::SURVEYS,
            "champion_present" | "executive_sponsor_present" | "days_since_champion_change" => {
                Needs::CONTACTS
            }
            "days_since_touchpoint" => Needs::TOUCHPOINTS,
            other if other.starts_with("days_since_touchpoint_") => Needs::TOUCHPOINTS,
            other if other.starts_with("touchpoints_") => Needs::TOUCHPOINTS.union(Needs::CONTRACTS),
            other => {
                let m = self.journey().metrics.iter().find(|m| m.name == other).ok_or_else(unknown)?;
                let window = |w: &Window| match w {
                    Window::Days(d) => Needs::usage(*d),
                    Window::Contract => all,
                };
                match &m.def {
                    MetricDef::Count { window: w, .. } | MetricDef::UniqueUsers { window: w, .. } => {
                        window(w)
                    }
                    MetricDef::Expr(expr) => expr
                        .reads
                        .iter()
                        .try_fold(Needs::NOTHING, |n, r| Ok(n.union(self.needs_at_depth(r, depth + 1)?)))?,
                }
            }
        })
    }
}
