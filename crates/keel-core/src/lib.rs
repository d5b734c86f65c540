//! Keel's vocabulary: the records a post-sale journey is made of.
//!
//! Everything here is plain data with no I/O. Values are built through
//! `parse`/`TryFrom` constructors that reject bad input with a [`ValueError`]
//! saying what was wrong, so that a value of type [`Money`] or [`ExternalId`]
//! is known to be valid wherever it travels (parse, don't validate).
//!
//! ```
//! use keel_core::{ExternalId, Money, parse_date};
//!
//! let account = ExternalId::parse("acme-corp").unwrap();
//! let mrr = Money::parse_non_negative("1250.00", "USD").unwrap();
//! let start = parse_date("2025-03-01").unwrap();
//! assert_eq!(account.as_str(), "acme-corp");
//! assert_eq!(mrr.to_string(), "1250.00 USD");
//! assert_eq!(start.to_string(), "2025-03-01");
//! assert!(Money::parse_non_negative("-5", "USD").is_err());
//! ```
//!
//! The records ([`Account`], [`Contract`], [`Contact`], [`Event`], [`Ticket`],
//! [`SurveyResponse`], [`Touchpoint`], [`Opportunity`]) refer to their account
//! by its external id, the id the customer's own systems (CRM, billing, help
//! desk) use; storage maps it to an internal key.

mod band;
mod entity;
mod holdout;
mod id;
mod money;
mod task;
mod time;
mod usage;

pub use band::{Band, UnknownBand};
pub use entity::{
    Account, Attributes, BillingPeriod, Contact, Contract, EntityKind, Event, Opportunity, OpportunityKind,
    OpportunitySource, OpportunityStatus, Severity, SurveyKind, SurveyResponse, Ticket, TicketStatus,
    Touchpoint,
};
pub use holdout::held_out;
pub use id::{EventName, ExternalId, Label, MessageId, UserId, check_text};
pub use money::{Currency, Money};
pub use task::{TaskStatus, task_is_overdue};
pub use time::{Date, TimeWindow, Timestamp, parse_date, parse_timestamp};
pub use usage::DayUsage;

/// Why a single value could not be accepted.
///
/// Messages are lowercase, without a trailing period, and say what was
/// expected so that an import report can be acted on without the docs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl ValueError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
