//! Exact deduplication of event message ids: the 64-bit keys a
//! transaction claims (in memory, then a sorted run, written to
//! `event_keys` in key order), and the claim itself, which compares a taken
//! key's stored message id and probes the next key on a genuine collision.

use rustc_hash::FxHashMap as HashMap;

use keel_core::Event;

use crate::WorkspaceId;
use crate::hash::message_key;

/// How many claimed keys are held in the hash map before they move to the
/// sorted in-memory run, and how many the run holds before it is written to
/// `event_keys` ahead of the commit (bounding memory to about 0.6 GiB).
pub(crate) const MAX_PENDING_KEYS: usize = 2_000_000;
const MAX_HELD_KEYS: usize = 32_000_000;

/// The deduplication keys a transaction has claimed and not yet written to
/// `event_keys`. They are written at commit, sorted, which turns one random
/// B-tree insert per event into one ordered pass — and into a plain append
/// on a first bulk load.
#[derive(Default)]
pub(crate) struct ClaimedKeys {
    /// The newest claims: key → event id.
    pub(crate) pending: HashMap<i64, i64>,
    /// Older claims, sorted.
    pub(crate) held: SortedKeys,
    /// Whether `event_keys` may hold keys this lookup cannot see in memory:
    /// it held any when the transaction began, or some claims were already
    /// written. When false, a key in neither map is new without a probe.
    pub(crate) probe_table: bool,
}

impl ClaimedKeys {
    pub(crate) fn get(&self, key: i64) -> Option<i64> {
        self.pending.get(&key).copied().or_else(|| self.held.get(key))
    }

    /// Moves the pending claims to the sorted run, writing everything to the
    /// table when the run is full.
    pub(crate) fn spill(&mut self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        let mut new: Vec<(u64, i64)> = self.pending.drain().map(|(k, id)| (k as u64, id)).collect();
        self.pending.shrink_to(0);
        new.sort_unstable();
        self.held.merge(new);
        if self.held.len() >= MAX_HELD_KEYS {
            self.write(conn)?;
        }
        Ok(())
    }

    /// Writes every claim to `event_keys`, in key order.
    pub(crate) fn write(&mut self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        let mut new: Vec<(u64, i64)> = self.pending.drain().map(|(k, id)| (k as u64, id)).collect();
        self.pending.shrink_to(0);
        new.sort_unstable();
        // Nothing held (every small transaction): the sorted claims are the
        // whole run; no merge, no directory to build.
        let pairs = if self.held.len() == 0 {
            new
        } else {
            if !new.is_empty() {
                self.held.merge(new);
            }
            std::mem::take(&mut self.held).into_pairs()
        };
        let mut insert = conn.prepare_cached("INSERT INTO event_keys (key, event_id) VALUES (?1, ?2)")?;
        // Unsigned order is the directory's; write in signed (rowid) order.
        let split = pairs.partition_point(|(k, _)| (*k as i64) >= 0);
        for (key, id) in pairs[split..].iter().chain(&pairs[..split]) {
            insert.execute((*key as i64, id))?;
        }
        self.probe_table = true;
        Ok(())
    }
}

/// A sorted set of hash keys with their event ids, and a directory on the
/// keys' top 20 bits: the keys are uniformly spread, so a lookup reads one
/// directory entry and a bucket of a few keys — two or three cache misses
/// instead of a binary search's twenty-odd over millions of keys.
#[derive(Default)]
pub(crate) struct SortedKeys {
    /// Sorted as unsigned (the order of the directory).
    keys: Vec<u64>,
    /// `ids[i]` is the event id of `keys[i]`.
    ids: Vec<i64>,
    /// `keys[dir[b]..dir[b + 1]]` are the keys whose top bits are `b`.
    dir: Vec<u32>,
}

impl SortedKeys {
    const BITS: u32 = 20;

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    fn into_pairs(self) -> Vec<(u64, i64)> {
        self.keys.into_iter().zip(self.ids).collect()
    }

    pub(crate) fn get(&self, key: i64) -> Option<i64> {
        let key = key as u64;
        let b = (key >> (64 - Self::BITS)) as usize;
        let (lo, hi) = (*self.dir.get(b)? as usize, *self.dir.get(b + 1)? as usize);
        self.keys[lo..hi].iter().position(|k| *k == key).map(|i| self.ids[lo + i])
    }

    /// Adds pairs sorted by key.
    fn merge(&mut self, new: Vec<(u64, i64)>) {
        let total = self.keys.len() + new.len();
        let (mut keys, mut ids) = (Vec::with_capacity(total), Vec::with_capacity(total));
        let old_keys = std::mem::take(&mut self.keys);
        let old_ids = std::mem::take(&mut self.ids);
        let mut old = old_keys.into_iter().zip(old_ids).peekable();
        let mut new = new.into_iter().peekable();
        loop {
            let next = match (old.peek(), new.peek()) {
                (Some(x), Some(y)) if x.0 <= y.0 => old.next(),
                (_, Some(_)) => new.next(),
                (Some(_), None) => old.next(),
                (None, None) => break,
            };
            if let Some((k, id)) = next {
                keys.push(k);
                ids.push(id);
            }
        }
        let buckets = 1usize << Self::BITS;
        let mut dir = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for b in 0..buckets as u64 {
            while i < keys.len() && (keys[i] >> (64 - Self::BITS)) < b {
                i += 1;
            }
            dir.push(i as u32);
        }
        dir.push(keys.len() as u32);
        (self.keys, self.ids, self.dir) = (keys, ids, dir);
    }
}

/// Who holds a deduplication key.
enum Holder {
    /// An event earlier in the same batch (not inserted yet).
    Batch(usize),
    /// A stored event (or one inserted earlier in this transaction).
    Event(i64),
}

pub(crate) fn claim(
    conn: &rusqlite::Connection,
    ws: WorkspaceId,
    keys: &mut ClaimedKeys,
    next: &mut i64,
    rows: &[Event],
) -> rusqlite::Result<Vec<Option<i64>>> {
    use rusqlite::OptionalExtension;
    let mut probe = conn.prepare_cached("SELECT event_id FROM event_keys WHERE key = ?1")?;
    let mut owner = conn.prepare_cached(
        "SELECT e.message_id, a.workspace_id FROM events e JOIN accounts a ON a.id = e.account_id WHERE e.id = ?1",
    )?;
    // Event ids from `first` on belong to this batch: `batch[id - first]` is
    // the row that claimed the id.
    let first = *next;
    let mut batch: Vec<usize> = Vec::with_capacity(rows.len());
    let mut assigned = vec![None; rows.len()];
    for (i, event) in rows.iter().enumerate() {
        let message = event.message_id.as_str();
        let mut key = message_key(ws, message);
        loop {
            let holder = match keys.get(key) {
                Some(id) if id >= first => Some(Holder::Batch(batch[(id - first) as usize])),
                Some(id) => Some(Holder::Event(id)),
                None if !keys.probe_table => None,
                None => probe.query_row([key], |r| r.get(0)).optional()?.map(Holder::Event),
            };
            let same = match holder {
                None => {
                    keys.pending.insert(key, *next);
                    batch.push(i);
                    assigned[i] = Some(*next);
                    *next += 1;
                    break;
                }
                Some(Holder::Batch(j)) => rows[j].message_id == event.message_id,
                Some(Holder::Event(id)) => owner
                    .query_row([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .optional()?
                    .is_some_and(|(m, w)| w == ws.0 && m == message),
            };
            if same {
                break; // a duplicate: assigned[i] stays None
            }
            // A 64-bit hash collision with another message: probe the next key.
            key = key.wrapping_add(1);
        }
    }
    Ok(assigned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn spilled_claims_stay_visible_and_are_written_in_rowid_order() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE event_keys (key INTEGER PRIMARY KEY, event_id INTEGER NOT NULL)")
            .unwrap();
        let mut keys = super::ClaimedKeys::default();
        let claims = [(i64::MIN, 1), (-5, 2), (0, 3), (7, 4), (i64::MAX, 5), (1 << 40, 6)];
        for (key, id) in &claims[..3] {
            keys.pending.insert(*key, *id);
        }
        keys.spill(&conn).unwrap();
        for (key, id) in &claims[3..] {
            keys.pending.insert(*key, *id);
        }
        for (key, id) in claims {
            assert_eq!(keys.get(key), Some(id), "key {key}");
        }
        assert_eq!(keys.get(8), None);
        assert!(!keys.probe_table);
        keys.write(&conn).unwrap();
        assert!(keys.probe_table, "written claims must be probed for");
        let mut stmt = conn.prepare("SELECT key, event_id FROM event_keys ORDER BY rowid").unwrap();
        let stored: Vec<(i64, i64)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        let mut expected = claims.to_vec();
        expected.sort();
        assert_eq!(stored, expected);
    }
}
