//! Steps rendered for one account: owner roles resolved to people, templates
//! filled in from the account's facts.

use chrono::Days;
use keel_journey::{Journey, Play, Step, Template, template};
use serde_json::{Map, Value, json};

use crate::facts::Facts;
use crate::run::{Effect, Run};

/// Who holds `role` for an account: `csm` is the account's owner; any other
/// role is the account attribute of that name, then `[owners]`; failing
/// those, the role itself as a queue (`unassigned:<role>`).
pub fn owner(journey: &Journey, facts: &Facts, role: &str) -> String {
    let attribute = facts.account.attributes.get(role).and_then(Value::as_str).filter(|s| !s.is_empty());
    let csm = (role == "csm").then_some(facts.account.owner.as_deref()).flatten();
    csm.or(attribute)
        .map(str::to_owned)
        .or_else(|| journey.owners.get(role).cloned())
        .unwrap_or_else(|| format!("unassigned:{role}"))
}

/// The variables every template of a run sees (see docs/journey.md).
pub fn context(play: &Play, run: &Run, facts: &Facts) -> Map<String, Value> {
    let state = &facts.state;
    let metric = |n: &str| facts.metric(n).map(|v| v.as_f64());
    let renewal_date = metric("days_to_renewal")
        .filter(|d| *d >= 0.0)
        .and_then(|d| facts.as_of().checked_add_days(Days::new(d as u64)))
        .map(|d| d.to_string());
    let metrics: Map<String, Value> =
        state.metrics.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default())).collect();
    let reasons: Vec<String> =
        state.health.components.iter().filter_map(|c| Some(format!("{} {:.0}", c.id, c.score?))).collect();
    let mut ctx = Map::new();
    ctx.insert(
        "account".into(),
        json!({
            "id": facts.account.id.to_string(),
            "name": facts.account.name,
            "owner": facts.account.owner,
            "segment": state.segment,
            "stage": facts.stage,
            "mrr": metric("mrr").map(|m| (m * 100.0).round() / 100.0),
            "arr": (facts.arr * 100.0).round() / 100.0,
            "renewal_date": renewal_date,
            "attributes": facts.account.attributes,
        }),
    );
    ctx.insert("play".into(), json!({"id": play.id, "name": play.name, "type": play.kind.as_str()}));
    ctx.insert(
        "trigger".into(),
        json!({
            "kind": run.trigger.kind,
            "detail": run.trigger.detail,
            "date": run.trigger.day.to_string(),
            "evidence": run.trigger.evidence,
        }),
    );
    ctx.insert("metrics".into(), Value::Object(metrics));
    ctx.insert(
        "health".into(),
        json!({"score": state.health.score.map(|s| s.round()), "band": facts.health_band(), "reasons": reasons}),
    );
    ctx.insert("as_of".into(), json!(facts.as_of().to_string()));
    ctx
}

fn fill(t: &Template, ctx: &Map<String, Value>) -> String {
    // Templates were checked when the journey loaded; a render error (say, a
    // filter applied to a missing value) leaves the template text visible.
    template::render(&t.source, ctx).unwrap_or_else(|e| format!("{} [render error: {e}]", t.source))
}

/// The effect of a task, email, webhook or touchpoint step (None for waits and branches).
pub fn effect(
    journey: &Journey,
    play: &Play,
    run: &Run,
    k: usize,
    step: &Step,
    facts: &Facts,
) -> Option<Effect> {
    let mut ctx = context(play, run, facts);
    let person = |role: &str| owner(journey, facts, role);
    Some(match step {
        Step::Task { title, description, owner: role, due_days, priority, touchpoint } => {
            let due =
                facts.as_of().checked_add_days(Days::new(u64::from(*due_days))).unwrap_or(facts.as_of());
            ctx.insert("owner".into(), json!({"role": role, "name": person(role)}));
            ctx.insert("due_date".into(), json!(due.to_string()));
            Effect::Task {
                step: k,
                kind: play.kind.as_str().to_owned(),
                title: fill(title, &ctx),
                description: fill(description, &ctx),
                role: role.clone(),
                owner: person(role),
                due,
                priority: priority.as_str().to_owned(),
                touchpoint: touchpoint.clone(),
            }
        }
        Step::Email { to, from, subject, body } => {
            ctx.insert("owner".into(), json!({"role": from, "name": person(from)}));
            let recipients: Vec<_> = facts.contacts.iter().filter(|c| &c.role == to).cloned().collect();
            // One message to the role's contacts, addressed to the first by name.
            if let Some(first) = recipients.first() {
                ctx.insert(
                    "contact".into(),
                    json!({"name": first.name, "email": first.email, "role": first.role}),
                );
            }
            Effect::Email {
                step: k,
                to: recipients,
                from: person(from),
                subject: fill(subject, &ctx),
                body: fill(body, &ctx),
                customer_facing: play.customer_facing,
            }
        }
        Step::Webhook { url, body, secret_env } => {
            let body = if body.source.is_empty() {
                json!({
                    "type": "keel.play.step",
                    "account": ctx["account"],
                    "play": ctx["play"],
                    "trigger": ctx["trigger"],
                    "step": k,
                    "as_of": ctx["as_of"],
                })
                .to_string()
            } else {
                fill(body, &ctx)
            };
            Effect::Webhook {
                step: k,
                url: url.clone(),
                body,
                secret_env: secret_env.clone(),
                customer_facing: play.customer_facing,
            }
        }
        Step::LogTouchpoint { kind, note } => {
            Effect::Touchpoint { step: k, kind: kind.clone(), note: fill(note, &ctx) }
        }
        Step::Opportunity { kind } => {
            Effect::Opportunity { step: k, kind: kind.clone(), currency: facts.currency.clone() }
        }
        Step::Wait { .. } | Step::Branch { .. } => return None,
    })
}

/// One line describing an effect, for the audit log.
pub fn summary(effect: &Effect) -> String {
    match effect {
        Effect::Task { title, owner, due, .. } => format!("task for {owner}, due {due}: {title}"),
        Effect::Email { to, subject, .. } => {
            let to: Vec<&str> = to.iter().map(|r| r.email.as_str()).collect();
            format!("email to {}: {subject}", to.join(", "))
        }
        Effect::Webhook { url, .. } => format!("webhook to {url}"),
        Effect::Touchpoint { kind, .. } => format!("touchpoint {kind} logged"),
        Effect::Opportunity { kind, .. } => format!("CS-sourced {kind} opportunity opened"),
        Effect::Outbox { approver, .. } => format!("in the outbox for {approver}"),
    }
}
