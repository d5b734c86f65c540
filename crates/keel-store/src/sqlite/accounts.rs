//! The account list: filters and keyset pagination over accounts and the
//! summary columns of their evaluated state.

use keel_core::{ExternalId, Timestamp};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::rows::from_micros;
use crate::{AccountCursor, AccountQuery, AccountSort, StateSummary, StoreError, WorkspaceId};

/// `|line:stage|line:stage|` for the lines that have a stage.
pub(crate) fn stages_column(stages: &[(String, Option<String>)]) -> String {
    let mut out = String::from("|");
    for (line, stage) in stages {
        if let Some(stage) = stage {
            out.push_str(&format!("{line}:{stage}|"));
        }
    }
    out
}

/// Reads the summary columns starting at `at`: segment, band, score,
/// stages, mrr, renewal_date.
pub(crate) fn summary(row: &SqliteRow, at: usize) -> Result<StateSummary, String> {
    let get_err = |e: sqlx::Error| e.to_string();
    let stages: Option<String> = row.try_get(at + 3).map_err(get_err)?;
    let renewal: Option<String> = row.try_get(at + 5).map_err(get_err)?;
    Ok(StateSummary {
        segment: row.try_get(at).map_err(get_err)?,
        band: row.try_get(at + 1).map_err(get_err)?,
        score: row.try_get(at + 2).map_err(get_err)?,
        stages: stages
            .unwrap_or_default()
            .split('|')
            .filter_map(|pair| pair.split_once(':'))
            .map(|(line, stage)| (line.to_owned(), Some(stage.to_owned())))
            .collect(),
        mrr: row.try_get(at + 4).map_err(get_err)?,
        renewal: renewal.map(|r| keel_core::parse_date(&r).map_err(|e| e.to_string())).transpose()?,
    })
}

/// One row of a page: the account, its evaluation, and its place in the order.
pub(crate) struct ListRow {
    pub(crate) id: ExternalId,
    pub(crate) evaluated: Option<(Timestamp, StateSummary)>,
    pub(crate) cursor: AccountCursor,
}

/// The sort column, and whether it is text.
fn sort_column(sort: AccountSort) -> (&'static str, bool) {
    match sort {
        AccountSort::Id => ("a.external_id", true),
        AccountSort::Name => ("a.name", true),
        AccountSort::Owner => ("a.owner", true),
        AccountSort::Mrr => ("s.mrr", false),
        AccountSort::Renewal => ("s.renewal_date", true),
        AccountSort::Score => ("s.score", false),
    }
}

fn filters(q: &mut QueryBuilder<'_, Sqlite>, ws: WorkspaceId, query: &AccountQuery) {
    q.push(" FROM accounts a LEFT JOIN account_state s ON s.account_id = a.id WHERE a.workspace_id = ");
    q.push_bind(ws.0);
    if let Some(segment) = &query.segment {
        q.push(" AND s.segment = ").push_bind(segment.clone());
    }
    if let Some(band) = &query.band {
        q.push(" AND s.band = ").push_bind(band.clone());
    }
    if let Some(owner) = &query.owner {
        q.push(" AND a.owner = ").push_bind(owner.clone());
    }
    if let Some(stage) = &query.stage {
        // `line:stage` matches that pair; a bare stage matches it on any line.
        let needle = if stage.contains(':') { format!("|{stage}|") } else { format!(":{stage}|") };
        q.push(" AND instr(s.stages, ").push_bind(needle).push(") > 0");
    }
    if let Some(from) = query.renewal_from {
        q.push(" AND s.renewal_date >= ").push_bind(from.to_string());
    }
    if let Some(to) = query.renewal_to {
        q.push(" AND s.renewal_date <= ").push_bind(to.to_string());
    }
    if let Some(text) = &query.search {
        let text = text.to_lowercase();
        q.push(" AND (instr(lower(a.name), ").push_bind(text.clone());
        q.push(") > 0 OR instr(lower(a.external_id), ").push_bind(text).push(") > 0)");
    }
}

/// The book by band with renewals ahead, in one grouped query over the
/// summary columns (no state is decoded).
pub(crate) async fn book(
    pool: &SqlitePool,
    ws: WorkspaceId,
    owner: Option<&str>,
    today: keel_core::Date,
) -> Result<crate::BookSummary, StoreError> {
    let day = |n: u64| (today + chrono::Days::new(n)).to_string();
    let ahead = |bound: usize| {
        format!(
            "SUM(CASE WHEN s.renewal_date >= $1 AND s.renewal_date <= ${bound} THEN 1 ELSE 0 END), \
             COALESCE(SUM(CASE WHEN s.renewal_date >= $1 AND s.renewal_date <= ${bound} THEN s.mrr END), 0.0)"
        )
    };
    let sql = format!(
        "SELECT s.account_id IS NULL, COALESCE(s.mrr, 0) > 0, s.band, COUNT(*), COALESCE(SUM(s.mrr), 0.0), {}, {} \
         FROM accounts a LEFT JOIN account_state s ON s.account_id = a.id \
         WHERE a.workspace_id = $4 AND ($5 IS NULL OR a.owner = $5) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        ahead(2),
        ahead(3)
    );
    let rows = sqlx::query(&sql)
        .bind(today.to_string())
        .bind(day(90))
        .bind(day(180))
        .bind(ws.0)
        .bind(owner)
        .fetch_all(pool)
        .await?;
    let mut out = crate::BookSummary::default();
    for row in rows {
        let (unevaluated, active): (bool, bool) = (row.try_get(0)?, row.try_get(1)?);
        let n = row.try_get::<i64, _>(3)? as u64;
        if unevaluated {
            out.not_evaluated += n;
        } else if !active {
            out.former += n;
        } else {
            out.bands.push(crate::BookBand {
                band: row.try_get(2)?,
                accounts: n,
                mrr: row.try_get(4)?,
                renewing_90: (row.try_get::<i64, _>(5)? as u64, row.try_get(6)?),
                renewing_180: (row.try_get::<i64, _>(7)? as u64, row.try_get(8)?),
            });
        }
    }
    Ok(out)
}

/// A page of account ids in the asked order, and how many match in all.
pub(crate) async fn list(
    pool: &SqlitePool,
    ws: WorkspaceId,
    query: &AccountQuery,
) -> Result<(Vec<ListRow>, u64), StoreError> {
    let (column, text) = sort_column(query.sort);
    let zero = if text { "''" } else { "0.0" };
    // Rows without a value sort last either way: the flag is 0 for them
    // when descending and 1 when ascending.
    let flag =
        if query.descending { format!("({column} IS NOT NULL)") } else { format!("({column} IS NULL)") };
    let direction = if query.descending { "DESC" } else { "ASC" };
    let mut q = QueryBuilder::<Sqlite>::new(format!(
        "SELECT a.external_id, s.evaluated_at, s.segment, s.band, s.score, s.stages, s.mrr, s.renewal_date, \
         {flag} AS k_flag, COALESCE({column}, {zero}) AS k_value"
    ));
    filters(&mut q, ws, query);
    if let Some(after) = &query.after {
        q.push(format!(" AND ({flag}, COALESCE({column}, {zero}), a.external_id) "));
        q.push(if query.descending { "< (" } else { "> (" });
        q.push_bind(after.flag).push(", ");
        match &after.value {
            Value::Number(n) => q.push_bind(n.as_f64().unwrap_or_default()),
            Value::String(s) => q.push_bind(s.clone()),
            other => q.push_bind(other.to_string()),
        };
        q.push(", ").push_bind(after.id.clone()).push(")");
    }
    q.push(format!(" ORDER BY k_flag {direction}, k_value {direction}, a.external_id {direction} LIMIT "));
    // One more than asked: whether it exists says whether there is a next page.
    q.push_bind(i64::from(query.limit) + 1);
    let rows = q.build().fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let raw: String = row.try_get(0)?;
        let corrupt = |reason: String| StoreError::Corrupt { table: "accounts", id: raw.clone(), reason };
        let id = ExternalId::parse(&raw).map_err(|e| corrupt(e.to_string()))?;
        let at: Option<i64> = row.try_get(1)?;
        let evaluated = match at {
            Some(at) => Some((from_micros(at).map_err(corrupt)?, summary(&row, 2).map_err(corrupt)?)),
            None => None,
        };
        let value = if text {
            Value::String(row.try_get(9)?)
        } else {
            serde_json::Number::from_f64(row.try_get(9)?).map_or(Value::Null, Value::Number)
        };
        let cursor = AccountCursor { flag: row.try_get(8)?, value, id: raw.clone() };
        out.push(ListRow { id, evaluated, cursor });
    }
    let mut count = QueryBuilder::<Sqlite>::new("SELECT COUNT(*)");
    filters(&mut count, ws, query);
    let total: i64 = count.build().fetch_one(pool).await?.try_get(0)?;
    Ok((out, total as u64))
}
