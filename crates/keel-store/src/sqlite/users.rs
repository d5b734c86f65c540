//! Dashboard users and their sessions in SQLite (migration 0008).

use keel_core::Timestamp;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::rows::{from_micros, micros};
use crate::{SessionRow, StoreError, UserRow, WorkspaceId};

fn corrupt(id: impl ToString, reason: impl ToString) -> StoreError {
    StoreError::Corrupt { table: "dashboard_users", id: id.to_string(), reason: reason.to_string() }
}

fn user(row: &SqliteRow, prefix: &str) -> Result<UserRow, StoreError> {
    let col = |c: &str| format!("{prefix}{c}");
    let email: String = row.try_get(col("email").as_str())?;
    let time = |v: i64| from_micros(v).map_err(|e| corrupt(&email, e));
    let disabled: Option<i64> = row.try_get(col("disabled_at").as_str())?;
    Ok(UserRow {
        id: row.try_get(col("id").as_str())?,
        workspace: WorkspaceId(row.try_get(col("workspace_id").as_str())?),
        name: row.try_get(col("name").as_str())?,
        role: row.try_get(col("role").as_str())?,
        password_hash: row.try_get(col("password_hash").as_str())?,
        created_at: time(row.try_get(col("created_at").as_str())?)?,
        disabled_at: disabled.map(time).transpose()?,
        email: email.clone(),
    })
}

pub(crate) async fn upsert_user(pool: &SqlitePool, u: &UserRow) -> Result<UserRow, StoreError> {
    // One statement, so it takes the write lock at once (and waits for it)
    // instead of upgrading a read, which SQLite refuses under contention.
    sqlx::query(
        "INSERT INTO dashboard_users (workspace_id, email, name, role, password_hash, created_at, disabled_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (email) DO UPDATE SET name = excluded.name, role = excluded.role, \
         password_hash = excluded.password_hash, disabled_at = excluded.disabled_at \
         WHERE dashboard_users.workspace_id = excluded.workspace_id",
    )
    .bind(u.workspace.0)
    .bind(&u.email)
    .bind(&u.name)
    .bind(&u.role)
    .bind(&u.password_hash)
    .bind(micros(u.created_at))
    .bind(u.disabled_at.map(micros))
    .execute(pool)
    .await?;
    let stored = user_by_email(pool, &u.email).await?.ok_or_else(|| corrupt(&u.email, "not stored"))?;
    if stored.workspace != u.workspace {
        return Err(StoreError::Conflict(format!("{} is a user of another workspace", u.email)));
    }
    Ok(stored)
}

pub(crate) async fn user_by_email(pool: &SqlitePool, email: &str) -> Result<Option<UserRow>, StoreError> {
    let row =
        sqlx::query("SELECT * FROM dashboard_users WHERE email = ?").bind(email).fetch_optional(pool).await?;
    row.map(|r| user(&r, "")).transpose()
}

pub(crate) async fn users(pool: &SqlitePool, ws: WorkspaceId) -> Result<Vec<UserRow>, StoreError> {
    let rows = sqlx::query("SELECT * FROM dashboard_users WHERE workspace_id = ? ORDER BY email")
        .bind(ws.0)
        .fetch_all(pool)
        .await?;
    rows.iter().map(|r| user(r, "")).collect()
}

pub(crate) async fn create_session(pool: &SqlitePool, s: &SessionRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&s.token_hash)
    .bind(s.user_id)
    .bind(&s.csrf)
    .bind(micros(s.created_at))
    .bind(micros(s.expires_at))
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn session(
    pool: &SqlitePool,
    token_hash: &[u8],
    now: Timestamp,
) -> Result<Option<(SessionRow, UserRow)>, StoreError> {
    let row = sqlx::query(
        "SELECT s.token_hash, s.user_id, s.csrf, s.created_at AS s_created_at, s.expires_at, \
         u.id AS u_id, u.workspace_id AS u_workspace_id, u.email AS u_email, u.name AS u_name, \
         u.role AS u_role, u.password_hash AS u_password_hash, u.created_at AS u_created_at, \
         u.disabled_at AS u_disabled_at \
         FROM web_sessions s JOIN dashboard_users u ON u.id = s.user_id \
         WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled_at IS NULL",
    )
    .bind(token_hash)
    .bind(micros(now))
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let u = user(&row, "u_")?;
    let time = |v: i64| from_micros(v).map_err(|e| corrupt(&u.email, e));
    let s = SessionRow {
        token_hash: row.try_get("token_hash")?,
        user_id: row.try_get("user_id")?,
        csrf: row.try_get("csrf")?,
        created_at: time(row.try_get("s_created_at")?)?,
        expires_at: time(row.try_get("expires_at")?)?,
    };
    Ok(Some((s, u)))
}

pub(crate) async fn delete_session(
    pool: &SqlitePool,
    token_hash: &[u8],
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM web_sessions WHERE token_hash = ? OR expires_at <= ?")
        .bind(token_hash)
        .bind(micros(now))
        .execute(pool)
        .await?;
    Ok(())
}
