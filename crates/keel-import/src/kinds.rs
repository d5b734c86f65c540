//! The columns of each import kind and how a row becomes a record.

use keel_core::{
    Account, BillingPeriod, Contact, Contract, EntityKind, Event, EventName, ExternalId, Label, MessageId,
    Money, Opportunity, OpportunityKind, OpportunitySource, OpportunityStatus, Severity, SurveyKind,
    SurveyResponse, Ticket, TicketStatus, Timestamp, Touchpoint, UserId,
};

use crate::fields::RowReader;

/// One column of an import file.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The header (CSV) or key (JSONL).
    pub name: &'static str,
    /// Whether every row must fill it.
    pub required: bool,
    /// What it holds.
    pub ty: ColumnType,
}

/// What a column holds (as JSON: text unless said otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Free text.
    Text,
    /// An external id.
    Id,
    /// A lowercase label such as a product or role.
    Label,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 with a zone, or a date (midnight UTC).
    Timestamp,
    /// A whole number (JSON number).
    Integer,
    /// A decimal amount, as text or a JSON number.
    Decimal,
    /// A JSON object.
    Object,
    /// One of a fixed list of words.
    Choice(&'static [&'static str]),
}

const fn req(name: &'static str, ty: ColumnType) -> Column {
    Column { name, required: true, ty }
}
const fn opt(name: &'static str, ty: ColumnType) -> Column {
    Column { name, required: false, ty }
}
use ColumnType::{
    Date as D, Decimal as Dec, Id, Integer as Int, Label as L, Object as Obj, Text as T, Timestamp as Ts,
};

const ACCOUNTS: &[Column] = &[
    req("id", Id),
    req("name", T),
    opt("owner", T),
    opt("parent_id", Id),
    req("created_date", D),
    opt("attributes", Obj),
];
const CONTRACTS: &[Column] = &[
    req("id", Id),
    req("account_id", Id),
    req("product", L),
    req("start_date", D),
    opt("end_date", D),
    req("mrr", Dec),
    opt("currency", T),
    req("seats", Int),
    req(
        "billing_period",
        ColumnType::Choice(&["monthly", "quarterly", "semi_annual", "annual", "multi_year"]),
    ),
];
const CONTACTS: &[Column] = &[
    req("id", Id),
    req("account_id", Id),
    req("email", T),
    opt("name", T),
    req("role", L),
    req("active_from", D),
    opt("active_to", D),
];
const EVENTS: &[Column] = &[
    opt("message_id", T),
    req("account_id", Id),
    req("user_id", T),
    req("event", T),
    req("timestamp", Ts),
    opt("received_at", Ts),
    opt("properties", Obj),
];
const TICKETS: &[Column] = &[
    req("id", Id),
    req("account_id", Id),
    req("opened_at", Ts),
    opt("closed_at", Ts),
    req("severity", Int),
    req("status", ColumnType::Choice(&["open", "pending", "solved", "closed"])),
    opt("csat", Int),
];
const SURVEYS: &[Column] = &[
    req("id", Id),
    req("account_id", Id),
    opt("contact_id", Id),
    req("kind", ColumnType::Choice(&["nps", "csat"])),
    req("score", Int),
    opt("comment", T),
    req("responded_at", Ts),
];
const TOUCHPOINTS: &[Column] = &[
    req("id", Id),
    req("account_id", Id),
    req("kind", L),
    req("occurred_at", Ts),
    opt("owner", T),
    opt("notes", T),
    opt("outcome", T),
];
const OPPORTUNITIES: &[Column] = &[
    req("id", Id),
    req("account_id", Id),
    req("kind", ColumnType::Choice(&["expansion", "renewal", "cross_sell"])),
    req("source", ColumnType::Choice(&["cs", "sales", "marketing", "partner"])),
    req("mrr_delta", Dec),
    opt("currency", T),
    req("stage", T),
    req("created_date", D),
    opt("closed_date", D),
    req("status", ColumnType::Choice(&["open", "won", "lost"])),
];

/// The columns a kind accepts, in documentation order.
pub fn columns(kind: EntityKind) -> &'static [Column] {
    match kind {
        EntityKind::Accounts => ACCOUNTS,
        EntityKind::Contracts => CONTRACTS,
        EntityKind::Contacts => CONTACTS,
        EntityKind::Events => EVENTS,
        EntityKind::Tickets => TICKETS,
        EntityKind::Surveys => SURVEYS,
        EntityKind::Touchpoints => TOUCHPOINTS,
        EntityKind::Opportunities => OPPORTUNITIES,
    }
}

/// JSONL keys from Segment exports that mean a Keel column, and Segment
/// keys that are accepted and ignored.
pub(crate) const EVENT_ALIASES: &[(&str, &str)] = &[
    ("messageId", "message_id"),
    ("userId", "user_id"),
    ("receivedAt", "received_at"),
    ("groupId", "account_id"),
];
pub(crate) const EVENT_IGNORED: &[&str] = &[
    "type",
    "context",
    "sentAt",
    "originalTimestamp",
    "integrations",
    "version",
    "channel",
    "anonymousId",
    "writeKey",
    "_metadata",
];

/// A parsed record of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// An account.
    Account(Account),
    /// A contract line.
    Contract(Contract),
    /// A contact.
    Contact(Contact),
    /// A product event.
    Event(Event),
    /// A ticket.
    Ticket(Ticket),
    /// A survey response.
    Survey(SurveyResponse),
    /// A touchpoint.
    Touchpoint(Touchpoint),
    /// An opportunity.
    Opportunity(Opportunity),
}

impl Record {
    /// The record's own id (message id for events).
    pub fn id(&self) -> &str {
        match self {
            Record::Account(r) => r.id.as_str(),
            Record::Contract(r) => r.id.as_str(),
            Record::Contact(r) => r.id.as_str(),
            Record::Event(r) => r.message_id.as_str(),
            Record::Ticket(r) => r.id.as_str(),
            Record::Survey(r) => r.id.as_str(),
            Record::Touchpoint(r) => r.id.as_str(),
            Record::Opportunity(r) => r.id.as_str(),
        }
    }

    /// The account referenced (the parent, for accounts).
    pub fn account_ref(&self) -> Option<&ExternalId> {
        match self {
            Record::Account(r) => r.parent.as_ref(),
            Record::Contract(r) => Some(&r.account),
            Record::Contact(r) => Some(&r.account),
            Record::Event(r) => Some(&r.account),
            Record::Ticket(r) => Some(&r.account),
            Record::Survey(r) => Some(&r.account),
            Record::Touchpoint(r) => Some(&r.account),
            Record::Opportunity(r) => Some(&r.account),
        }
    }
}

fn currency(r: &mut RowReader<'_>) -> String {
    r.opt_text("currency").unwrap_or_else(|| "USD".to_owned())
}

fn not_before<T: PartialOrd + std::fmt::Display>(
    r: &mut RowReader<'_>,
    later_col: &str,
    later: Option<T>,
    earlier_col: &str,
    earlier: Option<&T>,
    strict: bool,
) -> Option<T> {
    if let (Some(l), Some(e)) = (&later, earlier)
        && (l < e || (strict && l == e))
    {
        let relation = if strict { "after" } else { "on or after" };
        r.fail(later_col, format!("{l} must be {relation} {earlier_col} {e}"));
        return None;
    }
    later
}

/// Reads one row as a record of `kind`. `now` fills `received_at` when a
/// file leaves it out.
pub(crate) fn parse_row(kind: EntityKind, r: &mut RowReader<'_>, now: Timestamp) -> Option<Record> {
    let record = match kind {
        EntityKind::Accounts => {
            let id = r.id("id");
            let name = r.text("name");
            let owner = r.opt_text("owner");
            let parent = r.opt("parent_id", ExternalId::parse);
            let created = r.date("created_date");
            let attributes = r.attributes();
            if let (Some(p), Some(i)) = (&parent, &id)
                && p == i
            {
                r.fail("parent_id", "an account cannot be its own parent");
            }
            Record::Account(Account { id: id?, name: name?, attributes, owner, parent, created: created? })
        }
        EntityKind::Contracts => {
            let id = r.id("id");
            let account = r.id("account_id");
            let product = r.req("product", Label::parse);
            let start = r.date("start_date");
            let end = r.opt_date("end_date");
            let end = not_before(r, "end_date", end, "start_date", start.as_ref(), true);
            let cur = currency(r);
            let mrr = r.req("mrr", |raw| Money::parse_non_negative(raw, &cur));
            let seats = r.int_in("seats", 0, i64::from(u32::MAX));
            if r.opt_text("seats").is_none() {
                r.fail("seats", "is required but empty");
            }
            let billing_period = r.req("billing_period", BillingPeriod::parse);
            Record::Contract(Contract {
                id: id?,
                account: account?,
                product: product?,
                start: start?,
                end,
                mrr: mrr?,
                seats: u32::try_from(seats?).ok()?,
                billing_period: billing_period?,
            })
        }
        EntityKind::Contacts => {
            let id = r.id("id");
            let account = r.id("account_id");
            let email = r.text("email");
            if let Some(e) = &email {
                let ok = e.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty() && host.contains('.') && !host.contains('@')
                });
                if !ok {
                    r.fail("email", format!("{e:?} is not an email address"));
                }
            }
            let name = r.opt_text("name").unwrap_or_default();
            let role = r.req("role", Label::parse);
            let from = r.date("active_from");
            let to = r.opt_date("active_to");
            let to = not_before(r, "active_to", to, "active_from", from.as_ref(), true);
            Record::Contact(Contact {
                id: id?,
                account: account?,
                email: email?,
                name,
                role: role?,
                active_from: from?,
                active_to: to,
            })
        }
        EntityKind::Events => {
            let account = r.id("account_id");
            let user = r.req("user_id", UserId::parse);
            let name = r.req("event", EventName::parse);
            let timestamp = r.timestamp("timestamp");
            let received_at = r.opt_timestamp("received_at").unwrap_or(now);
            let properties = match r.json("properties") {
                None => serde_json::Map::new(),
                Some(serde_json::Value::Object(m)) => m,
                Some(_) => {
                    r.fail("properties", "must be a JSON object");
                    serde_json::Map::new()
                }
            };
            let message_id = match r.opt("message_id", MessageId::parse) {
                Some(m) => Some(m),
                // Without a message id, the event's content is its identity:
                // re-importing the same row must not add it twice.
                None if r.errors.is_empty() => derived_message_id(
                    account.as_ref()?,
                    user.as_ref()?,
                    name.as_ref()?,
                    timestamp?,
                    &properties,
                ),
                None => None,
            };
            Record::Event(Event {
                message_id: message_id?,
                account: account?,
                user: user?,
                name: name?,
                timestamp: timestamp?,
                received_at,
                properties,
            })
        }
        EntityKind::Tickets => {
            let id = r.id("id");
            let account = r.id("account_id");
            let opened = r.timestamp("opened_at");
            let closed = r.opt_timestamp("closed_at");
            let closed = not_before(r, "closed_at", closed, "opened_at", opened.as_ref(), false);
            let severity = r.req("severity", Severity::parse);
            let status = r.req("status", TicketStatus::parse);
            let csat = r.int_in("csat", 1, 5).map(|v| v as u8);
            Record::Ticket(Ticket {
                id: id?,
                account: account?,
                opened: opened?,
                closed,
                severity: severity?,
                status: status?,
                csat,
            })
        }
        EntityKind::Surveys => {
            let id = r.id("id");
            let account = r.id("account_id");
            let contact = r.opt("contact_id", ExternalId::parse);
            let kind = r.req("kind", SurveyKind::parse);
            let (lo, hi) = kind.map(SurveyKind::range).unwrap_or((0, 10));
            let score = r.int_in("score", i64::from(lo), i64::from(hi));
            if r.opt_text("score").is_none() {
                r.fail("score", "is required but empty");
            }
            let comment = r.opt_text("comment");
            let responded = r.timestamp("responded_at");
            Record::Survey(SurveyResponse {
                id: id?,
                account: account?,
                contact,
                kind: kind?,
                score: score? as u8,
                comment,
                responded: responded?,
            })
        }
        EntityKind::Touchpoints => {
            let id = r.id("id");
            let account = r.id("account_id");
            let kind = r.req("kind", Label::parse);
            let occurred = r.timestamp("occurred_at");
            Record::Touchpoint(Touchpoint {
                id: id?,
                account: account?,
                kind: kind?,
                occurred: occurred?,
                owner: r.opt_text("owner"),
                notes: r.opt_text("notes"),
                outcome: r.opt_text("outcome"),
            })
        }
        EntityKind::Opportunities => {
            let id = r.id("id");
            let account = r.id("account_id");
            let kind = r.req("kind", OpportunityKind::parse);
            let source = r.req("source", OpportunitySource::parse);
            let cur = currency(r);
            let mrr_delta = r.req("mrr_delta", |raw| Money::parse(raw, &cur));
            let stage = r.text("stage");
            let created = r.date("created_date");
            let closed = r.opt_date("closed_date");
            let closed = not_before(r, "closed_date", closed, "created_date", created.as_ref(), false);
            let status = r.req("status", OpportunityStatus::parse);
            if status.is_some_and(|s| s != OpportunityStatus::Open) && closed.is_none() && r.errors.is_empty()
            {
                r.fail("closed_date", "is required once status is won or lost");
            }
            Record::Opportunity(Opportunity {
                id: id?,
                account: account?,
                kind: kind?,
                source: source?,
                mrr_delta: mrr_delta?,
                stage: stage?,
                created: created?,
                closed,
                status: status?,
            })
        }
    };
    if r.errors.is_empty() { Some(record) } else { None }
}

fn derived_message_id(
    account: &ExternalId,
    user: &UserId,
    name: &EventName,
    timestamp: Timestamp,
    properties: &serde_json::Map<String, serde_json::Value>,
) -> Option<MessageId> {
    let text = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        account,
        user,
        name,
        timestamp.timestamp_micros(),
        serde_json::Value::Object(properties.clone())
    );
    let hash = xxhash_rust::xxh3::xxh3_128(text.as_bytes());
    MessageId::parse(&format!("keel-{hash:032x}")).ok()
}
