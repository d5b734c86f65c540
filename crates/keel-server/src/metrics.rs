//! Operational metrics in the Prometheus text format (`GET /metrics`):
//! ingest counts by outcome, request and group sizes, commit latency, and
//! the writer's queue depth. No label names a workspace.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    /// Messages by outcome (`accepted`, `duplicate`, `rejected`).
    pub messages: Family<Labels, Counter>,
    /// Ingest requests by endpoint kind (`single`, `batch`) and HTTP status.
    pub requests: Family<Labels, Counter>,
    /// Messages per ingest request.
    pub request_messages: Histogram,
    /// Requests sharing one transaction (group commit).
    pub group_requests: Histogram,
    /// Seconds from a transaction's start to its commit.
    pub commit_seconds: Histogram,
    /// Requests waiting for the writer.
    pub queue_depth: Gauge,
    /// Accounts evaluated (streaming and scheduled).
    pub evaluations: Counter,
    /// Seconds from an event's arrival to its account's new state being stored.
    pub eval_latency_seconds: Histogram,
    /// Dashboard sign-ins by outcome (`signed_in`, `refused`, `throttled`).
    pub sign_ins: Family<Labels, Counter>,
    /// Passwords checked against a hash (one per sign-in that is not throttled,
    /// whether or not the email is a user's).
    pub password_checks: Counter,
    /// Unknown API keys presented, by answer (`unauthorized`, `throttled`).
    pub unknown_keys: Family<Labels, Counter>,
    /// Rejected Segment messages by rejection code (`unknown_account`, …).
    pub rejections: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keel");
        let messages = Family::<Labels, Counter>::default();
        let requests = Family::<Labels, Counter>::default();
        let request_messages = Histogram::new(exponential_buckets(1.0, 4.0, 7));
        let group_requests = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let queue_depth = Gauge::default();
        let evaluations = Counter::default();
        // Fine around the one-second promise, so its p99 can be read off.
        let eval_latency_seconds = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25,
            1.5, 2.0, 3.0, 5.0, 10.0,
        ]);
        registry.register("ingest_messages", "Ingested messages by outcome", messages.clone());
        registry.register("ingest_requests", "Ingest requests by kind and status", requests.clone());
        registry.register("ingest_request_messages", "Messages per ingest request", request_messages.clone());
        registry.register("ingest_group_requests", "Requests sharing one commit", group_requests.clone());
        registry.register(
            "ingest_commit_seconds",
            "Transaction time of one group commit",
            commit_seconds.clone(),
        );
        registry.register("ingest_queue_depth", "Requests waiting for the writer", queue_depth.clone());
        registry.register("evaluations", "Accounts evaluated", evaluations.clone());
        let sign_ins = Family::<Labels, Counter>::default();
        let password_checks = Counter::default();
        let unknown_keys = Family::<Labels, Counter>::default();
        registry.register("sign_ins", "Dashboard sign-ins by outcome", sign_ins.clone());
        registry.register("password_checks", "Passwords checked against a hash", password_checks.clone());
        registry.register("unknown_keys", "Unknown API keys presented, by answer", unknown_keys.clone());
        let rejections = Family::<Labels, Counter>::default();
        registry.register("ingest_rejections", "Rejected Segment messages by code", rejections.clone());
        registry.register(
            "event_to_state_seconds",
            "From an event's arrival to its account's new state being stored",
            eval_latency_seconds.clone(),
        );
        Self {
            registry,
            messages,
            requests,
            request_messages,
            group_requests,
            commit_seconds,
            queue_depth,
            evaluations,
            eval_latency_seconds,
            sign_ins,
            password_checks,
            unknown_keys,
            rejections,
        }
    }
}

/// One label.
pub(crate) fn label(name: &str, value: &str) -> Labels {
    vec![(name.to_owned(), value.to_owned())]
}

impl Metrics {
    /// Counts a rejected message under its code (and as a `rejected` outcome).
    pub fn rejected(&self, code: crate::segment::RejectionCode) {
        let name =
            serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        self.rejections.get_or_create(&label("code", &name)).inc();
        self.outcome("rejected");
    }

    /// Counts one message outcome.
    pub fn outcome(&self, status: &str) {
        self.messages.get_or_create(&vec![("outcome".to_owned(), status.to_owned())]).inc();
    }

    /// Counts one request.
    pub fn request(&self, kind: &str, status: u16) {
        let labels = vec![("kind".to_owned(), kind.to_owned()), ("status".to_owned(), status.to_string())];
        self.requests.get_or_create(&labels).inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
