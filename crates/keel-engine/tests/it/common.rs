//! Demo accounts turned into engine input, with the interning the store does.

use std::collections::BTreeMap;

use keel_core::{Date, DayUsage, Event};
use keel_engine::{AccountHistory, Plan};

/// Interns event names the way the store does (one id per name).
#[derive(Default)]
pub struct Names(pub BTreeMap<String, u64>);

impl Names {
    pub fn id(&mut self, name: &str) -> u64 {
        let next = self.0.len() as u64 + 1;
        *self.0.entry(name.to_owned()).or_insert(next)
    }

    pub fn list(&self) -> Vec<(u64, String)> {
        self.0.iter().map(|(n, id)| (*id, n.clone())).collect()
    }
}

/// Rolls events up per (day, known day), as the store's `usage_day` does.
pub fn usage(events: &[Event], names: &mut Names) -> (Vec<DayUsage>, Vec<(u64, String)>) {
    let mut users: BTreeMap<String, u64> = BTreeMap::new();
    type Counts = BTreeMap<u64, u64>;
    let mut days: BTreeMap<(Date, Date), (u64, Counts, Counts)> = BTreeMap::new();
    for e in events {
        let next = users.len() as u64 + 1;
        let uid = *users.entry(e.user.as_str().to_owned()).or_insert(next);
        let nid = names.id(e.name.as_str());
        let d = days.entry((e.timestamp.date_naive(), e.received_at.date_naive())).or_default();
        d.0 += 1;
        *d.1.entry(uid).or_default() += 1;
        *d.2.entry(nid).or_default() += 1;
    }
    let usage = days
        .into_iter()
        .map(|((day, known), (events, u, n))| DayUsage {
            day,
            known,
            events,
            users: u.into_iter().collect(),
            names: n.into_iter().collect(),
        })
        .collect();
    (usage, users.into_iter().map(|(ext, id)| (id, ext)).collect())
}

pub fn history(h: &keel_demo::SimulatedAccount, names: &mut Names) -> AccountHistory {
    let (usage, users) = usage(&h.events, names);
    AccountHistory {
        account: h.account.clone(),
        contracts: h.contracts.clone(),
        contacts: h.contacts.clone(),
        tickets: h.tickets.clone(),
        surveys: h.surveys.clone(),
        touchpoints: h.touchpoints.clone(),
        opportunities: h.opportunities.clone(),
        usage,
        users,
    }
}

/// The default journey bound to the names seen so far.
pub fn plan(names: &Names) -> Plan {
    let journey = keel_journey::check("journey.toml", keel_journey::DEFAULT_JOURNEY)
        .expect("the default journey checks");
    Plan::new(journey, &names.list())
}
