//! The moments that matter: each moment's detection (a condition, an
//! entry into a stage, a touchpoint, a champion change) checked as of the
//! day, with the values that made it fire.

use super::*;

pub(crate) fn moments(
    ctx: &Ctx<'_>,
    m: &Metrics<'_, '_>,
    touch: Option<Touch>,
    setting: &dyn Fn(&str) -> f64,
    health: &Health,
) -> Vec<Firing> {
    let t = ctx.as_of;
    let ev = |names: &[&str]| -> BTreeMap<String, Option<Val>> {
        names.iter().map(|n| ((*n).to_owned(), m.get(n))).collect()
    };
    let int = |name: &str| match m.get(name) {
        Some(Val::Int(i)) => Some(i),
        _ => None,
    };
    let mut out = Vec::new();
    for moment in &ctx.plan.journey.moments {
        let param = |key: &str| match &moment.detection {
            Detection::Detector { params, .. } => params.get(key).copied().unwrap_or_else(|| setting(key)),
            Detection::When(_) => setting(key),
        };
        let fired: Option<(String, BTreeMap<String, Option<Val>>)> = match &moment.detection {
            Detection::When(e) => {
                (truth(&e.eval(m)) == Some(true)).then(|| (format!("{} holds", e.source), inputs(e, m)))
            }
            Detection::Detector { name, .. } => match name.as_str() {
                "first_value_reached" => ctx
                    .first_value_day(None)
                    .filter(|d| t - d < 7)
                    .map(|d| (format!("first value reached on {}", date(d)), ev(&["ttv_days"]))),
                "first_value_slip" => {
                    let target = param("ttv_target_days");
                    let tenure = ctx.line_start(None).map(|s| f64::from(t - s));
                    (ctx.first_value_day(None).is_none() && tenure.is_some_and(|d| d > target)).then(|| {
                        (
                            format!("no first value after {} days (target {target})", tenure.unwrap_or(0.0)),
                            ev(&["tenure_days", "first_value_reached"]),
                        )
                    })
                }
                "first_ebr_due" | "first_ebr_overdue" => {
                    let due = param("first_ebr_due_days");
                    let tenure = int("tenure_days").map(|d| d as f64);
                    let no_ebr = int("touchpoints_ebr") == Some(0);
                    let hit = if name == "first_ebr_due" {
                        tenure.is_some_and(|d| d >= due - 30.0 && d < due)
                    } else {
                        tenure.is_some_and(|d| d >= due)
                    };
                    (no_ebr && hit).then(|| {
                        (
                            format!("no EBR yet; first EBR due at {due} days of tenure"),
                            ev(&["tenure_days", "touchpoints_ebr"]),
                        )
                    })
                }
                "champion_change" => champion_change(ctx, m, param("champion_inactive_days") as i32),
                "usage_cliff" => {
                    let weeks = ctx.weekly(t, 10);
                    let baseline = weeks[..8].iter().sum::<f64>() / 8.0;
                    let drop = param("usage_cliff_drop_pct") / 100.0;
                    let low = |w: f64| w <= baseline * (1.0 - drop);
                    (baseline >= 5.0 && low(weeks[8]) && low(weeks[9])).then(|| {
                        let mut e = ev(&["usage_change_pct"]);
                        e.insert("baseline_weekly_events".into(), Some(Val::Double(baseline)));
                        e.insert("last_week_events".into(), Some(Val::Double(weeks[9])));
                        (format!("two weeks at least {:.0}% below the 8-week baseline", drop * 100.0), e)
                    })
                }
                "support_escalation_spike" => {
                    let (recent, base) = ctx.escalations(t);
                    let ratio = param("escalation_ratio");
                    (recent >= 2.0 && recent >= ratio * base.max(0.5)).then(|| {
                        let mut e = ev(&["open_tickets_sev1", "open_tickets_sev2"]);
                        e.insert("sev12_tickets_30d".into(), Some(Val::Double(recent)));
                        e.insert("sev12_monthly_baseline".into(), Some(Val::Double(base)));
                        (
                            format!(
                                "{recent} sev-1/2 tickets in 30 days against a baseline of {base:.1} a month"
                            ),
                            e,
                        )
                    })
                }
                "silence" => {
                    let days = param("silence_days");
                    let since = int("days_since_touchpoint").or(int("tenure_days"));
                    (touch == Some(Touch::HighTouch) && since.is_some_and(|d| d as f64 >= days)).then(|| {
                        (
                            format!("no touchpoint for {} days on a high-touch account", since.unwrap_or(0)),
                            ev(&["days_since_touchpoint"]),
                        )
                    })
                }
                "renewal_window_opened" => {
                    let window = i64::from(ctx.plan.journey.renewal_window_days);
                    int("days_to_renewal").filter(|d| *d <= window && *d > window - 7).map(|d| {
                        (
                            format!("renewal window opened: {d} days to the contract end"),
                            ev(&["days_to_renewal", "mrr"]),
                        )
                    })
                }
                "expansion_intent" => {
                    let ratio = m.get("active_seat_ratio").map(Val::as_f64);
                    let threshold = param("expansion_seat_utilisation");
                    let new = ctx.core_set(t - 6, t);
                    let before = ctx.core_set(t - 97, t - 7);
                    let adopted = ctx.first_start.is_some_and(|s| t - s > 97)
                        && new.iter().any(|f| !before.contains(f));
                    if ratio.is_some_and(|r| r >= threshold) {
                        Some((
                            format!("seat utilisation at {:.0}% of licence", ratio.unwrap_or(0.0) * 100.0),
                            ev(&["active_seat_ratio", "licensed_seats"]),
                        ))
                    } else {
                        adopted.then(|| {
                            (
                                "a core feature was adopted this week".to_owned(),
                                ev(&["core_features_weekly", "feature_breadth"]),
                            )
                        })
                    }
                }
                "advocacy_candidate" => {
                    let promoter = int("nps_latest").is_some_and(|n| n as f64 >= param("advocacy_min_nps"));
                    let calm = int("open_tickets_sev1") == Some(0) && int("open_tickets_sev2") == Some(0);
                    (promoter && calm && health.band == Some(Band::Green)).then(|| {
                        (
                            "a promoter with green health and no open sev-1/2".to_owned(),
                            ev(&["nps_latest", "open_tickets_sev1", "open_tickets_sev2"]),
                        )
                    })
                }
                _ => None,
            },
        };
        if let Some((reason, evidence)) = fired {
            out.push(Firing {
                id: moment.id.clone(),
                severity: moment.severity.as_str().to_owned(),
                owner: moment.owner.clone(),
                play: moment.play.clone(),
                reason,
                evidence,
            });
        }
    }
    out.sort_by(|a, b| b.severity_rank().cmp(&a.severity_rank()).then(a.id.cmp(&b.id)));
    out
}

fn champion_change(
    ctx: &Ctx<'_>,
    m: &Metrics<'_, '_>,
    inactive_days: i32,
) -> Option<(String, BTreeMap<String, Option<Val>>)> {
    let t = ctx.as_of;
    let champions = ctx.h.contacts.iter().filter(|c| c.role.as_str() == "champion");
    for c in champions {
        if let Some(end) = c.active_to.map(dn)
            && end <= t
            && t - end < 30
        {
            let present = m.get("champion_present");
            return Some((
                format!("champion {} left on {}", c.name, date(end)),
                BTreeMap::from([("champion_present".to_owned(), present)]),
            ));
        }
    }
    // The champion went quiet while colleagues stayed active.
    let colleagues_active = matches!(m.get("active_users_7d"), Some(Val::Int(n)) if n > 0);
    for c in ctx
        .h
        .contacts
        .iter()
        .filter(|c| c.role.as_str() == "champion" && c.active_to.is_none_or(|e| dn(e) > t))
    {
        let Some(uid) = ctx.h.users.iter().find(|(_, ext)| ext == c.id.as_str()).map(|(id, _)| *id) else {
            continue;
        };
        let was_active = ctx.user_active(uid, t - 90, t - inactive_days);
        if colleagues_active && was_active && !ctx.user_active(uid, t - inactive_days + 1, t) {
            return Some((
                format!(
                    "champion {} has had no activity for {inactive_days} days while colleagues stayed active",
                    c.name
                ),
                BTreeMap::from([("active_users_7d".to_owned(), m.get("active_users_7d"))]),
            ));
        }
    }
    None
}
