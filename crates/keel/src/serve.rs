//! `keel serve`: the HTTP server over the workspace the command line
//! opened, with the delivery worker beside it. `keel-cli` parses the
//! arguments, opens the workspace and loads the journey; this wires what
//! it hands over into `keel-server` and `keel-delivery`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

/// Serves until Ctrl-C or SIGTERM, then finishes the requests in flight.
pub(crate) async fn serve(call: keel_cli::ServeCall) -> anyhow::Result<ExitCode> {
    let keel_cli::ServeCall { ws, journey, args, window } = call;
    let delivery = (args.deliver_every > 0)
        .then(|| {
            let smtp = args.smtp.config()?;
            if smtp.is_none() {
                eprintln!("keel: no SMTP server (--smtp): play emails fail and are dead-lettered after their retries");
            }
            anyhow::Ok(keel_delivery::DeliveryConfig {
                smtp,
                journey_version: journey.as_ref().map(|j| j.version.clone()).unwrap_or_default(),
                ..keel_delivery::DeliveryConfig::default()
            })
        })
        .transpose()?;
    let config = keel_server::Config {
        account_property: args.account_property,
        rate_limit: (args.rate_limit > 0.0)
            .then(|| keel_server::ratelimit::RateLimit::per_second(args.rate_limit)),
        journey,
        tick: std::time::Duration::from_secs(args.tick.max(1)),
        debounce: std::time::Duration::from_millis(args.debounce_ms),
        key_cache: chrono::Duration::seconds(i64::try_from(args.key_cache_secs).unwrap_or(i64::MAX)),
        limits: keel_server::segment::Limits {
            message_bytes: args.message_max_bytes,
            batch_bytes: args.batch_max_bytes,
            batch_messages: args.batch_max_messages,
        },
        records_bytes: args.records_max_bytes,
        dedup_window_days: args.dedup_window_days,
        checkpoint_every: std::time::Duration::from_millis(500),
        secure_cookies: args.secure_cookies,
        report_ttl: std::time::Duration::from_secs(args.report_ttl.max(1)),
        warm_reports: true,
        window,
        connections: keel_server::listen::ConnectionLimits {
            header_read: std::time::Duration::from_secs(args.header_timeout.max(1)),
            body_read: std::time::Duration::from_secs(args.body_timeout.max(1)),
            idle: std::time::Duration::from_secs(args.idle_timeout.max(1)),
            max_connections: args.max_connections.max(1),
        },
        unknown_keys_per_minute: args.unknown_keys_per_minute,
        heavy: keel_server::heavy::HeavyLimits {
            concurrent: args.report_concurrency.max(1),
            waiting: args.report_queue,
            wait: std::time::Duration::from_secs(args.report_wait.max(1)),
            deadline: std::time::Duration::from_secs(args.report_deadline.max(1)),
        },
    };
    let clock: keel_server::Clock = Arc::new(keel_cli::now);
    let store: Arc<dyn keel_store::Store> = Arc::from(ws.store);
    let state = keel_server::startup(store.clone(), config, clock);
    // The delivery worker runs beside the HTTP server (the server itself
    // sends nothing: delivery is its own edge crate).
    if let Some(delivery) = delivery {
        let every = std::time::Duration::from_secs(args.deliver_every.max(1));
        tokio::spawn(keel_delivery::worker(store, keel_cli::now, delivery, every));
    }
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .unwrap_or_else(|e| panic!("cannot listen for SIGTERM: {e}"));
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down: finishing the requests in flight");
    };
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("listening on {}", args.bind))?;
    let addr = listener.local_addr()?;
    eprintln!("keel: serving {} on http://{addr} — the dashboard at http://{addr}/ (Ctrl-C to stop)", ws.url);
    keel_server::serve_on(listener, state, shutdown).await.with_context(|| format!("serving on {addr}"))?;
    Ok(ExitCode::SUCCESS)
}
