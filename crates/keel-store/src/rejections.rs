//! Refused ingest messages, kept for operators to read.

use keel_core::Timestamp;
use serde::Serialize;

/// How many refused messages a workspace keeps (the latest).
pub const KEPT_REJECTIONS: i64 = 10_000;

/// A Segment message Keel refused, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectionRow {
    /// When the request arrived.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// The rejection code (`unknown_account`, `invalid_timestamp`, …).
    pub code: String,
    /// What to change.
    pub reason: String,
    /// The message's id, when it had a readable one.
    pub message_id: Option<String>,
    /// The message's user, when it had a readable one.
    pub user_id: Option<String>,
}
