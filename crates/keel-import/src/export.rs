//! Writing records in the import format, so that what Keel writes it can read
//! back unchanged: CSV for every kind but events, JSON lines for events.

use std::io::Write;

use keel_core::{
    Account, Contact, Contract, EntityKind, Event, Opportunity, SurveyResponse, Ticket, Timestamp, Touchpoint,
};
use serde_json::{Value, json};

use crate::kinds::columns;

/// Writes records of one kind to a CSV or JSONL stream.
pub struct Exporter<W: Write> {
    kind: EntityKind,
    out: ExportSink<W>,
}

enum ExportSink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(W),
}

fn ts(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

impl<W: Write> Exporter<W> {
    /// A CSV writer for `kind` (accounts get one `attr.<name>` column per
    /// attribute name in `attribute_names`).
    pub fn csv(kind: EntityKind, out: W, attribute_names: &[String]) -> std::io::Result<Self> {
        let mut writer = csv::Writer::from_writer(out);
        let mut header: Vec<String> =
            columns(kind).iter().filter(|c| c.name != "attributes").map(|c| c.name.to_owned()).collect();
        if kind == EntityKind::Accounts {
            header.extend(attribute_names.iter().map(|n| format!("attr.{n}")));
        }
        writer.write_record(&header)?;
        Ok(Self { kind, out: ExportSink::Csv(Box::new(writer)) })
    }

    /// A JSON-lines writer for `kind`.
    pub fn jsonl(kind: EntityKind, out: W) -> Self {
        Self { kind, out: ExportSink::Jsonl(out) }
    }

    fn row(&mut self, cells: Vec<String>, object: impl FnOnce() -> Value) -> std::io::Result<()> {
        match &mut self.out {
            ExportSink::Csv(w) => w.write_record(&cells).map_err(std::io::Error::other),
            ExportSink::Jsonl(w) => {
                serde_json::to_writer(&mut *w, &object())?;
                w.write_all(b"\n")
            }
        }
    }

    /// Writes an account; `attribute_names` must be the list given to [`Exporter::csv`].
    pub fn account(&mut self, a: &Account, attribute_names: &[String]) -> std::io::Result<()> {
        debug_assert_eq!(self.kind, EntityKind::Accounts);
        let mut cells =
            vec![a.id.to_string(), a.name.clone(), opt(&a.owner), opt(&a.parent), a.created.to_string()];
        cells.extend(attribute_names.iter().map(|n| match a.attributes.get(n) {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }));
        self.row(cells, || account_json(a))
    }

    /// Writes a contract line.
    pub fn contract(&mut self, c: &Contract) -> std::io::Result<()> {
        let cells = vec![
            c.id.to_string(),
            c.account.to_string(),
            c.product.to_string(),
            c.start.to_string(),
            opt(&c.end),
            c.mrr.amount.to_string(),
            c.mrr.currency.to_string(),
            c.seats.to_string(),
            c.billing_period.as_str().into(),
        ];
        self.row(cells, || contract_json(c))
    }

    /// Writes a contact.
    pub fn contact(&mut self, c: &Contact) -> std::io::Result<()> {
        let cells = vec![
            c.id.to_string(),
            c.account.to_string(),
            c.email.clone(),
            c.name.clone(),
            c.role.to_string(),
            c.active_from.to_string(),
            opt(&c.active_to),
        ];
        self.row(cells, || contact_json(c))
    }

    /// Writes an event.
    pub fn event(&mut self, e: &Event) -> std::io::Result<()> {
        let props = || {
            if e.properties.is_empty() {
                String::new()
            } else {
                Value::Object(e.properties.clone()).to_string()
            }
        };
        let cells = vec![
            e.message_id.to_string(),
            e.account.to_string(),
            e.user.to_string(),
            e.name.to_string(),
            ts(e.timestamp),
            ts(e.received_at),
            props(),
        ];
        self.row(cells, || event_json(e))
    }

    /// Writes a ticket.
    pub fn ticket(&mut self, t: &Ticket) -> std::io::Result<()> {
        let cells = vec![
            t.id.to_string(),
            t.account.to_string(),
            ts(t.opened),
            t.closed.map(ts).unwrap_or_default(),
            t.severity.level().to_string(),
            t.status.as_str().into(),
            opt(&t.csat),
        ];
        self.row(cells, || ticket_json(t))
    }

    /// Writes a survey response.
    pub fn survey(&mut self, s: &SurveyResponse) -> std::io::Result<()> {
        let cells = vec![
            s.id.to_string(),
            s.account.to_string(),
            opt(&s.contact),
            s.kind.as_str().into(),
            s.score.to_string(),
            opt(&s.comment),
            ts(s.responded),
        ];
        self.row(cells, || survey_json(s))
    }

    /// Writes a touchpoint.
    pub fn touchpoint(&mut self, t: &Touchpoint) -> std::io::Result<()> {
        let cells = vec![
            t.id.to_string(),
            t.account.to_string(),
            t.kind.to_string(),
            ts(t.occurred),
            opt(&t.owner),
            opt(&t.notes),
            opt(&t.outcome),
        ];
        self.row(cells, || touchpoint_json(t))
    }

    /// Writes an opportunity.
    pub fn opportunity(&mut self, o: &Opportunity) -> std::io::Result<()> {
        let cells = vec![
            o.id.to_string(),
            o.account.to_string(),
            o.kind.as_str().into(),
            o.source.as_str().into(),
            o.mrr_delta.amount.to_string(),
            o.mrr_delta.currency.to_string(),
            o.stage.clone(),
            o.created.to_string(),
            opt(&o.closed),
            o.status.as_str().into(),
        ];
        self.row(cells, || opportunity_json(o))
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> std::io::Result<W> {
        match self.out {
            ExportSink::Csv(w) => w.into_inner().map_err(|e| std::io::Error::other(e.to_string())),
            ExportSink::Jsonl(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

/// An account as a JSON object with the import columns.
pub fn account_json(a: &Account) -> Value {
    json!({"id": a.id, "name": a.name, "owner": a.owner, "parent_id": a.parent,
          "created_date": a.created.to_string(), "attributes": a.attributes})
}

/// A contract line as a JSON object with the import columns.
pub fn contract_json(c: &Contract) -> Value {
    json!({"id": c.id, "account_id": c.account, "product": c.product, "start_date": c.start.to_string(),
          "end_date": c.end.map(|d| d.to_string()), "mrr": c.mrr.amount.to_string(),
          "currency": c.mrr.currency, "seats": c.seats, "billing_period": c.billing_period.as_str()})
}

/// A contact as a JSON object with the import columns.
pub fn contact_json(c: &Contact) -> Value {
    json!({"id": c.id, "account_id": c.account, "email": c.email, "name": c.name, "role": c.role,
          "active_from": c.active_from.to_string(), "active_to": c.active_to.map(|d| d.to_string())})
}

/// An event as a JSON object with the import columns.
pub fn event_json(e: &Event) -> Value {
    json!({"message_id": e.message_id, "account_id": e.account, "user_id": e.user, "event": e.name,
          "timestamp": ts(e.timestamp), "received_at": ts(e.received_at), "properties": e.properties})
}

/// A ticket as a JSON object with the import columns.
pub fn ticket_json(t: &Ticket) -> Value {
    json!({"id": t.id, "account_id": t.account, "opened_at": ts(t.opened), "closed_at": t.closed.map(ts),
          "severity": t.severity.level(), "status": t.status.as_str(), "csat": t.csat})
}

/// A survey response as a JSON object with the import columns.
pub fn survey_json(s: &SurveyResponse) -> Value {
    json!({"id": s.id, "account_id": s.account, "contact_id": s.contact, "kind": s.kind.as_str(),
          "score": s.score, "comment": s.comment, "responded_at": ts(s.responded)})
}

/// A touchpoint as a JSON object with the import columns.
pub fn touchpoint_json(t: &Touchpoint) -> Value {
    json!({"id": t.id, "account_id": t.account, "kind": t.kind, "occurred_at": ts(t.occurred),
          "owner": t.owner, "notes": t.notes, "outcome": t.outcome})
}

/// An opportunity as a JSON object with the import columns.
pub fn opportunity_json(o: &Opportunity) -> Value {
    json!({"id": o.id, "account_id": o.account, "kind": o.kind.as_str(), "source": o.source.as_str(),
          "mrr_delta": o.mrr_delta.amount.to_string(), "currency": o.mrr_delta.currency,
          "stage": o.stage, "created_date": o.created.to_string(),
          "closed_date": o.closed.map(|d| d.to_string()), "status": o.status.as_str()})
}
