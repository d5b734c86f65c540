//! The account timeline's rows (`account_days`).

use std::collections::HashMap;

use keel_core::{Date, ExternalId};

use super::SqliteStore;
use crate::{StoreError, TimelineHead, TimelineRow, TimelineWrite, WorkspaceId};

/// Account ids as a JSON array, for `json_each`.
fn id_list(accounts: &[ExternalId], table: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(&accounts.iter().map(ExternalId::as_str).collect::<Vec<_>>())
        .map_err(|e| StoreError::Unencodable { table, id: String::new(), reason: e.to_string() })
}

/// Timeline rows inserted by one statement (5 values each, well under
/// SQLite's limit on bound values).
const ROWS_PER_INSERT: usize = 256;

impl SqliteStore {
    pub(super) async fn put_timeline_writes(
        &self,
        ws: WorkspaceId,
        version: &str,
        writes: &[TimelineWrite],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        for w in writes {
            let id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM accounts WHERE workspace_id = ? AND external_id = ?")
                    .bind(ws.0)
                    .bind(w.account.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(id) = id else { return Err(StoreError::UnknownAccount(w.account.to_string())) };
            let from = w.from.map_or_else(String::new, |d| d.to_string());
            sqlx::query("DELETE FROM account_days WHERE account_id = ? AND journey_version = ? AND day >= ?")
                .bind(id)
                .bind(version)
                .bind(&from)
                .execute(&mut *tx)
                .await?;
            // Many rows a statement: one round trip to SQLite's thread each.
            for rows in w.rows.chunks(ROWS_PER_INSERT) {
                let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO account_days (account_id, journey_version, day, checkpoint, facts) ",
                );
                insert.push_values(rows, |mut b, row| {
                    b.push_bind(id)
                        .push_bind(version)
                        .push_bind(row.day.to_string())
                        .push_bind(row.checkpoint)
                        .push_bind(&row.facts);
                });
                insert.build().execute(&mut *tx).await?;
            }
            let h = &w.head;
            // Digests are stored as the signed integers SQLite keeps (bit for bit).
            sqlx::query(
                "INSERT INTO account_timelines \
                 (account_id, journey_version, through, records, known_before, known_upto) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, journey_version) DO UPDATE SET \
                 through = excluded.through, records = excluded.records, \
                 known_before = excluded.known_before, known_upto = excluded.known_upto",
            )
            .bind(id)
            .bind(version)
            .bind(h.through.to_string())
            .bind(h.records as i64)
            .bind(h.known_before as i64)
            .bind(h.known_upto as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn timeline_heads_of(
        &self,
        ws: WorkspaceId,
        version: &str,
        accounts: &[ExternalId],
    ) -> Result<HashMap<ExternalId, TimelineHead>, StoreError> {
        let ids = id_list(accounts, "account_timelines")?;
        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT a.external_id, t.through, t.records, t.known_before, t.known_upto \
             FROM accounts a JOIN account_timelines t ON t.account_id = a.id \
             WHERE a.workspace_id = ?1 AND a.external_id IN (SELECT value FROM json_each(?2)) \
             AND t.journey_version = ?3",
        )
        .bind(ws.0)
        .bind(&ids)
        .bind(version)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(account, through, records, before, upto)| {
                let corrupt = |reason: String| StoreError::Corrupt {
                    table: "account_timelines",
                    id: account.clone(),
                    reason,
                };
                let id = ExternalId::parse(&account).map_err(|e| corrupt(e.to_string()))?;
                let through = keel_core::parse_date(&through).map_err(|e| corrupt(e.to_string()))?;
                let head = TimelineHead {
                    through,
                    records: records as u64,
                    known_before: before as u64,
                    known_upto: upto as u64,
                };
                Ok((id, head))
            })
            .collect()
    }

    pub(super) async fn drop_timelines_but(&self, ws: WorkspaceId, keep: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let days = sqlx::query(
            "DELETE FROM account_days WHERE journey_version <> ?2 \
             AND account_id IN (SELECT id FROM accounts WHERE workspace_id = ?1)",
        )
        .bind(ws.0)
        .bind(keep)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "DELETE FROM account_timelines WHERE journey_version <> ?2 \
             AND account_id IN (SELECT id FROM accounts WHERE workspace_id = ?1)",
        )
        .bind(ws.0)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(days)
    }

    pub(super) async fn timeline_rows_of(
        &self,
        ws: WorkspaceId,
        account: &ExternalId,
        version: &str,
        day: Option<Date>,
    ) -> Result<Vec<TimelineRow>, StoreError> {
        // Every row, or those from the last checkpoint at or before the day up to it.
        let upto = day.map_or_else(|| "9999-12-31".to_owned(), |d| d.to_string());
        let rows: Vec<(String, bool, String)> = sqlx::query_as(
            "WITH acc AS (SELECT id FROM accounts WHERE workspace_id = ?1 AND external_id = ?2) \
             SELECT d.day, d.checkpoint, d.facts FROM account_days d, acc \
             WHERE d.account_id = acc.id AND d.journey_version = ?3 AND d.day <= ?4 \
             AND (?5 OR d.day >= (SELECT MAX(c.day) FROM account_days c WHERE c.account_id = acc.id \
                  AND c.journey_version = ?3 AND c.checkpoint = 1 AND c.day <= ?4)) \
             ORDER BY d.day",
        )
        .bind(ws.0)
        .bind(account.as_str())
        .bind(version)
        .bind(&upto)
        .bind(day.is_none())
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(d, checkpoint, facts)| {
                let day = keel_core::parse_date(&d).map_err(|e| StoreError::Corrupt {
                    table: "account_days",
                    id: format!("{account} {d}"),
                    reason: e.to_string(),
                })?;
                Ok(TimelineRow { day, checkpoint, facts })
            })
            .collect()
    }

    pub(super) async fn timelines_upto_of(
        &self,
        ws: WorkspaceId,
        version: &str,
        accounts: &[ExternalId],
        upto: Date,
    ) -> Result<HashMap<ExternalId, Vec<TimelineRow>>, StoreError> {
        let ids = id_list(accounts, "account_days")?;
        let rows: Vec<(String, String, bool, String)> = sqlx::query_as(
            "SELECT a.external_id, d.day, d.checkpoint, d.facts \
             FROM accounts a JOIN account_days d ON d.account_id = a.id \
             WHERE a.workspace_id = ?1 AND a.external_id IN (SELECT value FROM json_each(?2)) \
             AND d.journey_version = ?3 AND d.day <= ?4 ORDER BY d.account_id, d.day",
        )
        .bind(ws.0)
        .bind(&ids)
        .bind(version)
        .bind(upto.to_string())
        .fetch_all(self.pool())
        .await?;
        let mut out: HashMap<ExternalId, Vec<TimelineRow>> = HashMap::new();
        for (account, d, checkpoint, facts) in rows {
            let corrupt = |reason: String| StoreError::Corrupt {
                table: "account_days",
                id: format!("{account} {d}"),
                reason,
            };
            let id = ExternalId::parse(&account).map_err(|e| corrupt(e.to_string()))?;
            let day = keel_core::parse_date(&d).map_err(|e| corrupt(e.to_string()))?;
            out.entry(id).or_default().push(TimelineRow { day, checkpoint, facts });
        }
        Ok(out)
    }

    pub(super) async fn withdraw_timelines_of(
        &self,
        ws: WorkspaceId,
        version: &str,
        accounts: &[ExternalId],
    ) -> Result<(), StoreError> {
        let ids = id_list(accounts, "account_timelines")?;
        sqlx::query(
            "DELETE FROM account_timelines WHERE journey_version = ?3 AND account_id IN \
             (SELECT id FROM accounts WHERE workspace_id = ?1 \
              AND external_id IN (SELECT value FROM json_each(?2)))",
        )
        .bind(ws.0)
        .bind(&ids)
        .bind(version)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
