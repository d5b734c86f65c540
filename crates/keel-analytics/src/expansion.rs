//! Expansion and advocacy (docs/metrics.md): the expansion pipeline and won
//! MRR by the team that sourced it — so CS-sourced expansion can be told
//! from sales' — and the advocacy candidates (promoters) with the asks made
//! of them.

use std::collections::{BTreeMap, BTreeSet};

use keel_core::{
    Date, ExternalId, Opportunity, OpportunityKind, OpportunityStatus, SurveyKind, SurveyResponse, Touchpoint,
};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::{Period, ratio};

/// Touchpoint kinds that count as an advocacy ask.
pub const ASK_KINDS: [&str; 5] =
    ["reference_request", "case_study", "review_request", "referral_request", "advocacy_ask"];

/// Expansion opportunities of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceRow {
    /// cs, sales, marketing or partner.
    pub source: String,
    /// Created in the period.
    pub created: u64,
    /// Their MRR delta.
    pub created_mrr: Decimal,
    /// Won with a close date in the period.
    pub won: u64,
    /// Their MRR delta.
    pub won_mrr: Decimal,
    /// Lost with a close date in the period.
    pub lost: u64,
    /// won / (won + lost).
    pub win_rate: Option<f64>,
    /// Open on `to`: created before it and not closed before it.
    pub open_on_to: u64,
    /// Their MRR delta.
    pub open_mrr: Decimal,
}

/// A promoter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Candidate {
    /// The account.
    pub account: ExternalId,
    /// Its latest NPS score by `to`.
    pub nps: u8,
    /// When that score was given.
    pub responded: Date,
    /// Advocacy asks made of it in the period.
    pub asks: u64,
}

/// `keel report expansion`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExpansionReport {
    /// The period.
    pub period: Period,
    /// The currency of the amounts (none when there are no opportunities).
    pub currency: Option<String>,
    /// Expansion and cross-sell opportunities per source, by name.
    pub by_source: Vec<SourceRow>,
    /// All sources together.
    pub total: SourceRow,
    /// CS-sourced won MRR / all won MRR.
    pub cs_share_of_won_mrr: Option<f64>,
    /// The NPS a promoter needs.
    pub promoter_min_nps: u8,
    /// Active accounts on `to` whose latest NPS by then is a promoter's.
    pub promoters: u64,
    /// Those accounts, by id.
    pub candidates: Vec<Candidate>,
    /// Of which were asked in the period.
    pub candidates_asked: u64,
    /// Advocacy asks in the period, to any account.
    pub asks: u64,
}

fn add(row: &mut SourceRow, o: &Opportunity, period: Period) {
    let amount = o.mrr_delta.amount;
    if period.from <= o.created && o.created < period.to {
        row.created += 1;
        row.created_mrr += amount;
    }
    if o.closed.is_some_and(|c| period.from <= c && c < period.to) {
        match o.status {
            OpportunityStatus::Won => {
                row.won += 1;
                row.won_mrr += amount;
            }
            OpportunityStatus::Lost => row.lost += 1,
            OpportunityStatus::Open => {}
        }
    }
    if o.created < period.to && o.closed.is_none_or(|c| c >= period.to) {
        row.open_on_to += 1;
        row.open_mrr += amount;
    }
}

/// What the report reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// Every opportunity (renewals are left out here).
    pub opportunities: &'a [Opportunity],
    /// Every survey response (NPS ones are read).
    pub surveys: &'a [SurveyResponse],
    /// Every touchpoint (asks are read).
    pub touchpoints: &'a [Touchpoint],
    /// The accounts active on `to`.
    pub active: &'a BTreeSet<ExternalId>,
}

/// The report; amounts in `currency`, or — when none is given — in the one
/// currency every opportunity shares.
pub fn report(
    inputs: Inputs<'_>,
    period: Period,
    currency: Option<&str>,
    promoter_min_nps: u8,
) -> Result<ExpansionReport, crate::AnalyticsError> {
    let Inputs { opportunities, surveys, touchpoints, active } = inputs;
    let mut by_source: BTreeMap<String, SourceRow> = BTreeMap::new();
    let mut total = SourceRow { source: "all".into(), ..SourceRow::default() };
    let mut currencies = BTreeSet::new();
    let growth = |o: &&Opportunity| {
        matches!(o.kind, OpportunityKind::Expansion | OpportunityKind::CrossSell)
            && currency.is_none_or(|c| c.eq_ignore_ascii_case(&o.mrr_delta.currency.to_string()))
    };
    for o in opportunities.iter().filter(growth) {
        currencies.insert(o.mrr_delta.currency.to_string());
    }
    if currencies.len() > 1 {
        return Err(crate::AnalyticsError::MixedCurrencies { currencies: currencies.into_iter().collect() });
    }
    for o in opportunities.iter().filter(growth) {
        let source = o.source.as_str().to_owned();
        let row =
            by_source.entry(source.clone()).or_insert_with(|| SourceRow { source, ..SourceRow::default() });
        add(row, o, period);
        add(&mut total, o, period);
    }
    for row in by_source.values_mut().chain(std::iter::once(&mut total)) {
        row.win_rate = ratio(row.won as f64, (row.won + row.lost) as f64);
    }
    let f = |d: Decimal| d.to_f64().unwrap_or(0.0);
    let cs_won = by_source.get("cs").map_or(Decimal::ZERO, |r| r.won_mrr);
    let cs_share_of_won_mrr = ratio(f(cs_won), f(total.won_mrr));

    let mut latest: BTreeMap<&ExternalId, &SurveyResponse> = BTreeMap::new();
    for s in surveys.iter().filter(|s| s.kind == SurveyKind::Nps && s.responded.date_naive() < period.to) {
        let slot = latest.entry(&s.account).or_insert(s);
        if (s.responded, &s.id) > (slot.responded, &slot.id) {
            *slot = s;
        }
    }
    let is_ask = |t: &Touchpoint| {
        ASK_KINDS.contains(&t.kind.as_str()) && {
            let d = t.occurred.date_naive();
            period.from <= d && d < period.to
        }
    };
    let mut asks_of: BTreeMap<&ExternalId, u64> = BTreeMap::new();
    for t in touchpoints.iter().filter(|t| is_ask(t)) {
        *asks_of.entry(&t.account).or_default() += 1;
    }
    let candidates: Vec<Candidate> = latest
        .into_iter()
        .filter(|(a, s)| s.score >= promoter_min_nps && active.contains(*a))
        .map(|(a, s)| Candidate {
            account: a.clone(),
            nps: s.score,
            responded: s.responded.date_naive(),
            asks: asks_of.get(a).copied().unwrap_or(0),
        })
        .collect();
    Ok(ExpansionReport {
        period,
        currency: (currencies.len() == 1).then(|| currencies.into_iter().next()).flatten(),
        by_source: by_source.into_values().collect(),
        total,
        cs_share_of_won_mrr,
        promoter_min_nps,
        candidates_asked: candidates.iter().filter(|c| c.asks > 0).count() as u64,
        promoters: candidates.len() as u64,
        candidates,
        asks: asks_of.values().sum(),
    })
}

#[cfg(test)]
mod tests {
    use keel_core::{Label, Money, OpportunitySource};

    use super::*;

    fn id(s: &str) -> ExternalId {
        ExternalId::parse(s).unwrap()
    }

    fn opp(
        n: &str,
        kind: OpportunityKind,
        source: OpportunitySource,
        mrr: &str,
        created: &str,
        closed: Option<&str>,
        status: OpportunityStatus,
    ) -> Opportunity {
        Opportunity {
            id: id(n),
            account: id("acme"),
            kind,
            source,
            mrr_delta: Money::parse(mrr, "EUR").unwrap(),
            stage: "x".into(),
            created: created.parse().unwrap(),
            closed: closed.map(|c| c.parse().unwrap()),
            status,
        }
    }

    fn nps(n: &str, account: &str, score: u8, on: &str) -> SurveyResponse {
        SurveyResponse {
            id: id(n),
            account: id(account),
            contact: None,
            kind: SurveyKind::Nps,
            score,
            comment: None,
            responded: keel_core::parse_timestamp(&format!("{on}T10:00:00Z")).unwrap(),
        }
    }

    fn touch(n: &str, account: &str, kind: &str, on: &str) -> Touchpoint {
        Touchpoint {
            id: id(n),
            account: id(account),
            kind: Label::parse(kind).unwrap(),
            occurred: keel_core::parse_timestamp(&format!("{on}T10:00:00Z")).unwrap(),
            owner: None,
            notes: None,
            outcome: None,
        }
    }

    /// The first half of 2025, by hand.
    #[test]
    fn pipeline_won_mrr_and_promoters_by_hand() {
        use OpportunityKind::*;
        use OpportunitySource::*;
        use OpportunityStatus::*;
        let opps = vec![
            opp("o1", Expansion, Cs, "300", "2025-01-10", Some("2025-02-01"), Won),
            opp("o2", CrossSell, Cs, "200", "2025-02-10", Some("2025-03-01"), Lost),
            opp("o3", Expansion, Sales, "500", "2024-12-01", Some("2025-04-01"), Won),
            opp("o4", Expansion, Cs, "100", "2025-05-01", None, Open),
            opp("o5", Renewal, Cs, "900", "2025-01-01", Some("2025-02-01"), Won), // not growth
            opp("o6", Expansion, Sales, "50", "2025-06-20", Some("2025-07-05"), Won), // closes after
        ];
        let surveys = vec![
            nps("s1", "acme", 6, "2025-01-01"),
            nps("s2", "acme", 10, "2025-05-01"), // latest: promoter
            nps("s3", "globex", 9, "2025-02-01"),
            nps("s4", "initech", 10, "2025-03-01"), // not active on `to`
            nps("s5", "globex", 7, "2025-07-15"),   // after `to`
        ];
        let touches = vec![
            touch("t1", "acme", "reference_request", "2025-05-10"),
            touch("t2", "acme", "case_study", "2025-06-01"),
            touch("t3", "globex", "ebr", "2025-06-01"),
        ];
        let active: BTreeSet<ExternalId> = [id("acme"), id("globex")].into();
        let period = Period::new("2025-01-01".parse().unwrap(), "2025-07-01".parse().unwrap()).unwrap();
        let inputs =
            Inputs { opportunities: &opps, surveys: &surveys, touchpoints: &touches, active: &active };
        let r = report(inputs, period, None, 9).unwrap();
        let cs = &r.by_source[0];
        assert_eq!((cs.source.as_str(), cs.created, cs.won, cs.lost, cs.open_on_to), ("cs", 3, 1, 1, 1));
        assert_eq!(
            (cs.created_mrr, cs.won_mrr, cs.open_mrr),
            ("600".parse().unwrap(), "300".parse().unwrap(), "100".parse().unwrap())
        );
        assert_eq!(cs.win_rate, Some(0.5));
        let sales = &r.by_source[1];
        // o3 was created before the period and won in it; o6 is open on `to`.
        assert_eq!((sales.created, sales.won, sales.open_on_to), (1, 1, 1));
        assert_eq!(r.total.won_mrr, "800".parse().unwrap());
        assert_eq!(r.cs_share_of_won_mrr, Some(300.0 / 800.0));
        let promoters: Vec<(&str, u8, u64)> =
            r.candidates.iter().map(|c| (c.account.as_str(), c.nps, c.asks)).collect();
        assert_eq!(promoters, [("acme", 10, 2), ("globex", 9, 0)]);
        assert_eq!((r.promoters, r.candidates_asked, r.asks), (2, 1, 2));
        assert_eq!(r.currency.as_deref(), Some("EUR"));
    }
}
