//! `keel-bench checkpoint`: evaluating every account of a workspace as of a
//! day, in full (the reference: each line's stage rules replayed weekly
//! from its first contract) against continuing from the checkpoints an
//! evaluation of the day before left. Histories are read once, before the
//! clock starts; both sides run on every core; runs alternate and the
//! medians are reported, with a check that both sides agree.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use keel_engine::{AccountState, Checkpoint, Plan, evaluate, evaluate_from};
use keel_store::{SqliteOptions, SqliteStore, Store};

/// Runs the benchmark on the database at `db`, with the journey at `journey`
/// (the default journey when `None`), `runs` times per side.
pub fn run(db: &Path, journey: Option<&Path>, runs: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let (plan, histories) = rt.block_on(async {
        let store = SqliteStore::open(&db.to_string_lossy(), SqliteOptions::default()).await?;
        let Some((ws, _)) = store.workspaces().await?.into_iter().next() else {
            bail!("no workspace in {db:?}")
        };
        let text = match journey {
            Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {p:?}"))?,
            None => keel_journey::DEFAULT_JOURNEY.to_owned(),
        };
        let journey = keel_journey::check("journey.toml", &text).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let plan = Plan::new(journey, &store.event_names(ws).await?);
        let ids = keel_app::load::account_ids(&store, ws).await?;
        let usage = keel_app::load::Usage::Since(None, true);
        let kinds = keel_store::RecordKinds::ALL;
        let histories = keel_app::load::load_list(&store, ws, &ids, kinds, usage).await?;
        anyhow::Ok((plan, histories))
    })?;
    let Some(day) = histories.iter().flat_map(|h| h.usage.iter().map(|u| u.known)).max() else {
        bail!("the workspace has no usage");
    };
    let yesterday = day - chrono::Duration::days(1);
    let checkpoints: Vec<Checkpoint> =
        keel_app::load::spread(&histories, |h| evaluate_from(&plan, h, yesterday, None).1);
    let by_id: std::collections::HashMap<&str, &Checkpoint> =
        histories.iter().map(|h| h.account.id.as_str()).zip(&checkpoints).collect();
    let continued = histories.iter().filter(|h| by_id[h.account.id.as_str()].holds(&plan, h, day)).count();
    let (mut full_s, mut incr_s) = (Vec::new(), Vec::new());
    let (mut full, mut incr): (Vec<AccountState>, Vec<AccountState>) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        full = keel_app::load::spread(&histories, |h| evaluate(&plan, h, day));
        full_s.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        incr = keel_app::load::spread(&histories, |h| {
            evaluate_from(&plan, h, day, Some(by_id[h.account.id.as_str()])).0
        });
        incr_s.push(t.elapsed().as_secs_f64());
    }
    if full != incr {
        bail!("continuing from checkpoints answered differently from the full replay");
    }
    let (f, i) = (median(&mut full_s), median(&mut incr_s));
    println!("accounts {} as of {day}; {continued} continued from yesterday's checkpoint", histories.len());
    println!("full replay        median {f:.3} s  runs {full_s:.3?}");
    println!("from checkpoints   median {i:.3} s  runs {incr_s:.3?}");
    println!("ratio {:.2}x; answers identical", f / i);
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
