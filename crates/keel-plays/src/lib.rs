//! Plays: what runs when a moment that matters fires.
//!
//! Pure, like the engine: given a checked journey, an account's evaluated
//! state ([`Facts`]) and what the caller remembers (the account's trigger
//! [`Memo`], its play runs, its contact [`Ledger`]), it says which triggers
//! occurred ([`occurrences`]), starts runs ([`start`]) and advances them
//! ([`advance`], [`approve`], [`cancel`]), returning the [`Effect`]s the
//! runner must carry out (tasks, emails, webhooks, touchpoints, outbox
//! entries) and the [`Decision`]s to append to the audit log. Storage,
//! delivery and scheduling live in the store and the server.

pub mod facts;
pub mod render;
pub mod run;
pub mod trigger;

pub use facts::{Facts, NEVER_DAYS, Recipient};
pub use run::{
    Decision, Effect, Ledger, Outcome, Prior, Run, Started, Status, advance, approve, cancel, held_out, start,
};
pub use trigger::{Memo, Occurrence, holding, occurrences};
