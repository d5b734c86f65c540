//! API keys: generation, hashing and checking.
//!
//! A key reads `keel_` followed by 32 random base-62 characters. Its first 12
//! characters (the prefix) are stored in clear to find it and to show in
//! listings; of the whole key only a SHA-256 hash is stored, so a database
//! dump does not leak usable keys. The key itself is shown once, at creation.

use std::fmt;
use std::str::FromStr;

use keel_core::Timestamp;
use keel_store::{ApiKey, Store, StoreError, WorkspaceId};
use rand::Rng;
use sha2::{Digest, Sha256};

/// Characters of the prefix stored in clear.
pub const PREFIX_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Send Segment tracking calls only (the key a Segment or RudderStack
    /// client ships, perhaps inside a browser: it can write nothing else).
    Ingest,
    /// Read accounts, state and reports.
    Read,
    /// Write records (`/api/v1/records/*`) and log touchpoints: the key of
    /// a CRM or warehouse sync.
    Write,
    /// Everything: keys, the journey, tasks and the outbox.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Write, Scope::Admin];

    /// The name used in keys and requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?} (scopes: ingest, read, write, admin)"))
    }
}

/// Whether a key with `scopes` may act in `wanted` (admin may do anything).
pub fn allows(scopes: &[Scope], wanted: Scope) -> bool {
    scopes.contains(&wanted) || scopes.contains(&Scope::Admin)
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The SHA-256 of a presented key (what caches hold instead of the key).
pub fn digest(key: &str) -> Vec<u8> {
    hash(key)
}

/// A newly created key: the secret to show once, and what was stored.
#[derive(Debug)]
pub struct NewKey {
    /// The whole key.
    pub secret: String,
    /// The stored record.
    pub stored: ApiKey,
}

/// Creates and stores a key for a workspace.
pub async fn create(
    store: &dyn Store,
    ws: WorkspaceId,
    workspace_name: &str,
    name: &str,
    scopes: &[Scope],
    now: Timestamp,
) -> Result<NewKey, StoreError> {
    let random: String = {
        // The thread's generator is not Send: drop it before awaiting.
        let mut rng = rand::rng();
        (0..SECRET_LEN).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
    };
    let secret = format!("keel_{random}");
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let stored = ApiKey {
        workspace: ws,
        workspace_name: workspace_name.to_owned(),
        name: name.to_owned(),
        prefix: secret[..PREFIX_LEN].to_owned(),
        secret_hash: hash(&secret),
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        created_at: now,
        revoked_at: None,
    };
    store.create_api_key(&stored).await?;
    Ok(NewKey { secret, stored })
}

/// A key that checked out: whose it is and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's workspace.
    pub workspace: WorkspaceId,
    /// The key's prefix (for logs and rate limits).
    pub prefix: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
}

/// Checks a presented key against the store: `None` when it is unknown,
/// wrong or revoked.
pub async fn check(store: &dyn Store, presented: &str) -> Result<Option<Principal>, StoreError> {
    if !presented.is_ascii() || presented.len() < PREFIX_LEN {
        return Ok(None);
    }
    let Some(key) = store.api_key(&presented[..PREFIX_LEN]).await? else { return Ok(None) };
    let given = hash(presented);
    // Compare every byte whatever the first difference, so timing does not
    // tell how much of a guess was right.
    let same = given.len() == key.secret_hash.len()
        && given.iter().zip(&key.secret_hash).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same || key.revoked_at.is_some() {
        return Ok(None);
    }
    let scopes = key.scopes.iter().filter_map(|s| s.parse().ok()).collect();
    Ok(Some(Principal { workspace: key.workspace, prefix: key.prefix, scopes }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_allows_everything_and_others_only_themselves() {
        assert!(allows(&[Scope::Admin], Scope::Ingest));
        assert!(allows(&[Scope::Read], Scope::Read));
        assert!(!allows(&[Scope::Read], Scope::Ingest));
        assert!(!allows(&[Scope::Ingest], Scope::Admin));
        assert!(!allows(&[Scope::Ingest], Scope::Write), "the ingest key writes no records");
        assert!(allows(&[Scope::Admin], Scope::Write));
        assert_eq!("read".parse::<Scope>(), Ok(Scope::Read));
        assert_eq!("write".parse::<Scope>(), Ok(Scope::Write));
        assert!("owner".parse::<Scope>().unwrap_err().contains("unknown scope \"owner\""));
    }
}
