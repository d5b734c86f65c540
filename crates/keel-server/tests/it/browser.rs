//! The dashboard in a real headless Chromium, driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`; `scripts/test` installs
//! them): sign in with the form, read the portfolio, open an at-risk
//! account and its health, move the as-of picker, complete a task and read
//! it on the timeline, approve a held email, open the journey map and a
//! cell's detail, read the analytics, sign out. Every page is checked for
//! accessibility on the way (labels, text alternatives, WCAG AA contrast;
//! `a11y.js`) and the account page is walked with the keyboard.
//! Every step saves a screenshot under `target/screenshots/`.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};

/// The in-page accessibility checks: every problem found, as text.
const A11Y: &str = include_str!("a11y.js");

/// Runs the accessibility checks on the current page and fails with every problem.
async fn accessible(c: &Client, page: &str) {
    let found = c.execute(A11Y, vec![]).await.unwrap();
    let problems: Vec<String> = serde_json::from_value(found).unwrap();
    assert!(
        problems.is_empty(),
        "{page}: {} accessibility problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Presses Tab; the element that has the focus then, described by its tag,
/// id or name, text and whether it shows a focus outline.
async fn tab(c: &Client) -> serde_json::Value {
    let press = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: char::from(Key::Tab) })
        .then(KeyAction::Up { value: char::from(Key::Tab) });
    c.perform_actions(press).await.unwrap();
    c.execute(
        "const e = document.activeElement; const s = getComputedStyle(e); \
         return {tag: e.tagName.toLowerCase(), id: e.id, name: e.name || '', cls: e.className || '', \
                 text: (e.textContent || '').trim().slice(0, 40), outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0, \
                 left: e.getBoundingClientRect().left, focus: e.matches(':focus'), style: s.outlineStyle + ' ' + s.outlineWidth};",
        vec![],
    )
    .await
    .unwrap()
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "chromedriver is needed (Debian: chromium chromium-driver; scripts/test installs them): {e}"
            )
        });
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, url: format!("http://127.0.0.1:{port}") }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--window-size=1280,1000"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap()
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

#[tokio::test]
async fn a_leader_signs_in_reads_the_portfolio_and_signs_out_in_chromium() {
    // Every account evaluated; signs in as lee@vendor.example, a leader.
    let (s, ws) = common::evaluated_demo(120).await;

    // Two weeks of plays, so the inbox has tasks and held sends.
    common::two_weeks_of_plays(&s, ws).await;

    let driver = driver();
    let c = browser(&driver).await;
    c.goto(&format!("{}/", s.url)).await.unwrap();
    assert!(c.current_url().await.unwrap().as_str().ends_with("/login"), "sent to sign in");
    shot(&c, "signin").await;

    c.find(Locator::Id("email")).await.unwrap().send_keys("lee@vendor.example").await.unwrap();
    c.find(Locator::Id("password")).await.unwrap().send_keys("wrong-pass").await.unwrap();
    c.find(Locator::Css("form button[type=submit]")).await.unwrap().click().await.unwrap();
    let alert = c.wait().for_element(Locator::Css("p.error")).await.unwrap();
    assert_eq!(alert.text().await.unwrap(), "Wrong email or password.");
    accessible(&c, "sign-in").await;

    c.find(Locator::Id("password")).await.unwrap().send_keys("s3cret-pass").await.unwrap();
    c.find(Locator::Css("form button[type=submit]")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("h1")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "Portfolio · Keel");
    let grr = c.find(Locator::Css("[data-metric=GRR]")).await.unwrap().text().await.unwrap();
    assert!(grr.ends_with('%'), "{grr}");
    let red = c.find_all(Locator::Css("table.risk tbody tr")).await.unwrap();
    assert!(!red.is_empty(), "the demo world has red accounts");
    shot(&c, "portfolio").await;
    accessible(&c, "portfolio").await;
    let moved = c.find(Locator::Css("[data-metric=worse]")).await.unwrap().text().await.unwrap();
    assert!(moved.parse::<u32>().is_ok(), "this week's band movements: {moved}");

    // The accounts list, filtered to the red ones by the form.
    c.goto(&format!("{}/accounts", s.url)).await.unwrap();
    c.find(Locator::Css("select[name=band] option[value=red]")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("form.filters button")).await.unwrap().click().await.unwrap();
    // The fact to wait for: the page the server rendered for the filter (the
    // old page has a p.note too, and its option is selected only as a
    // property, never as the attribute the server writes).
    c.wait().for_element(Locator::Css("select[name=band] option[value=red][selected]")).await.unwrap();
    c.wait().for_element(Locator::Css("p.note")).await.unwrap();
    assert!(c.current_url().await.unwrap().as_str().contains("band=red"));
    let health = c.find_all(Locator::Css("table.accounts tbody tr td:nth-child(4)")).await.unwrap();
    assert!(health.len() >= red.len(), "at least the red accounts the portfolio listed");
    for cell in health {
        assert!(cell.text().await.unwrap().starts_with("red"));
    }
    shot(&c, "accounts").await;
    accessible(&c, "accounts").await;
    c.goto(&format!("{}/", s.url)).await.unwrap();

    // Open the largest red account and read why it is red.
    let first = c.find(Locator::Css("table.risk tbody tr td a")).await.unwrap();
    let name = first.text().await.unwrap();
    first.click().await.unwrap();
    c.wait().for_element(Locator::Css("table.health")).await.unwrap();
    assert_eq!(c.find(Locator::Css("h1")).await.unwrap().text().await.unwrap(), name);
    let band = c.find(Locator::Css("[data-fact=band]")).await.unwrap().text().await.unwrap();
    assert!(band.starts_with("red"), "{band}");
    let components = c.find_all(Locator::Css("table.health tbody tr")).await.unwrap();
    assert!(components.len() >= 3, "the health components with their values");
    shot(&c, "account").await;
    accessible(&c, "account").await;
    assert!(c.find(Locator::Css("svg[aria-label^='Health score weekly']")).await.is_ok(), "the health trend");

    // The keyboard: the first Tab lands on the skip link, which shows itself
    // and jumps to the content; every stop after it shows a focus outline,
    // and the path reaches the as-of picker and the timeline filter.
    let first = tab(&c).await;
    assert_eq!(
        (first["cls"].as_str(), first["left"].as_f64().unwrap() >= 0.0),
        (Some("skip"), true),
        "{first}"
    );
    assert!(first["outline"].as_bool().unwrap(), "the skip link shows its focus: {first}");
    // Walk the page's whole tab order: it ends when the focus leaves the page.
    let mut stops = Vec::new();
    for _ in 0..400 {
        let at = tab(&c).await;
        if at["tag"] == "body" {
            break;
        }
        assert!(at["outline"].as_bool().unwrap(), "every focus stop is visible: {at}");
        stops.push(at);
    }
    assert!(stops.len() > 10 && stops.len() < 400, "the walk ended at the page's end: {} stops", stops.len());
    assert!(stops.iter().any(|s| s["id"] == "as_of"), "the as-of picker is reachable: {stops:?}");
    assert!(stops.iter().any(|s| s["name"] == "kind"), "the timeline filter is reachable: {stops:?}");

    // The timeline filter: only stage changes.
    c.execute(
        "for (const b of document.querySelectorAll('input[name=kind]')) b.checked = b.value === 'stage'; \
         document.querySelector('form.kinds').submit();",
        vec![],
    )
    .await
    .unwrap();
    c.wait().for_element(Locator::Css("form.kinds")).await.unwrap();
    let kinds = c.find_all(Locator::Css("ol.timeline .kind")).await.unwrap();
    assert!(!kinds.is_empty(), "a red account has stage changes");
    for k in kinds {
        assert_eq!(k.text().await.unwrap(), "stage");
    }
    c.back().await.unwrap();

    // Move the as-of picker back a year: the page shows the account as it was.
    let url = c.current_url().await.unwrap();
    let day = "2025-03-01";
    c.execute(
        "document.getElementById('as_of').value = arguments[0]; document.querySelector('form.asof').submit();",
        vec![serde_json::json!(day)],
    )
    .await
    .unwrap();
    c.wait().for_url(&url.join(&format!("?as_of={day}")).unwrap()).await.unwrap();
    let picked = c.find(Locator::Id("as_of")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(picked.as_deref(), Some(day));
    shot(&c, "account-as-of").await;
    accessible(&c, "account as of a day").await;

    // The inbox: complete a task with an outcome, then read it on the account's timeline.
    c.goto(&format!("{}/inbox", s.url)).await.unwrap();
    let task = c.find(Locator::Css("article.task")).await.unwrap();
    let account_link =
        task.find(Locator::Css("p.note a")).await.unwrap().attr("href").await.unwrap().unwrap();
    task.find(Locator::Css("input[name=outcome]"))
        .await
        .unwrap()
        .send_keys("Called the champion; back on track")
        .await
        .unwrap();
    task.find(Locator::Css("form button[type=submit]")).await.unwrap().click().await.unwrap();
    let notice = c.wait().for_element(Locator::Css("p.notice")).await.unwrap().text().await.unwrap();
    assert!(notice.starts_with("Done: "), "{notice}");
    shot(&c, "inbox").await;
    accessible(&c, "inbox").await;
    c.goto(&format!("{}{account_link}", s.url)).await.unwrap();
    let timeline = c.find(Locator::Css("ol.timeline")).await.unwrap().text().await.unwrap();
    assert!(timeline.contains("Called the champion; back on track"), "{timeline}");

    // Approve a held email from the outbox.
    c.goto(&format!("{}/inbox#outbox", s.url)).await.unwrap();
    let held = c.find(Locator::Css("article.held")).await.unwrap();
    held.find(Locator::Css("form button[type=submit]")).await.unwrap().click().await.unwrap();
    let notice = c.wait().for_element(Locator::Css("p.notice")).await.unwrap().text().await.unwrap();
    assert!(notice.starts_with("Approved"), "{notice}");
    let approved = s.store.outbox(ws, Some("approved")).await.unwrap();
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].decided_by.as_deref(), Some("lee@vendor.example"));

    // The journey map, and one cell's detail.
    c.goto(&format!("{}/journey", s.url)).await.unwrap();
    let cells = c.find_all(Locator::Css("table.map td.cell a")).await.unwrap();
    assert!(cells.len() >= 8, "the map's cells");
    cells[0].click().await.unwrap();
    let title = c.wait().for_element(Locator::Id("cell-title")).await.unwrap().text().await.unwrap();
    assert!(title.contains("months"), "{title}");
    shot(&c, "journey").await;
    accessible(&c, "journey").await;

    // The analytics: every section drawn, with the charts' text alternatives.
    c.goto(&format!("{}/analytics", s.url)).await.unwrap();
    c.wait().for_element(Locator::Css("section.analytic")).await.unwrap();
    let sections = c.find_all(Locator::Css("section.analytic h2")).await.unwrap();
    assert_eq!(sections.len(), 7);
    for label in ["NRR and GRR by month", "Accounts by days to first value", "ROC curve of the health score"]
    {
        let chart = format!("svg[aria-label^='{label}']");
        assert!(c.find(Locator::Css(&chart)).await.is_ok(), "{label}");
    }
    let auc = c.find(Locator::Css("[data-metric=AUC]")).await.unwrap().text().await.unwrap();
    assert!(auc.starts_with("0."), "{auc}");
    assert!(!c.find_all(Locator::Css("table.heatmap tbody tr")).await.unwrap().is_empty());
    shot(&c, "analytics").await;
    accessible(&c, "analytics").await;
    c.find(Locator::Css("a[href='#health']")).await.unwrap().click().await.unwrap();
    shot(&c, "analytics-health").await;
    c.find(Locator::Css("a[href='#cohorts']")).await.unwrap().click().await.unwrap();
    shot(&c, "analytics-cohorts").await;

    // Tablet width: the pages still lay out (columns stack, the owner column folds away).
    c.set_window_size(820, 1180).await.unwrap();
    shot(&c, "account-tablet").await;
    c.goto(&format!("{}/", s.url)).await.unwrap();
    shot(&c, "portfolio-tablet").await;
    accessible(&c, "portfolio at tablet width").await;
    c.goto(&format!("{}/analytics", s.url)).await.unwrap();
    shot(&c, "analytics-tablet").await;
    let wide = c
        .execute("return document.documentElement.scrollWidth > window.innerWidth + 1;", vec![])
        .await
        .unwrap();
    assert_eq!(wide, serde_json::json!(false), "the analytics page fits a tablet without scrolling sideways");

    c.find(Locator::Css(".who button")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Id("email")).await.unwrap();
    assert!(c.current_url().await.unwrap().as_str().ends_with("/login"));
    c.goto(&format!("{}/", s.url)).await.unwrap();
    assert!(c.current_url().await.unwrap().as_str().ends_with("/login"), "signed out");
    c.close().await.unwrap();
}
