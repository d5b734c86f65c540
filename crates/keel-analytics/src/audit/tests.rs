use super::*;

fn link(kind: LinkKind, id: &str, feeds: &[EntityKind]) -> Link {
    Link { kind, id: id.to_owned(), feeds: feeds.to_vec() }
}

fn cell(row: &str, months: (u8, u8), text: &str, links: Vec<Link>) -> CellSpec {
    CellSpec { row: row.to_owned(), months, text: text.to_owned(), links }
}

fn cells() -> Vec<CellSpec> {
    use EntityKind::{Events, Tickets};
    vec![
        cell("touchpoints", (1, 1), "kickoff", vec![link(LinkKind::Touchpoint, "kickoff", &[])]),
        cell(
            "moments_of_truth",
            (2, 3),
            "first value",
            vec![link(LinkKind::Moment, "first_value", &[Events])],
        ),
        cell("loyalty_blockers", (2, 3), "slip", vec![link(LinkKind::Moment, "slip", &[Events])]),
        cell("loyalty_builders", (2, 3), "review", vec![link(LinkKind::Touchpoint, "review", &[])]),
        cell(
            "service_blueprint",
            (4, 4),
            "escalations",
            vec![link(LinkKind::Metric, "tickets_30d", &[Tickets])],
        ),
        cell("customer_thoughts", (1, 1), "  ", vec![]),
        cell("health_signals", (1, 1), "a play nobody runs", vec![link(LinkKind::Play, "p1", &[])]),
    ]
}

const ROWS: [&str; 7] = [
    "customer_thoughts",
    "moments_of_truth",
    "loyalty_blockers",
    "touchpoints",
    "service_blueprint",
    "loyalty_builders",
    "health_signals",
];

struct M<'a> {
    active: bool,
    events: bool,
    tickets: bool,
    touch: &'a [&'a str],
    fired: &'a [&'a str],
    plays: &'a [&'a str],
}

const fn m<'a>(events: bool, touch: &'a [&'a str], fired: &'a [&'a str]) -> M<'a> {
    M { active: true, events, tickets: false, touch, fired, plays: &[] }
}

fn account(id: &str, segment: &str, renewed: Option<bool>, months: &[M<'_>]) -> AccountMonths {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
    AccountMonths {
        account: ExternalId::parse(id).unwrap(),
        renewed,
        months: months
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let mut feeds = vec![EntityKind::Contracts];
                if x.events {
                    feeds.push(EntityKind::Events);
                }
                if x.tickets {
                    feeds.push(EntityKind::Tickets);
                }
                if !x.touch.is_empty() {
                    feeds.push(EntityKind::Touchpoints);
                }
                MonthObs {
                    month: i as u8 + 1,
                    active_at_start: x.active,
                    segment: Some(segment.to_owned()),
                    stages: vec![],
                    fired: strings(x.fired),
                    feeds,
                    touchpoints: strings(x.touch),
                    plays: strings(x.plays),
                }
            })
            .collect(),
    }
}

/// A: kickoff, slip in month 2, the review in month 3, tickets in month 4, renewed.
/// B: no kickoff, no events in month 2, slip in month 3, churned.
/// C: kickoff, slip, month 4 not over yet, undecided.
/// D: not active when month 1 began (signed late), events in month 2 only, churned.
fn world() -> Vec<AccountMonths> {
    let mut a4 = m(true, &[], &[]);
    a4.tickets = true;
    let mut d1 = m(false, &[], &[]);
    d1.active = false;
    vec![
        account(
            "a",
            "smb",
            Some(true),
            &[m(true, &["kickoff"], &[]), m(true, &[], &["slip"]), m(true, &["review"], &[]), a4],
        ),
        account(
            "b",
            "smb",
            Some(false),
            &[m(true, &[], &[]), m(false, &[], &[]), m(true, &[], &["slip"]), m(true, &[], &[])],
        ),
        account("c", "ent", None, &[m(true, &["kickoff"], &[]), m(true, &[], &["slip"]), m(true, &[], &[])]),
        account("d", "ent", Some(false), &[d1, m(true, &[], &[]), m(false, &[], &[]), m(true, &[], &[])]),
    ]
}

fn audit(segment: Option<&str>) -> AuditReport {
    let cells = cells();
    let accounts: Vec<AccountCells> = world().iter().map(|a| observe(&cells, a)).collect();
    report(&cells, &ROWS, &accounts, segment)
}

#[test]
fn cells_are_classified_by_hand() {
    let r = audit(None);
    let got: Vec<(&str, Status, u64, Vec<u64>)> = r
        .cells
        .iter()
        .map(|c| (c.row.as_str(), c.status, c.accounts, c.links.iter().map(|l| l.live).collect()))
        .collect();
    assert_eq!(
        got,
        [
            // kickoff logged for a and c of a, b, c (d was not active when month 1 began): 2/3.
            ("touchpoints", Status::Systematized, 3, vec![2]),
            // events flowed for all four in months 2–3: the moment is watched for every one.
            ("moments_of_truth", Status::Systematized, 4, vec![4]),
            ("loyalty_blockers", Status::Systematized, 4, vec![4]),
            // the review happened for a alone: 1/4.
            ("loyalty_builders", Status::Heroic, 4, vec![1]),
            // only a had a ticket, but that wires the support feed: a reading for a, b and d (c's month 4 is not over).
            ("service_blueprint", Status::Systematized, 3, vec![3]),
            ("customer_thoughts", Status::Missing, 3, vec![]),
            // no play runs: text, nothing live.
            ("health_signals", Status::DocumentedOnly, 3, vec![0]),
        ]
    );
    assert_eq!(r.cells[2].links[0].fired, Some(3));
    assert_eq!(r.cells[1].links[0].fired, Some(0));
    assert_eq!(r.cells[0].links[0].fired, None);
    assert_eq!(r.accounts, 4);
}

#[test]
fn the_grid_spreads_each_cell_over_its_months_and_counts_96_cells() {
    let r = audit(None);
    assert_eq!(r.grid.len(), 7);
    let (row, months) = &r.grid[1];
    assert_eq!(row, "moments_of_truth");
    assert_eq!(&months[..4], &[Status::Missing, Status::Systematized, Status::Systematized, Status::Missing]);
    let counts: Vec<(Status, u64)> = r.counts.clone();
    assert_eq!(
        counts,
        [(Status::Systematized, 6), (Status::Heroic, 2), (Status::DocumentedOnly, 1), (Status::Missing, 75)]
    );
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 7 * 12);
}

#[test]
fn the_risk_inventory_prices_each_heroic_cell_at_renewal() {
    let r = audit(None);
    assert_eq!(r.risk_inventory.len(), 1);
    let risk = &r.risk_inventory[0];
    assert_eq!(
        (risk.row.as_str(), risk.months, risk.accounts, risk.covered),
        ("loyalty_builders", (2, 3), 4, 1)
    );
    // With the review: a, renewed. Without: b and d churned; c is undecided.
    let s = &risk.renewal;
    assert_eq!((s.passed.k, s.passed.n, s.failed.k, s.failed.n), (1, 1, 0, 2));
    assert_eq!(s.difference, Some(1.0));
}

#[test]
fn gaps_count_accounts_blocked_with_no_builder() {
    let r = audit(None);
    assert_eq!(r.gaps.len(), 1, "only months 2–3 have a blocker or a builder");
    let g = &r.gaps[0];
    assert_eq!(g.months, (2, 3));
    // Slip fired for a, b, c; the review happened for a: b and c blocked without a builder.
    assert_eq!((g.accounts, g.blocked, g.built, g.blocked_not_built), (4, Some(3), 1, Some(2)));
    assert_eq!(g.gap, Some(0.5));
    assert_eq!(g.blocker.as_ref().map(|b| b.1), Some(Status::Systematized));
    assert_eq!(g.builder.as_ref().map(|b| b.1), Some(Status::Heroic));
}

#[test]
fn a_segment_audits_its_own_accounts_and_most_means_at_least_half() {
    let r = audit(Some("smb"));
    assert_eq!(r.accounts, 2);
    // a and b only: the review happened for a, 1/2 — half is most.
    assert_eq!(r.cells[3].accounts, 2);
    assert_eq!(r.cells[3].status, Status::Systematized);
    assert!(r.risk_inventory.is_empty());
    // Nobody in the segment: every cell with text is documented only.
    let none = audit(Some("nobody"));
    assert_eq!(none.accounts, 0);
    assert!(none.cells.iter().all(|c| c.accounts == 0));
    assert_eq!(none.cells[0].status, Status::DocumentedOnly);
    assert_eq!(none.cells[5].status, Status::Missing);
}

#[test]
fn a_cell_needs_its_first_and_last_month_and_a_line_in_force_when_it_begins() {
    let cells = cells();
    let world = world();
    let c = observe(&cells, &world[2]);
    assert!(c.cells[4].is_none(), "c's month 4 is not over");
    let d = observe(&cells, &world[3]);
    assert!(d.cells[0].is_none(), "d had no line in force when month 1 began");
    assert!(d.cells[1].is_some());
}

#[test]
fn a_play_is_live_where_a_run_of_it_started_in_the_cells_months() {
    let cells = vec![cell("health_signals", (1, 2), "rescue", vec![link(LinkKind::Play, "rescue", &[])])];
    let ran = |plays| M { plays, ..m(true, &[], &[]) };
    let world = [
        account("a", "smb", Some(true), &[ran(&["rescue"]), m(true, &[], &[])]),
        account("b", "smb", Some(false), &[m(true, &[], &[]), ran(&["rescue"])]),
        account("c", "smb", Some(false), &[m(true, &[], &[]), ran(&["other"])]),
    ];
    let accounts: Vec<AccountCells> = world.iter().map(|a| observe(&cells, a)).collect();
    let r = report(&cells, &["health_signals"], &accounts, None);
    assert_eq!((r.cells[0].status, r.cells[0].links[0].live), (Status::Systematized, 2));
    let r = report(&cells, &["health_signals"], &accounts[1..], None);
    assert_eq!((r.cells[0].status, r.cells[0].links[0].live), (Status::Systematized, 1), "1 of 2 is most");
    let r = report(&cells, &["health_signals"], &accounts[2..], None);
    assert_eq!((r.cells[0].status, r.cells[0].links[0].live), (Status::DocumentedOnly, 0));
}
