//! Stages: each product line's stage rules replayed weekly from its first
//! contract to the as-of date (hysteresis, re-dated entries, the renewal
//! window), with the transitions and the exit gate's progress.

use super::*;

/// Runs the stage rules of one product line forward from its first contract,
/// weekly, to as_of.
pub(crate) fn replay(ctx: &Ctx<'_>, line: &str) -> LineState {
    let j = &ctx.plan.journey;
    let stages = &j.stages;
    let start = ctx.line_start(Some(line)).unwrap_or(ctx.as_of);
    let renewal = stages.iter().position(|s| matches!(s.entry, Entry::RenewalWindow));
    let window = i64::from(j.renewal_window_days);
    let mut idx: Option<usize> = Some(0);
    let mut entered = start;
    let mut before_renewal = 0usize;
    let mut transitions = vec![Transition {
        on: date(start),
        from: None,
        to: stages.first().map(|s| s.id.clone()),
        rule: "contract started".into(),
        inputs: BTreeMap::new(),
    }];
    let mut steps: Vec<i32> = (start..ctx.as_of).step_by(7).skip(1).collect();
    steps.push(ctx.as_of);
    let mut gate_passed = false;
    for &t in &steps {
        let mut m = Metrics::new(ctx, t, Some(line));
        m.days_in_stage = Some(i64::from(t - entered));
        let dwell = t - entered;
        let active = ctx.has_active(t, Some(line));
        let mut go = |to: Option<usize>,
                      rule: String,
                      inputs: BTreeMap<String, Option<Val>>,
                      idx: &mut Option<usize>| {
            transitions.push(Transition {
                on: date(t),
                from: idx.map(|i| stages[i].id.clone()),
                to: to.map(|i| stages[i].id.clone()),
                rule,
                inputs,
            });
            *idx = to;
            entered = t;
        };
        let Some(cur) = idx else {
            if active {
                go(Some(0), "a new contract started".into(), BTreeMap::new(), &mut idx);
                gate_passed = false;
            }
            continue;
        };
        if !active {
            go(None, "no active contract on this product line".into(), BTreeMap::new(), &mut idx);
            continue;
        }
        let to_renewal = ctx.days_to_renewal(t, Some(line));
        if let Some(r) = renewal {
            let evidence = || BTreeMap::from([("days_to_renewal".to_owned(), to_renewal.map(Val::Int))]);
            if cur != r
                && let Some(d) = to_renewal.filter(|d| *d <= window)
            {
                before_renewal = cur;
                let rule = format!("renewal window opened: {window} days before the contract end");
                go(Some(r), rule, evidence(), &mut idx);
                // The window opened on a day between steps: date it exactly.
                let opened = (t - (window - d) as i32).max(entered_before(&transitions, t));
                if let Some(last) = transitions.last_mut() {
                    last.on = date(opened);
                }
                entered = opened;
                gate_passed = false;
                continue;
            }
            if cur == r && to_renewal.is_none_or(|d| d > window) {
                go(
                    Some(before_renewal),
                    "renewed: the contract now ends outside the renewal window".into(),
                    evidence(),
                    &mut idx,
                );
                gate_passed = false;
                continue;
            }
        }
        if dwell < stages[cur].min_dwell_days as i32 {
            continue;
        }
        // A stage entered by its own condition, later in the journey — not
        // from inside the renewal window, which only the renewal ends.
        let jump = stages.iter().enumerate().skip(cur + 1).find_map(|(i, s)| match &s.entry {
            Entry::When(e)
                if Some(cur) != renewal && Some(i) != renewal && truth(&e.eval(&m)) == Some(true) =>
            {
                Some((i, e))
            }
            _ => None,
        });
        if let Some((i, e)) = jump {
            go(
                Some(i),
                format!("entry condition of {} held: {}", stages[i].id, e.source),
                inputs(e, &m),
                &mut idx,
            );
            gate_passed = false;
            continue;
        }
        let exit = &stages[cur].exit;
        if truth(&exit.eval(&m)) == Some(true) {
            gate_passed = true;
            if let Some(next) = stages.get(cur + 1)
                && matches!(next.entry, Entry::PreviousExit)
            {
                go(
                    Some(cur + 1),
                    format!("exit gate of {} held: {}", stages[cur].id, exit.source),
                    inputs(exit, &m),
                    &mut idx,
                );
                gate_passed = false;
            }
        }
    }
    let t = ctx.as_of;
    let mut m = Metrics::new(ctx, t, Some(line));
    m.days_in_stage = Some(i64::from(t - entered));
    let gate = match idx {
        Some(i) => {
            let exit = &stages[i].exit;
            if exit.conjuncts.is_empty() {
                vec![condition(exit, &m)]
            } else {
                exit.conjuncts.iter().map(|c| condition(c, &m)).collect()
            }
        }
        None => Vec::new(),
    };
    let ttv_days = match m.get("ttv_days") {
        Some(Val::Int(d)) => Some(d),
        _ => None,
    };
    LineState {
        product_line: line.to_owned(),
        stage: idx.map(|i| stages[i].id.clone()),
        entered: date(entered),
        days_in_stage: i64::from(t - entered),
        gate,
        gate_passed,
        ttv_days,
        transitions,
    }
}

/// The day after the previous transition (a re-dated transition may not
/// move before it).
fn entered_before(transitions: &[Transition], t: i32) -> i32 {
    transitions.iter().rev().nth(1).map_or(t, |p| dn(p.on) + 1)
}
