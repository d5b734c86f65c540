//! The load generator of the ingest benchmark: `concurrency` loops, each
//! sending Segment track calls to `keel serve` as fast as the answers come,
//! for a fixed time. Every event has a fresh message id and names its
//! account in `context.groupId`. Reports accepted events per second and
//! request latency percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

/// What to send.
pub struct Load {
    pub url: String,
    pub key: String,
    pub concurrency: usize,
    pub batch: usize,
    pub seconds: f64,
    pub accounts: usize,
}

/// What happened.
#[derive(Debug, Serialize)]
pub struct Report {
    pub concurrency: usize,
    pub batch: usize,
    pub requests: u64,
    pub accepted_events: u64,
    pub failed_requests: u64,
    pub seconds: f64,
    pub events_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

fn event(n: u64, loop_id: usize, accounts: usize) -> Value {
    let name =
        ["report_viewed", "dashboard_shared", "task_completed", "integration_synced"][(n % 4) as usize];
    json!({
        "type": "track",
        "messageId": format!("load-{loop_id}-{n}"),
        "userId": format!("user-{}", n % 5_000),
        "event": name,
        "timestamp": "2026-11-01T10:00:00Z",
        "context": {"groupId": format!("acct-{:06}", n as usize % accounts)},
        "properties": {"n": n, "source": "keel-bench"},
    })
}

pub async fn run(load: Load) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(load.concurrency).build()?;
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(load.seconds);
    let load = Arc::new(load);
    let mut loops = Vec::new();
    for loop_id in 0..load.concurrency {
        let (client, load, accepted, failed) =
            (client.clone(), load.clone(), accepted.clone(), failed.clone());
        loops.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let (path, body) = if load.batch == 1 {
                    n += 1;
                    ("/v1/track", event(n, loop_id, load.accounts))
                } else {
                    let items: Vec<Value> = (0..load.batch)
                        .map(|_| {
                            n += 1;
                            event(n, loop_id, load.accounts)
                        })
                        .collect();
                    ("/v1/batch", json!({ "batch": items }))
                };
                let sent = Instant::now();
                let res = client
                    .post(format!("{}{path}", load.url))
                    .basic_auth(&load.key, Some(""))
                    .json(&body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        let answer: Value = r.json().await.unwrap_or(Value::Null);
                        latencies.push(sent.elapsed());
                        let stored = if load.batch == 1 {
                            u64::from(answer["result"]["status"] == "accepted")
                        } else {
                            answer["accepted"].as_u64().unwrap_or(0)
                        };
                        accepted.fetch_add(stored, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for l in loops {
        latencies.extend(l.await?);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    let accepted = accepted.load(Ordering::Relaxed);
    Ok(Report {
        concurrency: load.concurrency,
        batch: load.batch,
        requests: latencies.len() as u64,
        accepted_events: accepted,
        failed_requests: failed.load(Ordering::Relaxed),
        seconds,
        events_per_second: accepted as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

/// Plain durable inserts: the floor of what storing these events costs.
pub fn peer(db: &std::path::Path, batch: usize, seconds: f64) -> anyhow::Result<Report> {
    let conn = rusqlite::Connection::open(db)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS events (message_id TEXT PRIMARY KEY, account TEXT NOT NULL,
             user_id TEXT NOT NULL, name TEXT NOT NULL, ts TEXT NOT NULL, properties TEXT NOT NULL);",
    )?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut latencies = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        let sent = Instant::now();
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO events (message_id, account, user_id, name, ts, properties) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )?;
            for _ in 0..batch {
                n += 1;
                let e = event(n, 0, 1_000);
                stmt.execute((
                    e["messageId"].as_str(),
                    e["context"]["groupId"].as_str(),
                    e["userId"].as_str(),
                    e["event"].as_str(),
                    e["timestamp"].as_str(),
                    e["properties"].to_string(),
                ))?;
            }
        }
        tx.commit()?;
        latencies.push(sent.elapsed());
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1000.0
    };
    Ok(Report {
        concurrency: 1,
        batch,
        requests: latencies.len() as u64,
        accepted_events: n,
        failed_requests: 0,
        seconds,
        events_per_second: n as f64 / seconds,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    })
}
