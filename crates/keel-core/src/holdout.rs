//! Holdout assignment: which accounts a play leaves alone, so its effect can
//! be measured. Deterministic — the same (account, play) is always in or out —
//! and shared by the play runner and the demo generator that plants effects.

/// Whether `account` is held out of `play`, which holds out `pct` percent of
/// accounts: the xxh3 hash of `account \x1f play`, modulo 10 000, is below
/// `pct × 100`.
pub fn held_out(account: &str, play: &str, pct: f64) -> bool {
    let h = xxhash_rust::xxh3::xxh3_64(format!("{account}\u{1f}{play}").as_bytes());
    ((h % 10_000) as f64) < pct * 100.0
}
