//! A person's data: what the workspace holds about them (an access
//! request), and forgetting them (an erasure request).

use serde::Serialize;

/// Everything a workspace holds about one person, found by contact id or
/// email: the answer to an access request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PersonData {
    /// Their contact records (every role period), as stored.
    pub contacts: Vec<serde_json::Value>,
    /// The product user ids taken to be theirs (the contact ids).
    pub user_ids: Vec<String>,
    /// Which accounts those users belonged to, and when.
    pub memberships: Vec<serde_json::Value>,
    /// Their product events, oldest first.
    pub events: Vec<serde_json::Value>,
    /// Their survey answers.
    pub surveys: Vec<serde_json::Value>,
    /// Messages held for them (not yet attributed to an account).
    pub held_messages: Vec<serde_json::Value>,
    /// Tasks, sends waiting for approval and deliveries that name them
    /// (their email or name appears in the text).
    pub mentions: Vec<serde_json::Value>,
}

/// What forgetting a person changed, by place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ForgetReport {
    /// `(place, rows changed)`, in the order they were done.
    pub changed: Vec<(String, u64)>,
}

impl ForgetReport {
    /// Rows changed in all.
    pub fn total(&self) -> u64 {
        self.changed.iter().map(|(_, n)| n).sum()
    }
}

/// What replaces a forgotten person's email or name in free text.
pub const FORGOTTEN: &str = "[forgotten]";

/// One admin action, as the append-only audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: keel_core::Timestamp,
    /// Who: a dashboard user's email, `key:PREFIX`, or `cli:USER`.
    pub actor: String,
    /// What: `key.created`, `key.revoked`, `user.added`, `user.disabled`,
    /// `journey.served`, `outbox.approved`, `outbox.rejected`, `person.forgotten`.
    pub action: String,
    /// On what (a key prefix, an email, a journey version, an outbox id).
    pub subject: String,
    /// Anything else worth keeping, in words.
    pub detail: String,
}
