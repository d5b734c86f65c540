//! Plays, governance and `[owners]`: every trigger, audience, step, template
//! and rule checked, every reference resolved.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::Checker;
use crate::catalog::{MetricType, OPPORTUNITY_KINDS, OWNER_ROLES, PLAY_VARIABLES, STEP_KINDS};
use crate::expr::{Expr, Scope};
use crate::model::*;
use crate::schema::*;
use crate::template;

/// What plays may refer to, gathered by the rest of the check.
pub(super) struct Known<'a> {
    /// Metric names.
    pub metrics: &'a [&'a str],
    /// Stage id → whether it has `target_days`, and its owner.
    pub stages: Vec<(&'a str, bool, &'a str)>,
    /// Moment id → owner.
    pub moments: Vec<(&'a str, &'a str)>,
    /// Segment ids.
    pub segments: &'a [&'a str],
    /// Touchpoint kinds.
    pub touchpoints: &'a [&'a str],
}

/// The checked `[owners]`, `[governance]` and `[[plays]]`.
pub(super) struct Checked {
    pub owners: BTreeMap<String, String>,
    pub governance: Governance,
    pub plays: Vec<Play>,
}

/// The roles a journey may name: the built-in ones and `[owners]`' keys.
pub(super) fn roles(owners: &BTreeMap<Text, Text>) -> Vec<String> {
    let mut roles: Vec<String> = OWNER_ROLES.iter().map(|r| (*r).to_owned()).collect();
    for role in owners.keys() {
        if !roles.contains(role.get_ref()) {
            roles.push(role.get_ref().clone());
        }
    }
    roles
}

/// Whether `role` is one of `roles`; if not, says which are.
pub(super) fn role_known(c: &mut Checker<'_>, role: &Text, roles: &[&str]) -> bool {
    if roles.contains(&role.get_ref().as_str()) {
        return true;
    }
    let hint = match crate::expr::suggest(role.get_ref(), roles) {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => format!("; roles: {}, or one added under [owners]", roles.join(", ")),
    };
    c.error(role.span(), format!("unknown role `{}`{hint}", role.get_ref()));
    false
}

pub(super) fn check(
    c: &mut Checker<'_>,
    raw_owners: &BTreeMap<Text, Text>,
    raw_governance: Option<&RawGovernance>,
    raw_plays: &[RawPlay],
    metric_types: &BTreeMap<String, MetricType>,
    known: &Known<'_>,
) -> Checked {
    let scope = Scope::for_plays(metric_types);
    let mut names: Vec<&str> = known.metrics.to_vec();
    names.extend(PLAY_VARIABLES.iter().map(|v| v.name));
    let roles = roles(raw_owners);
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();

    let mut owners = BTreeMap::new();
    for (role, holder) in raw_owners {
        c.check_id(role, "role");
        if holder.get_ref().trim().is_empty() {
            c.error(holder.span(), format!("role `{}` needs a person or queue", role.get_ref()));
        }
        owners.insert(role.get_ref().clone(), holder.get_ref().trim().to_owned());
    }

    c.unique(raw_plays.iter().map(|p| &p.id), "play");
    let play_ids: Vec<&str> = raw_plays.iter().map(|p| p.id.get_ref().as_str()).collect();
    let mut p = PlayChecker { c, scope: &scope, names: &names, roles: &roles, known };
    let plays = raw_plays.iter().filter_map(|raw| p.play(raw)).collect();
    let governance = match raw_governance {
        Some(g) => p.governance(g, &play_ids),
        None => Governance::default(),
    };
    Checked { owners, governance, plays }
}

struct PlayChecker<'c, 'a, 'k> {
    c: &'c mut Checker<'a>,
    scope: &'c Scope,
    names: &'c [&'c str],
    roles: &'c [&'c str],
    known: &'c Known<'k>,
}

impl PlayChecker<'_, '_, '_> {
    fn condition(&mut self, text: &Text, what: &str) -> Option<Expr> {
        self.c.compile(self.scope, self.names, text, Some(MetricType::Bool), what).map(|(e, _)| e)
    }

    fn template(&mut self, text: &Text, what: &str) -> Template {
        let checked = template::check(text.get_ref(), self.known.metrics);
        let metrics = checked.as_ref().map_or_else(|_| Vec::new(), Clone::clone);
        if let Err(errors) = checked {
            let base = self.c.content_start(text);
            for (range, message) in errors {
                let span = match base {
                    Some(b) => b + range.start..b + range.end.max(range.start + 1),
                    None => text.span(),
                };
                self.c.error(span, format!("{what}: {message}"));
            }
        }
        Template { source: text.get_ref().clone(), metrics }
    }

    fn role(&mut self, role: &Text) -> bool {
        role_known(self.c, role, self.roles)
    }

    fn days_in(&mut self, value: &Spanned<i64>, range: Range<i64>, what: &str) -> Option<u32> {
        let v = *value.get_ref();
        if range.contains(&v) {
            Some(v as u32)
        } else {
            self.c.error(value.span(), format!("{what} must be {}..{} days", range.start, range.end - 1));
            None
        }
    }

    fn play(&mut self, raw: &RawPlay) -> Option<Play> {
        self.c.check_id(&raw.id, "play");
        let id = raw.id.get_ref().clone();
        let what = format!("play `{id}`");
        let kind = PlayType::parse(raw.kind.get_ref());
        if kind.is_none() {
            self.c.known(&raw.kind, PlayType::NAMES, "play type");
        }
        let (trigger, default_owner) = self.trigger(&raw.trigger, &what)?;
        let mut segments = Vec::new();
        let mut audience = None;
        if let Some(a) = &raw.audience {
            for s in &a.segments {
                if self.c.known(s, self.known.segments, "segment") {
                    segments.push(s.get_ref().clone());
                }
            }
            if let Some(w) = &a.when {
                audience = Some(self.condition(w, &format!("{what} audience"))?);
            }
        }
        let holdout_pct = match &raw.holdout_pct {
            Some(h) if !(0.0..100.0).contains(h.get_ref()) => {
                self.c.error(h.span(), "holdout_pct is a percentage, 0 or more and below 100");
                10.0
            }
            Some(h) => *h.get_ref(),
            None => 10.0,
        };
        let cooldown_days = match &raw.cooldown_days {
            Some(d) => self.days_in(d, 0..3651, "cooldown_days").unwrap_or(30),
            None => 30,
        };
        let outcome = match &raw.outcome {
            Some(o) => {
                let when = self.condition(&o.when, &format!("{what} outcome"));
                let within = self.days_in(&o.within_days, 1..731, "outcome.within_days");
                Some(Outcome { when: when?, within_days: within? })
            }
            None => None,
        };
        if raw.steps.is_empty() {
            self.c.error(raw.id.span(), format!("{what} has no steps; add at least one [[plays.steps]]"));
        }
        let steps = self.steps(&raw.steps, &default_owner, &what);
        let has_email = raw.steps.iter().any(|s| s.kind.get_ref() == "email");
        let customer_facing = match &raw.customer_facing {
            Some(cf) if !*cf.get_ref() && has_email => {
                self.c.error(cf.span(), format!("{what} sends email to contacts, so it is customer-facing"));
                true
            }
            Some(cf) => *cf.get_ref(),
            None => has_email,
        };
        Some(Play {
            id: id.clone(),
            name: raw.name.clone().unwrap_or_else(|| id.replace('_', " ")),
            kind: kind?,
            trigger,
            segments,
            audience,
            customer_facing,
            holdout_pct,
            cooldown_days,
            outcome,
            steps: steps?,
        })
    }

    /// The trigger and the role that owns what it brings up by default.
    fn trigger(&mut self, raw: &Spanned<RawTrigger>, what: &str) -> Option<(Trigger, String)> {
        let t = raw.get_ref();
        let set = [
            t.moment.is_some(),
            t.stage_entry.is_some(),
            t.stage_exit.is_some(),
            t.gate_slip.is_some(),
            t.days_before_renewal.is_some(),
            t.when.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            self.c.error(
                raw.span(),
                format!(
                    "{what}: a trigger needs exactly one of moment, stage_entry, stage_exit, gate_slip, \
                     days_before_renewal, when"
                ),
            );
            return None;
        }
        let stage_ids: Vec<&str> = self.known.stages.iter().map(|s| s.0).collect();
        let stage_owner = |id: &str| self.known.stages.iter().find(|s| s.0 == id).map(|s| s.2.to_owned());
        if let Some(m) = &t.moment {
            let ids: Vec<&str> = self.known.moments.iter().map(|m| m.0).collect();
            self.c.known(m, &ids, "moment").then_some(())?;
            let owner = self.known.moments.iter().find(|x| x.0 == m.get_ref()).map(|x| x.1.to_owned());
            return Some((Trigger::Moment(m.get_ref().clone()), owner.unwrap_or_else(|| "csm".into())));
        }
        for (field, make) in [
            (&t.stage_entry, Trigger::StageEntry as fn(String) -> Trigger),
            (&t.stage_exit, Trigger::StageExit),
            (&t.gate_slip, Trigger::GateSlip),
        ] {
            if let Some(s) = field {
                self.c.known(s, &stage_ids, "stage").then_some(())?;
                let has_target = self.known.stages.iter().any(|x| x.0 == s.get_ref() && x.1);
                if t.gate_slip.is_some() && !has_target {
                    self.c.error(
                        s.span(),
                        format!("gate_slip needs stage `{}` to set target_days", s.get_ref()),
                    );
                    return None;
                }
                let owner = stage_owner(s.get_ref()).unwrap_or_else(|| "csm".into());
                return Some((make(s.get_ref().clone()), owner));
            }
        }
        if let Some(d) = &t.days_before_renewal {
            let days = self.days_in(d, 1..731, "days_before_renewal")?;
            return Some((Trigger::DaysBeforeRenewal(days), "account_manager".into()));
        }
        let when = t.when.as_ref()?;
        let expr = self.condition(when, &format!("{what} trigger"))?;
        Some((Trigger::When(expr), "csm".into()))
    }

    fn steps(&mut self, raw: &[RawStep], default_owner: &str, what: &str) -> Option<Vec<Step>> {
        self.c.unique(raw.iter().filter_map(|s| s.id.as_ref()), "step");
        for id in raw.iter().filter_map(|s| s.id.as_ref()) {
            self.c.check_id(id, "step");
        }
        let mut steps = Vec::new();
        let mut ok = true;
        for (i, s) in raw.iter().enumerate() {
            match self.step(raw, i, s, default_owner, &format!("{what} step {}", i + 1)) {
                Some(step) => steps.push(step),
                None => ok = false,
            }
        }
        ok.then_some(steps)
    }

    fn step(
        &mut self,
        all: &[RawStep],
        index: usize,
        s: &RawStep,
        default_owner: &str,
        what: &str,
    ) -> Option<Step> {
        let kind = s.kind.get_ref().as_str();
        if !self.c.known(&s.kind, STEP_KINDS, "step kind") {
            return None;
        }
        let fields: [(&str, Option<Range<usize>>); 15] = [
            ("title", s.title.as_ref().map(Spanned::span)),
            ("description", s.description.as_ref().map(Spanned::span)),
            ("owner", s.owner.as_ref().map(Spanned::span)),
            ("due_days", s.due_days.as_ref().map(Spanned::span)),
            ("priority", s.priority.as_ref().map(Spanned::span)),
            ("to", s.to.as_ref().map(Spanned::span)),
            ("from", s.from.as_ref().map(Spanned::span)),
            ("subject", s.subject.as_ref().map(Spanned::span)),
            ("body", s.body.as_ref().map(Spanned::span)),
            ("url", s.url.as_ref().map(Spanned::span)),
            ("secret_env", s.secret_env.as_ref().map(Spanned::span)),
            ("days", s.days.as_ref().map(Spanned::span)),
            ("until", s.until.as_ref().map(Spanned::span)),
            ("when", s.when.as_ref().map(Spanned::span)),
            ("goto", s.goto.as_ref().map(Spanned::span)),
        ];
        let extra: [(&str, Option<Range<usize>>); 3] = [
            ("touchpoint", s.touchpoint.as_ref().map(Spanned::span)),
            ("note", s.note.as_ref().map(Spanned::span)),
            ("opportunity", s.opportunity.as_ref().map(Spanned::span)),
        ];
        let allowed: &[&str] = match kind {
            "task" => &["title", "description", "owner", "due_days", "priority", "touchpoint"],
            "email" => &["to", "from", "subject", "body"],
            "webhook" => &["url", "body", "secret_env"],
            "wait" => &["days", "until"],
            "branch" => &["when", "goto"],
            "opportunity" => &["opportunity"],
            _ => &["touchpoint", "note"],
        };
        let mut misplaced = false;
        for (name, span) in fields.iter().chain(extra.iter()) {
            if let Some(span) = span
                && !allowed.contains(name)
            {
                self.c.error(
                    span.clone(),
                    format!(
                        "{what}: `{name}` does not apply to {} {kind} step (it takes {})",
                        if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" },
                        allowed.join(", ")
                    ),
                );
                misplaced = true;
            }
        }
        let need = |c: &mut Checker<'_>, field: &Option<Text>, name: &str| -> Option<Text> {
            if field.is_none() {
                c.error(s.kind.span(), format!("{what}: a {kind} step needs `{name}`"));
            }
            field.clone()
        };
        let empty = |text: &Option<Text>| text.clone().unwrap_or_else(|| Spanned::new(0..0, String::new()));
        let step = match kind {
            "task" => {
                let title = need(self.c, &s.title, "title").map(|t| self.template(&t, what));
                let description = self.template(&empty(&s.description), what);
                let owner = match &s.owner {
                    Some(o) => self.role(o).then(|| o.get_ref().clone()),
                    None => Some(default_owner.to_owned()),
                };
                let due_days = match &s.due_days {
                    Some(d) => self.days_in(d, 0..366, "due_days"),
                    None => Some(3),
                };
                let priority = match &s.priority {
                    Some(p) => {
                        let parsed = Priority::parse(p.get_ref());
                        if parsed.is_none() {
                            self.c.known(p, Priority::NAMES, "priority");
                        }
                        parsed
                    }
                    None => Some(Priority::Normal),
                };
                let touchpoint = match &s.touchpoint {
                    Some(t) => self
                        .c
                        .known(t, self.known.touchpoints, "touchpoint kind")
                        .then(|| t.get_ref().clone()),
                    None => Some("call".to_owned()),
                };
                Step::Task {
                    title: title?,
                    description,
                    owner: owner?,
                    due_days: due_days?,
                    priority: priority?,
                    touchpoint: touchpoint?,
                }
            }
            "email" => {
                let to = need(self.c, &s.to, "to");
                if let Some(to) = &to {
                    self.c.check_id(to, "contact role");
                }
                let from = match &s.from {
                    Some(f) => self.role(f).then(|| f.get_ref().clone()),
                    None => Some(default_owner.to_owned()),
                };
                let subject = need(self.c, &s.subject, "subject").map(|t| self.template(&t, what));
                let body = need(self.c, &s.body, "body").map(|t| self.template(&t, what));
                Step::Email { to: to?.into_inner(), from: from?, subject: subject?, body: body? }
            }
            "webhook" => {
                let url = need(self.c, &s.url, "url")?;
                let u = url.get_ref();
                let host = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
                if host.is_none_or(|h| h.is_empty() || h.starts_with('/') || h.contains(char::is_whitespace))
                {
                    self.c.error(url.span(), format!("{what}: `{u}` is not an http:// or https:// URL"));
                }
                if let Some(env) = &s.secret_env {
                    let e = env.get_ref();
                    let valid = e.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                        && e.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                    if !valid {
                        self.c.error(env.span(), "secret_env names an environment variable: A-Z, 0-9 and _");
                    }
                }
                let body = self.template(&empty(&s.body), what);
                Step::Webhook {
                    url: url.into_inner(),
                    body,
                    secret_env: s.secret_env.as_ref().map(|e| e.get_ref().clone()),
                }
            }
            "wait" => {
                let days = match &s.days {
                    Some(d) => self.days_in(d, 1..366, "a wait's days"),
                    None => {
                        let hint = if s.until.is_some() { " (the most it waits for `until`)" } else { "" };
                        self.c.error(s.kind.span(), format!("{what}: a wait step needs `days`{hint}"));
                        None
                    }
                };
                let until = match &s.until {
                    Some(u) => Some(self.condition(u, &format!("{what} until"))?),
                    None => None,
                };
                Step::Wait { days: days?, until }
            }
            "branch" => {
                let when = need(self.c, &s.when, "when").and_then(|w| self.condition(&w, what));
                let goto = need(self.c, &s.goto, "goto").and_then(|g| self.goto(all, index, &g, what));
                Step::Branch { when: when?, goto: goto? }
            }
            "opportunity" => match &s.opportunity {
                Some(o) => {
                    self.c.known(o, OPPORTUNITY_KINDS, "opportunity type").then_some(())?;
                    Step::Opportunity { kind: o.get_ref().clone() }
                }
                None => Step::Opportunity { kind: "expansion".to_owned() },
            },
            _ => {
                let kind = need(self.c, &s.touchpoint, "touchpoint")?;
                self.c.known(&kind, self.known.touchpoints, "touchpoint kind").then_some(())?;
                let note = self.template(&empty(&s.note), what);
                Step::LogTouchpoint { kind: kind.into_inner(), note }
            }
        };
        (!misplaced).then_some(step)
    }

    fn goto(&mut self, all: &[RawStep], index: usize, target: &Text, what: &str) -> Option<usize> {
        if target.get_ref() == "end" {
            return Some(all.len());
        }
        let found = all.iter().position(|s| s.id.as_ref().is_some_and(|id| id.get_ref() == target.get_ref()));
        match found {
            Some(i) if i > index => Some(i),
            Some(_) => {
                self.c.error(
                    target.span(),
                    format!(
                        "{what}: goto `{}` jumps backwards; a branch may only skip ahead",
                        target.get_ref()
                    ),
                );
                None
            }
            None => {
                let ids: Vec<&str> =
                    all.iter().filter_map(|s| s.id.as_ref()).map(|i| i.get_ref().as_str()).collect();
                let mut known = ids.clone();
                known.push("end");
                self.c.known(target, &known, "step id");
                None
            }
        }
    }

    fn governance(&mut self, g: &RawGovernance, play_ids: &[&str]) -> Governance {
        let mut out = Governance::default();
        if let Some(b) = &g.contact_budget {
            let b = b.get_ref();
            let touches = self.days_in(&b.touches, 1..101, "contact_budget.touches");
            let days = self.days_in(&b.days, 1..366, "contact_budget.days");
            if let (Some(t), Some(d)) = (touches, days) {
                out.contact_budget = Some((t, d));
            }
        }
        if let Some(q) = &g.quiet_hours {
            let from = self.clock(&q.get_ref().from);
            let to = self.clock(&q.get_ref().to);
            if let (Some(f), Some(t)) = (from, to) {
                if f == t {
                    self.c.error(q.span(), "quiet_hours from and to are the same time");
                }
                out.quiet_hours = Some((f, t));
            }
        }
        if let Some(tz) = &g.default_timezone {
            if tz.get_ref().parse::<chrono_tz::Tz>().is_err() {
                self.c.error(
                    tz.span(),
                    format!("unknown timezone `{}` (an IANA name such as Europe/Berlin)", tz.get_ref()),
                );
            }
            out.default_timezone = tz.get_ref().clone();
        }
        if let Some(d) = &g.snooze_max_days {
            out.snooze_max_days = self.days_in(d, 1..366, "snooze_max_days").unwrap_or(30);
        }
        out.suppress = self.rules(&g.suppress, play_ids, "suppression rule");
        out.approval = self.rules(&g.approval, play_ids, "approval rule");
        out
    }

    fn clock(&mut self, text: &Text) -> Option<u16> {
        let parsed = text.get_ref().split_once(':').and_then(|(h, m)| {
            let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
            (h < 24 && m < 60 && text.get_ref().len() == 5).then_some(h * 60 + m)
        });
        if parsed.is_none() {
            self.c.error(text.span(), format!("`{}` is not a time of day as HH:MM", text.get_ref()));
        }
        parsed
    }

    fn rules(&mut self, raw: &[RawRule], play_ids: &[&str], what: &str) -> Vec<Rule> {
        self.c.unique(raw.iter().map(|r| &r.id), what);
        let approval = what.starts_with("approval");
        let mut rules = Vec::new();
        for r in raw {
            self.c.check_id(&r.id, what);
            let when = self.condition(&r.when, &format!("{what} `{}`", r.id.get_ref()));
            for p in &r.plays {
                self.c.known(p, play_ids, "play");
            }
            let mut play_types = Vec::new();
            for t in &r.play_types {
                match PlayType::parse(t.get_ref()) {
                    Some(pt) => play_types.push(pt),
                    None => {
                        self.c.known(t, PlayType::NAMES, "play type");
                    }
                }
            }
            let approver = match (&r.approver, approval) {
                (Some(a), true) => self.role(a).then(|| a.get_ref().clone()),
                (None, true) => Some("cs_leader".to_owned()),
                (Some(a), false) => {
                    self.c.error(a.span(), "a suppression rule has no approver; use [[governance.approval]]");
                    None
                }
                (None, false) => None,
            };
            if let Some(when) = when {
                rules.push(Rule {
                    id: r.id.get_ref().clone(),
                    reason: r.reason.clone().unwrap_or_else(|| when.source.clone()),
                    when,
                    plays: r.plays.iter().map(|p| p.get_ref().clone()).collect(),
                    play_types,
                    approver,
                });
            }
        }
        rules
    }
}
