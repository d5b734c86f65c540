//! The dashboard's roles matrix (docs/dashboard.md, "Roles matrix"): for
//! each role and each page, export and action, allowed or refused — walked
//! over HTTP with real sessions on a demo world with plays. Issue 19 found
//! a CSM opening another CSM's account, exporting their book and
//! completing their task; each of those is a row here.

use std::collections::BTreeMap;

use crate::common::{dashboard_user, evaluated_demo, two_weeks_of_plays};
use crate::web::{csrf_in, decoded, page, post_form, sign_in};

/// What a request may do for each role: admin, leader, csm.
#[derive(Debug, Clone, Copy)]
struct Row {
    what: &'static str,
    admin: bool,
    leader: bool,
    csm: bool,
}

const fn row(what: &'static str, admin: bool, leader: bool, csm: bool) -> Row {
    Row { what, admin, leader, csm }
}

/// The matrix as docs/dashboard.md states it.
const MATRIX: &[Row] = &[
    row("portfolio", true, true, true),
    row("own accounts list", true, true, true),
    row("another owner's accounts list", true, true, false),
    row("everyone's accounts list", true, true, false),
    row("own accounts export", true, true, true),
    row("another owner's accounts export", true, true, false),
    row("own account page", true, true, true),
    row("another owner's account page", true, true, false),
    row("inbox", true, true, true),
    row("journey map", true, true, true),
    row("analytics", true, true, true),
    row("snooze own task", true, true, true),
    row("complete another owner's task", true, true, false),
    row("decide a send held for another owner's account", true, true, false),
];

#[tokio::test]
async fn every_role_may_do_exactly_what_the_matrix_says() {
    let (s, ws) = evaluated_demo(60).await;
    two_weeks_of_plays(&s, ws).await;
    dashboard_user(&s, ws, "ada@vendor.example", "admin").await;
    let ana = keel_demo::CSMS[0];

    // The world: ana's and another CSM's accounts, tasks and held sends.
    let accounts = s.store.snapshot(ws).await.unwrap().accounts;
    let owned_by = |who: &str| {
        accounts.iter().find(|a| a.owner.as_deref() == Some(who)).map(|a| a.id.as_str().to_owned()).unwrap()
    };
    let open = keel_store::TaskQuery { statuses: vec!["open".into()], limit: 100_000, ..Default::default() };
    let tasks = s.store.tasks(ws, &open).await.unwrap();
    let owned_tasks = |who: &str| tasks.iter().filter(|t| t.owner == who).map(|t| t.id).collect::<Vec<_>>();
    // Another CSM: the one with the most open tasks.
    let other = keel_demo::CSMS[1..].iter().copied().max_by_key(|c| owned_tasks(c).len()).unwrap();
    let (mine, theirs) = (owned_by(ana), owned_by(other));
    let (ana_tasks, other_tasks) = (owned_tasks(ana), owned_tasks(other));
    let owners: std::collections::BTreeSet<&str> = tasks.iter().map(|t| t.owner.as_str()).collect();
    assert!(
        ana_tasks.len() >= 3 && other_tasks.len() >= 3,
        "each CSM has tasks to work: {} tasks, owners {owners:?}",
        tasks.len()
    );
    let owner_of: BTreeMap<String, Option<String>> =
        accounts.iter().map(|a| (a.id.as_str().to_owned(), a.owner.clone())).collect();
    let held: Vec<i64> = s
        .store
        .outbox(ws, Some("pending"))
        .await
        .unwrap()
        .into_iter()
        .filter(|o| owner_of[o.account.as_str()].as_deref() != Some(ana))
        .map(|o| o.id)
        .collect();
    assert!(held.len() >= 3, "sends are held for accounts that are not ana's");

    let roles = [("admin", "ada@vendor.example"), ("leader", "lee@vendor.example"), ("csm", ana)];
    let mut walked = Vec::new();
    for (i, (role, email)) in roles.into_iter().enumerate() {
        let session = sign_in(&s, email, "s3cret-pass").await.unwrap();
        let (_, inbox) = page(&s, "/inbox", &session).await;
        let token = csrf_in(&inbox);
        for r in MATRIX {
            let allowed = match role {
                "admin" => r.admin,
                "leader" => r.leader,
                _ => r.csm,
            };
            let get = |path: String| {
                let session = session.clone();
                let s = &s;
                async move { page(s, &path, &session).await }
            };
            let done = match r.what {
                "portfolio" => get("/".into()).await.0 == 200,
                "own accounts list" => {
                    let (status, body) = get(format!("/accounts?owner={ana}&limit=1000")).await;
                    status == 200 && body.contains(&format!("/accounts/{mine}\""))
                }
                "another owner's accounts list" => {
                    let (status, body) = get(format!("/accounts?owner={other}&limit=1000")).await;
                    status == 200 && body.contains(&format!("/accounts/{theirs}\""))
                }
                "everyone's accounts list" => {
                    let (status, body) = get("/accounts?owner=&limit=1000".into()).await;
                    status == 200 && body.contains(&format!("/accounts/{theirs}\""))
                }
                "own accounts export" => {
                    let (status, csv) = get(format!("/accounts.csv?owner={ana}")).await;
                    status == 200 && csv.lines().any(|l| l.starts_with(&format!("{mine},")))
                }
                "another owner's accounts export" => {
                    let (status, csv) = get(format!("/accounts.csv?owner={other}")).await;
                    status == 200 && csv.lines().any(|l| l.starts_with(&format!("{theirs},")))
                }
                "own account page" => get(format!("/accounts/{mine}")).await.0 == 200,
                "another owner's account page" => {
                    let (status, body) = get(format!("/accounts/{theirs}")).await;
                    assert!(status == 200 || status == 403, "{status}");
                    status == 200 && body.contains("data-fact=\"band\"")
                }
                "inbox" => get("/inbox".into()).await.0 == 200,
                "journey map" => get("/journey".into()).await.0 == 200,
                "analytics" => get("/analytics".into()).await.0 == 200,
                "snooze own task" => {
                    // Each role works a different one of ana's tasks.
                    let path = format!("/inbox/tasks/{}/snooze", ana_tasks[i]);
                    let fields = [("csrf", token.as_str()), ("until", "2026-03-05"), ("reason", "travel")];
                    let (_, to) = post_form(&s, &session, &path, &fields).await;
                    decoded(&to).starts_with("notice=Snoozed")
                }
                "complete another owner's task" => {
                    let id = other_tasks[i];
                    let path = format!("/inbox/tasks/{id}/done");
                    let fields = [("csrf", token.as_str()), ("outcome", "called")];
                    let (_, to) = post_form(&s, &session, &path, &fields).await;
                    let every = keel_store::TaskQuery { limit: 100_000, ..Default::default() };
                    let stored = s.store.tasks(ws, &every).await.unwrap();
                    let status = stored.iter().find(|t| t.id == id).unwrap().status.clone();
                    assert_eq!(decoded(&to).starts_with("notice=Done"), status == "done", "{to}");
                    status == "done"
                }
                "decide a send held for another owner's account" => {
                    let id = held[i];
                    let path = format!("/inbox/outbox/{id}/reject");
                    let fields = [("csrf", token.as_str()), ("reason", "not now")];
                    post_form(&s, &session, &path, &fields).await;
                    let rejected = s.store.outbox(ws, Some("rejected")).await.unwrap();
                    rejected.iter().any(|o| o.id == id)
                }
                other => unreachable!("{other}"),
            };
            assert_eq!(done, allowed, "{role} — {}", r.what);
            walked.push((role, r.what));
        }
    }
    assert_eq!(walked.len(), 3 * MATRIX.len());
    // The matrix in the docs is this one.
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/dashboard.md")).unwrap();
    let mark = |b: bool| if b { "allowed" } else { "refused" };
    for r in MATRIX {
        let line = format!("| {} | {} | {} | {} |", r.what, mark(r.admin), mark(r.leader), mark(r.csm));
        assert!(docs.contains(&line), "docs/dashboard.md lacks the row {line}");
    }
}
