//! The bulk-write fast path: prepared statements on the very SQLite handle
//! that sqlx holds for the current transaction.
//!
//! sqlx binds parameters through a channel to its worker thread and copies
//! each one; for event appends that costs more than SQLite's own work. Here
//! the handle is borrowed while sqlx's lock on it is held, wrapped in a
//! non-owning rusqlite connection, and used for plain prepared statements
//! inside the transaction sqlx began.
#![allow(unsafe_code, reason = "borrowing sqlx's raw sqlite3 handle needs one FFI-level call")]

use std::ptr::NonNull;

/// Runs `f` with a rusqlite view of `handle`.
///
/// The caller must hold sqlx's `LockedSqliteHandle` for `handle` for the
/// whole call, so that nothing else uses the connection meanwhile.
pub(crate) fn with_connection<T, E: From<rusqlite::Error>>(
    handle: NonNull<libsqlite3_sys::sqlite3>,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, E>,
) -> Result<T, E> {
    // SAFETY: `handle` is a live connection owned by sqlx, locked by the
    // caller for the duration of this call. `from_handle` does not take
    // ownership: dropping the wrapper finalizes the statements it prepared
    // and leaves the connection open.
    let conn = unsafe { rusqlite::Connection::from_handle(handle.as_ptr()) }?;
    let out = f(&conn);
    drop(conn);
    out
}
