//! Each class of bad input yields its documented error and leaves the store as it was.

use keel_core::EntityKind;
use keel_import::{ImportOptions, ImportReport, Outcome};

use crate::{Fixture, fixture, now};

/// A store holding two accounts and one contract.
async fn seeded() -> Fixture {
    let f = fixture().await;
    let accounts = f.write(
        "seed_accounts.csv",
        b"id,name,owner,created_date,attr.tier\nacme,Acme,ana@x.example,2025-01-01,enterprise\nglobex,Globex,,2025-02-01,smb\n",
    );
    assert_eq!(f.import(EntityKind::Accounts, &accounts).await.outcome, Outcome::Committed);
    let contracts = f.write(
        "seed_contracts.csv",
        b"id,account_id,product,start_date,end_date,mrr,currency,seats,billing_period\n\
          c1,acme,platform,2025-01-01,2026-01-01,1200.00,USD,40,annual\n",
    );
    assert_eq!(f.import(EntityKind::Contracts, &contracts).await.outcome, Outcome::Committed);
    f
}

/// Imports `content` as `name`, checks nothing changed, and returns the
/// diagnostics as text with the temporary directory stripped.
async fn rejected(f: &Fixture, kind: EntityKind, name: &str, content: &[u8]) -> String {
    let before = f.snapshot().await;
    let report = f.import(kind, &f.write(name, content)).await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{:?}", report.diagnostics);
    assert!(report.rejected > 0);
    assert_eq!(f.snapshot().await, before, "a rejected file changed the store");
    render(f, &report)
}

fn render(f: &Fixture, report: &ImportReport) -> String {
    let dir = format!("{}/", f.dir.path().display());
    report.diagnostics.iter().map(|d| d.to_string().replace(&dir, "")).collect::<Vec<_>>().join("\n")
}

const CONTRACT_HEADER: &str = "id,account_id,product,start_date,end_date,mrr,currency,seats,billing_period\n";

fn contracts(rows: &str) -> Vec<u8> {
    format!("{CONTRACT_HEADER}{rows}").into_bytes()
}

#[tokio::test]
async fn missing_required_column_rejects_the_file() {
    let f = seeded().await;
    let text = rejected(
        &f,
        EntityKind::Contracts,
        "no_mrr.csv",
        b"id,account_id,product,start_date,seats,billing_period\nc2,acme,platform,2025-01-01,3,annual\n",
    )
    .await;
    insta::assert_snapshot!(text, @"no_mrr.csv:1: mrr: required column is missing from the header");
}

#[tokio::test]
async fn unknown_column_is_named_with_the_accepted_ones() {
    let f = seeded().await;
    let text =
        rejected(&f, EntityKind::Accounts, "typo.csv", b"id,name,created_date,tier\nx,X,2025-01-01,smb\n")
            .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn bad_dates_are_reported_with_the_expected_form() {
    let f = seeded().await;
    let text = rejected(
        &f,
        EntityKind::Contracts,
        "dates.csv",
        &contracts(
            "c2,acme,platform,2025-13-01,,100,USD,3,annual\n\
             c3,acme,platform,03/01/2025,,100,USD,3,annual\n\
             c4,acme,platform,2025-06-01,2025-05-01,100,USD,3,annual\n",
        ),
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn dates_and_instants_outside_the_window_are_refused_with_their_place() {
    let f = seeded().await;
    let text = rejected(
        &f,
        EntityKind::Contracts,
        "years.csv",
        &contracts(
            "c2,acme,platform,0000-01-01,,100,USD,3,annual\n\
             c3,acme,platform,2025-01-01,9999-12-31,100,USD,3,annual\n\
             c4,acme,platform,2025-01-01,2126-01-01,100,USD,3,annual\n",
        ),
    )
    .await;
    insta::assert_snapshot!(text, @r"
    years.csv:2: start_date: 0000-01-01 is before 2000-01-01, the earliest date Keel accepts (the `earliest` setting)
    years.csv:3: end_date: 9999-12-31 is more than 100 years ahead; the latest date Keel accepts now is 2126-06-01
    ");
    let events = rejected(
        &f,
        EntityKind::Events,
        "events.csv",
        b"message_id,account_id,user_id,event,timestamp\n\
          m1,acme,u1,Login,0000-01-01T00:00:00Z\n\
          m2,acme,u1,Login,2026-06-02T11:00:00Z\n\
          m3,acme,u1,Login,2026-06-02T13:00:00Z\n",
    )
    .await;
    insta::assert_snapshot!(events, @r"
    events.csv:2: timestamp: 0000-01-01T00:00:00Z is before 2000-01-01, the earliest date Keel accepts (the `earliest` setting)
    events.csv:4: timestamp: 2026-06-02T13:00:00Z is after 2026-06-02T12:00:00Z, the latest instant Keel accepts now (clock skew is allowed up to 24 h)
    ");
}

#[tokio::test]
async fn negative_mrr_is_rejected() {
    let f = seeded().await;
    let text = rejected(
        &f,
        EntityKind::Contracts,
        "neg.csv",
        &contracts("c2,acme,platform,2025-01-01,,-20,USD,3,annual\n"),
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn unknown_account_reference_is_rejected() {
    let f = seeded().await;
    let text = rejected(
        &f,
        EntityKind::Contracts,
        "orphan.csv",
        &contracts("c2,initech,platform,2025-01-01,,100,USD,3,annual\n"),
    )
    .await;
    insta::assert_snapshot!(text, @r#"orphan.csv:2: account_id: unknown account "initech"; import it in an accounts file first"#);
}

#[tokio::test]
async fn unknown_parent_account_is_rejected() {
    let f = seeded().await;
    let text = rejected(
        &f,
        EntityKind::Accounts,
        "parents.csv",
        b"id,name,parent_id,created_date\nsub1,Sub One,acme,2025-01-01\nsub2,Sub Two,sub1,2025-01-01\nsub3,Sub Three,nowhere,2025-01-01\n",
    )
    .await;
    insta::assert_snapshot!(text, @r#"parents.csv:4: parent_id: unknown account "nowhere": not stored and not in this file"#);
}

#[tokio::test]
async fn duplicate_id_in_one_file_is_rejected() {
    let f = seeded().await;
    let text = rejected(
        &f,
        EntityKind::Contracts,
        "dup.csv",
        &contracts(
            "c2,acme,platform,2025-01-01,,100,USD,3,annual\nc2,acme,platform,2025-02-01,,100,USD,3,annual\n",
        ),
    )
    .await;
    insta::assert_snapshot!(text, @r#"dup.csv:3: id: duplicate id "c2" in this file (first on line 2)"#);
}

#[tokio::test]
async fn invalid_utf8_is_located_in_csv_and_jsonl() {
    let f = seeded().await;
    let mut csv = b"id,name,created_date\nok,Fine,2025-01-01\nbad,Caf".to_vec();
    csv.extend_from_slice(&[0xe9, 0x20]);
    csv.extend_from_slice(b",2025-01-01\n");
    let text = rejected(&f, EntityKind::Accounts, "latin1.csv", &csv).await;
    insta::assert_snapshot!(text, @"latin1.csv:3: name: invalid UTF-8 after byte 3 of the cell; save the file as UTF-8");

    let mut jsonl =
        b"{\"id\":\"ok\",\"name\":\"Fine\",\"created_date\":\"2025-01-01\"}\n{\"id\":\"bad\",\"name\":\"Caf"
            .to_vec();
    jsonl.extend_from_slice(&[0xe9]);
    jsonl.extend_from_slice(b"\",\"created_date\":\"2025-01-01\"}\n");
    let text = rejected(&f, EntityKind::Accounts, "latin1.jsonl", &jsonl).await;
    insta::assert_snapshot!(text, @"latin1.jsonl:2: invalid UTF-8 at byte 23 of the line; save the file as UTF-8");
}

#[tokio::test]
async fn wrong_delimiter_is_detected_from_the_header() {
    let f = seeded().await;
    let text =
        rejected(&f, EntityKind::Accounts, "semicolons.csv", b"id;name;created_date\nx;X;2025-01-01\n").await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn a_declared_delimiter_is_honoured() {
    let f = seeded().await;
    let path = f.write("semicolons.csv", b"id;name;created_date\nx;X;2025-01-01\n");
    let mut options = ImportOptions::new(EntityKind::Accounts, now());
    options.delimiter = Some(b';');
    let report = f.import_with(&path, options).await;
    assert_eq!((report.outcome, report.counts.inserted), (Outcome::Committed, 1));
}

#[tokio::test]
async fn empty_files_are_rejected_in_both_formats() {
    let f = seeded().await;
    let csv = rejected(&f, EntityKind::Tickets, "empty.csv", b"").await;
    let jsonl = rejected(&f, EntityKind::Events, "empty.jsonl", b"\n\n").await;
    insta::assert_snapshot!(format!("{csv}\n{jsonl}"));
}

#[tokio::test]
async fn every_bad_row_is_reported_not_only_the_first() {
    let f = seeded().await;
    let text = rejected(
        &f,
        EntityKind::Tickets,
        "tickets.csv",
        b"id,account_id,opened_at,closed_at,severity,status,csat\n\
          t1,acme,2025-03-01T10:00:00Z,,1,open,\n\
          t2,acme,yesterday,,9,open,7\n\
          t3,acme,2025-03-01T10:00:00Z,2025-02-01T10:00:00Z,2,weird,\n\
          t4,acme,2025-03-01T10:00:00Z\n",
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn bad_jsonl_lines_are_reported_by_line() {
    let f = seeded().await;
    let text = rejected(
        &f,
        EntityKind::Surveys,
        "surveys.jsonl",
        b"{\"id\":\"s1\",\"account_id\":\"acme\",\"kind\":\"nps\",\"score\":9,\"responded_at\":\"2025-03-01T10:00:00Z\"}\n\
          {\"id\":\"s2\",\"account_id\":\"acme\",\"kind\":\"nps\",\"score\":11,\"responded_at\":\"2025-03-01T10:00:00Z\"}\n\
          {\"id\":\"s3\", oops}\n\
          [1,2]\n\
          {\"id\":\"s4\",\"account_id\":\"acme\",\"kind\":\"csat\",\"score\":3,\"responded_at\":\"2025-03-01T10:00:00Z\",\"mood\":\"ok\"}\n",
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn allow_partial_keeps_the_good_rows_and_reports_the_rest() {
    let f = seeded().await;
    let path = f.write(
        "mixed.csv",
        &contracts(
            "c2,acme,platform,2025-01-01,,100,USD,3,annual\nc3,acme,platform,2025-01-01,,-1,USD,3,annual\n",
        ),
    );
    let mut options = ImportOptions::new(EntityKind::Contracts, now());
    options.allow_partial = true;
    let report = f.import_with(&path, options).await;
    assert_eq!(report.outcome, Outcome::Committed);
    assert_eq!((report.counts.inserted, report.rejected), (1, 1));
    let ids: Vec<_> = f.snapshot().await.contracts.into_iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, ["c1", "c2"]);
}

#[tokio::test]
async fn dry_run_counts_what_would_change_and_stores_nothing() {
    let f = seeded().await;
    let before = f.snapshot().await;
    let path = f.write(
        "dry.csv",
        &contracts("c1,acme,platform,2025-01-01,2026-01-01,1300.00,USD,40,annual\nc2,globex,platform,2025-01-01,,100,USD,3,monthly\n"),
    );
    let mut options = ImportOptions::new(EntityKind::Contracts, now());
    options.dry_run = true;
    let report = f.import_with(&path, options).await;
    assert_eq!(report.outcome, Outcome::DryRun);
    assert_eq!((report.counts.inserted, report.counts.updated, report.rejected), (1, 1, 0));
    assert_eq!(f.snapshot().await, before);
}

#[tokio::test]
async fn unknown_extension_needs_a_format() {
    let f = seeded().await;
    let path = f.write("accounts.txt", b"id,name,created_date\nx,X,2025-01-01\n");
    let err =
        keel_import::import(&f.store, f.ws, &path, &ImportOptions::new(EntityKind::Accounts, now()), &|_| {})
            .await
            .unwrap_err();
    assert!(err.to_string().contains("cannot tell the format"), "{err}");
}
