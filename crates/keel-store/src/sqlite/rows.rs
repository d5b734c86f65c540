//! How each record kind maps to its SQLite table: column lists, binds and decoding.

use chrono::DateTime;
use keel_core::{
    Account, BillingPeriod, Contact, Contract, Date, ExternalId, Label, Money, Opportunity, OpportunityKind,
    OpportunitySource, OpportunityStatus, Severity, SurveyKind, SurveyResponse, Ticket, TicketStatus,
    Timestamp, Touchpoint,
};
use rusqlite::Row;
use serde::Serialize;
use sqlx::Sqlite;
use sqlx::query_builder::Separated;
use sqlx::sqlite::SqliteRow;

pub(crate) type Binder<'qb> = Separated<'qb, 'static, Sqlite, &'static str>;

/// A record kind stored in a table keyed by (workspace_id, external_id).
pub(crate) trait Entity: Serialize + Sized + Send + Sync {
    const TABLE: &'static str;
    /// The kind's own columns, bound by [`Entity::bind`] in this order.
    const COLUMNS: &'static [&'static str];
    fn external_id(&self) -> &ExternalId;
    /// The account the record belongs to; `None` for accounts themselves.
    fn account(&self) -> Option<&ExternalId>;
    fn bind(&self, b: &mut Binder<'_>);
    /// Rebuilds the record from a row; `account` is the joined account's external id.
    fn decode(row: &R<'_, '_>, account: Option<ExternalId>) -> Result<Self, String>;
}

pub(crate) fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(v: i64) -> Result<Timestamp, String> {
    DateTime::from_timestamp_micros(v).ok_or_else(|| format!("timestamp {v} out of range"))
}

fn date(row: &R<'_, '_>, col: &str) -> Result<Date, String> {
    let raw: String = get(row, col)?;
    keel_core::parse_date(&raw).map_err(|e| e.to_string())
}

fn opt_date(row: &R<'_, '_>, col: &str) -> Result<Option<Date>, String> {
    let raw: Option<String> = get(row, col)?;
    raw.map(|r| keel_core::parse_date(&r).map_err(|e| e.to_string())).transpose()
}

fn ts(row: &R<'_, '_>, col: &str) -> Result<Timestamp, String> {
    from_micros(get(row, col)?)
}

fn opt_ts(row: &R<'_, '_>, col: &str) -> Result<Option<Timestamp>, String> {
    let raw: Option<i64> = get(row, col)?;
    raw.map(from_micros).transpose()
}

/// A column of an sqlx row (snapshots, status).
pub(crate) fn sqlx_get<'r, T>(row: &'r SqliteRow, col: &str) -> Result<T, String>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    sqlx::Row::try_get(row, col).map_err(|e| format!("column {col}: {e}"))
}

/// A row read on the borrowed handle (bulk reads), with its statement's
/// column names: rusqlite's lookup by name asks SQLite for every name on
/// every call, which cost more than decoding the row.
pub(crate) struct R<'a, 'r> {
    pub row: &'a Row<'r>,
    pub columns: &'a [String],
}

/// A column of a row read on the borrowed handle (bulk reads).
pub(crate) fn get<T: rusqlite::types::FromSql>(row: &R<'_, '_>, col: &str) -> Result<T, String> {
    let idx = row.columns.iter().position(|c| c == col).ok_or_else(|| format!("no column {col}"))?;
    row.row.get(idx).map_err(|e| format!("column {col}: {e}"))
}

fn ext(row: &R<'_, '_>, col: &str) -> Result<ExternalId, String> {
    let raw: String = get(row, col)?;
    ExternalId::parse(&raw).map_err(|e| e.to_string())
}

fn label(row: &R<'_, '_>, col: &str) -> Result<Label, String> {
    let raw: String = get(row, col)?;
    Label::parse(&raw).map_err(|e| e.to_string())
}

fn money(row: &R<'_, '_>, amount: &str, currency: &str) -> Result<Money, String> {
    let a: String = get(row, amount)?;
    let c: String = get(row, currency)?;
    Money::parse(&a, &c).map_err(|e| e.to_string())
}

fn account_of(account: Option<ExternalId>) -> Result<ExternalId, String> {
    account.ok_or_else(|| "row without account".to_owned())
}

fn e<T, E: ToString>(r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

impl Entity for Account {
    const TABLE: &'static str = "accounts";
    const COLUMNS: &'static [&'static str] =
        &["name", "owner", "parent_external_id", "created_on", "attributes"];
    fn external_id(&self) -> &ExternalId {
        &self.id
    }
    fn account(&self) -> Option<&ExternalId> {
        None
    }
    fn bind(&self, b: &mut Binder<'_>) {
        b.push_bind(self.name.clone())
            .push_bind(self.owner.clone())
            .push_bind(self.parent.as_ref().map(|p| p.to_string()))
            .push_bind(self.created.to_string())
            .push_bind(serde_json::to_string(&self.attributes).unwrap_or_else(|_| "{}".into()));
    }
    fn decode(row: &R<'_, '_>, _: Option<ExternalId>) -> Result<Self, String> {
        let attrs: String = get(row, "attributes")?;
        let parent: Option<String> = get(row, "parent_external_id")?;
        Ok(Account {
            id: ext(row, "external_id")?,
            name: get(row, "name")?,
            attributes: e(serde_json::from_str(&attrs))?,
            owner: get(row, "owner")?,
            parent: parent.map(|p| e(ExternalId::parse(&p))).transpose()?,
            created: date(row, "created_on")?,
        })
    }
}

impl Entity for Contract {
    const TABLE: &'static str = "contracts";
    const COLUMNS: &'static [&'static str] =
        &["product", "start_on", "end_on", "mrr", "currency", "seats", "billing_period"];
    fn external_id(&self) -> &ExternalId {
        &self.id
    }
    fn account(&self) -> Option<&ExternalId> {
        Some(&self.account)
    }
    fn bind(&self, b: &mut Binder<'_>) {
        b.push_bind(self.product.to_string())
            .push_bind(self.start.to_string())
            .push_bind(self.end.map(|d| d.to_string()))
            .push_bind(self.mrr.amount.to_string())
            .push_bind(self.mrr.currency.to_string())
            .push_bind(i64::from(self.seats))
            .push_bind(self.billing_period.as_str());
    }
    fn decode(row: &R<'_, '_>, account: Option<ExternalId>) -> Result<Self, String> {
        let seats: i64 = get(row, "seats")?;
        let period: String = get(row, "billing_period")?;
        Ok(Contract {
            id: ext(row, "external_id")?,
            account: account_of(account)?,
            product: label(row, "product")?,
            start: date(row, "start_on")?,
            end: opt_date(row, "end_on")?,
            mrr: money(row, "mrr", "currency")?,
            seats: e(u32::try_from(seats))?,
            billing_period: e(BillingPeriod::parse(&period))?,
        })
    }
}

impl Entity for Contact {
    const TABLE: &'static str = "contacts";
    const COLUMNS: &'static [&'static str] = &["email", "name", "role", "active_from", "active_to"];
    fn external_id(&self) -> &ExternalId {
        &self.id
    }
    fn account(&self) -> Option<&ExternalId> {
        Some(&self.account)
    }
    fn bind(&self, b: &mut Binder<'_>) {
        b.push_bind(self.email.clone())
            .push_bind(self.name.clone())
            .push_bind(self.role.to_string())
            .push_bind(self.active_from.to_string())
            .push_bind(self.active_to.map(|d| d.to_string()));
    }
    fn decode(row: &R<'_, '_>, account: Option<ExternalId>) -> Result<Self, String> {
        Ok(Contact {
            id: ext(row, "external_id")?,
            account: account_of(account)?,
            email: get(row, "email")?,
            name: get(row, "name")?,
            role: label(row, "role")?,
            active_from: date(row, "active_from")?,
            active_to: opt_date(row, "active_to")?,
        })
    }
}

impl Entity for Ticket {
    const TABLE: &'static str = "tickets";
    const COLUMNS: &'static [&'static str] = &["opened_at", "closed_at", "severity", "status", "csat"];
    fn external_id(&self) -> &ExternalId {
        &self.id
    }
    fn account(&self) -> Option<&ExternalId> {
        Some(&self.account)
    }
    fn bind(&self, b: &mut Binder<'_>) {
        b.push_bind(micros(self.opened))
            .push_bind(self.closed.map(micros))
            .push_bind(i64::from(self.severity.level()))
            .push_bind(self.status.as_str())
            .push_bind(self.csat.map(i64::from));
    }
    fn decode(row: &R<'_, '_>, account: Option<ExternalId>) -> Result<Self, String> {
        let severity: i64 = get(row, "severity")?;
        let status: String = get(row, "status")?;
        let csat: Option<i64> = get(row, "csat")?;
        Ok(Ticket {
            id: ext(row, "external_id")?,
            account: account_of(account)?,
            opened: ts(row, "opened_at")?,
            closed: opt_ts(row, "closed_at")?,
            severity: e(Severity::parse(&severity.to_string()))?,
            status: e(TicketStatus::parse(&status))?,
            csat: csat.map(|c| e(u8::try_from(c))).transpose()?,
        })
    }
}

impl Entity for SurveyResponse {
    const TABLE: &'static str = "surveys";
    const COLUMNS: &'static [&'static str] =
        &["contact_external_id", "kind", "score", "comment", "responded_at"];
    fn external_id(&self) -> &ExternalId {
        &self.id
    }
    fn account(&self) -> Option<&ExternalId> {
        Some(&self.account)
    }
    fn bind(&self, b: &mut Binder<'_>) {
        b.push_bind(self.contact.as_ref().map(|c| c.to_string()))
            .push_bind(self.kind.as_str())
            .push_bind(i64::from(self.score))
            .push_bind(self.comment.clone())
            .push_bind(micros(self.responded));
    }
    fn decode(row: &R<'_, '_>, account: Option<ExternalId>) -> Result<Self, String> {
        let contact: Option<String> = get(row, "contact_external_id")?;
        let kind: String = get(row, "kind")?;
        let score: i64 = get(row, "score")?;
        Ok(SurveyResponse {
            id: ext(row, "external_id")?,
            account: account_of(account)?,
            contact: contact.map(|c| e(ExternalId::parse(&c))).transpose()?,
            kind: e(SurveyKind::parse(&kind))?,
            score: e(u8::try_from(score))?,
            comment: get(row, "comment")?,
            responded: ts(row, "responded_at")?,
        })
    }
}

impl Entity for Touchpoint {
    const TABLE: &'static str = "touchpoints";
    const COLUMNS: &'static [&'static str] = &["kind", "occurred_at", "owner", "notes", "outcome"];
    fn external_id(&self) -> &ExternalId {
        &self.id
    }
    fn account(&self) -> Option<&ExternalId> {
        Some(&self.account)
    }
    fn bind(&self, b: &mut Binder<'_>) {
        b.push_bind(self.kind.to_string())
            .push_bind(micros(self.occurred))
            .push_bind(self.owner.clone())
            .push_bind(self.notes.clone())
            .push_bind(self.outcome.clone());
    }
    fn decode(row: &R<'_, '_>, account: Option<ExternalId>) -> Result<Self, String> {
        Ok(Touchpoint {
            id: ext(row, "external_id")?,
            account: account_of(account)?,
            kind: label(row, "kind")?,
            occurred: ts(row, "occurred_at")?,
            owner: get(row, "owner")?,
            notes: get(row, "notes")?,
            outcome: get(row, "outcome")?,
        })
    }
}

impl Entity for Opportunity {
    const TABLE: &'static str = "opportunities";
    const COLUMNS: &'static [&'static str] =
        &["kind", "source", "mrr_delta", "currency", "stage", "created_on", "closed_on", "status"];
    fn external_id(&self) -> &ExternalId {
        &self.id
    }
    fn account(&self) -> Option<&ExternalId> {
        Some(&self.account)
    }
    fn bind(&self, b: &mut Binder<'_>) {
        b.push_bind(self.kind.as_str())
            .push_bind(self.source.as_str())
            .push_bind(self.mrr_delta.amount.to_string())
            .push_bind(self.mrr_delta.currency.to_string())
            .push_bind(self.stage.clone())
            .push_bind(self.created.to_string())
            .push_bind(self.closed.map(|d| d.to_string()))
            .push_bind(self.status.as_str());
    }
    fn decode(row: &R<'_, '_>, account: Option<ExternalId>) -> Result<Self, String> {
        let kind: String = get(row, "kind")?;
        let source: String = get(row, "source")?;
        let status: String = get(row, "status")?;
        Ok(Opportunity {
            id: ext(row, "external_id")?,
            account: account_of(account)?,
            kind: e(OpportunityKind::parse(&kind))?,
            source: e(OpportunitySource::parse(&source))?,
            mrr_delta: money(row, "mrr_delta", "currency")?,
            stage: get(row, "stage")?,
            created: date(row, "created_on")?,
            closed: opt_date(row, "closed_on")?,
            status: e(OpportunityStatus::parse(&status))?,
        })
    }
}
