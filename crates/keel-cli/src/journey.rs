//! `keel journey check|show` and `keel init`: the journey file as code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use keel_journey::{DEFAULT_JOURNEY, Detection, Entry, Journey, MetricDef, Step, Window};

#[derive(Debug, Args)]
pub(crate) struct JourneyArgs {
    #[command(subcommand)]
    command: JourneyCommand,
}

#[derive(Debug, Subcommand)]
enum JourneyCommand {
    /// Check a journey file: every problem, as file:line:col; exit 1 if any.
    Check {
        /// The journey file (default: --journey).
        file: Option<PathBuf>,
    },
    /// Show the stages, moments and health model as tables.
    Show {
        /// The journey file (default: --journey).
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Replace an existing journey file.
    #[arg(long)]
    force: bool,
}

/// Reads and checks a journey file; diagnostics go to stderr.
pub(crate) fn load(path: &Path) -> anyhow::Result<Result<Journey, usize>> {
    let src = std::fs::read_to_string(path).with_context(|| {
        format!("reading the journey {} (`keel init` writes the default one)", path.display())
    })?;
    let name = path.display().to_string();
    Ok(keel_journey::check(&name, &src).map_err(|diagnostics| {
        for d in &diagnostics {
            eprintln!("{d}\n");
        }
        diagnostics.len()
    }))
}

pub(crate) fn run(default: &Path, args: JourneyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        JourneyCommand::Check { file } => {
            let path = file.as_deref().unwrap_or(default);
            match load(path)? {
                Ok(journey) => {
                    say!(
                        "{}: ok — {} stages, {} moments, {} plays, {} governance rules, {} health components, \
                         {} map cells (version {})",
                        path.display(),
                        journey.stages.len(),
                        journey.moments.len(),
                        journey.plays.len(),
                        journey.governance.suppress.len() + journey.governance.approval.len(),
                        journey.health.components.len(),
                        journey.map.cells.len(),
                        journey.version
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(n) => {
                    eprintln!("{}: {n} problem{}", path.display(), if n == 1 { "" } else { "s" });
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        JourneyCommand::Show { file } => {
            let path = file.as_deref().unwrap_or(default);
            match load(path)? {
                Ok(journey) => {
                    show(&journey);
                    Ok(ExitCode::SUCCESS)
                }
                Err(_) => Ok(ExitCode::FAILURE),
            }
        }
    }
}

pub(crate) fn init(path: &Path, args: InitArgs) -> anyhow::Result<ExitCode> {
    if path.exists() && !args.force {
        anyhow::bail!("{} exists; pass --force to replace it", path.display());
    }
    std::fs::write(path, DEFAULT_JOURNEY).with_context(|| format!("writing {}", path.display()))?;
    say!("wrote the default journey to {} — edit it, then `keel journey check`", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes the default journey unless a file is there already.
pub(crate) fn install_default(path: &Path) -> anyhow::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    std::fs::write(path, DEFAULT_JOURNEY).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:w$}")).collect();
        say!("  {}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        line(row);
    }
}

fn show(j: &Journey) {
    say!("{}\n", j.name);
    say!("Segments (first match wins)");
    table(
        &["segment", "touch", "rule", "overrides"],
        j.segments
            .iter()
            .map(|s| {
                let o: Vec<String> = s.overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
                vec![s.id.clone(), s.touch.as_str().to_owned(), s.when.source.clone(), o.join(" ")]
            })
            .collect(),
    );
    say!("\nStages (per product line, in order; renewal window {} days)", j.renewal_window_days);
    table(
        &["stage", "entry", "exit gate", "min dwell", "watch", "owner", "target"],
        j.stages
            .iter()
            .map(|s| {
                let entry = match &s.entry {
                    Entry::ContractStart => "contract start".to_owned(),
                    Entry::PreviousExit => "previous exit".to_owned(),
                    Entry::RenewalWindow => "renewal window".to_owned(),
                    Entry::When(e) => e.source.clone(),
                };
                vec![
                    s.id.clone(),
                    entry,
                    s.exit.source.clone(),
                    format!("{} d", s.min_dwell_days),
                    s.watch.clone(),
                    s.owner.clone(),
                    s.target_days.map_or("-".into(), |d| format!("{d} d")),
                ]
            })
            .collect(),
    );
    say!("\nFirst value: {}", j.first_value.source);
    if !j.metrics.is_empty() {
        say!("\nMetrics defined here");
        table(
            &["metric", "type", "definition"],
            j.metrics
                .iter()
                .map(|m| {
                    let window = |w: &Window| match w {
                        Window::Days(d) => format!("last {d} days"),
                        Window::Contract => "since contract start".to_owned(),
                    };
                    let def = match &m.def {
                        MetricDef::Count { events, window: w } => {
                            format!("count of {} ({})", events.join(", "), window(w))
                        }
                        MetricDef::UniqueUsers { events, window: w } => {
                            format!("users doing {} ({})", events.join(", "), window(w))
                        }
                        MetricDef::Expr(e) => e.source.clone(),
                    };
                    vec![m.name.clone(), m.ty.to_string(), def]
                })
                .collect(),
        );
    }
    say!("\nMoments that matter");
    table(
        &["moment", "severity", "detection", "owner", "play", "map cell"],
        j.moments
            .iter()
            .map(|m| {
                let detection = match &m.detection {
                    Detection::Detector { name, .. } => format!("detector {name}"),
                    Detection::When(e) => e.source.clone(),
                };
                vec![
                    m.id.clone(),
                    m.severity.as_str().to_owned(),
                    detection,
                    m.owner.clone(),
                    m.play.clone().unwrap_or_else(|| "-".into()),
                    m.cell.as_ref().map_or("-".into(), |(month, row)| format!("month {month} · {row}")),
                ]
            })
            .collect(),
    );
    let h = &j.health;
    say!(
        "\nHealth (red < {}, yellow < {}, green otherwise; min coverage {:.0}%)",
        h.red,
        h.yellow,
        h.min_coverage * 100.0
    );
    let segments: Vec<&String> = h.segment_weights.keys().collect();
    let mut header = vec!["component", "metric", "weight"];
    header.extend(segments.iter().map(|s| s.as_str()));
    header.push("curve (value→score)");
    table(
        &header,
        h.components
            .iter()
            .map(|c| {
                let mut row = vec![c.id.clone(), c.metric.clone(), format!("{}", c.weight)];
                for s in &segments {
                    row.push(
                        h.segment_weights[*s].get(&c.id).map_or(format!("{}", c.weight), |w| format!("{w}")),
                    );
                }
                let curve: Vec<String> = c.curve.iter().map(|(v, s)| format!("{v}→{s}")).collect();
                row.push(curve.join(" "));
                row
            })
            .collect(),
    );
    show_plays(j);
    say!("\nJourney map: {} phases, {} cells", j.map.phases.len(), j.map.cells.len());
    table(
        &["phase", "months"],
        j.map.phases.iter().map(|p| vec![p.id.clone(), format!("{}-{}", p.months.0, p.months.1)]).collect(),
    );
}

fn show_plays(j: &Journey) {
    if j.plays.is_empty() {
        return;
    }
    say!("\nPlays");
    table(
        &["play", "type", "trigger", "audience", "facing", "holdout", "cooldown", "steps", "outcome"],
        j.plays
            .iter()
            .map(|p| {
                let mut audience: Vec<String> = p.segments.clone();
                audience.extend(p.audience.iter().map(|a| a.source.clone()));
                let steps: Vec<&str> = p.steps.iter().map(Step::kind).collect();
                vec![
                    p.id.clone(),
                    p.kind.as_str().to_owned(),
                    p.trigger.describe(),
                    if audience.is_empty() { "all".into() } else { audience.join(" · ") },
                    if p.customer_facing { "customer" } else { "internal" }.to_owned(),
                    format!("{}%", p.holdout_pct),
                    format!("{} d", p.cooldown_days),
                    steps.join(" → "),
                    p.outcome
                        .as_ref()
                        .map_or("-".into(), |o| format!("{} within {} d", o.when.source, o.within_days)),
                ]
            })
            .collect(),
    );
    let g = &j.governance;
    let budget = g
        .contact_budget
        .map_or("none".into(), |(t, d)| format!("{t} customer-facing touch(es) per {d} days"));
    let quiet = g.quiet_hours.map_or("none".into(), |(f, t)| {
        format!("{:02}:{:02}–{:02}:{:02} local", f / 60, f % 60, t / 60, t % 60)
    });
    say!(
        "\nGovernance: contact budget {budget}; quiet hours {quiet} (default timezone {})",
        g.default_timezone
    );
    let rules = g.suppress.iter().map(|r| ("suppress", r)).chain(g.approval.iter().map(|r| ("approval", r)));
    table(
        &["rule", "kind", "covers", "when", "approver"],
        rules
            .map(|(kind, r)| {
                let mut covers: Vec<String> = r.plays.clone();
                covers.extend(r.play_types.iter().map(|t| format!("type {}", t.as_str())));
                vec![
                    r.id.clone(),
                    kind.to_owned(),
                    if covers.is_empty() { "every play".into() } else { covers.join(", ") },
                    r.when.source.clone(),
                    r.approver.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    );
}
