//! Messages held until their user joins an account.

use keel_core::{Timestamp, UserId};

/// How many messages a workspace holds at most; beyond, ingest refuses them.
pub const MAX_HELD: u64 = 200_000;

/// An event or identify of a user who belongs to no account yet, kept until
/// a `group` (or `alias`) call attributes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldMessage {
    /// The message's id (a message is held once).
    pub message_id: String,
    /// Whose it is.
    pub user: UserId,
    /// When the request that carried it arrived.
    pub received_at: Timestamp,
    /// The message as the ingest layer reads it back (opaque to the store).
    pub payload: String,
}
