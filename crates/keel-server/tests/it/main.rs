//! keel-server's integration tests, in one binary (one link instead of
//! seven): a real server on a loopback port over a real SQLite file
//! (`common`), driven over HTTP — the API, ingest, plays, the dashboard's
//! pages — and in a real headless Chromium (`browser`); the error table is
//! walked in-process (`error_codes`).
#![allow(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod common;

mod api;
mod browser;
mod error_codes;
mod hardening;
mod ingest;
mod plays;
mod plays_api;
mod roles;
mod timeline;
mod web;
