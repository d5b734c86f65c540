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
    // One-shot hashing of a stack buffer: xxh3's streaming state costs more
    // than the hash itself for inputs this short. Message ids are at most 256
    // bytes (`MessageId::parse`); longer input still hashes, via the heap.
    let id = message_id.as_bytes();
    let mut buf = [0u8; 8 + 256];
    if id.len() <= 256 {
        buf[..8].copy_from_slice(&ws.0.to_le_bytes());
        buf[8..8 + id.len()].copy_from_slice(id);
        xxh3_64(&buf[..8 + id.len()]) as i64
    } else {
        xxh3_64(&[&ws.0.to_le_bytes()[..], id].concat()) as i64
    }
}
