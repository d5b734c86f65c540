//! Stages: each product line's stage rules replayed weekly from its first
//! contract to the as-of date (hysteresis, re-dated entries, the renewal
//! window), with the transitions and the exit gate's progress.
//!
//! The replay is a fold over weekly steps (`start + 7k`, before the as-of
//! date), then one last step on the as-of date itself. [`LineReplay`] is the
//! fold's state after the weekly steps: a later evaluation continues from it
//! instead of starting over (see [`crate::Checkpoint`] for when it may).

use super::*;

/// Where the weekly stage replay of one product line stands after its
/// weekly steps up to `step`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LineReplay {
    pub line: String,
    /// The line's first contract start: its first step.
    pub start: i32,
    /// The last weekly step taken (`start` when none was).
    pub step: i32,
    idx: Option<usize>,
    entered: i32,
    before_renewal: usize,
    gate_passed: bool,
    transitions: Vec<Transition>,
}

impl LineReplay {
    fn new(ctx: &Ctx<'_>, line: &str, start: i32) -> Self {
        let stages = &ctx.plan.journey.stages;
        Self {
            line: line.to_owned(),
            start,
            step: start,
            idx: Some(0),
            entered: start,
            before_renewal: 0,
            gate_passed: false,
            transitions: vec![Transition {
                on: date(start),
                from: None,
                to: stages.first().map(|s| s.id.clone()),
                rule: "contract started".into(),
                inputs: BTreeMap::new(),
            }],
        }
    }

    /// Applies the stage rules on day `t`.
    fn advance(&mut self, ctx: &Ctx<'_>, t: i32) {
        let j = &ctx.plan.journey;
        let stages = &j.stages;
        let line = self.line.as_str();
        let renewal = stages.iter().position(|s| matches!(s.entry, Entry::RenewalWindow));
        let window = i64::from(j.renewal_window_days);
        let mut m = Metrics::new(ctx, t, Some(line));
        m.days_in_stage = Some(i64::from(t - self.entered));
        let dwell = t - self.entered;
        let active = ctx.has_active(t, Some(line));
        let (transitions, entered) = (&mut self.transitions, &mut self.entered);
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
            *entered = t;
        };
        let idx = &mut self.idx;
        let Some(cur) = *idx else {
            if active {
                go(Some(0), "a new contract started".into(), BTreeMap::new(), idx);
                self.gate_passed = false;
            }
            return;
        };
        if !active {
            go(None, "no active contract on this product line".into(), BTreeMap::new(), idx);
            return;
        }
        let to_renewal = ctx.days_to_renewal(t, Some(line));
        if let Some(r) = renewal {
            let evidence = || BTreeMap::from([("days_to_renewal".to_owned(), to_renewal.map(Val::Int))]);
            if cur != r
                && let Some(d) = to_renewal.filter(|d| *d <= window)
            {
                self.before_renewal = cur;
                let rule = format!("renewal window opened: {window} days before the contract end");
                go(Some(r), rule, evidence(), idx);
                // The window opened on a day between steps: date it exactly.
                let opened = (t - (window - d) as i32).max(entered_before(&self.transitions, t));
                if let Some(last) = self.transitions.last_mut() {
                    last.on = date(opened);
                }
                self.entered = opened;
                self.gate_passed = false;
                return;
            }
            if cur == r && to_renewal.is_none_or(|d| d > window) {
                go(
                    Some(self.before_renewal),
                    "renewed: the contract now ends outside the renewal window".into(),
                    evidence(),
                    idx,
                );
                self.gate_passed = false;
                return;
            }
        }
        if dwell < stages[cur].min_dwell_days as i32 {
            return;
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
                idx,
            );
            self.gate_passed = false;
            return;
        }
        let exit = &stages[cur].exit;
        if truth(&exit.eval(&m)) == Some(true) {
            self.gate_passed = true;
            if let Some(next) = stages.get(cur + 1)
                && matches!(next.entry, Entry::PreviousExit)
            {
                go(
                    Some(cur + 1),
                    format!("exit gate of {} held: {}", stages[cur].id, exit.source),
                    inputs(exit, &m),
                    idx,
                );
                self.gate_passed = false;
            }
        }
    }

    /// The line's state on the as-of date, after its last step.
    fn finish(self, ctx: &Ctx<'_>) -> LineState {
        let stages = &ctx.plan.journey.stages;
        let t = ctx.as_of;
        let mut m = Metrics::new(ctx, t, Some(&self.line));
        m.days_in_stage = Some(i64::from(t - self.entered));
        let gate = match self.idx {
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
            stage: self.idx.map(|i| stages[i].id.clone()),
            entered: date(self.entered),
            days_in_stage: i64::from(t - self.entered),
            gate,
            gate_passed: self.gate_passed,
            ttv_days,
            transitions: self.transitions,
            product_line: self.line,
        }
    }
}

/// Runs the stage rules of one product line forward from its first contract,
/// weekly, to as_of — from `from` when given (a replay of the same line from
/// the same start, up to a weekly step before as_of), else from the start.
/// Also answers the replay's state after its weekly steps, for the next
/// evaluation to continue from.
pub(crate) fn replay(ctx: &Ctx<'_>, line: &str, from: Option<&LineReplay>) -> (LineState, LineReplay) {
    let start = ctx.line_start(Some(line)).unwrap_or(ctx.as_of);
    let mut r = match from {
        Some(r) if r.line == line && r.start == start && r.step < ctx.as_of => r.clone(),
        _ => LineReplay::new(ctx, line, start),
    };
    let mut t = r.step + 7;
    while t < ctx.as_of {
        r.advance(ctx, t);
        r.step = t;
        t += 7;
    }
    let after_weeks = r.clone();
    r.advance(ctx, ctx.as_of);
    (r.finish(ctx), after_weeks)
}

/// The day after the previous transition (a re-dated transition may not
/// move before it).
fn entered_before(transitions: &[Transition], t: i32) -> i32 {
    transitions.iter().rev().nth(1).map_or(t, |p| dn(p.on) + 1)
}
