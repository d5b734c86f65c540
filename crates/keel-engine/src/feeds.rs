//! Which kind of ingested data each metric and each moment reads: what the
//! journey-map audit checks is flowing before it calls a cell systematized.

use keel_core::EntityKind;
use keel_journey::{Detection, Moment};

/// The kind of records a metric is computed from. Usage metrics, the
/// first-value milestone, custom event counts and user metrics read events.
pub fn metric_feed(name: &str) -> EntityKind {
    match name {
        "licensed_seats" | "tenure_days" | "days_to_renewal" | "mrr" | "mrr_change_90d" | "days_in_stage" => {
            EntityKind::Contracts
        }
        "open_tickets" | "open_tickets_sev1" | "open_tickets_sev2" | "open_tickets_sev3"
        | "open_tickets_sev4" | "tickets_30d" | "tickets_30d_ratio" => EntityKind::Tickets,
        "nps_latest" | "nps_trend" => EntityKind::Surveys,
        "champion_present" | "days_since_champion_change" | "executive_sponsor_present" => {
            EntityKind::Contacts
        }
        "days_since_touchpoint" => EntityKind::Touchpoints,
        n if n.starts_with("touchpoints_") || n.starts_with("days_since_touchpoint_") => {
            EntityKind::Touchpoints
        }
        _ => EntityKind::Events,
    }
}

/// The kinds of records a moment's detection reads, each once.
pub fn moment_feeds(moment: &Moment) -> Vec<EntityKind> {
    let mut feeds = match &moment.detection {
        Detection::Detector { name, .. } => vec![match name.as_str() {
            "first_ebr_due" | "first_ebr_overdue" | "silence" => EntityKind::Touchpoints,
            "champion_change" => EntityKind::Contacts,
            "support_escalation_spike" => EntityKind::Tickets,
            "renewal_window_opened" => EntityKind::Contracts,
            "advocacy_candidate" => EntityKind::Surveys,
            // first_value_reached, first_value_slip, usage_cliff, expansion_intent
            _ => EntityKind::Events,
        }],
        Detection::When(e) => e.reads.iter().filter(|r| *r != "account").map(|r| metric_feed(r)).collect(),
    };
    feeds.sort_by_key(|k| k.as_str());
    feeds.dedup();
    feeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_read_the_feed_they_are_computed_from() {
        assert_eq!(metric_feed("active_users_7d"), EntityKind::Events);
        assert_eq!(metric_feed("mobile_sessions_28d"), EntityKind::Events);
        assert_eq!(metric_feed("days_to_renewal"), EntityKind::Contracts);
        assert_eq!(metric_feed("tickets_30d"), EntityKind::Tickets);
        assert_eq!(metric_feed("nps_latest"), EntityKind::Surveys);
        assert_eq!(metric_feed("champion_present"), EntityKind::Contacts);
        assert_eq!(metric_feed("touchpoints_ebr"), EntityKind::Touchpoints);
        assert_eq!(metric_feed("days_since_touchpoint_kickoff"), EntityKind::Touchpoints);
    }
}
