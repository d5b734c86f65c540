//! A deterministic synthetic world of B2B customers for demos, tests and benchmarks.
//!
//! [`generate`] yields one [`SimulatedAccount`] per account: the account, its
//! contract lines, contacts, product events, tickets, survey responses,
//! touchpoints and opportunities, plus the [`Truth`] the generator used.
//! Each account draws from its own random stream (seeded by the world seed
//! and the account's index), so a world is the same for the same
//! [`DemoConfig`] whatever the machine, and accounts can be generated in any
//! order or in parallel.
//!
//! Renewals, expansions and churn *depend on* behaviour that is visible in
//! the data (no first value by day 60, a champion who leaves without a
//! replacement, a sustained usage decline, an unresolved sev-1 ticket, broad
//! seat adoption) with the effect sizes in [`model`], and one plausible
//! metric (mobile app sessions) that has no effect at all. Two plays of the
//! default journey work for the accounts they do not hold out, from
//! [`DemoConfig::plays_from`] on. `docs/demo.md`
//! documents the model; later features must recover these effects from
//! the data alone.
//!
//! ```
//! use keel_demo::{generate, DemoConfig};
//! let end = "2026-01-01".parse().unwrap();
//! let config = DemoConfig { accounts: 3, months: 12, seed: 7, end, plays_from: None };
//! let world: Vec<_> = generate(&config).collect();
//! assert_eq!(world.len(), 3);
//! assert!(world.iter().all(|h| !h.contracts.is_empty()));
//! ```

pub mod model;
mod simulate;

use keel_core::{Account, Contact, Contract, Date, Event, Opportunity, SurveyResponse, Ticket, Touchpoint};

pub use simulate::{CSMS, simulate_account};

/// The shape of a demo world.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// How many accounts.
    pub accounts: usize,
    /// How many months of history, ending at `end`.
    pub months: u32,
    /// The random seed; the same seed gives the same world.
    pub seed: u64,
    /// The first day after the history (today, for a live demo).
    pub end: Date,
    /// The day the default journey's plays went live: the rescue and
    /// champion plays change what happens only from then on (docs/demo.md).
    /// `None`: a year before `end`, so the renewals of the last year —
    /// what gate validation and the health backtest read — predate them.
    pub plays_from: Option<Date>,
}

impl DemoConfig {
    /// The first day of the history.
    pub fn start(&self) -> Date {
        self.end - chrono::Months::new(self.months)
    }

    /// The day the planted play effects begin.
    pub fn plays_from(&self) -> Date {
        self.plays_from.unwrap_or(self.end - chrono::Months::new(12))
    }
}

/// The customer segments the generator draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Large accounts, CSM-led (high touch).
    Enterprise,
    /// Mid-sized accounts, mixed human and automated touch (hybrid).
    MidMarket,
    /// Small accounts, automated touch only (tech touch).
    Smb,
}

impl Segment {
    /// The value of the `tier` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Segment::Enterprise => "enterprise",
            Segment::MidMarket => "mid_market",
            Segment::Smb => "smb",
        }
    }

    /// The value of the `touch` attribute.
    pub fn touch(self) -> &'static str {
        match self {
            Segment::Enterprise => "high_touch",
            Segment::MidMarket => "hybrid",
            Segment::Smb => "tech_touch",
        }
    }
}

/// A renewal decision the generator took, with the inputs it used.
#[derive(Debug, Clone, PartialEq)]
pub struct RenewalDecision {
    /// The day the term ended (the renewal date).
    pub date: Date,
    /// Probability of renewal the model gave.
    pub p_renew: f64,
    /// Whether it renewed.
    pub renewed: bool,
    /// Seats after the decision relative to before (1.0 = flat).
    pub seat_factor: f64,
    /// Risk factors in force at the decision.
    pub no_first_value_by_day_60: bool,
    /// The champion had left and no new one had started.
    pub champion_gone: bool,
    /// A sustained usage decline had started.
    pub usage_declining: bool,
    /// A sev-1 ticket stayed unresolved for more than 14 days in the 90 days before.
    pub unresolved_sev1: bool,
    /// At least 60% of licensed seats were active in the last 28 days.
    pub broad_adoption: bool,
}

/// What the generator decided for an account: the ground truth that
/// evaluation and analytics should recover from the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// The segment.
    pub segment: Segment,
    /// Whether sales ran an internal kickoff (handoff to CS) before the customer kickoff.
    pub internal_kickoff: bool,
    /// Days from contract start to first value, if it was reached before `end`.
    pub ttv_days: Option<i64>,
    /// The day the champion left, if they did.
    pub champion_left: Option<Date>,
    /// The day a replacement champion started, if one did.
    pub champion_replaced: Option<Date>,
    /// The day a sustained usage decline started, if one did.
    pub usage_decline_from: Option<Date>,
    /// Sev-1 tickets left open for more than 14 days.
    pub unresolved_sev1: Vec<Date>,
    /// The account's mobile-session rate (per user and active day), which has no effect on anything.
    pub mobile_rate: f64,
    /// Each renewal decision, in order.
    pub renewals: Vec<RenewalDecision>,
    /// The day the last contract ended without renewal, if the account churned.
    pub churned_on: Option<Date>,
}

/// Everything one simulated account did, in import form: raw events (not
/// the usage rollups a stored history carries, `keel_engine::AccountHistory`)
/// and the generator's [`Truth`].
#[derive(Debug, Clone)]
pub struct SimulatedAccount {
    /// The account.
    pub account: Account,
    /// Its contract lines.
    pub contracts: Vec<Contract>,
    /// Its contacts.
    pub contacts: Vec<Contact>,
    /// Its product events, in time order.
    pub events: Vec<Event>,
    /// Its tickets.
    pub tickets: Vec<Ticket>,
    /// Its survey responses.
    pub surveys: Vec<SurveyResponse>,
    /// Its touchpoints.
    pub touchpoints: Vec<Touchpoint>,
    /// Its opportunities.
    pub opportunities: Vec<Opportunity>,
    /// What the generator decided.
    pub truth: Truth,
}

/// The world, one account at a time, in index order.
pub fn generate(config: &DemoConfig) -> impl Iterator<Item = SimulatedAccount> + '_ {
    (0..config.accounts).map(move |i| simulate_account(config, i))
}
