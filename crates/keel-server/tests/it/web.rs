//! The dashboard over real HTTP: signing in and out with sessions and CSRF
//! tokens, and the portfolio page's figures against the reports they come
//! from — a leader's whole workspace, a CSM's own book.

use crate::common;

use crate::common::{Server, start_with};
use keel_server::web::auth;
use keel_store::WorkspaceId;
use reqwest::redirect::Policy;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// The value a response sets for a cookie.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_owned())
    })
}

/// The value of a hidden `csrf` field in a page.
pub(crate) fn csrf_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

async fn add_user(s: &Server, ws: WorkspaceId, email: &str, role: &str) {
    common::dashboard_user(s, ws, email, role).await;
}

/// Signs in; the session cookie.
pub(crate) async fn sign_in(s: &Server, email: &str, password: &str) -> Result<String, (u16, String)> {
    let c = client();
    let form = c.get(format!("{}/login", s.url)).send().await.unwrap();
    let login_cookie = set_cookie(&form, auth::LOGIN_COOKIE).unwrap();
    let csrf = csrf_in(&form.text().await.unwrap());
    let res = c
        .post(format!("{}/login", s.url))
        .header("cookie", format!("{}={login_cookie}", auth::LOGIN_COOKIE))
        .form(&[("email", email), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    match (res.status().as_u16(), set_cookie(&res, auth::SESSION_COOKIE)) {
        (303, Some(session)) => Ok(session),
        (status, _) => Err((status, res.text().await.unwrap())),
    }
}

pub(crate) async fn page(s: &Server, path: &str, session: &str) -> (u16, String) {
    let res = client()
        .get(format!("{}{path}", s.url))
        .header("cookie", format!("{}={session}", auth::SESSION_COOKIE))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// The text of the element marked `data-metric="name"`.
fn metric(page: &str, name: &str) -> String {
    let at = page.find(&format!("data-metric=\"{name}\">")).unwrap() + name.len() + 15;
    page[at..].split('<').next().unwrap().to_owned()
}

#[tokio::test]
async fn people_sign_in_see_their_portfolio_and_sign_out() {
    let s = start_with(keel_server::Config::default()).await;
    let ws = s.store.workspace("default").await.unwrap();
    let config = keel_demo::DemoConfig {
        accounts: 30,
        months: 18,
        seed: 3,
        end: keel_core::parse_date("2026-03-01").unwrap(),
        plays_from: None,
    };
    common::store_demo(s.store.as_ref(), ws, &config).await;
    add_user(&s, ws, "lee@vendor.example", "leader").await;
    add_user(&s, ws, keel_demo::CSMS[0], "csm").await;
    // An email signs in to one workspace: another workspace cannot take it over.
    let other = s.store.workspace("other").await.unwrap();
    let mut thief = s.store.user_by_email("lee@vendor.example").await.unwrap().unwrap();
    thief.workspace = other;
    let taken = s.store.upsert_user(&thief).await;
    assert!(matches!(taken, Err(keel_store::StoreError::Conflict(_))), "{taken:?}");
    assert_eq!(s.store.user_by_email("lee@vendor.example").await.unwrap().unwrap().workspace, ws);

    // Without a session every page sends you to sign in.
    let res = client().get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.headers()["location"].to_str().unwrap()), (303, "/login"));

    // Wrong password and unknown email answer the same; no session either way.
    let (status, body) = sign_in(&s, "lee@vendor.example", "wrong-pass").await.unwrap_err();
    assert_eq!(status, 401);
    assert!(body.contains("Wrong email or password."), "{body}");
    let (status, unknown) = sign_in(&s, "nobody@vendor.example", "s3cret-pass").await.unwrap_err();
    assert_eq!((status, unknown.contains("Wrong email or password.")), (401, true));
    // A sign-in form posted without its cookie (from another site) is refused.
    let res = client()
        .post(format!("{}/login", s.url))
        .form(&[("email", "lee@vendor.example"), ("password", "s3cret-pass"), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);

    // A leader sees the whole workspace, with the retention the report computes.
    let session = sign_in(&s, "LEE@vendor.example", "s3cret-pass").await.unwrap();
    let (status, portfolio) = page(&s, "/", &session).await;
    assert_eq!(status, 200, "{portfolio}");
    assert!(portfolio.contains("The whole workspace"), "{portfolio}");
    let today = keel_core::parse_date("2026-03-01").unwrap();
    let query = keel_app::reports::RetentionQuery {
        from: Some(today.checked_sub_months(chrono::Months::new(12)).unwrap()),
        to: Some(today),
        as_of: today,
        ..Default::default()
    };
    let report = keel_app::reports::retention(s.store.as_ref(), ws, None, &query).await.unwrap();
    let pct = |v: Option<f64>| format!("{:.1}%", v.unwrap() * 100.0);
    assert_eq!(metric(&portfolio, "GRR"), pct(report.total.grr));
    assert_eq!(metric(&portfolio, "NRR"), pct(report.total.nrr));
    assert_eq!(metric(&portfolio, "Logo churn"), pct(report.total.logo_churn));
    assert!(portfolio.contains("<svg class=\"spark\""), "sparklines drawn on the server");
    assert!(portfolio.contains(&format!("{} accounts", config.accounts)), "{portfolio}");

    // A CSM sees their own book only.
    let csm = sign_in(&s, keel_demo::CSMS[0], "s3cret-pass").await.unwrap();
    let (_, book) = page(&s, "/", &csm).await;
    assert!(book.contains(&format!("Your book: the accounts {} owns", keel_demo::CSMS[0])), "{book}");
    let owned = s
        .store
        .list_accounts(
            ws,
            &keel_store::AccountQuery {
                owner: Some(keel_demo::CSMS[0].to_owned()),
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .total;
    assert!(owned < config.accounts as u64);
    assert!(book.contains(&format!("{owned} accounts")), "{book}");

    // Signing out needs the page's CSRF token, then ends the session.
    let url = s.url.clone();
    let out = |token: String, session: String| {
        let url = url.clone();
        async move {
            client()
                .post(format!("{url}/logout"))
                .header("cookie", format!("{}={session}", auth::SESSION_COOKIE))
                .form(&[("csrf", token)])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(out("forged".into(), session.clone()).await, 403);
    assert_eq!(page(&s, "/", &session).await.0, 200, "still signed in");
    assert_eq!(out(csrf_in(&portfolio), session.clone()).await, 303);
    assert_eq!(page(&s, "/", &session).await.0, 303, "the session is over");
    assert_eq!(page(&s, "/", &csm).await.0, 200, "other sessions go on");

    // A disabled user's sessions end at once.
    let mut user = s.store.user_by_email(keel_demo::CSMS[0]).await.unwrap().unwrap();
    user.disabled_at = Some(common::clock()());
    s.store.upsert_user(&user).await.unwrap();
    assert_eq!(page(&s, "/", &csm).await.0, 303);
    assert_eq!(sign_in(&s, keel_demo::CSMS[0], "s3cret-pass").await.unwrap_err().0, 401);

    let css = client().get(format!("{}/static/keel.css", s.url)).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

async fn evaluated_world(accounts: usize) -> (Server, WorkspaceId) {
    common::evaluated_demo(accounts).await
}

/// The ids of the account links of a page, in order.
fn account_links(page: &str) -> Vec<String> {
    page.split("href=\"/accounts/").skip(1).map(|s| s.split('"').next().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_accounts_list_filters_sorts_pages_and_exports_and_an_account_reads_as_of_any_day() {
    let (s, ws) = evaluated_world(80).await;
    let lee = sign_in(&s, "lee@vendor.example", "s3cret-pass").await.unwrap();

    // Red accounts by MRR, largest first: the same rows as the store's query.
    let (status, red) = page(&s, "/accounts?band=red&sort=-mrr&limit=5", &lee).await;
    assert_eq!(status, 200, "{red}");
    let query = keel_store::AccountQuery {
        band: Some("red".into()),
        sort: keel_store::AccountSort::Mrr,
        descending: true,
        limit: 5,
        ..Default::default()
    };
    let expected = s.store.list_accounts(ws, &query).await.unwrap();
    assert!(expected.total > 0, "the demo world has red accounts");
    let ids: Vec<String> = expected.rows.iter().map(|r| r.account.id.to_string()).collect();
    assert_eq!(account_links(&red), ids);
    assert!(red.contains(&format!("{} accounts match", expected.total)), "{red}");
    if expected.total > 5 {
        // The next page continues where this one stopped.
        let at = red.find("rel=\"next\" href=\"").unwrap() + 17;
        let next = red[at..].split('"').next().unwrap().replace("&amp;", "&");
        let (_, second) = page(&s, &next, &lee).await;
        let more = account_links(&second);
        assert!(!more.is_empty() && more.iter().all(|id| !ids.contains(id)), "{more:?}");
    }
    let (status, bad) = page(&s, "/accounts?sort=colour", &lee).await;
    assert_eq!(status, 400);
    assert!(bad.contains("sort:"), "the page names the bad parameter: {bad}");

    // The CSV has every matching account.
    let res = client()
        .get(format!("{}/accounts.csv?band=red", s.url))
        .header("cookie", format!("{}={lee}", auth::SESSION_COOKIE))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let text = res.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let bands: Vec<String> = rows.records().map(|r| r.unwrap()[4].to_owned()).collect();
    assert_eq!(bands.len() as u64, expected.total);
    assert!(bands.iter().all(|b| b == "red"));

    // A CSM sees their own book only (issue 19: `owner=` once showed them
    // everyone's); a leader's `owner=` shows everyone's.
    let csm = sign_in(&s, keel_demo::CSMS[0], "s3cret-pass").await.unwrap();
    let (_, mine) = page(&s, "/accounts?limit=1000", &csm).await;
    let (status, _) = page(&s, "/accounts?limit=1000&owner=", &csm).await;
    assert_eq!(status, 403);
    let (_, all) = page(&s, "/accounts?limit=1000&owner=", &lee).await;
    assert!(account_links(&mine).len() < account_links(&all).len());
    assert_eq!(account_links(&all).len(), 80);

    // The account page: stages with their gate, health components, as of today and of an earlier day.
    let id = &ids[0];
    let (status, today) = page(&s, &format!("/accounts/{id}"), &lee).await;
    assert_eq!(status, 200, "{today}");
    assert!(today.contains("data-fact=\"band\"><span class=\"dot red\">"), "a red account reads red");
    assert!(today.contains("<table class=\"health\">") && today.contains("<progress"), "{today}");
    let history = keel_app::load::history(s.store.as_ref(), ws, &keel_core::ExternalId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let start = history.contracts.iter().map(|c| c.start).min().unwrap();
    let before = start.pred_opt().unwrap();
    let (_, earlier) = page(&s, &format!("/accounts/{id}?as_of={before}"), &lee).await;
    assert!(earlier.contains(&format!("value=\"{before}\"")), "the picker shows the day");
    assert!(earlier.contains("No product line has started."), "before its first contract");
    let (_, wrong) = page(&s, &format!("/accounts/{id}?as_of=someday"), &lee).await;
    assert!(wrong.contains("is not a date"), "{wrong}");
    assert_eq!(page(&s, "/accounts/nobody", &lee).await.0, 404);
}

/// Posts a form of the inbox with the page's CSRF token; the redirect's target.
pub(crate) async fn post_form(
    s: &Server,
    session: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let res = client()
        .post(format!("{}{path}", s.url))
        .header("cookie", format!("{}={session}", auth::SESSION_COOKIE))
        .form(fields)
        .send()
        .await
        .unwrap();
    let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
    (res.status().as_u16(), location)
}

pub(crate) fn decoded(location: &str) -> String {
    form_urlencoded::parse(location.split_once('?').map_or("", |(_, q)| q).as_bytes())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn the_inbox_completes_snoozes_and_approves_under_each_persons_view() {
    let (s, ws) = evaluated_world(60).await;
    common::two_weeks_of_plays(&s, ws).await;
    let lee = sign_in(&s, "lee@vendor.example", "s3cret-pass").await.unwrap();
    let csm = sign_in(&s, keel_demo::CSMS[0], "s3cret-pass").await.unwrap();
    let all = s.store.tasks(ws, &keel_store::TaskQuery::default()).await.unwrap();
    let mine: Vec<_> = all.iter().filter(|t| t.owner == keel_demo::CSMS[0]).collect();
    assert!(!mine.is_empty(), "the first CSM has tasks");

    // A CSM's inbox holds their own tasks; the team view holds everyone's.
    let (_, theirs) = page(&s, "/inbox", &csm).await;
    assert_eq!(theirs.matches("<article class=\"task").count(), mine.len(), "{theirs}");
    let (_, team) = page(&s, "/inbox", &lee).await;
    assert_eq!(team.matches("<article class=\"task").count(), all.len().min(100), "a page of them");
    let overdue = all.iter().filter(|t| t.due < keel_core::parse_date("2026-03-01").unwrap()).count();
    assert!(
        team.contains(&format!("The team's tasks: {}, {overdue} overdue", all.len())),
        "counts of them all"
    );
    if all.len() > 100 {
        assert!(team.contains("Showing the 100 most overdue"));
    }

    // Done with an outcome: the task closes and its touchpoint lands on the account's timeline.
    let task = mine[0];
    let token = csrf_in(&theirs);
    let done = format!("/inbox/tasks/{}/done", task.id);
    assert_eq!(post_form(&s, &csm, &done, &[("csrf", "forged"), ("outcome", "x")]).await.0, 403);
    let (status, to) =
        post_form(&s, &csm, &done, &[("csrf", &token), ("outcome", "Called Dana; plan agreed")]).await;
    assert_eq!(status, 303);
    assert!(decoded(&to).starts_with("notice=Done: "), "{to}");
    let done_tasks = keel_store::TaskQuery { statuses: vec!["done".into()], ..Default::default() };
    let stored = s.store.tasks(ws, &done_tasks).await.unwrap().into_iter().find(|t| t.id == task.id).unwrap();
    assert_eq!(
        (stored.status.as_str(), stored.outcome.as_deref()),
        ("done", Some("Called Dana; plan agreed"))
    );
    let (_, account) = page(&s, &format!("/accounts/{}", task.account.as_str()), &csm).await;
    assert!(account.contains("Called Dana; plan agreed"), "the outcome is on the timeline");

    // Snoozing past the journey's limit is refused with the limit named.
    if let Some(other) = mine.get(1) {
        let snooze = format!("/inbox/tasks/{}/snooze", other.id);
        let (_, to) =
            post_form(&s, &csm, &snooze, &[("csrf", &token), ("until", "2099-01-01"), ("reason", "travel")])
                .await;
        assert!(decoded(&to).contains("snooze_max_days"), "{to}");
    }

    // The outbox shows each held email as it would go out; a leader approves one.
    let held = s.store.outbox(ws, Some("pending")).await.unwrap();
    assert!(!held.is_empty(), "sensitive sends were held");
    let (_, team) = page(&s, "/inbox", &lee).await;
    let send: serde_json::Value = serde_json::from_str(&held[0].payload).unwrap();
    if let Some(subject) = send["subject"].as_str() {
        assert!(team.contains(&maud::html! { (subject) }.into_string()), "the rendered subject");
    }
    let approve = format!("/inbox/outbox/{}/approve", held[0].id);
    let (_, to) = post_form(&s, &lee, &approve, &[("csrf", &csrf_in(&team))]).await;
    assert!(decoded(&to).starts_with("notice=Approved"), "{to}");
    let decided = s.store.outbox(ws, Some("approved")).await.unwrap();
    assert_eq!(decided[0].decided_by.as_deref(), Some("lee@vendor.example"));

    // A CSM cannot decide a send held for another owner's account.
    let owned: std::collections::HashSet<String> = s
        .store
        .list_accounts(
            ws,
            &keel_store::AccountQuery {
                owner: Some(keel_demo::CSMS[0].into()),
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.account.id.to_string())
        .collect();
    if let Some(foreign) = held.iter().skip(1).find(|o| !owned.contains(o.account.as_str())) {
        let reject = format!("/inbox/outbox/{}/reject", foreign.id);
        let (_, to) = post_form(&s, &csm, &reject, &[("csrf", &token), ("reason", "no")]).await;
        assert!(decoded(&to).contains("a leader decides it"), "{to}");
        assert_eq!(
            s.store.outbox(ws, Some("pending")).await.unwrap().iter().filter(|o| o.id == foreign.id).count(),
            1
        );
    }
}

#[tokio::test]
async fn the_journey_map_is_coloured_by_the_audit_and_a_cell_opens_its_links() {
    let (s, ws) = evaluated_world(60).await;
    let lee = sign_in(&s, "lee@vendor.example", "s3cret-pass").await.unwrap();
    let (status, map) = page(&s, "/journey", &lee).await;
    assert_eq!(status, 200, "{map}");
    let j = common::journey();
    let names = s.store.event_names(ws).await.unwrap();
    let plan = keel_engine::Plan::new(j.journey.clone(), &names);
    let today = keel_core::parse_date("2026-03-01").unwrap();
    let audit =
        keel_app::reports::audit(s.store.as_ref(), ws, &plan, today, (None, None), None).await.unwrap();
    // Every cell of the journey is drawn once, with its status.
    assert_eq!(
        map.matches("<td class=\"cell ").count() - map.matches("cell missing\">—").count(),
        audit.cells.len()
    );
    for (status, n) in &audit.counts {
        let chip = format!("<span class=\"chip {}\">", status.as_str());
        assert!(map.contains(&chip), "{chip}");
        let at = map.find(&chip).unwrap() + chip.len();
        assert!(map[at..].split('<').next().unwrap().ends_with(&format!(": {n}")), "{status:?} {n}");
    }
    for st in &j.journey.stages {
        assert!(map.contains(&maud::html! { (st.exit.source) }.into_string()), "the gate of {}", st.id);
    }
    // A cell's detail: its text and every link with its live count.
    let i = audit.cells.iter().position(|c| !c.links.is_empty()).unwrap();
    let (_, detail) = page(&s, &format!("/journey?cell={i}"), &lee).await;
    let cell = &audit.cells[i];
    assert!(detail.contains(&maud::html! { (cell.text) }.into_string()));
    for l in &cell.links {
        assert!(
            detail.contains(&format!(
                "<code>{}</code></th><td>{}</td><td>{}</td>",
                l.id,
                l.feeds.join(", "),
                l.live
            )),
            "{}",
            l.id
        );
    }
    // A segment's map audits that segment's accounts.
    let smb = keel_app::reports::audit(s.store.as_ref(), ws, &plan, today, (None, None), Some("smb"))
        .await
        .unwrap();
    let (_, seg) = page(&s, "/journey?segment=smb", &lee).await;
    assert!(seg.contains(&format!("{} accounts audited", smb.accounts)), "{seg}");
    let (status, bad) = page(&s, "/journey?segment=galactic", &lee).await;
    assert_eq!(status, 200);
    assert!(bad.contains("the journey has no such segment"), "{bad}");
}

#[tokio::test]
async fn the_analytics_page_shows_every_report_as_the_reports_compute_it() {
    let (s, ws) = evaluated_world(80).await;
    common::two_weeks_of_plays(&s, ws).await;
    let lee = sign_in(&s, "lee@vendor.example", "s3cret-pass").await.unwrap();
    let (status, body) = page(&s, "/analytics", &lee).await;
    assert_eq!(status, 200, "{body}");
    let today = keel_core::parse_date("2026-03-01").unwrap();
    let j = common::journey();
    let names = s.store.event_names(ws).await.unwrap();
    let plan = keel_engine::Plan::new(j.journey.clone(), &names);
    let store = s.store.as_ref();
    let pct = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |x| format!("{:.1}%", x * 100.0));

    // Revenue retention by month: the headline and one point per month.
    let query = keel_app::reports::RetentionQuery {
        from: Some(today.checked_sub_months(chrono::Months::new(12)).unwrap()),
        to: Some(today),
        as_of: today,
        by: Some(keel_analytics::retention::By::Month),
        ..Default::default()
    };
    let retention = keel_app::reports::retention(store, ws, None, &query).await.unwrap();
    assert_eq!(metric(&body, "NRR"), pct(retention.total.nrr));
    let months = retention.groups.iter().filter(|g| g.retention.nrr.is_some()).count();
    assert!(months >= 10, "{months}");
    assert!(body.contains("aria-label=\"NRR and GRR by month\""));
    assert!(body.matches("<title>NRR, ").count() == months, "a point per month with a value");

    // Time to value: the median and every bin of the histogram.
    let ttv = keel_app::reports::ttv(store, ws, &plan, today, (None, None), None).await.unwrap();
    let p50 = ttv.total.p50.map(|d| format!("{d:.0} days")).unwrap();
    assert_eq!(metric(&body, "TTV p50"), p50);
    assert!(!ttv.histogram.is_empty());
    for b in &ttv.histogram {
        assert!(body.contains(&format!("<title>{}–{}d: {}</title>", b.from_days, b.to_days - 1, b.accounts)));
    }
    for (seg, st) in &ttv.by_segment {
        if let Some(t) = st.target_days {
            assert!(body.contains(&format!("{seg} target {t:.0}d")), "the {seg} target is marked");
        }
    }

    // The health backtest: AUC with its interval, every band's churn.
    let (from, to) = keel_app::reports::health_window(None, None, today);
    let dates = keel_app::reports::snapshot_dates(from, to, today);
    let health = keel_app::reports::health_backtest(store, ws, &plan, None, &dates, None).await.unwrap();
    let auc = format!(
        "{:.3} ({:.3}–{:.3})",
        health.auc.unwrap(),
        health.auc_low.unwrap(),
        health.auc_high.unwrap()
    );
    assert_eq!(metric(&body, "AUC"), auc);
    assert!(body.contains("aria-label=\"ROC curve of the health score"), "the curve is drawn");
    for b in &health.by_band {
        let row = format!(
            "<th scope=\"row\">{}</th><td>{} ({}/{})</td>",
            b.band,
            pct(b.churn.rate),
            b.churn.k,
            b.churn.n
        );
        assert!(body.contains(&row), "{row}");
    }
    assert!(body.contains(&format!("Green, and churned ({})", health.green_but_churned.len())));

    // Gate validation: every stage with its verdict; the funnel: every stage reached.
    let period = keel_app::reports::gate_window(None, None, today).unwrap();
    let gates = keel_app::reports::gates(store, ws, &plan, period, today, 180, &[], None).await.unwrap();
    assert!(body.contains(&format!("{} renewal decisions", gates.decisions)));
    for g in &gates.stages {
        let row = format!("<th scope=\"row\">{}</th><td><code>", g.stage);
        assert!(body.contains(&row), "{row}");
    }
    let funnel = keel_app::reports::funnel(store, ws, &plan, today, None).await.unwrap();
    for line in &funnel.product_lines {
        for st in &line.stages {
            assert!(body.contains(&format!("<th scope=\"row\">{}</th><td>{}</td>", st.stage, st.reached)));
        }
    }

    // Plays: a row per play that ran, with its runs.
    let plays = keel_app::reports::plays(store, ws, &j.journey, today).await.unwrap();
    let ran: Vec<_> = plays.plays.iter().filter(|p| p.triggered > 0).collect();
    assert!(!ran.is_empty(), "two weeks of plays ran some");
    for p in ran {
        assert!(
            body.contains(&format!(
                "<small>({})</small></th><td>{}</td><td>{}</td>",
                p.play, p.treated, p.holdout
            )),
            "{}",
            p.play
        );
    }
    // Each section says when it was computed; the cohorts are a heatmap.
    assert_eq!(body.matches("class=\"computed\"").count(), 7);
    assert!(body.contains("<table class=\"heatmap\">"));

    // A segment narrows the sections that can be; an unknown one is named.
    let smb_ttv = keel_app::reports::ttv(store, ws, &plan, today, (None, None), Some("smb")).await.unwrap();
    let (_, smb) = page(&s, "/analytics?segment=smb", &lee).await;
    assert!(smb.contains(&format!(
        "{} of {} accounts reached first value",
        smb_ttv.total.reached, smb_ttv.total.accounts
    )));
    let (status, bad) = page(&s, "/analytics?segment=galactic", &lee).await;
    assert_eq!(status, 200);
    assert!(bad.contains("the journey has no such segment"), "{bad}");
}

#[tokio::test]
async fn the_portfolio_shows_this_weeks_band_movements_and_time_to_value_against_target() {
    let (s, ws) = evaluated_world(60).await;
    let lee = sign_in(&s, "lee@vendor.example", "s3cret-pass").await.unwrap();
    let (_, body) = page(&s, "/", &lee).await;
    let today = keel_core::parse_date("2026-03-01").unwrap();
    let j = common::journey();
    let plan = keel_engine::Plan::new(j.journey.clone(), &s.store.event_names(ws).await.unwrap());
    let moves =
        keel_app::reports::band_movements(s.store.as_ref(), ws, &plan, today - chrono::Days::new(7), today)
            .await
            .unwrap();
    let rank = |b: &Option<String>| ["green", "yellow", "red"].iter().position(|x| Some(*x) == b.as_deref());
    let worse = moves
        .iter()
        .filter(|m| matches!((rank(&m.before), rank(&m.after)), (Some(b), Some(a)) if a > b))
        .count();
    let better = moves
        .iter()
        .filter(|m| matches!((rank(&m.before), rank(&m.after)), (Some(b), Some(a)) if a < b))
        .count();
    assert!(worse + better > 0, "a week of the demo world moves some bands");
    assert_eq!(metric(&body, "worse"), worse.to_string());
    assert_eq!(metric(&body, "better"), better.to_string());
    // Today's band of each account is the one the evaluator stored.
    for m in &moves {
        let state = s.store.account_state(ws, &m.account).await.unwrap().unwrap();
        assert_eq!(state.summary.band, m.after, "{}", m.account);
    }
    // The book the database counts is the one the account list holds, for everyone and for one CSM.
    for owner in [None, Some(keel_demo::CSMS[0])] {
        let query =
            keel_store::AccountQuery { owner: owner.map(str::to_owned), limit: 1000, ..Default::default() };
        let rows = s.store.list_accounts(ws, &query).await.unwrap().rows;
        let book = s.store.book(ws, owner, today).await.unwrap();
        let active: Vec<_> = rows
            .iter()
            .filter_map(|r| r.evaluated.as_ref())
            .filter(|(_, st)| st.mrr.unwrap_or(0.0) > 0.0)
            .collect();
        assert_eq!(book.not_evaluated, 0);
        assert_eq!(book.former as usize, rows.len() - active.len());
        assert!(book.former > 0, "the demo world has churned accounts");
        let within = |band: &Option<String>, days: u64| {
            active
                .iter()
                .filter(|(_, st)| &st.band == band)
                .filter(|(_, st)| {
                    st.renewal.is_some_and(|r| r >= today && r <= today + chrono::Days::new(days))
                })
                .count() as u64
        };
        for b in &book.bands {
            let mine: Vec<_> = active.iter().filter(|(_, st)| st.band == b.band).collect();
            assert_eq!(b.accounts as usize, mine.len(), "{:?}", b.band);
            assert!((mine.iter().map(|(_, st)| st.mrr.unwrap()).sum::<f64>() - b.mrr).abs() < 1e-6);
            assert_eq!((b.renewing_90.0, b.renewing_180.0), (within(&b.band, 90), within(&b.band, 180)));
            if owner.is_none() {
                let name = b.band.clone().unwrap_or_else(|| "none".into());
                let cell = format!("data-renewing=\"{name}-180\">{}<", b.renewing_180.0);
                assert!(body.contains(&cell), "{cell}");
            }
        }
        assert!(book.bands.iter().map(|b| b.renewing_180.0).sum::<u64>() > 0, "renewals ahead");
        if owner.is_none() {
            let n: u64 = book.bands.iter().map(|b| b.accounts).sum();
            assert!(body.contains(&format!("{n} accounts with a line in force")), "{body}");
            assert!(body.contains(&format!("{} without one (churned or not started)", book.former)));
            assert!(body.contains("<h3>The next renewals</h3>"));
        }
    }
    let ttv = keel_app::reports::ttv(s.store.as_ref(), ws, &plan, today, (None, None), None).await.unwrap();
    assert_eq!(metric(&body, "TTV p50"), ttv.total.p50.map(|d| format!("{d:.0} days")).unwrap());
    for (seg, st) in &ttv.by_segment {
        if let Some(t) = st.target_days {
            assert!(body.contains(&format!("target {t:.0} days")), "{seg}");
        }
    }
}

#[tokio::test]
async fn the_account_page_draws_the_health_trend_and_filters_its_timeline() {
    let (s, ws) = evaluated_world(40).await;
    common::two_weeks_of_plays(&s, ws).await;
    let lee = sign_in(&s, "lee@vendor.example", "s3cret-pass").await.unwrap();
    let runs = s.store.play_runs(ws, None, None).await.unwrap();
    let id = runs[0].account.to_string();
    let (status, body) = page(&s, &format!("/accounts/{id}"), &lee).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("aria-label=\"Health score weekly over the last 26 weeks\""));
    assert!(body.contains("<span class=\"kind\">play</span> play "), "play runs on the timeline");
    assert!(body.contains("<span class=\"kind\">task</span> task for "), "tasks on the timeline");
    assert!(body.contains("<span class=\"kind\">stage</span> "), "stage changes on the timeline");
    // Contacts with their last activity, from product use under their id.
    let history = keel_app::load::history(s.store.as_ref(), ws, &runs[0].account).await.unwrap().unwrap();
    let today = keel_core::parse_date("2026-03-01").unwrap();
    let champion =
        history.contacts.iter().find(|c| c.role.as_str() == "champion" && c.active_to.is_none()).unwrap();
    let ids: Vec<u64> =
        history.users.iter().filter(|(_, u)| u == champion.id.as_str()).map(|(i, _)| *i).collect();
    let last = history
        .usage
        .iter()
        .filter(|u| u.day <= today && u.users.iter().any(|(i, _)| ids.contains(i)))
        .map(|u| u.day)
        .max();
    match last {
        Some(day) => assert!(body.contains(&format!("last active {day} (product use")), "{body}"),
        None => assert!(body.contains("no activity seen")),
    }

    // Only stage changes and plays.
    let (_, only) = page(&s, &format!("/accounts/{id}?filtered=1&kind=stage&kind=play"), &lee).await;
    let kinds: Vec<&str> =
        only.split("<span class=\"kind\">").skip(1).map(|k| k.split('<').next().unwrap()).collect();
    assert!(!kinds.is_empty() && kinds.iter().all(|k| *k == "stage" || *k == "play"), "{kinds:?}");
    assert!(only.contains("value=\"stage\" checked") && !only.contains("value=\"usage\" checked"));
}

#[tokio::test]
async fn sign_in_is_refused_for_an_email_after_five_failures() {
    let s = start_with(keel_server::Config::default()).await;
    let ws = s.store.workspace("default").await.unwrap();
    add_user(&s, ws, "lee@vendor.example", "leader").await;
    add_user(&s, ws, "kim@vendor.example", "csm").await;
    for _ in 0..auth::THROTTLE_FAILURES {
        assert_eq!(sign_in(&s, "lee@vendor.example", "guess").await.unwrap_err().0, 401);
    }
    // The right password now waits too, and the page says so.
    let (status, body) = sign_in(&s, "Lee@vendor.example", "s3cret-pass").await.unwrap_err();
    assert_eq!(status, 429);
    assert!(body.contains("Too many failed sign-ins for this email. Try again in 15 minutes."), "{body}");
    // Another person signs in as usual.
    assert!(sign_in(&s, "kim@vendor.example", "s3cret-pass").await.is_ok());
}
