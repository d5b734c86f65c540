//! The account timeline's rows (`account_days`).

use keel_core::{Date, ExternalId};

use super::SqliteStore;
use crate::{StoreError, TimelineRow, WorkspaceId};

impl SqliteStore {
    pub(super) async fn put_timeline_rows(
        &self,
        ws: WorkspaceId,
        account: &ExternalId,
        version: &str,
        from: Option<Date>,
        rows: &[TimelineRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM accounts WHERE workspace_id = ? AND external_id = ?")
                .bind(ws.0)
                .bind(account.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(id) = id else { return Err(StoreError::UnknownAccount(account.to_string())) };
        let from = from.map_or_else(String::new, |d| d.to_string());
        sqlx::query("DELETE FROM account_days WHERE account_id = ? AND journey_version = ? AND day >= ?")
            .bind(id)
            .bind(version)
            .bind(&from)
            .execute(&mut *tx)
            .await?;
        for row in rows {
            sqlx::query(
                "INSERT INTO account_days (account_id, journey_version, day, checkpoint, facts) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(id)
            .bind(version)
            .bind(row.day.to_string())
            .bind(row.checkpoint)
            .bind(&row.facts)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
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
}
