//! Content hashes (unchanged-row detection) and message-id keys (deduplication).

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::WorkspaceId;

/// A 64-bit hash of a record's canonical JSON form. Two records with equal
/// hashes are treated as equal by upserts, which then skip the write.
pub fn content_hash<T: Serialize>(record: &T) -> i64 {
    // Serialising plain data structs to JSON cannot fail.
    let bytes = serde_json::to_vec(record).unwrap_or_default();
    xxh3_64(&bytes) as i64
}

/// The deduplication key of a message id in a workspace.
pub(crate) fn message_key(ws: WorkspaceId, message_id: &str) -> i64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(&ws.0.to_le_bytes());
    hasher.update(message_id.as_bytes());
    hasher.digest() as i64
}
