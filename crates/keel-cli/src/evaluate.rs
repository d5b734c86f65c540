//! `keel evaluate` and `keel account`: the engine over the workspace.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use keel_app::load::{CHUNK, on_every_core};
use keel_app::load::{Usage, account_ids, load_chunk};
use keel_core::{Date, ExternalId};
use keel_engine::{AccountHistory, AccountState, Plan};
use keel_store::{RecordKinds, TransitionRecord};

use crate::Workspace;

#[derive(Debug, Args)]
pub(crate) struct EvaluateArgs {
    /// Evaluate as of this date (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Print every account's state as JSON lines instead of the summary.
    #[arg(long)]
    json: bool,
    /// Do not record the stage changes found (lineage) in the workspace.
    #[arg(long)]
    no_record: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AccountArgs {
    /// The account's external id.
    id: String,
    /// Evaluate as of this date (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Print the state as JSON.
    #[arg(long)]
    json: bool,
}

/// Loads the journey and binds it to the workspace; also returns its version
/// (a hash of the file), which recorded lineage carries.
pub(crate) async fn plan(ws: &Workspace, path: &Path) -> anyhow::Result<Option<(Plan, String)>> {
    let Ok(journey) = crate::journey::load(path)? else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let version = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes));
    let names = ws.store.event_names(ws.id).await?;
    Ok(Some((Plan::new(journey, &names), version)))
}

/// The stage changes of evaluated accounts, as lineage records.
fn lineage(states: &[AccountState], version: &str) -> anyhow::Result<Vec<TransitionRecord>> {
    let now = crate::now();
    let mut out = Vec::new();
    for s in states {
        let account = ExternalId::parse(&s.account).map_err(|e| anyhow::anyhow!("{e}"))?;
        for line in &s.lines {
            for t in &line.transitions {
                out.push(TransitionRecord {
                    account: account.clone(),
                    product_line: line.product_line.clone(),
                    on: t.on,
                    from: t.from.clone(),
                    to: t.to.clone(),
                    rule: t.rule.clone(),
                    inputs: serde_json::to_string(&t.inputs)?,
                    journey_version: version.to_owned(),
                    recorded_at: now,
                });
            }
        }
    }
    Ok(out)
}

pub(crate) async fn run(
    db: &str,
    workspace: &str,
    journey: &Path,
    args: EvaluateArgs,
) -> anyhow::Result<ExitCode> {
    let ws = crate::open_workspace(db, workspace).await?;
    let Some((plan, version)) = plan(&ws, journey).await? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let mut recorded = 0;
    let started = std::time::Instant::now();
    let ids = account_ids(ws.store.as_ref(), ws.id).await.context("reading the workspace")?;
    let (mut loading, mut evaluating) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    let bar = ProgressBar::new(ids.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("evaluating [{bar:40}] {pos}/{len} accounts {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut stages: BTreeMap<String, u64> = BTreeMap::new();
    let mut bands: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut moments: BTreeMap<String, u64> = BTreeMap::new();
    let mut segments: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0;
    for chunk in ids.chunks(CHUNK) {
        let t0 = std::time::Instant::now();
        let histories =
            load_chunk(ws.store.as_ref(), ws.id, chunk, RecordKinds::ALL, Usage::Since(None, true)).await?;
        total += histories.len();
        let t1 = std::time::Instant::now();
        let states = on_every_core(&histories, |h| keel_engine::evaluate(&plan, h, as_of)).await;
        loading += t1 - t0;
        evaluating += t1.elapsed();
        if !args.no_record {
            let mut tx = ws.store.begin(ws.id).await?;
            recorded += tx.record_transitions(&lineage(&states, &version)?).await?;
            tx.commit().await?;
        }
        for state in states {
            if args.json {
                say!("{}", serde_json::to_string(&state)?);
            }
            for line in &state.lines {
                *stages.entry(line.stage.clone().unwrap_or_else(|| "(ended)".into())).or_default() += 1;
            }
            *bands.entry(state.health.band.map_or("no data", |b| b.as_str())).or_default() += 1;
            *segments.entry(state.segment.clone().unwrap_or_else(|| "(none)".into())).or_default() += 1;
            for m in &state.moments {
                *moments.entry(m.id.clone()).or_default() += 1;
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    tracing::info!(?loading, ?evaluating, total = ?started.elapsed(), "records and usage loaded, accounts evaluated");
    if args.json {
        return Ok(ExitCode::SUCCESS);
    }
    say!("evaluated {total} accounts as of {as_of} with {} (version {version})", journey.display());
    if !args.no_record {
        say!("recorded {recorded} new stage changes (lineage: `keel account <id>`)");
    }
    say!("\nproduct lines by stage");
    for s in plan.journey().stages.iter().map(|s| s.id.clone()).chain(["(ended)".to_owned()]) {
        say!("  {:<20} {:>7}", s, stages.get(&s).copied().unwrap_or(0));
    }
    say!("\naccounts by health band");
    for b in ["green", "yellow", "red", "no data"] {
        let n = bands.get(b).copied().unwrap_or(0);
        say!("  {:<20} {:>7}  {:>5.1}%", b, n, 100.0 * n as f64 / total.max(1) as f64);
    }
    say!("\naccounts by segment");
    for (s, n) in &segments {
        say!("  {:<20} {:>7}", s, n);
    }
    say!("\nmoments firing");
    let mut firing: Vec<_> = moments.into_iter().collect();
    firing.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (m, n) in firing {
        say!("  {:<32} {:>7}", m, n);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn account(
    db: &str,
    workspace: &str,
    journey: &Path,
    args: AccountArgs,
) -> anyhow::Result<ExitCode> {
    let ws = crate::open_workspace(db, workspace).await?;
    let Some((plan, _)) = plan(&ws, journey).await? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let id = ExternalId::parse(&args.id).map_err(|e| anyhow::anyhow!("account id {:?}: {e}", args.id))?;
    let history = keel_app::load::history(ws.store.as_ref(), ws.id, &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account {:?} in workspace {:?}", args.id, ws.name))?;
    let state = keel_engine::evaluate(&plan, &history, as_of);
    if args.json {
        say!("{}", serde_json::to_string_pretty(&state)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_state(&history, &state);
    let recorded = ws.store.transitions(ws.id, &id).await?;
    if !recorded.is_empty() {
        say!("\n  recorded stage changes (lineage), newest last:");
        for r in recorded.iter().rev().take(6).rev() {
            say!(
                "    {} {}: {} → {} — {} (journey {})",
                r.on,
                r.product_line,
                r.from.as_deref().unwrap_or("start"),
                r.to.as_deref().unwrap_or("ended"),
                r.rule,
                r.journey_version
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn opt(v: Option<keel_engine::Val>) -> String {
    v.map_or("no data".to_owned(), |v| v.to_string())
}

fn print_state(h: &AccountHistory, s: &AccountState) {
    say!("{} ({}) as of {}", h.account.name, s.account, s.as_of);
    say!("  segment: {}", s.segment.as_deref().unwrap_or("none matched"));
    match (s.health.score, s.health.band) {
        (Some(score), Some(band)) => say!(
            "  health: {:.0} ({}), {:.0}% of the weight had data{}",
            score,
            band.as_str(),
            s.health.coverage * 100.0,
            if s.health.uncertain { " — uncertain" } else { "" }
        ),
        _ => say!("  health: no data"),
    }
    for c in &s.health.components {
        say!(
            "    {:<12} {:<22} = {:<10} score {:>5}  weight {}",
            c.id,
            c.metric,
            opt(c.value),
            c.score.map_or("-".to_owned(), |x| format!("{x:.0}")),
            c.weight
        );
    }
    for line in &s.lines {
        say!(
            "\n  {}: {} since {} ({} days){}",
            line.product_line,
            line.stage.as_deref().unwrap_or("ended"),
            line.entered,
            line.days_in_stage,
            line.ttv_days.map_or(String::new(), |d| format!("; first value after {d} days"))
        );
        if let Some(last) = line.transitions.last() {
            say!("    why: {}", last.rule);
        }
        if !line.gate.is_empty() {
            say!("    exit gate{}:", if line.gate_passed { " (passed)" } else { "" });
            for c in &line.gate {
                let mark = match c.holds {
                    Some(true) => "✓",
                    Some(false) => "✗",
                    None => "?",
                };
                let values: Vec<String> =
                    c.values.iter().map(|(k, v)| format!("{k} = {}", opt(*v))).collect();
                say!("      {mark} {}   ({})", c.expr, values.join(", "));
            }
        }
    }
    if s.moments.is_empty() {
        say!("\n  no moments firing");
    } else {
        say!("\n  moments firing:");
        for m in &s.moments {
            say!(
                "    [{}] {} — {} (owner {}, play {})",
                m.severity,
                m.id,
                m.reason,
                m.owner,
                m.play.as_deref().unwrap_or("-")
            );
        }
    }
}
