//! The records Keel ingests: accounts and everything that happens to them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Date, EventName, ExternalId, Label, MessageId, Money, Timestamp, UserId, ValueError};

/// Free-form account attributes (tier, region, industry, timezone, …).
/// Values are JSON scalars: strings, numbers or booleans.
pub type Attributes = BTreeMap<String, serde_json::Value>;

/// The kinds of record Keel imports, in the order a first load should take
/// them (accounts first: everything else refers to an account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// [`Account`] rows.
    Accounts,
    /// [`Contract`] rows.
    Contracts,
    /// [`Contact`] rows.
    Contacts,
    /// [`Event`] rows.
    Events,
    /// [`Ticket`] rows.
    Tickets,
    /// [`SurveyResponse`] rows.
    Surveys,
    /// [`Touchpoint`] rows.
    Touchpoints,
    /// [`Opportunity`] rows.
    Opportunities,
}

impl EntityKind {
    /// Every kind, accounts first.
    pub const ALL: [EntityKind; 8] = [
        EntityKind::Accounts,
        EntityKind::Contracts,
        EntityKind::Contacts,
        EntityKind::Events,
        EntityKind::Tickets,
        EntityKind::Surveys,
        EntityKind::Touchpoints,
        EntityKind::Opportunities,
    ];

    /// The plural name used on the command line and in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Accounts => "accounts",
            EntityKind::Contracts => "contracts",
            EntityKind::Contacts => "contacts",
            EntityKind::Events => "events",
            EntityKind::Tickets => "tickets",
            EntityKind::Surveys => "surveys",
            EntityKind::Touchpoints => "touchpoints",
            EntityKind::Opportunities => "opportunities",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A customer organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The CRM's account id.
    pub id: ExternalId,
    /// Display name.
    pub name: String,
    /// Free-form attributes such as tier, region, industry and timezone.
    pub attributes: Attributes,
    /// The CSM who owns the account (an email or a name), if assigned.
    pub owner: Option<String>,
    /// The parent account's external id, for subsidiaries.
    pub parent: Option<ExternalId>,
    /// When the account was created in the CRM.
    pub created: Date,
}

/// How often a contract line is invoiced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingPeriod {
    /// Invoiced every month.
    Monthly,
    /// Invoiced every three months.
    Quarterly,
    /// Invoiced every six months.
    SemiAnnual,
    /// Invoiced once a year.
    Annual,
    /// Invoiced once for a term longer than a year.
    MultiYear,
}

impl BillingPeriod {
    /// Parses `monthly`, `quarterly`, `semi_annual`, `annual` or `multi_year`.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        Ok(match Label::parse(raw).map_err(|_| bad_choice(raw, Self::CHOICES))?.as_str() {
            "monthly" => Self::Monthly,
            "quarterly" => Self::Quarterly,
            "semi_annual" | "semiannual" => Self::SemiAnnual,
            "annual" | "yearly" => Self::Annual,
            "multi_year" => Self::MultiYear,
            _ => return Err(bad_choice(raw, Self::CHOICES)),
        })
    }
    const CHOICES: &'static str = "monthly, quarterly, semi_annual, annual, multi_year";

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monthly => "monthly",
            Self::Quarterly => "quarterly",
            Self::SemiAnnual => "semi_annual",
            Self::Annual => "annual",
            Self::MultiYear => "multi_year",
        }
    }
}

fn bad_choice(raw: &str, choices: &str) -> ValueError {
    ValueError::new(format!("{raw:?} is not one of: {choices}"))
}

/// A subscription line: one product, one price, one term. An account may
/// hold several at once (multi-product, add-ons, mid-term upsells).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    /// The billing system's line id.
    pub id: ExternalId,
    /// The account it belongs to.
    pub account: ExternalId,
    /// The product line, e.g. `platform` or `analytics`.
    pub product: Label,
    /// First day in force.
    pub start: Date,
    /// First day no longer in force (exclusive); `None` for evergreen lines.
    pub end: Option<Date>,
    /// Monthly recurring revenue of the line.
    pub mrr: Money,
    /// Seats or units licensed.
    pub seats: u32,
    /// How the line is invoiced.
    pub billing_period: BillingPeriod,
}

impl Contract {
    /// Whether the line is in force on `d`: `start ≤ d < end` (no end: from
    /// its start on). The one definition every report, page and metric uses
    /// (docs/metrics.md).
    pub fn is_in_force(&self, d: Date) -> bool {
        self.start <= d && self.end.is_none_or(|end| d < end)
    }

    /// Whether the line is in force on some day of `[from, to)`.
    pub fn is_in_force_during(&self, from: Date, to: Date) -> bool {
        self.start < to && self.end.is_none_or(|end| end > from)
    }
}

/// A person at a customer, with a role held over a period. A champion who
/// leaves gets an end date; the row is never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The CRM's contact id; product events use it as their user id.
    pub id: ExternalId,
    /// The account the person belongs to.
    pub account: ExternalId,
    /// Email address.
    pub email: String,
    /// Full name.
    pub name: String,
    /// Role: `champion`, `executive_sponsor`, `admin`, `user`, or your own.
    pub role: Label,
    /// First day in the role.
    pub active_from: Date,
    /// First day no longer in the role (exclusive), if it ended.
    pub active_to: Option<Date>,
}

/// A product-usage event (a Segment `track` call or a row of its export).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique message id; a second event with the same id is a duplicate.
    pub message_id: MessageId,
    /// The account the event is attributed to.
    pub account: ExternalId,
    /// The user who did it.
    pub user: UserId,
    /// What was done.
    pub name: EventName,
    /// When it happened, by the sender's clock.
    pub timestamp: Timestamp,
    /// When Keel (or the upstream pipeline) received it; as-of evaluation
    /// only sees events received by then.
    pub received_at: Timestamp,
    /// Event properties, a JSON object (empty when there are none).
    pub properties: serde_json::Map<String, serde_json::Value>,
}

/// A support ticket's severity, 1 (critical) to 4 (low).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Severity(u8);

impl Severity {
    /// Accepts 1 to 4, and the help-desk words `urgent`/`critical` (1),
    /// `high` (2), `normal`/`medium` (3) and `low` (4).
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let raw = raw.trim();
        let level = match raw.to_ascii_lowercase().as_str() {
            "1" | "sev1" | "urgent" | "critical" => 1,
            "2" | "sev2" | "high" => 2,
            "3" | "sev3" | "normal" | "medium" => 3,
            "4" | "sev4" | "low" => 4,
            _ => {
                return Err(ValueError::new(format!(
                    "{raw:?} is not a severity: use 1 (critical) to 4 (low)"
                )));
            }
        };
        Ok(Self(level))
    }

    /// The level, 1 to 4.
    pub fn level(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Severity {
    type Error = ValueError;
    fn try_from(level: u8) -> Result<Self, ValueError> {
        Self::parse(&level.to_string())
    }
}

impl From<Severity> for u8 {
    fn from(s: Severity) -> u8 {
        s.0
    }
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Waiting on the support team.
    Open,
    /// Waiting on the customer.
    Pending,
    /// Answered; may still reopen.
    Solved,
    /// Done.
    Closed,
}

impl TicketStatus {
    /// Parses `open`, `new` (open), `pending`, `on_hold` (pending), `solved`, `resolved` (solved) or `closed`.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        const CHOICES: &str = "open, pending, solved, closed";
        Ok(match Label::parse(raw).map_err(|_| bad_choice(raw, CHOICES))?.as_str() {
            "open" | "new" => Self::Open,
            "pending" | "on_hold" | "hold" => Self::Pending,
            "solved" | "resolved" => Self::Solved,
            "closed" => Self::Closed,
            _ => return Err(bad_choice(raw, CHOICES)),
        })
    }

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Solved => "solved",
            Self::Closed => "closed",
        }
    }

    /// Whether the ticket still needs work.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Open | Self::Pending)
    }
}

/// A support ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The help desk's ticket id.
    pub id: ExternalId,
    /// The account that raised it.
    pub account: ExternalId,
    /// When it was opened.
    pub opened: Timestamp,
    /// When it was closed or solved, if it was.
    pub closed: Option<Timestamp>,
    /// 1 (critical) to 4 (low).
    pub severity: Severity,
    /// Current status.
    pub status: TicketStatus,
    /// The customer's satisfaction rating of the ticket, 1 to 5.
    pub csat: Option<u8>,
}

/// Which survey a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurveyKind {
    /// Net Promoter Score, 0 to 10.
    Nps,
    /// Customer satisfaction, 1 to 5.
    Csat,
}

impl SurveyKind {
    /// Parses `nps` or `csat`.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "nps" => Ok(Self::Nps),
            "csat" => Ok(Self::Csat),
            _ => Err(bad_choice(raw, "nps, csat")),
        }
    }

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nps => "nps",
            Self::Csat => "csat",
        }
    }

    /// The inclusive score range of the kind.
    pub fn range(self) -> (u8, u8) {
        match self {
            Self::Nps => (0, 10),
            Self::Csat => (1, 5),
        }
    }
}

/// One answer to an NPS or CSAT survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyResponse {
    /// The survey tool's response id.
    pub id: ExternalId,
    /// The account of the respondent.
    pub account: ExternalId,
    /// The respondent, when known.
    pub contact: Option<ExternalId>,
    /// NPS or CSAT.
    pub kind: SurveyKind,
    /// The score, within the kind's range.
    pub score: u8,
    /// Free-text comment.
    pub comment: Option<String>,
    /// When the response was given.
    pub responded: Timestamp,
}

/// Something the team did with or for the customer: a kickoff, an EBR, an
/// email. `kind` is an open vocabulary (see docs/import.md for the usual ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touchpoint {
    /// The CRM activity id.
    pub id: ExternalId,
    /// The account it concerns.
    pub account: ExternalId,
    /// `internal_kickoff`, `kickoff`, `ebr`, `alignment_meeting`, …
    pub kind: Label,
    /// When it took place.
    pub occurred: Timestamp,
    /// Who ran it.
    pub owner: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// What came of it.
    pub outcome: Option<String>,
}

/// What an opportunity would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpportunityKind {
    /// More of a product the account already has.
    Expansion,
    /// Renewal of an ending term.
    Renewal,
    /// A product the account does not have yet.
    CrossSell,
}

impl OpportunityKind {
    /// Parses `expansion`, `renewal` or `cross_sell`.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        const CHOICES: &str = "expansion, renewal, cross_sell";
        Ok(match Label::parse(raw).map_err(|_| bad_choice(raw, CHOICES))?.as_str() {
            "expansion" | "upsell" => Self::Expansion,
            "renewal" => Self::Renewal,
            "cross_sell" | "crosssell" => Self::CrossSell,
            _ => return Err(bad_choice(raw, CHOICES)),
        })
    }

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expansion => "expansion",
            Self::Renewal => "renewal",
            Self::CrossSell => "cross_sell",
        }
    }
}

/// Which team sourced an opportunity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpportunitySource {
    /// Customer success.
    Cs,
    /// Sales.
    Sales,
    /// Marketing.
    Marketing,
    /// A partner.
    Partner,
}

impl OpportunitySource {
    /// Parses `cs`, `sales`, `marketing` or `partner`.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        const CHOICES: &str = "cs, sales, marketing, partner";
        Ok(match Label::parse(raw).map_err(|_| bad_choice(raw, CHOICES))?.as_str() {
            "cs" | "customer_success" => Self::Cs,
            "sales" => Self::Sales,
            "marketing" => Self::Marketing,
            "partner" => Self::Partner,
            _ => return Err(bad_choice(raw, CHOICES)),
        })
    }

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cs => "cs",
            Self::Sales => "sales",
            Self::Marketing => "marketing",
            Self::Partner => "partner",
        }
    }
}

/// Whether an opportunity is still open, won or lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpportunityStatus {
    /// Still being worked.
    Open,
    /// Closed won.
    Won,
    /// Closed lost.
    Lost,
}

impl OpportunityStatus {
    /// Parses `open`, `won` (or `closed_won`), `lost` (or `closed_lost`).
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        const CHOICES: &str = "open, won, lost";
        Ok(match Label::parse(raw).map_err(|_| bad_choice(raw, CHOICES))?.as_str() {
            "open" => Self::Open,
            "won" | "closed_won" => Self::Won,
            "lost" | "closed_lost" => Self::Lost,
            _ => return Err(bad_choice(raw, CHOICES)),
        })
    }

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }
}

/// A sales opportunity on an existing customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opportunity {
    /// The CRM's opportunity id.
    pub id: ExternalId,
    /// The account.
    pub account: ExternalId,
    /// Expansion, renewal or cross-sell.
    pub kind: OpportunityKind,
    /// The team that sourced it.
    pub source: OpportunitySource,
    /// The change in MRR if won (negative for a contraction).
    pub mrr_delta: Money,
    /// The CRM's stage name.
    pub stage: String,
    /// When it was created.
    pub created: Date,
    /// When it was closed, once it is.
    pub closed: Option<Date>,
    /// Open, won or lost.
    pub status: OpportunityStatus,
}
