//! Interning: the internal ids of accounts, users and event names, cached
//! across the transactions of one store, and the ids one transaction
//! learned, published to the cache only when it commits.

use keel_core::ExternalId;
use rustc_hash::FxHashMap as HashMap;

use crate::WorkspaceId;

/// Internal ids of accounts, users and event names, shared by every
/// transaction of one store. An id never changes once assigned (none of
/// these rows is ever deleted or renumbered), so a cached id stays true even
/// when another process writes the same file; what is not cached is looked
/// up. A transaction publishes the ids it learned only when it commits, so a
/// rolled-back insert never leaves an id behind.
#[derive(Default)]
pub(crate) struct IdCache {
    pub(crate) accounts: HashMap<(i64, ExternalId), i64>,
    pub(crate) names: HashMap<(i64, String), i64>,
    pub(crate) users: HashMap<(i64, String), i64>,
}

/// Bound on each map of the cache, past which it is cleared (a workspace
/// with more users than this pays a lookup per user per transaction).
const MAX_CACHED_IDS: usize = 4_000_000;

impl std::fmt::Debug for IdCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdCache")
            .field("accounts", &self.accounts.len())
            .field("names", &self.names.len())
            .field("users", &self.users.len())
            .finish()
    }
}

impl IdCache {
    pub(crate) fn publish(
        &mut self,
        ws: WorkspaceId,
        learned: &Learned,
        accounts: Option<&HashMap<ExternalId, i64>>,
    ) {
        fn room<K, V>(map: &mut HashMap<K, V>, more: usize) {
            if map.len() + more > MAX_CACHED_IDS {
                map.clear();
            }
        }
        if let Some(accounts) = accounts {
            room(&mut self.accounts, accounts.len());
            self.accounts.extend(accounts.iter().map(|(ext, id)| ((ws.0, ext.clone()), *id)));
        }
        room(&mut self.names, learned.names.len());
        self.names.extend(learned.names.iter().map(|(k, v)| (k.clone(), *v)));
        room(&mut self.users, learned.users.len());
        self.users.extend(learned.users.iter().map(|(k, v)| (k.clone(), *v)));
    }
}

/// The user and event-name ids one transaction looked up or assigned, to
/// publish to the [`IdCache`] at commit.
#[derive(Default)]
pub(crate) struct Learned {
    pub(crate) names: HashMap<(i64, String), i64>,
    pub(crate) users: HashMap<(i64, String), i64>,
}

impl Learned {
    /// The id of `key` in `table`: this transaction's, the cache's, the
    /// table's, or a new one.
    pub(crate) fn intern(
        &mut self,
        conn: &rusqlite::Connection,
        cache: &IdCache,
        table: &'static str,
        key: (i64, &str),
    ) -> rusqlite::Result<i64> {
        let (mine, shared, owner, column) = match table {
            "users" => (&mut self.users, &cache.users, "account_id", "external_id"),
            _ => (&mut self.names, &cache.names, "workspace_id", "name"),
        };
        let owned = (key.0, key.1.to_owned());
        if let Some(&id) = mine.get(&owned).or_else(|| shared.get(&owned)) {
            return Ok(id);
        }
        let found: Option<i64> = conn
            .prepare_cached(&format!("SELECT id FROM {table} WHERE {owner} = ?1 AND {column} = ?2"))?
            .query_row(key, |r| r.get(0))
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
        let id = match found {
            Some(id) => id,
            None => conn
                .prepare_cached(&format!(
                    "INSERT INTO {table} ({owner}, {column}) VALUES (?1, ?2) RETURNING id"
                ))?
                .query_row(key, |r| r.get(0))?,
        };
        mine.insert(owned, id);
        Ok(id)
    }
}
