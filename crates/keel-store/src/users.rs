//! Dashboard users and their signed-in sessions.

use keel_core::Timestamp;
use serde::Serialize;

use crate::WorkspaceId;

/// A person who signs in to the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRow {
    /// Id (0 before it is stored).
    pub id: i64,
    /// The workspace they work in.
    pub workspace: WorkspaceId,
    /// Their email: what they sign in with, and how a CSM's book is found
    /// (accounts whose owner is this email).
    pub email: String,
    /// Display name.
    pub name: String,
    /// `admin`, `leader` or `csm`.
    pub role: String,
    /// Argon2id PHC string of the password.
    #[serde(skip)]
    pub password_hash: String,
    /// Created.
    pub created_at: Timestamp,
    /// Disabled: they can no longer sign in.
    pub disabled_at: Option<Timestamp>,
}

/// A signed-in browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the cookie's token.
    pub token_hash: Vec<u8>,
    /// Whose.
    pub user_id: i64,
    /// The token every form of the session carries.
    pub csrf: String,
    /// Signed in at.
    pub created_at: Timestamp,
    /// Valid until.
    pub expires_at: Timestamp,
}
