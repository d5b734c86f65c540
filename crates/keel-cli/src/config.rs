//! The configuration file (`keel.toml`, or `--config FILE`): the same
//! settings as the flags and `KEEL_*` variables, which override it. See
//! docs/configuration.md.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

/// The file's settings; every one optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub db: Option<String>,
    pub workspace: Option<String>,
    pub journey: Option<PathBuf>,
    pub earliest: Option<keel_core::Date>,
    #[serde(default)]
    pub serve: ServeFile,
}

/// The `[serve]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServeFile {
    pub bind: Option<std::net::SocketAddr>,
    pub account_property: Option<String>,
    pub rate_limit: Option<f64>,
    pub tick: Option<u64>,
    pub debounce_ms: Option<u64>,
    pub key_cache_secs: Option<u64>,
    pub message_max_bytes: Option<usize>,
    pub batch_max_bytes: Option<usize>,
    pub batch_max_messages: Option<usize>,
    pub records_max_bytes: Option<usize>,
    pub dedup_window_days: Option<u32>,
    pub deliver_every: Option<u64>,
    pub secure_cookies: Option<bool>,
    pub report_ttl: Option<u64>,
    pub header_timeout: Option<u64>,
    pub body_timeout: Option<u64>,
    pub idle_timeout: Option<u64>,
    pub max_connections: Option<usize>,
    pub unknown_keys_per_minute: Option<usize>,
    pub report_concurrency: Option<usize>,
    pub report_queue: Option<usize>,
    pub report_wait: Option<u64>,
    pub report_deadline: Option<u64>,
    pub smtp: Option<String>,
    pub smtp_security: Option<String>,
    pub smtp_user: Option<String>,
    pub smtp_from: Option<String>,
}

/// Reads the file named by `--config`/`KEEL_CONFIG`, or `keel.toml` when
/// it exists; no file is no settings.
pub(crate) fn load(explicit: Option<&Path>) -> anyhow::Result<(FileConfig, Option<PathBuf>)> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new("keel.toml").exists() => PathBuf::from("keel.toml"),
        None => return Ok((FileConfig::default(), None)),
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the configuration {}", path.display()))?;
    let config: FileConfig = toml::from_str(&text).map_err(|e| {
        let place = e
            .span()
            .map(|span| {
                let line = text[..span.start].matches('\n').count() + 1;
                let column = span.start - text[..span.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        anyhow::anyhow!("{}{place}: {}", path.display(), e.message())
    })?;
    Ok((config, Some(path)))
}

/// The value to use: the flag's or variable's when given there, else the
/// file's, else the flag's default.
pub(crate) fn pick<T>(matches: &ArgMatches, id: &str, given: T, from_file: Option<T>) -> T {
    let explicit =
        matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
    match from_file {
        Some(v) if !explicit => v,
        _ => given,
    }
}
