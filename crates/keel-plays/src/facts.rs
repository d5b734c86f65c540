//! What plays see of one account on one day: the evaluated state, the
//! variables play conditions add to the metrics, and the contacts.

use std::collections::BTreeMap;
use std::sync::Arc;

use cel_core::{Activation, Value};
use chrono::Datelike;
use keel_core::{Account, Date, SurveyKind};
use keel_engine::{AccountHistory, AccountState, Val, account_value};
use keel_journey::{Expr, Journey};

/// "Never" for the day-count variables.
pub const NEVER_DAYS: i64 = 100_000;

/// An active contact, as emails address them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recipient {
    /// Contact id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Role.
    pub role: String,
}

/// One account on one day, as plays see it.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The account.
    pub account: Account,
    /// The evaluated state (metrics, segment, health, moments, lines).
    pub state: AccountState,
    /// Annual recurring revenue (MRR × 12).
    pub arr: f64,
    /// An active contract ends within the journey's renewal window.
    pub in_renewal_window: bool,
    /// Days since a contact answered NPS 0–6 ([`NEVER_DAYS`] if never).
    pub days_since_detractor: i64,
    /// Days since the last customer-facing touch: a touchpoint other than an
    /// internal kickoff, or a play send ([`NEVER_DAYS`] if never).
    pub days_since_customer_touch: i64,
    /// The stage of the product line whose contract started first ("" before any).
    pub stage: String,
    /// Contacts active on the day.
    pub contacts: Vec<Recipient>,
    /// A contract line is in force on the day: the account is a customer.
    /// No play starts for an account that is not (it churned, or has not
    /// started yet).
    pub customer: bool,
    /// The currency of the account's latest contract line started by the
    /// day (of any line before that; "USD" without contracts).
    pub currency: String,
    account_cel: Value,
}

fn days_between(from: Date, to: Date) -> i64 {
    i64::from(to.num_days_from_ce() - from.num_days_from_ce())
}

impl Facts {
    /// Builds the facts from an evaluation and the history it came from;
    /// `sends` are the days of customer-facing play sends to the account.
    pub fn new(journey: &Journey, history: &AccountHistory, state: AccountState, sends: &[Date]) -> Self {
        let as_of = state.as_of;
        let value = |name: &str| state.metrics.get(name).copied().flatten();
        let mrr = value("mrr").map_or(0.0, Val::as_f64);
        let in_renewal_window = matches!(value("days_to_renewal"), Some(Val::Int(d))
            if d > 0 && d <= i64::from(journey.renewal_window_days));
        let days_since_detractor = history
            .surveys
            .iter()
            .filter(|s| s.kind == SurveyKind::Nps && s.score <= 6 && s.responded.date_naive() <= as_of)
            .map(|s| days_between(s.responded.date_naive(), as_of))
            .min()
            .unwrap_or(NEVER_DAYS);
        let touch = history
            .touchpoints
            .iter()
            .filter(|t| t.kind.as_str() != "internal_kickoff" && t.occurred.date_naive() <= as_of)
            .map(|t| t.occurred.date_naive())
            .chain(sends.iter().copied().filter(|d| *d <= as_of))
            .max();
        let first_line = history
            .contracts
            .iter()
            .filter(|c| c.start <= as_of)
            .min_by_key(|c| (c.start, c.product.as_str().to_owned()))
            .map(|c| c.product.as_str().to_owned());
        let stage = first_line
            .and_then(|l| state.lines.iter().find(|s| s.product_line == l))
            .and_then(|l| l.stage.clone())
            .unwrap_or_default();
        let contacts = history
            .contacts
            .iter()
            .filter(|c| c.active_from <= as_of && c.active_to.is_none_or(|end| end > as_of))
            .map(|c| Recipient {
                id: c.id.to_string(),
                name: c.name.clone(),
                email: c.email.clone(),
                role: c.role.as_str().to_owned(),
            })
            .collect();
        let customer = history.contracts.iter().any(|c| c.is_in_force(as_of));
        let currency = history
            .contracts
            .iter()
            .max_by_key(|c| (c.start <= as_of, c.start))
            .map_or_else(|| "USD".to_owned(), |c| c.mrr.currency.as_str().to_owned());
        Self {
            currency,
            account_cel: account_value(&history.account),
            account: history.account.clone(),
            arr: mrr * 12.0,
            in_renewal_window,
            days_since_detractor,
            days_since_customer_touch: touch.map_or(NEVER_DAYS, |d| days_between(d, as_of)),
            stage,
            contacts,
            customer,
            state,
        }
    }

    /// The day.
    pub fn as_of(&self) -> Date {
        self.state.as_of
    }

    /// A metric's value (None: no data).
    pub fn metric(&self, name: &str) -> Option<Val> {
        self.state.metrics.get(name).copied().flatten()
    }

    /// The health band as conditions see it.
    pub fn health_band(&self) -> &'static str {
        self.state.health.band.map_or("unknown", |b| b.as_str())
    }

    /// Whether a condition holds (None: a value it needs has no data).
    pub fn holds(&self, expr: &Expr) -> Option<bool> {
        match expr.eval(self) {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The values a condition read, for the audit log.
    pub fn inputs(&self, expr: &Expr) -> BTreeMap<String, serde_json::Value> {
        expr.reads
            .iter()
            .filter(|r| *r != "account")
            .map(|r| {
                let v = match self.resolve(r) {
                    Some(Value::Bool(b)) => serde_json::json!(b),
                    Some(Value::Int(i)) => serde_json::json!(i),
                    Some(Value::Double(d)) => serde_json::json!(d),
                    Some(Value::String(s)) => serde_json::json!(s.as_ref()),
                    _ => serde_json::Value::Null,
                };
                (r.clone(), v)
            })
            .collect()
    }
}

impl Activation for Facts {
    fn resolve(&self, name: &str) -> Option<Value> {
        let string = |s: &str| Some(Value::String(Arc::from(s)));
        match name {
            "account" => Some(self.account_cel.clone()),
            "segment" => string(self.state.segment.as_deref().unwrap_or("")),
            "health_band" => string(self.health_band()),
            "health_score" => Some(Value::Double(self.state.health.score.unwrap_or(0.0))),
            "arr" => Some(Value::Double(self.arr)),
            "in_renewal_window" => Some(Value::Bool(self.in_renewal_window)),
            "days_since_detractor" => Some(Value::Int(self.days_since_detractor)),
            "days_since_customer_touch" => Some(Value::Int(self.days_since_customer_touch)),
            "stage" => string(&self.stage),
            _ => self.metric(name).map(Val::to_cel),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }
}
