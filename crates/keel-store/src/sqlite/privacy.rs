//! Access and erasure of one person's data (see `crate::privacy`).

use sqlx::{Row, SqliteConnection};

use super::SqliteStore;
use crate::privacy::{FORGOTTEN, ForgetReport, PersonData};
use crate::{StoreError, WorkspaceId};

/// The person as the workspace knows them: base contact ids (without the
/// `~FROM` suffix of closed role periods), emails and names.
struct Person {
    ids: Vec<String>,
    emails: Vec<String>,
    names: Vec<String>,
}

/// Free-text columns a person's email or name may have been rendered into.
const TEXT_COLUMNS: &[(&str, &[&str])] = &[
    ("tasks", &["title", "description", "outcome", "snooze_reason", "evidence"]),
    ("outbox", &["payload", "note"]),
    ("deliveries", &["payload", "last_error"]),
    ("play_runs", &["run"]),
    ("play_decisions", &["detail", "inputs"]),
    ("touchpoints", &["notes", "outcome"]),
    ("ingest_rejections", &["reason"]),
];

async fn find(conn: &mut SqliteConnection, ws: WorkspaceId, who: &str) -> Result<Option<Person>, StoreError> {
    let rows = sqlx::query(
        "SELECT external_id, email, name FROM contacts WHERE workspace_id = ?1 \
         AND (external_id = ?2 OR external_id LIKE ?2 || '~%' OR lower(email) = lower(?2))",
    )
    .bind(ws.0)
    .bind(who)
    .fetch_all(&mut *conn)
    .await?;
    let mut person = Person { ids: Vec::new(), emails: Vec::new(), names: Vec::new() };
    for r in &rows {
        let id: String = r.try_get("external_id")?;
        let base = id.split('~').next().unwrap_or(&id).to_owned();
        let email: String = r.try_get("email")?;
        let name: String = r.try_get("name")?;
        push_new(&mut person.ids, base);
        if !email.trim().is_empty() {
            push_new(&mut person.emails, email.clone());
            push_new(&mut person.emails, email.to_lowercase());
        }
        // A name is replaced in free text only when it cannot be a common word.
        if name.chars().count() >= 4 && name != email {
            push_new(&mut person.names, name);
        }
    }
    if person.ids.is_empty() {
        // Someone never identified as a contact: a product user id alone.
        let known: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM users u JOIN accounts a ON a.id = u.account_id \
             WHERE a.workspace_id = ? AND u.external_id = ? LIMIT 1",
        )
        .bind(ws.0)
        .bind(who)
        .fetch_optional(&mut *conn)
        .await?;
        let held: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM held_messages WHERE workspace_id = ? AND user_id = ? LIMIT 1")
                .bind(ws.0)
                .bind(who)
                .fetch_optional(&mut *conn)
                .await?;
        if known.is_none() && held.is_none() {
            return Ok(None);
        }
        person.ids.push(who.to_owned());
    }
    Ok(Some(person))
}

/// The rows of `sql`, whose `?1` is the workspace and `?2` the person's ids (a JSON array).
async fn of_person(
    conn: &mut SqliteConnection,
    ws: WorkspaceId,
    ids: &str,
    sql: &str,
) -> Result<Vec<sqlx::sqlite::SqliteRow>, StoreError> {
    Ok(sqlx::query(sql).bind(ws.0).bind(ids).fetch_all(conn).await?)
}

fn push_new(into: &mut Vec<String>, s: String) {
    if !into.contains(&s) {
        into.push(s);
    }
}

fn json(raw: Option<String>) -> serde_json::Value {
    raw.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(serde_json::Value::Null)
}

impl SqliteStore {
    pub(super) async fn person_data(
        &self,
        ws: WorkspaceId,
        who: &str,
    ) -> Result<Option<PersonData>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let Some(person) = find(&mut conn, ws, who).await? else { return Ok(None) };
        let ids = serde_json::to_string(&person.ids).unwrap_or_default();
        let mut data = PersonData { user_ids: person.ids.clone(), ..PersonData::default() };
        for r in of_person(
            &mut conn,
            ws,
            &ids,
            "SELECT c.external_id, a.external_id AS account, c.email, c.name, c.role, c.active_from, c.active_to \
             FROM contacts c JOIN accounts a ON a.id = c.account_id WHERE c.workspace_id = ?1 \
             AND (c.external_id IN (SELECT value FROM json_each(?2)) \
                  OR EXISTS (SELECT 1 FROM json_each(?2) j WHERE c.external_id LIKE j.value || '~%'))",
        )
        .await?
        {
            data.contacts.push(serde_json::json!({
                "id": r.try_get::<String, _>("external_id")?,
                "account_id": r.try_get::<String, _>("account")?,
                "email": r.try_get::<String, _>("email")?,
                "name": r.try_get::<String, _>("name")?,
                "role": r.try_get::<String, _>("role")?,
                "active_from": r.try_get::<String, _>("active_from")?,
                "active_to": r.try_get::<Option<String>, _>("active_to")?,
            }));
        }
        for r in of_person(
            &mut conn,
            ws,
            &ids,
            "SELECT m.user_id, a.external_id AS account, m.since, m.until FROM memberships m \
             JOIN accounts a ON a.id = m.account_id \
             WHERE m.workspace_id = ? AND m.user_id IN (SELECT value FROM json_each(?)) ORDER BY m.since",
        )
        .await?
        {
            data.memberships.push(serde_json::json!({
                "user_id": r.try_get::<String, _>("user_id")?,
                "account_id": r.try_get::<String, _>("account")?,
                "since": micros_text(r.try_get("since")?),
                "until": r.try_get::<Option<i64>, _>("until")?.map(micros_text),
            }));
        }
        for r in of_person(
            &mut conn,
            ws,
            &ids,
            "SELECT e.message_id, u.external_id AS user_id, a.external_id AS account, n.name, e.ts, e.received_at, \
             e.properties FROM events e JOIN users u ON u.id = e.user_id JOIN accounts a ON a.id = e.account_id \
             JOIN event_names n ON n.id = e.name_id \
             WHERE a.workspace_id = ? AND u.external_id IN (SELECT value FROM json_each(?)) ORDER BY e.ts, e.id",
        )
        .await?
        {
            data.events.push(serde_json::json!({
                "message_id": r.try_get::<String, _>("message_id")?,
                "user_id": r.try_get::<String, _>("user_id")?,
                "account_id": r.try_get::<String, _>("account")?,
                "event": r.try_get::<String, _>("name")?,
                "timestamp": micros_text(r.try_get("ts")?),
                "received_at": micros_text(r.try_get("received_at")?),
                "properties": json(r.try_get("properties")?),
            }));
        }
        for r in of_person(
            &mut conn,
            ws,
            &ids,
            "SELECT s.external_id, a.external_id AS account, s.kind, s.score, s.comment, s.responded_at FROM surveys s \
             JOIN accounts a ON a.id = s.account_id \
             WHERE s.workspace_id = ? AND s.contact_external_id IN (SELECT value FROM json_each(?))",
        )
        .await?
        {
            data.surveys.push(serde_json::json!({
                "id": r.try_get::<String, _>("external_id")?,
                "account_id": r.try_get::<String, _>("account")?,
                "kind": r.try_get::<String, _>("kind")?,
                "score": r.try_get::<i64, _>("score")?,
                "comment": r.try_get::<Option<String>, _>("comment")?,
                "responded_at": micros_text(r.try_get("responded_at")?),
            }));
        }
        for r in of_person(
            &mut conn,
            ws,
            &ids,
            "SELECT message_id, received_at, payload FROM held_messages \
             WHERE workspace_id = ? AND user_id IN (SELECT value FROM json_each(?)) ORDER BY id",
        )
        .await?
        {
            data.held_messages.push(serde_json::json!({
                "message_id": r.try_get::<String, _>("message_id")?,
                "received_at": micros_text(r.try_get("received_at")?),
                "message": json(r.try_get("payload")?),
            }));
        }
        let needles: Vec<&String> = person.emails.iter().chain(&person.names).collect();
        for (table, columns) in &TEXT_COLUMNS[..3] {
            for column in *columns {
                for needle in &needles {
                    let sql = format!(
                        "SELECT id, {column} AS text FROM {table} WHERE workspace_id = ? AND instr({column}, ?) > 0"
                    );
                    for r in sqlx::query(&sql).bind(ws.0).bind(needle.as_str()).fetch_all(&mut *conn).await? {
                        data.mentions.push(serde_json::json!({
                            "place": format!("{table}.{column}"),
                            "id": r.try_get::<i64, _>("id")?,
                            "text": r.try_get::<Option<String>, _>("text")?,
                        }));
                    }
                }
            }
        }
        Ok(Some(data))
    }

    pub(super) async fn forget(
        &self,
        ws: WorkspaceId,
        who: &str,
    ) -> Result<Option<ForgetReport>, StoreError> {
        let _turn = self.turn.lock().await;
        let mut conn = self.pool.acquire().await?;
        // Deleted and overwritten cells are zeroed, not left in free space.
        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *conn).await?;
        let outcome = self.forget_on(&mut conn, ws, who).await;
        sqlx::query("PRAGMA secure_delete = OFF").execute(&mut *conn).await?;
        let Some(report) = outcome? else { return Ok(None) };
        // Rebuild the file from live rows only, then empty the write-ahead
        // log, so no copy of the old bytes stays in either.
        sqlx::query("VACUUM").execute(&mut *conn).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await?;
        Ok(Some(report))
    }

    async fn forget_on(
        &self,
        conn: &mut SqliteConnection,
        ws: WorkspaceId,
        who: &str,
    ) -> Result<Option<ForgetReport>, StoreError> {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let result = forget_in(conn, ws, who).await;
        match result {
            Ok(Some(report)) => {
                sqlx::query("COMMIT").execute(&mut *conn).await?;
                // Cached ids of the renamed users are stale now.
                if let Ok(mut ids) = self.ids.lock() {
                    *ids = super::intern::IdCache::default();
                }
                Ok(Some(report))
            }
            other => {
                sqlx::query("ROLLBACK").execute(&mut *conn).await?;
                other
            }
        }
    }
}

async fn forget_in(
    conn: &mut SqliteConnection,
    ws: WorkspaceId,
    who: &str,
) -> Result<Option<ForgetReport>, StoreError> {
    let Some(person) = find(conn, ws, who).await? else { return Ok(None) };
    let ids = serde_json::to_string(&person.ids).unwrap_or_default();
    let mut report = ForgetReport::default();
    let mut note = |place: &str, n: u64| {
        if n > 0 {
            report.changed.push((place.to_owned(), n));
        }
    };
    let run = |sql: &'static str| sqlx::query(sql).bind(ws.0).bind(ids.clone());
    note(
        "contacts",
        run("DELETE FROM contacts WHERE workspace_id = ?1 AND (external_id IN (SELECT value FROM json_each(?2)) \
             OR EXISTS (SELECT 1 FROM json_each(?2) j WHERE contacts.external_id LIKE j.value || '~%'))")
        .execute(&mut *conn)
        .await?
        .rows_affected(),
    );
    note(
        "surveys (comment and contact)",
        run("UPDATE surveys SET comment = NULL, contact_external_id = NULL \
             WHERE workspace_id = ?1 AND contact_external_id IN (SELECT value FROM json_each(?2))")
        .execute(&mut *conn)
        .await?
        .rows_affected(),
    );
    note(
        "held messages",
        run("DELETE FROM held_messages WHERE workspace_id = ?1 AND user_id IN (SELECT value FROM json_each(?2))")
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    );
    note(
        "ingest rejections (user id)",
        run("UPDATE ingest_rejections SET user_id = NULL \
             WHERE workspace_id = ?1 AND user_id IN (SELECT value FROM json_each(?2))")
        .execute(&mut *conn)
        .await?
        .rows_affected(),
    );
    // Their product usage stays counted, under a pseudonym no one can map
    // back: the events' properties go, the user id is replaced everywhere.
    for id in &person.ids {
        let pseudonym = format!("forgotten-{}", uuid_like());
        note(
            "events (properties)",
            sqlx::query(
                "UPDATE events SET properties = NULL WHERE properties IS NOT NULL AND user_id IN \
                 (SELECT u.id FROM users u JOIN accounts a ON a.id = u.account_id \
                  WHERE a.workspace_id = ? AND u.external_id = ?)",
            )
            .bind(ws.0)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        );
        note(
            "product users (renamed)",
            sqlx::query(
                "UPDATE users SET external_id = ?3 WHERE external_id = ?2 AND account_id IN \
                 (SELECT id FROM accounts WHERE workspace_id = ?1)",
            )
            .bind(ws.0)
            .bind(id)
            .bind(&pseudonym)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        );
        note(
            "memberships (renamed)",
            sqlx::query("UPDATE memberships SET user_id = ?3 WHERE workspace_id = ?1 AND user_id = ?2")
                .bind(ws.0)
                .bind(id)
                .bind(&pseudonym)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
        );
    }
    // Their email or name wherever a play or a person wrote it into text.
    let needles: Vec<&String> = person.emails.iter().chain(&person.names).collect();
    for (table, columns) in TEXT_COLUMNS {
        for column in *columns {
            let mut n = 0;
            for needle in &needles {
                let sql = format!(
                    "UPDATE {table} SET {column} = replace({column}, ?2, ?3) \
                     WHERE workspace_id = ?1 AND instr({column}, ?2) > 0"
                );
                n += sqlx::query(&sql)
                    .bind(ws.0)
                    .bind(needle.as_str())
                    .bind(FORGOTTEN)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            }
            note(&format!("{table}.{column}"), n);
        }
    }
    for (table, column) in [("account_state", "state"), ("timeline", "detail")] {
        let mut n = 0;
        for needle in &needles {
            let sql = format!(
                "UPDATE {table} SET {column} = replace({column}, ?2, ?3) WHERE instr({column}, ?2) > 0 \
                 AND account_id IN (SELECT id FROM accounts WHERE workspace_id = ?1)"
            );
            n += sqlx::query(&sql)
                .bind(ws.0)
                .bind(needle.as_str())
                .bind(FORGOTTEN)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
        note(&format!("{table}.{column}"), n);
    }
    // A dashboard user with the same email: their sessions end.
    let mut sessions = 0;
    for email in &person.emails {
        sessions += sqlx::query(
            "DELETE FROM web_sessions WHERE user_id IN \
             (SELECT id FROM dashboard_users WHERE workspace_id = ? AND lower(email) = lower(?))",
        )
        .bind(ws.0)
        .bind(email)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    note("dashboard sessions", sessions);
    Ok(Some(report))
}

/// A random token (not derived from the person, so it cannot be reversed).
fn uuid_like() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn micros_text(micros: i64) -> String {
    super::rows::from_micros(micros).map(|t| t.to_rfc3339()).unwrap_or_else(|_| micros.to_string())
}

/// Replaces the database file `to` with the backup `from` (made by
/// [`crate::Store::backup`]): checks the backup's integrity first, refuses
/// while any connection has `to` open (a running `keel serve`), and swaps
/// the file in with a rename so a crash leaves the old or the new, whole.
pub fn restore_file(from: &std::path::Path, to: &std::path::Path) -> Result<(), StoreError> {
    use rusqlite::{Connection, OpenFlags};
    let bad = |reason: String| StoreError::BadUrl { url: from.display().to_string(), reason };
    {
        let backup = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let verdict: String = backup
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| bad(format!("not a Keel backup: {e}")))?;
        if verdict != "ok" {
            return Err(bad(format!("the backup fails its integrity check: {verdict}")));
        }
        let migrated: i64 = backup
            .query_row("SELECT COUNT(*) FROM _sqlx_migrations WHERE success", [], |r| r.get(0))
            .map_err(|e| bad(format!("not a Keel backup (no migrations table): {e}")))?;
        if migrated == 0 {
            return Err(bad("not a Keel backup (no migrations applied)".into()));
        }
    }
    if to.exists() {
        let live = Connection::open(to)?;
        live.busy_timeout(std::time::Duration::ZERO)?;
        live.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        if let Err(e) = live.execute_batch("BEGIN EXCLUSIVE; COMMIT;") {
            return Err(StoreError::BadUrl {
                url: to.display().to_string(),
                reason: format!("the database is in use (stop keel serve first): {e}"),
            });
        }
        // Fold the live log into the file before it is replaced, then let go.
        let _ = live.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        drop(live);
    }
    let staging = to.with_extension("restoring");
    std::fs::copy(from, &staging).map_err(|e| bad(format!("copying to {}: {e}", staging.display())))?;
    std::fs::File::open(&staging).and_then(|f| f.sync_all()).map_err(|e| bad(e.to_string()))?;
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", to.display()));
        let _ = std::fs::remove_file(side);
    }
    std::fs::rename(&staging, to).map_err(|e| bad(format!("moving into {}: {e}", to.display())))?;
    Ok(())
}
