//! The day-by-day simulation of one account.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, Months, NaiveTime, TimeZone, Utc, Weekday};
use keel_core::{
    Account, BillingPeriod, Contact, Contract, Currency, Date, Event, EventName, ExternalId, Label,
    MessageId, Money, Opportunity, OpportunityKind, OpportunitySource, OpportunityStatus, Severity,
    SurveyKind, SurveyResponse, Ticket, TicketStatus, Timestamp, Touchpoint, UserId,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, Poisson};
use serde_json::{Value, json};

use crate::model::*;
use crate::{DemoConfig, RenewalDecision, Segment, SimulatedAccount, Truth};

/// Core features, in the order accounts tend to adopt them after first value.
const CORE_FEATURES: [&str; 6] = [
    "report_viewed",
    "task_completed",
    "dashboard_shared",
    "integration_synced",
    "automation_created",
    "export_scheduled",
];
/// What users do before first value.
const SETUP_EVENTS: [&str; 4] = ["login", "project_created", "invite_sent", "integration_connected"];
/// The first-value milestone event.
const FIRST_VALUE_EVENT: &str = "workflow_published";

/// The demo's CSMs: the owners of its enterprise and mid-market accounts.
pub const CSMS: [&str; 8] = [
    "ana.lima@keel.example",
    "ben.okafor@keel.example",
    "chloe.martin@keel.example",
    "dev.patel@keel.example",
    "eva.novak@keel.example",
    "farid.haddad@keel.example",
    "grace.kim@keel.example",
    "hugo.berg@keel.example",
];
const SCALE_TEAM: &str = "scale-team@keel.example";
const REGIONS: [(&str, &str, i64); 4] = [
    ("na", "America/New_York", -5),
    ("na", "America/Los_Angeles", -8),
    ("emea", "Europe/Berlin", 1),
    ("apac", "Asia/Singapore", 8),
];
const INDUSTRIES: [&str; 6] = ["software", "fintech", "healthcare", "manufacturing", "retail", "logistics"];
const NAME_A: [&str; 16] = [
    "Acme", "Blue", "Cedar", "Delta", "Ember", "Fable", "Granite", "Harbor", "Iris", "Juniper", "Kite",
    "Lumen", "Maple", "Nimbus", "Orbit", "Pioneer",
];
const NAME_B: [&str; 12] = [
    "Labs",
    "Systems",
    "Health",
    "Logistics",
    "Foods",
    "Capital",
    "Works",
    "Analytics",
    "Retail",
    "Energy",
    "Media",
    "Robotics",
];
const FIRST: [&str; 12] =
    ["alex", "sam", "jordan", "maria", "li", "noah", "priya", "omar", "emma", "yuki", "lucas", "zoe"];
const LAST: [&str; 12] =
    ["smith", "garcia", "chen", "muller", "rossi", "khan", "silva", "ito", "dubois", "nowak", "brown", "ali"];

fn seed_for(seed: u64, index: usize) -> u64 {
    // SplitMix64 of (seed, index): independent streams per account.
    let mut z = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn id(raw: String) -> ExternalId {
    ExternalId::parse(&raw).expect("generated ids are valid")
}

fn label(raw: &str) -> Label {
    Label::parse(raw).expect("generated labels are valid")
}

struct User {
    id: String,
    joined: Date,
    left: Option<Date>,
    activity: f64,
    last_active: Option<Date>,
}

struct Sim<'a> {
    config: &'a DemoConfig,
    rng: ChaCha8Rng,
    /// Draws for the planted play effects, a stream of their own so that the
    /// rest of the world is drawn as it was before plays existed.
    plays_rng: ChaCha8Rng,
    account: ExternalId,
    segment: Segment,
    utc_offset: i64,
    owner: String,
    history: SimulatedAccount,
    users: Vec<User>,
    next_contact: usize,
}

impl Sim<'_> {
    fn seg_index(&self) -> usize {
        match self.segment {
            Segment::Enterprise => 0,
            Segment::MidMarket => 1,
            Segment::Smb => 2,
        }
    }

    fn at(&mut self, day: Date, hour_lo: u32, hour_hi: u32) -> Timestamp {
        let hour = self.rng.random_range(hour_lo..hour_hi);
        let secs = self.rng.random_range(0..3600);
        let local = day.and_time(NaiveTime::MIN) + Duration::hours(i64::from(hour)) + Duration::seconds(secs);
        Utc.from_utc_datetime(&(local - Duration::hours(self.utc_offset)))
    }

    fn uuid(&mut self) -> String {
        let v: u128 = self.rng.random();
        let h = format!("{v:032x}");
        format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
    }

    fn add_contact(&mut self, role: &str, from: Date, activity: f64) -> usize {
        let n = self.next_contact;
        self.next_contact += 1;
        let first = FIRST[self.rng.random_range(0..FIRST.len())];
        let last = LAST[self.rng.random_range(0..LAST.len())];
        let contact_id = format!("{}-c{n:03}", self.account);
        self.history.contacts.push(Contact {
            id: id(contact_id.clone()),
            account: self.account.clone(),
            email: format!("{first}.{last}{n}@{}.example", self.account),
            name: format!("{} {}", capitalise(first), capitalise(last)),
            role: label(role),
            active_from: from,
            active_to: None,
        });
        self.users.push(User { id: contact_id, joined: from, left: None, activity, last_active: None });
        self.users.len() - 1
    }

    fn end_contact(&mut self, user: usize, on: Date) {
        let uid = self.users[user].id.clone();
        self.users[user].left = Some(on);
        if let Some(c) = self.history.contacts.iter_mut().find(|c| c.id.as_str() == uid) {
            c.active_to = Some(on);
        }
    }

    fn touch(&mut self, kind: &str, day: Date, owner: Option<&str>, outcome: Option<&str>) {
        if day >= self.config.end {
            return;
        }
        let n = self.history.touchpoints.len();
        let occurred = self.at(day, 9, 17);
        self.history.touchpoints.push(Touchpoint {
            id: id(format!("{}-t{n:04}", self.account)),
            account: self.account.clone(),
            kind: label(kind),
            occurred,
            owner: owner.map(str::to_owned),
            notes: None,
            outcome: outcome.map(str::to_owned),
        });
    }

    fn event(&mut self, user: usize, name: &str, day: Date, properties: serde_json::Map<String, Value>) {
        let timestamp = self.at(day, 8, 19);
        let delay_ms = if self.rng.random_bool(LATE_ARRIVAL_P) {
            self.rng.random_range(86_400_000..3 * 86_400_000)
        } else {
            self.rng.random_range(200..5_000)
        };
        let message_id = self.uuid();
        self.history.events.push(Event {
            message_id: MessageId::parse(&message_id).expect("uuid"),
            account: self.account.clone(),
            user: UserId::parse(&self.users[user].id).expect("contact id"),
            name: EventName::parse(name).expect("event name"),
            timestamp,
            received_at: timestamp + Duration::milliseconds(delay_ms),
            properties,
        });
        self.users[user].last_active = Some(day);
    }

    fn line(&mut self, product: &str, start: Date, end: Date, seats: u32, price_cents: i64) -> usize {
        let n = self.history.contracts.iter().filter(|c| c.product.as_str() == product).count() + 1;
        self.history.contracts.push(Contract {
            id: id(format!("{}-{product}-{n}", self.account)),
            account: self.account.clone(),
            product: label(product),
            start,
            end: Some(end),
            mrr: Money::from_cents(i64::from(seats) * price_cents, Currency::USD),
            seats,
            billing_period: if self.segment == Segment::Smb {
                BillingPeriod::Monthly
            } else {
                BillingPeriod::Annual
            },
        });
        self.history.contracts.len() - 1
    }

    fn opportunity(
        &mut self,
        kind: OpportunityKind,
        source: OpportunitySource,
        delta_cents: i64,
        created: Date,
        closed: Date,
        won: bool,
    ) {
        let n = self.history.opportunities.len();
        let done = closed < self.config.end;
        self.history.opportunities.push(Opportunity {
            id: id(format!("{}-o{n:03}", self.account)),
            account: self.account.clone(),
            kind,
            source,
            mrr_delta: Money::from_cents(delta_cents, Currency::USD),
            stage: if !done {
                "negotiation".into()
            } else if won {
                "closed_won".into()
            } else {
                "closed_lost".into()
            },
            created,
            closed: done.then_some(closed),
            status: if !done {
                OpportunityStatus::Open
            } else if won {
                OpportunityStatus::Won
            } else {
                OpportunityStatus::Lost
            },
        });
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// Simulates account number `index` of the world `config` describes.
pub fn simulate_account(config: &DemoConfig, index: usize) -> SimulatedAccount {
    let mut rng = ChaCha8Rng::seed_from_u64(seed_for(config.seed, index));
    let world_start = config.start();
    let span = (config.end - world_start).num_days().max(31);
    let start = world_start + days(rng.random_range(0..span - 30));
    let segment = match rng.random::<f64>() {
        x if x < 0.15 => Segment::Enterprise,
        x if x < 0.50 => Segment::MidMarket,
        _ => Segment::Smb,
    };
    let account = id(format!("acct-{index:06}"));
    let (region, timezone, utc_offset) = REGIONS[rng.random_range(0..REGIONS.len())];
    let owner = match segment {
        Segment::Smb => SCALE_TEAM.to_owned(),
        _ => CSMS[rng.random_range(0..CSMS.len())].to_owned(),
    };
    let name = format!(
        "{} {} {}",
        NAME_A[rng.random_range(0..NAME_A.len())],
        NAME_B[rng.random_range(0..NAME_B.len())],
        index
    );
    let mut attributes = BTreeMap::new();
    attributes.insert("tier".to_owned(), json!(segment.as_str()));
    attributes.insert("touch".to_owned(), json!(segment.touch()));
    attributes.insert("region".to_owned(), json!(region));
    attributes.insert("timezone".to_owned(), json!(timezone));
    attributes.insert("industry".to_owned(), json!(INDUSTRIES[rng.random_range(0..INDUSTRIES.len())]));
    let created = start - days(rng.random_range(10..60));

    let mut sim = Sim {
        config,
        rng,
        plays_rng: ChaCha8Rng::seed_from_u64(seed_for(config.seed ^ PLAYS_SEED, index)),
        account: account.clone(),
        segment,
        utc_offset,
        owner: owner.clone(),
        history: SimulatedAccount {
            account: Account { id: account, name, attributes, owner: Some(owner), parent: None, created },
            contracts: Vec::new(),
            contacts: Vec::new(),
            events: Vec::new(),
            tickets: Vec::new(),
            surveys: Vec::new(),
            touchpoints: Vec::new(),
            opportunities: Vec::new(),
            truth: Truth {
                segment,
                internal_kickoff: false,
                ttv_days: None,
                champion_left: None,
                champion_replaced: None,
                usage_decline_from: None,
                unresolved_sev1: Vec::new(),
                mobile_rate: 0.0,
                renewals: Vec::new(),
                churned_on: None,
            },
        },
        users: Vec::new(),
        next_contact: 0,
    };
    run(&mut sim, start);
    sim.history.events.sort_by(|a, b| a.timestamp.cmp(&b.timestamp).then(a.message_id.cmp(&b.message_id)));
    sim.history
}

fn run(sim: &mut Sim<'_>, start: Date) {
    let seg = sim.seg_index();
    let end = sim.config.end;
    let seats: u32 = match sim.segment {
        Segment::Enterprise => sim.rng.random_range(60..250),
        Segment::MidMarket => sim.rng.random_range(15..60),
        Segment::Smb => sim.rng.random_range(3..15),
    };
    let price_cents: i64 = [6000, 4500, 3000][seg] * sim.rng.random_range(85..116) / 100;

    // Latent behaviour, drawn up front.
    let ikt = sim.rng.random_bool(IKT_P[seg]);
    sim.history.truth.internal_kickoff = ikt;
    let stalled = sim.rng.random_bool(STALL_P[usize::from(!ikt)]);
    let ttv = if stalled {
        None
    } else {
        let median = TTV_MEDIAN_DAYS[seg] * if ikt { 1.0 } else { TTV_NO_IKT_FACTOR };
        let d = LogNormal::new(median.ln(), TTV_SIGMA).expect("valid").sample(&mut sim.rng);
        Some((d.round() as i64).clamp(2, 400))
    };
    // The first-value rescue play (docs/demo.md): an onboarding that slips
    // past the segment's target is rescued — first value 10–28 days after
    // the target — for accounts the play does not hold out, with RESCUE_WORKS_P,
    // when the slip comes after the plays went live.
    let target = TTV_TARGET_DAYS[seg];
    let live = start + days(target) >= sim.config.plays_from();
    let treated = live && !keel_core::held_out(sim.account.as_str(), RESCUE_PLAY, RESCUE_HOLDOUT_PCT);
    let rescued_on = target + sim.plays_rng.random_range(10..=28);
    let rescue_works = sim.plays_rng.random_bool(RESCUE_WORKS_P);
    let ttv = match ttv {
        t if treated && rescue_works && t.is_none_or(|d| d > rescued_on) => Some(rescued_on),
        t => t,
    };
    let first_value = ttv.map(|d| start + days(d));
    let adoption: f64 = sim.rng.random_range(0.3..1.0);
    let breadth: usize = sim.rng.random_range(2..=CORE_FEATURES.len());
    let decline_from =
        sim.rng.random_bool(USAGE_DECLINE_P).then(|| start + days(120 + sim.rng.random_range(0..400)));
    let champion_leaves = {
        let years = -sim.rng.random::<f64>().max(1e-9).ln() / CHAMPION_LEAVES_PER_YEAR;
        start + days(30 + (years * 365.0) as i64)
    };
    let replaced = sim.rng.random_bool(CHAMPION_REPLACED_P);
    let replacement_after = sim.rng.random_range(14..45);
    // The champion-change play (docs/demo.md): a departed champion is
    // replaced more often in accounts the play does not hold out, when they
    // leave after the plays went live.
    let champion_treated = champion_leaves >= sim.config.plays_from()
        && !keel_core::held_out(sim.account.as_str(), CHAMPION_PLAY, CHAMPION_HOLDOUT_PCT);
    let replaced = replaced || (champion_treated && sim.plays_rng.random_bool(CHAMPION_PLAY_RESCUE_P));
    let mobile_rate: f64 = LogNormal::new((0.15f64).ln(), 0.8).expect("valid").sample(&mut sim.rng).min(1.0);
    sim.history.truth.mobile_rate = mobile_rate;

    // People: the champion, an admin, an executive sponsor (not SMB), users.
    let champion = sim.add_contact("champion", start, 1.6);
    sim.add_contact("admin", start, 1.2);
    if sim.segment != Segment::Smb {
        sim.add_contact("executive_sponsor", start, 0.15);
    }
    let mut current_champion = Some(champion);

    let mut term_start = start;
    let mut term_seats = seats;
    let mut price = price_cents;
    sim.line("platform", start, start + Months::new(12), seats, price);
    let mut extra_lines: Vec<usize> = Vec::new();
    let mut term = 0u32;
    schedule_touchpoints(sim, term_start, term_start + Months::new(12), ikt, first_value, term == 0);

    let mut day = start;
    let mut user_target = provisioned(seats, adoption);
    let poisson = Poisson::new(0.6).expect("valid");
    let mut last_addon_check = start;
    let mut last_survey = start;
    let mut open_stuck_sev1: Vec<(Date, Date)> = Vec::new();

    while day < end {
        let tenure = (day - start).num_days();
        // Staff the account up to its target, spread over the first weeks.
        let live = sim.users.iter().filter(|u| u.left.is_none()).count();
        if live < user_target && sim.rng.random_bool(if tenure < 90 { 0.25 } else { 0.05 }) {
            let activity = LogNormal::new(0.0, 0.5).expect("valid").sample(&mut sim.rng);
            sim.add_contact("user", day, activity);
        }
        // The champion leaves; sometimes a new one is found.
        if day == champion_leaves
            && let Some(c) = current_champion.take()
        {
            sim.end_contact(c, day);
            sim.history.truth.champion_left = Some(day);
        }
        if replaced && sim.history.truth.champion_left.is_some_and(|l| day == l + days(replacement_after)) {
            current_champion = Some(sim.add_contact("champion", day, 1.4));
            sim.history.truth.champion_replaced = Some(day);
        }

        // Product usage.
        let declining = decline_from.is_some_and(|d| day >= d);
        if declining && sim.history.truth.usage_decline_from.is_none() {
            sim.history.truth.usage_decline_from = decline_from;
        }
        let reached_value = first_value.is_some_and(|fv| day >= fv);
        let mut level = if reached_value { 1.0 } else { 0.55 };
        if declining {
            level *= USAGE_DECLINE_FACTOR;
        }
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            level *= WEEKEND_FACTOR;
        }
        let adopted = if reached_value {
            let since = (day - first_value.unwrap_or(day)).num_days();
            (1 + (since / 20) as usize).min(breadth)
        } else {
            0
        };
        if first_value == Some(day) {
            let by = current_champion.unwrap_or(0);
            sim.event(by, FIRST_VALUE_EVENT, day, serde_json::Map::new());
        }
        for u in 0..sim.users.len() {
            if sim.users[u].left.is_some() || sim.users[u].joined > day {
                continue;
            }
            let p = (ACTIVE_WEEKDAY_P * level * sim.users[u].activity).min(0.95);
            if !sim.rng.random_bool(p) {
                continue;
            }
            let n = 1 + poisson.sample(&mut sim.rng) as usize;
            for _ in 0..n {
                let name = if adopted == 0 {
                    SETUP_EVENTS[sim.rng.random_range(0..SETUP_EVENTS.len())]
                } else if sim.rng.random_bool(0.2) {
                    "login"
                } else {
                    CORE_FEATURES[sim.rng.random_range(0..adopted)]
                };
                let mut props = serde_json::Map::new();
                if name == "report_viewed" {
                    props.insert(
                        "report".into(),
                        json!(["usage", "pipeline", "sla", "roi"][sim.rng.random_range(0..4)]),
                    );
                }
                sim.event(u, name, day, props);
            }
            if sim.rng.random_bool(mobile_rate) {
                sim.event(u, "mobile_session", day, serde_json::Map::new());
            }
        }

        // Support tickets.
        let mut rate = TICKETS_PER_MONTH[seg] / 30.0;
        if declining || !reached_value && tenure > 60 {
            rate *= 1.5;
        }
        if sim.rng.random_bool(rate.min(1.0)) {
            open_ticket(sim, day, &mut open_stuck_sev1);
        }

        // NPS twice a year.
        if (day - last_survey).num_days() >= 182 {
            last_survey = day;
            let stuck = open_stuck_sev1.iter().any(|(o, c)| *o <= day && day < *c);
            let gone = current_champion.is_none();
            nps_round(sim, day, !reached_value, declining, stuck, gone, current_champion);
        }

        // Mid-term add-on for broadly adopted accounts, every 6 months.
        if (day - last_addon_check).num_days() >= 182 {
            last_addon_check = day;
            let ratio = active_ratio(sim, day, term_seats);
            let term_end = term_start + Months::new(12);
            if ratio >= 0.6 && sim.rng.random_bool(MIDTERM_ADDON) && (term_end - day).num_days() > 60 {
                let add = ((f64::from(term_seats) * sim.rng.random_range(0.1..0.3)).round() as u32).max(1);
                let l = sim.line("platform", day, term_end, add, price);
                extra_lines.push(l);
                term_seats += add;
                user_target = provisioned(term_seats, adoption);
                let source =
                    if sim.rng.random_bool(0.6) { OpportunitySource::Cs } else { OpportunitySource::Sales };
                sim.opportunity(
                    OpportunityKind::Expansion,
                    source,
                    i64::from(add) * price,
                    day - days(21),
                    day,
                    true,
                );
            }
            if sim.segment != Segment::Smb
                && reached_value
                && !declining
                && tenure > 200
                && !sim.history.contracts.iter().any(|c| c.product.as_str() == "analytics")
                && sim.rng.random_bool(0.2)
                && (term_end - day).num_days() > 60
            {
                let seats_a = (term_seats / 4).max(5);
                let l = sim.line("analytics", day, term_end, seats_a, 2000);
                extra_lines.push(l);
                sim.opportunity(
                    OpportunityKind::CrossSell,
                    OpportunitySource::Sales,
                    i64::from(seats_a) * 2000,
                    day - days(30),
                    day,
                    true,
                );
            }
        }

        // The renewal decision at the end of each term.
        let term_end = term_start + Months::new(12);
        if day + days(1) == term_end {
            let decision_day = term_end;
            let ratio = active_ratio(sim, day, term_seats);
            let decision = RenewalDecision {
                date: decision_day,
                p_renew: 0.0,
                renewed: false,
                seat_factor: 1.0,
                no_first_value_by_day_60: term == 0 && ttv.is_none_or(|d| d > 60),
                champion_gone: current_champion.is_none(),
                usage_declining: decline_from.is_some_and(|d| d + days(28) <= day),
                unresolved_sev1: open_stuck_sev1
                    .iter()
                    .any(|(o, c)| *o >= day - days(90) && (*c - *o).num_days() > 14),
                broad_adoption: ratio >= 0.6,
            };
            let logit = RENEW_BASE_LOGIT
                + NO_FIRST_VALUE_BY_60 * f64::from(u8::from(decision.no_first_value_by_day_60))
                + CHAMPION_GONE * f64::from(u8::from(decision.champion_gone))
                + USAGE_DECLINE * f64::from(u8::from(decision.usage_declining))
                + UNRESOLVED_SEV1 * f64::from(u8::from(decision.unresolved_sev1))
                + BROAD_ADOPTION_RENEW * f64::from(u8::from(decision.broad_adoption))
                + MOBILE_SESSIONS * mobile_rate;
            let p = logistic(logit);
            let renewed = sim.rng.random_bool(p);
            let mut decision = RenewalDecision { p_renew: p, renewed, ..decision };
            let old_mrr: i64 = i64::from(term_seats) * price;
            let analytics = extra_lines
                .iter()
                .map(|&l| &sim.history.contracts[l])
                .find(|c| c.product.as_str() == "analytics")
                .map(|c| c.seats);
            if renewed {
                let expand = sim.rng.random_bool(logistic(
                    EXPAND_BASE_LOGIT + BROAD_ADOPTION_EXPAND * f64::from(u8::from(decision.broad_adoption)),
                ));
                let factor = if expand {
                    sim.rng.random_range(1.15..1.5)
                } else if decision.usage_declining && sim.rng.random_bool(CONTRACT_IF_DECLINING) {
                    0.7
                } else {
                    1.0
                };
                decision.seat_factor = factor;
                term_seats = ((f64::from(term_seats) * factor).round() as u32).max(1);
                price = price * 103 / 100;
                term_start = term_end;
                term += 1;
                sim.line("platform", term_start, term_start + Months::new(12), term_seats, price);
                extra_lines.clear();
                if let Some(a) = analytics {
                    let l = sim.line("analytics", term_start, term_start + Months::new(12), a, 2000);
                    extra_lines.push(l);
                }
                user_target = provisioned(term_seats, adoption);
                let new_mrr = i64::from(term_seats) * price;
                sim.opportunity(
                    OpportunityKind::Renewal,
                    OpportunitySource::Cs,
                    new_mrr.min(old_mrr) - old_mrr,
                    term_end - days(90),
                    term_end,
                    true,
                );
                if expand {
                    let source = if decision.broad_adoption && sim.rng.random_bool(0.7) {
                        OpportunitySource::Cs
                    } else {
                        OpportunitySource::Sales
                    };
                    sim.opportunity(
                        OpportunityKind::Expansion,
                        source,
                        new_mrr - old_mrr,
                        term_end - days(45),
                        term_end,
                        true,
                    );
                }
                let renewal_end = term_start + Months::new(12);
                schedule_touchpoints(sim, term_start, renewal_end, ikt, first_value, false);
                // Contractions remove users.
                while sim.users.iter().filter(|u| u.left.is_none()).count() > user_target + 1 {
                    if let Some(u) = sim.users.iter().rposition(|u| u.left.is_none()) {
                        sim.end_contact(u, term_end);
                    }
                }
            } else {
                sim.opportunity(
                    OpportunityKind::Renewal,
                    OpportunitySource::Cs,
                    -old_mrr,
                    term_end - days(90),
                    term_end,
                    false,
                );
                sim.history.truth.churned_on = Some(term_end);
                for u in 0..sim.users.len() {
                    if sim.users[u].left.is_none() {
                        sim.end_contact(u, term_end);
                    }
                }
                sim.history.truth.renewals.push(decision);
                break;
            }
            sim.history.truth.renewals.push(decision);
        }
        day += days(1);
    }
    if let Some(fv) = first_value.filter(|fv| *fv < end) {
        sim.history.truth.ttv_days = Some((fv - start).num_days());
    }
    // Nothing is known past the end of the history.
    let end_ts = Utc.from_utc_datetime(&end.and_time(NaiveTime::MIN));
    sim.history.events.retain(|e| e.received_at < end_ts);
    // A churned customer's access ends with the contract, in UTC terms too.
    if let Some(churned) = sim.history.truth.churned_on {
        let cutoff = Utc.from_utc_datetime(&churned.and_time(NaiveTime::MIN));
        sim.history.events.retain(|e| e.timestamp < cutoff);
    }
    for t in &mut sim.history.tickets {
        if t.closed.is_some_and(|c| c >= end_ts) {
            t.closed = None;
            t.status = TicketStatus::Open;
            t.csat = None;
        }
    }
    sim.history.tickets.retain(|t| t.opened < end_ts);
}

fn provisioned(seats: u32, adoption: f64) -> usize {
    ((f64::from(seats) * adoption).round() as usize).max(1)
}

/// Share of licensed seats active in the 28 days up to `day`.
fn active_ratio(sim: &Sim<'_>, day: Date, seats: u32) -> f64 {
    let active = sim
        .users
        .iter()
        .filter(|u| u.left.is_none() && u.last_active.is_some_and(|d| d > day - days(28)))
        .count();
    active as f64 / f64::from(seats.max(1))
}

fn open_ticket(sim: &mut Sim<'_>, day: Date, stuck: &mut Vec<(Date, Date)>) {
    let severity = match sim.rng.random::<f64>() {
        x if x < 0.05 => 1,
        x if x < 0.22 => 2,
        x if x < 0.72 => 3,
        _ => 4,
    };
    let opened = sim.at(day, 8, 18);
    let is_stuck = severity == 1 && sim.rng.random_bool(SEV1_STUCK_P);
    let hours = if is_stuck {
        sim.rng.random_range(30 * 24..60 * 24)
    } else if severity == 1 {
        sim.rng.random_range(4..96)
    } else {
        sim.rng.random_range(2..240)
    };
    let closed = opened + Duration::hours(hours);
    if is_stuck {
        stuck.push((day, closed.date_naive()));
        sim.history.truth.unresolved_sev1.push(day);
    }
    let csat = sim
        .rng
        .random_bool(0.6)
        .then(|| if is_stuck { sim.rng.random_range(1..3) } else { sim.rng.random_range(3..6) });
    let n = sim.history.tickets.len();
    sim.history.tickets.push(Ticket {
        id: id(format!("{}-k{n:04}", sim.account)),
        account: sim.account.clone(),
        opened,
        closed: Some(closed),
        severity: Severity::parse(&severity.to_string()).expect("1..=4"),
        status: TicketStatus::Closed,
        csat,
    });
}

#[allow(clippy::too_many_arguments, reason = "the risk factors of one survey round")]
fn nps_round(
    sim: &mut Sim<'_>,
    day: Date,
    no_value: bool,
    declining: bool,
    stuck: bool,
    champion_gone: bool,
    champion: Option<usize>,
) {
    let mut respondents: Vec<usize> = champion.into_iter().collect();
    for _ in 0..2 {
        let live: Vec<usize> = (0..sim.users.len()).filter(|&u| sim.users[u].left.is_none()).collect();
        if !live.is_empty() && sim.rng.random_bool(0.5) {
            respondents.push(live[sim.rng.random_range(0..live.len())]);
        }
    }
    respondents.dedup();
    let noise = Normal::new(0.0, 1.3).expect("valid");
    for u in respondents {
        let mut score: f64 = 8.3 + noise.sample(&mut sim.rng);
        if no_value {
            score -= 1.5;
        }
        if declining {
            score -= 2.5;
        }
        if stuck {
            score -= 2.0;
        }
        if champion_gone {
            score -= 1.0;
        }
        let score = score.round().clamp(0.0, 10.0) as u8;
        let comment = match score {
            9..=10 => Some("The team relies on it every day."),
            7..=8 => None,
            4..=6 => Some("Useful, but adoption across the team is slow."),
            _ => Some("We are not getting the value we expected."),
        };
        let n = sim.history.surveys.len();
        let responded = sim.at(day, 9, 18);
        sim.history.surveys.push(SurveyResponse {
            id: id(format!("{}-s{n:03}", sim.account)),
            account: sim.account.clone(),
            contact: Some(id(sim.users[u].id.clone())),
            kind: SurveyKind::Nps,
            score,
            comment: comment.map(str::to_owned),
            responded,
        });
    }
}

/// The touchpoints of one term, by touch model. CSMs skip some: the skip
/// rates are what the journey-map audit should find.
fn schedule_touchpoints(
    sim: &mut Sim<'_>,
    from: Date,
    to: Date,
    ikt: bool,
    first_value: Option<Date>,
    first_term: bool,
) {
    let owner = sim.owner.clone();
    let csm = Some(owner.as_str());
    let term_days = (to - from).num_days();
    match sim.segment {
        Segment::Enterprise | Segment::MidMarket => {
            let high = sim.segment == Segment::Enterprise;
            if first_term {
                let kickoff = from + days(sim.rng.random_range(3..10));
                if ikt {
                    let d = from + days(sim.rng.random_range(0..3));
                    sim.touch("internal_kickoff", d, Some("ae@keel.example"), Some("handoff notes shared"));
                }
                sim.touch("kickoff", kickoff, csm, Some("success plan agreed"));
                for w in 1..=if high { 3 } else { 1 } {
                    sim.touch("onboarding_session", kickoff + days(7 * w), csm, None);
                }
                if sim.rng.random_bool(0.6) {
                    sim.touch("success_plan_review", from + days(60), csm, None);
                }
                if let Some(fv) = first_value {
                    if sim.rng.random_bool(0.8) {
                        let d = fv + days(sim.rng.random_range(7..14));
                        sim.touch("first_value_review", d, csm, Some("first value confirmed"));
                    }
                    if sim.rng.random_bool(0.3) {
                        let at = fv + days(sim.rng.random_range(14..30));
                        sim.touch("celebration", at, csm, None);
                    }
                }
            }
            let (ebr_every, ebr_p, align_every, align_p, insight_p) =
                if high { (90, 0.65, 45, 0.5, 0.4) } else { (180, 0.5, 90, 0.3, 0.2) };
            let mut d = ebr_every;
            while d < term_days - 30 {
                if sim.rng.random_bool(ebr_p) {
                    let at = from + days(d + sim.rng.random_range(-10..10));
                    sim.touch("ebr", at, csm, None);
                }
                if sim.rng.random_bool(insight_p) {
                    sim.touch("insights_shared", from + days(d - ebr_every / 2), csm, None);
                }
                d += ebr_every;
            }
            let mut d = align_every;
            while d < term_days {
                if sim.rng.random_bool(align_p) {
                    let at = from + days(d + sim.rng.random_range(-7..7));
                    sim.touch("alignment_meeting", at, csm, None);
                }
                d += align_every;
            }
            if sim.rng.random_bool(if high { 0.85 } else { 0.7 }) {
                let at = to - days(sim.rng.random_range(60..90));
                sim.touch("renewal_conversation", at, csm, None);
            }
            for day in 0..term_days {
                if sim.rng.random_bool(if high { 0.1 } else { 0.05 }) {
                    sim.touch("email", from + days(day), csm, None);
                }
            }
        }
        Segment::Smb => {
            if first_term {
                if ikt {
                    sim.touch("internal_kickoff", from, Some("ae@keel.example"), None);
                }
                for d in [0, 3, 7, 14] {
                    sim.touch("email", from + days(d), Some("automation"), Some("onboarding sequence"));
                }
                if sim.rng.random_bool(0.3) {
                    let at = from + days(sim.rng.random_range(5..30));
                    sim.touch("training", at, Some(SCALE_TEAM), None);
                }
            }
            let mut d = 30;
            while d < term_days {
                if sim.rng.random_bool(0.5) {
                    sim.touch("email", from + days(d), Some("automation"), Some("newsletter"));
                }
                d += 30;
            }
            sim.touch("email", to - days(30), Some("automation"), Some("renewal reminder"));
        }
    }
}
