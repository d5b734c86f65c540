//! The store conformance suite: behaviour every backend of the `Store`
//! trait must have, written against the trait only. Each test takes a
//! fresh, empty store; `backend!` runs them all for one backend (SQLite
//! now; the PostgreSQL backend will be one more call). Each test names the
//! trait methods it covers in its doc comment; together they cover every
//! method of `Store` and `WriteTx`. What only one backend can stage — a
//! forged hash collision in SQLite's `event_keys`, a disk that fills up —
//! is tested beside that backend (`sqlite/tx.rs`, `disk_full.rs`).

use keel_core::{Account, EntityKind, Event, EventName, ExternalId, MessageId, UserId};
use keel_demo::{DemoConfig, SimulatedAccount};
use keel_store::{
    AccountQuery, AccountSort, Accounts, ApiKey, DecisionRow, DeliveryRow, OutboxRow, PlayRunRow,
    RecordKinds, SessionRow, StateSummary, Store, StoredState, TaskQuery, TaskRow, TimelineEntry,
    TransitionRecord, UserRow, WorkspaceId,
};

/// Runs every conformance test against the stores `$open` makes (an async
/// expression giving a fresh, empty `Box<dyn Store>`).
#[macro_export]
macro_rules! backend {
    ($name:ident, $open:expr) => {
        mod $name {
            $crate::backend!(@tests $open;
                workspaces_are_found_or_created_once,
                records_round_trip_and_unchanged_rows_are_counted,
                a_rollback_leaves_no_trace,
                deduplication_is_exact_within_and_across_transactions,
                usage_rollups_keep_when_each_event_was_known,
                memberships_attribute_users_to_accounts_over_time,
                api_keys_are_found_by_prefix_and_revoked_in_their_workspace_only,
                users_and_sessions_round_trip_and_expire,
                tasks_are_stored_updated_listed_and_counted,
                account_states_are_replaced_and_their_timeline_appended,
                the_account_list_pages_by_keyset_without_gaps_or_repeats,
                stage_transitions_are_recorded_once,
                old_message_ids_are_forgotten_after_their_window,
                maintenance_and_writability_answer_on_a_healthy_store,
                play_runs_start_once_per_key_and_once_open_per_play,
                the_outbox_decides_once_and_deliveries_come_due,
                the_book_counts_bands_renewals_and_former_customers,
                contacts_are_found_by_id_and_the_last_import_is_kept,
                refused_messages_are_kept_newest_first_per_workspace,
                messages_of_users_without_an_account_are_held_until_taken,
                a_person_is_exported_then_forgotten_and_admin_actions_are_logged,
                an_accounts_timeline_is_replaced_from_a_day_and_read_from_its_last_checkpoint,
            );
        }
    };
    (@tests $open:expr; $($test:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let store = $open.await;
                $crate::conformance::$test(store.as_ref()).await;
            }
        )+
    };
}

fn ts(s: &str) -> keel_core::Timestamp {
    keel_core::parse_timestamp(s).unwrap()
}

fn id(s: &str) -> ExternalId {
    ExternalId::parse(s).unwrap()
}

/// A small demo world: every record kind, deterministic.
fn world(accounts: usize) -> Vec<SimulatedAccount> {
    let config = DemoConfig {
        accounts,
        months: 6,
        seed: 7,
        end: keel_core::parse_date("2026-03-01").unwrap(),
        plays_from: None,
    };
    keel_demo::generate(&config).collect()
}

async fn store_world(store: &dyn Store, ws: WorkspaceId, world: &[SimulatedAccount]) {
    let mut tx = store.begin(ws).await.unwrap();
    for h in world {
        tx.upsert_accounts(std::slice::from_ref(&h.account)).await.unwrap();
        tx.upsert_contracts(&h.contracts).await.unwrap();
        tx.upsert_contacts(&h.contacts).await.unwrap();
        tx.upsert_tickets(&h.tickets).await.unwrap();
        tx.upsert_surveys(&h.surveys).await.unwrap();
        tx.upsert_touchpoints(&h.touchpoints).await.unwrap();
        tx.upsert_opportunities(&h.opportunities).await.unwrap();
        tx.append_events(&h.events).await.unwrap();
    }
    tx.commit().await.unwrap();
}

fn account(name: &str) -> Account {
    Account {
        id: id(name),
        name: name.to_owned(),
        attributes: Default::default(),
        owner: Some("csm@vendor.example".into()),
        parent: None,
        created: keel_core::parse_date("2025-01-01").unwrap(),
    }
}

fn event(account: &str, message: &str, user: &str, at: &str, received: &str) -> Event {
    Event {
        message_id: MessageId::parse(message).unwrap(),
        account: id(account),
        user: UserId::parse(user).unwrap(),
        name: EventName::parse("report_viewed").unwrap(),
        timestamp: ts(at),
        received_at: ts(received),
        properties: serde_json::Map::new(),
    }
}

fn count(status: &keel_store::Status, kind: EntityKind) -> u64 {
    status.counts.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)
}

/// Covers `workspace`, `workspaces`.
pub async fn workspaces_are_found_or_created_once(store: &dyn Store) {
    let a = store.workspace("a").await.unwrap();
    let b = store.workspace("b").await.unwrap();
    assert_ne!(a, b);
    assert_eq!(store.workspace("a").await.unwrap(), a, "the same name is the same workspace");
    let names: Vec<String> = store.workspaces().await.unwrap().into_iter().map(|(_, n)| n).collect();
    assert!(names.contains(&"a".to_owned()) && names.contains(&"b".to_owned()), "{names:?}");
}

/// Covers `begin`, `WriteTx::upsert_*` (every kind), `append_events`,
/// `commit`, `records` (all, one, a list, a range), `snapshot`, `status`,
/// and workspace isolation of all of them.
pub async fn records_round_trip_and_unchanged_rows_are_counted(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let other = store.workspace("b").await.unwrap();
    let world = world(6);
    store_world(store, ws, &world).await;

    let snapshot = store.snapshot(ws).await.unwrap();
    let mut accounts: Vec<Account> = world.iter().map(|h| h.account.clone()).collect();
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(snapshot.accounts, accounts);
    let contracts: usize = world.iter().map(|h| h.contracts.len()).sum();
    let events: usize = world.iter().map(|h| h.events.len()).sum();
    assert_eq!((snapshot.contracts.len(), snapshot.events.len()), (contracts, events));
    let status = store.status(ws).await.unwrap();
    assert_eq!(count(&status, EntityKind::Accounts), 6);
    assert_eq!(count(&status, EntityKind::Events), events as u64);
    assert_eq!(count(&store.status(other).await.unwrap(), EntityKind::Accounts), 0, "isolated");
    assert!(store.snapshot(other).await.unwrap().accounts.is_empty());

    let all = RecordKinds::ALL;
    let first = &world[0].account.id;
    let one = store.records(ws, Accounts::One(first), all).await.unwrap();
    assert_eq!(one.accounts.len(), 1);
    assert_eq!(one.contracts.len(), world[0].contracts.len());
    assert_eq!(one.contacts.len(), world[0].contacts.len());
    let ids: Vec<ExternalId> = world[..3].iter().map(|h| h.account.id.clone()).collect();
    let listed = store.records(ws, Accounts::List(&ids), all).await.unwrap();
    assert_eq!(listed.accounts.len(), 3);
    let (lo, hi) = (&accounts[1].id, &accounts[3].id);
    assert_eq!(store.records(ws, Accounts::Between(lo, hi), all).await.unwrap().accounts.len(), 3);
    let none = RecordKinds::default();
    assert!(store.records(ws, Accounts::All, none).await.unwrap().contracts.is_empty(), "only what is asked");

    // Writing the same records again changes nothing, and says so.
    let mut tx = store.begin(ws).await.unwrap();
    let again = tx.upsert_accounts(&accounts).await.unwrap();
    let contracts_again = tx.upsert_contracts(&world[0].contracts).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 6));
    assert_eq!(contracts_again.unchanged, world[0].contracts.len() as u64);
    let mut renamed = accounts[0].clone();
    renamed.name = "Renamed".into();
    let mut tx = store.begin(ws).await.unwrap();
    let changed = tx.upsert_accounts(&[renamed]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((changed.inserted, changed.updated), (0, 1));
    assert_eq!(store.snapshot(ws).await.unwrap().accounts[0].name, "Renamed");
}

/// Covers `rollback`, `record_import`, `WriteTx::account_ids`: nothing of a
/// rolled-back transaction is visible, not even its deduplication keys.
pub async fn a_rollback_leaves_no_trace(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let before = store.snapshot(ws).await.unwrap();
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme")]).await.unwrap();
    assert!(tx.account_ids().await.unwrap().contains(&id("acme")), "visible inside the transaction");
    tx.append_events(&[event("acme", "m-1", "u1", "2026-02-01T10:00:00Z", "2026-02-01T10:00:00Z")])
        .await
        .unwrap();
    tx.record_import(&keel_store::ImportLog {
        kind: EntityKind::Accounts,
        source: "accounts.csv".into(),
        finished_at: ts("2026-02-01T10:00:00Z"),
        counts: keel_store::WriteCounts { inserted: 1, updated: 0, unchanged: 0 },
        rejected: 0,
    })
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.snapshot(ws).await.unwrap(), before);
    assert!(store.status(ws).await.unwrap().last_import.is_none());

    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme")]).await.unwrap();
    let outcome = tx
        .append_events(&[event("acme", "m-1", "u1", "2026-02-01T10:00:00Z", "2026-02-01T10:00:00Z")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((outcome.counts.inserted, outcome.duplicates.len()), (1, 0), "the key went with the rollback");
}

/// Covers `WriteTx::append_events` (outcomes and duplicate positions).
pub async fn deduplication_is_exact_within_and_across_transactions(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let other = store.workspace("b").await.unwrap();
    for w in [ws, other] {
        let mut tx = store.begin(w).await.unwrap();
        tx.upsert_accounts(&[account("acme")]).await.unwrap();
        tx.commit().await.unwrap();
    }
    let at = "2026-02-01T10:00:00Z";
    let mut tx = store.begin(ws).await.unwrap();
    let first = tx
        .append_events(&[
            event("acme", "m-1", "u1", at, at),
            event("acme", "m-2", "u1", at, at),
            event("acme", "m-1", "u2", at, at),
        ])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((first.counts.inserted, first.duplicates.clone()), (2, vec![2]), "a repeat within one batch");
    let mut tx = store.begin(ws).await.unwrap();
    let second = tx
        .append_events(&[event("acme", "m-3", "u1", at, at), event("acme", "m-2", "u1", at, at)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (second.counts.inserted, second.duplicates.clone()),
        (1, vec![1]),
        "a repeat of a committed one"
    );
    let mut tx = store.begin(other).await.unwrap();
    let elsewhere = tx.append_events(&[event("acme", "m-1", "u1", at, at)]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(elsewhere.counts.inserted, 1, "message ids are per workspace");
    assert_eq!(count(&store.status(ws).await.unwrap(), EntityKind::Events), 3);
}

/// Covers `usage`, `usage_days`, `account_users`, `event_names`: rollups by
/// day and by the day each event was known (late data stays late).
pub async fn usage_rollups_keep_when_each_event_was_known(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme"), account("beta")]).await.unwrap();
    tx.append_events(&[
        event("acme", "m-1", "u1", "2026-02-01T10:00:00Z", "2026-02-01T10:00:01Z"),
        event("acme", "m-2", "u2", "2026-02-01T11:00:00Z", "2026-02-01T11:00:01Z"),
        // Happened on the 1st, arrived on the 5th.
        event("acme", "m-3", "u1", "2026-02-01T12:00:00Z", "2026-02-05T09:00:00Z"),
        event("beta", "m-4", "u9", "2026-02-02T10:00:00Z", "2026-02-02T10:00:00Z"),
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let rollup = store.usage(ws, &id("acme")).await.unwrap();
    let total: i64 = rollup.events.iter().map(|e| e.events).sum();
    assert_eq!(total, 3);
    let late: i64 = rollup.events.iter().filter(|e| e.known_day > e.day).map(|e| e.events).sum();
    assert_eq!(late, 1, "{rollup:?}");

    let days = store.usage_days(ws, &[id("acme")], None).await.unwrap();
    assert_eq!(days.len(), 1);
    let (who, rows) = &days[0];
    assert_eq!(who, &id("acme"));
    let feb1 = keel_core::parse_date("2026-02-01").unwrap();
    let on_time: u64 = rows.iter().filter(|d| d.day == feb1 && d.known == feb1).map(|d| d.events).sum();
    let known_later: u64 = rows.iter().filter(|d| d.day == feb1 && d.known > feb1).map(|d| d.events).sum();
    assert_eq!((on_time, known_later), (2, 1), "{rows:?}");
    let since = store
        .usage_days(ws, &[id("acme")], Some(keel_core::parse_date("2026-02-02").unwrap()))
        .await
        .unwrap();
    assert!(
        since
            .iter()
            .all(|(_, rows)| rows.iter().all(|d| d.day >= keel_core::parse_date("2026-02-02").unwrap())),
        "{since:?}"
    );

    let users = store.account_users(ws, &[id("acme"), id("beta")]).await.unwrap();
    let acme_users: Vec<&str> =
        users.iter().find(|(a, _)| a == &id("acme")).unwrap().1.iter().map(|(_, u)| u.as_str()).collect();
    assert_eq!(acme_users.len(), 2, "{users:?}");
    assert!(acme_users.contains(&"u1") && acme_users.contains(&"u2"));
    let names: Vec<String> = store.event_names(ws).await.unwrap().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["report_viewed"]);
}

/// Covers `WriteTx::join_account`, `leave_account`, `account_of_users`,
/// `missing_accounts`.
pub async fn memberships_attribute_users_to_accounts_over_time(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme"), account("beta")]).await.unwrap();
    assert_eq!(tx.missing_accounts(&[id("acme"), id("nobody")]).await.unwrap(), vec![id("nobody")]);
    let u = UserId::parse("u1").unwrap();
    assert!(tx.join_account(&u, &id("acme"), ts("2026-01-01T00:00:00Z")).await.unwrap(), "a new membership");
    assert!(!tx.join_account(&u, &id("acme"), ts("2026-01-02T00:00:00Z")).await.unwrap(), "already a member");
    assert!(tx.leave_account(&u, &id("acme"), ts("2026-02-01T00:00:00Z")).await.unwrap());
    assert!(tx.join_account(&u, &id("beta"), ts("2026-02-01T00:00:00Z")).await.unwrap());
    let asks = [
        (u.clone(), ts("2025-12-31T00:00:00Z")),
        (u.clone(), ts("2026-01-15T00:00:00Z")),
        (u.clone(), ts("2026-02-15T00:00:00Z")),
        (UserId::parse("stranger").unwrap(), ts("2026-02-15T00:00:00Z")),
    ];
    let answers = tx.account_of_users(&asks).await.unwrap();
    tx.commit().await.unwrap();
    // Before any membership held, the user's latest one (events sent before
    // the `group` call are attributed to the account the user joined).
    assert_eq!(answers, [Some(id("beta")), Some(id("acme")), Some(id("beta")), None]);
}

/// Covers `create_api_key`, `api_key`, `api_keys`, `revoke_api_key`.
pub async fn api_keys_are_found_by_prefix_and_revoked_in_their_workspace_only(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let other = store.workspace("b").await.unwrap();
    let key = ApiKey {
        workspace: ws,
        workspace_name: "a".into(),
        name: "segment".into(),
        prefix: "keel_abcdefg".into(),
        secret_hash: vec![7; 32],
        scopes: vec!["ingest".into(), "read".into()],
        created_at: ts("2026-01-01T00:00:00Z"),
        revoked_at: None,
    };
    store.create_api_key(&key).await.unwrap();
    assert_eq!(store.api_key("keel_abcdefg").await.unwrap(), Some(key.clone()));
    assert_eq!(store.api_key("keel_0000000").await.unwrap(), None);
    assert_eq!(store.api_keys(ws).await.unwrap(), vec![key.clone()]);
    assert!(store.api_keys(other).await.unwrap().is_empty());
    let at = ts("2026-02-01T00:00:00Z");
    assert!(!store.revoke_api_key(other, "keel_abcdefg", at).await.unwrap(), "not from another workspace");
    assert!(store.revoke_api_key(ws, "keel_abcdefg", at).await.unwrap());
    assert_eq!(store.api_key("keel_abcdefg").await.unwrap().and_then(|k| k.revoked_at), Some(at));
}

/// Covers `upsert_user`, `user_by_email`, `users`, `create_session`,
/// `session`, `delete_session`.
pub async fn users_and_sessions_round_trip_and_expire(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let user = UserRow {
        id: 0,
        workspace: ws,
        email: "lee@vendor.example".into(),
        name: "Lee".into(),
        role: "leader".into(),
        password_hash: "$argon2id$fake".into(),
        created_at: ts("2026-01-01T00:00:00Z"),
        disabled_at: None,
    };
    let stored = store.upsert_user(&user).await.unwrap();
    assert!(stored.id > 0);
    let again = store.upsert_user(&UserRow { role: "csm".into(), ..user.clone() }).await.unwrap();
    assert_eq!((again.id, again.role.as_str()), (stored.id, "csm"), "the same email is the same user");
    assert_eq!(store.user_by_email("lee@vendor.example").await.unwrap().map(|u| u.id), Some(stored.id));
    assert_eq!(store.users(ws).await.unwrap().len(), 1);
    let session = SessionRow {
        token_hash: vec![1; 32],
        user_id: stored.id,
        csrf: "csrf".into(),
        created_at: ts("2026-01-01T00:00:00Z"),
        expires_at: ts("2026-01-15T00:00:00Z"),
    };
    store.create_session(&session).await.unwrap();
    let (found, who) =
        store.session(&[1; 32], ts("2026-01-02T00:00:00Z")).await.unwrap().expect("a live session");
    assert_eq!((found, who.id), (session.clone(), stored.id));
    assert!(store.session(&[1; 32], ts("2026-01-16T00:00:00Z")).await.unwrap().is_none(), "expired");
    store.delete_session(&[1; 32], ts("2026-01-03T00:00:00Z")).await.unwrap();
    assert!(store.session(&[1; 32], ts("2026-01-03T00:00:00Z")).await.unwrap().is_none(), "signed out");
}

/// Covers `WriteTx::insert_task`, `task`, `update_task`, `tasks`, `count_tasks`.
pub async fn tasks_are_stored_updated_listed_and_counted(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let at = ts("2026-02-01T00:00:00Z");
    let task = |account: &str, owner: &str, due: &str| TaskRow {
        id: 0,
        account: id(account),
        run_key: None,
        step: None,
        kind: "risk".into(),
        title: format!("Call {account}"),
        description: String::new(),
        role: "csm".into(),
        owner: owner.into(),
        due: keel_core::parse_date(due).unwrap(),
        priority: "normal".into(),
        status: "open".into(),
        snoozed_until: None,
        snooze_reason: None,
        outcome: None,
        touchpoint_kind: "call".into(),
        evidence: "{}".into(),
        created_at: at,
        updated_at: at,
    };
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme"), account("beta")]).await.unwrap();
    let a = tx.insert_task(&task("acme", "ann", "2026-02-03")).await.unwrap().unwrap();
    let b = tx.insert_task(&task("beta", "ann", "2026-02-20")).await.unwrap().unwrap();
    let c = tx.insert_task(&task("beta", "bob", "2026-02-01")).await.unwrap().unwrap();
    let mut done = tx.task(c).await.unwrap().expect("the task");
    done.status = "done".into();
    done.outcome = Some("called".into());
    tx.update_task(&done).await.unwrap();
    tx.commit().await.unwrap();

    let today = keel_core::parse_date("2026-02-10").unwrap();
    let open = TaskQuery { statuses: vec!["open".into()], limit: 100, ..TaskQuery::default() };
    let listed: Vec<i64> = store.tasks(ws, &open).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(listed, [a, b], "overdue first, then by due day");
    let anns = TaskQuery { owner: Some("ann".into()), ..open.clone() };
    assert_eq!(store.tasks(ws, &anns).await.unwrap().len(), 2);
    let overdue = TaskQuery { overdue_on: Some(today), ..open.clone() };
    assert_eq!(store.tasks(ws, &overdue).await.unwrap().iter().map(|t| t.id).collect::<Vec<_>>(), [a]);
    let (total, late) = store.count_tasks(ws, &open, today).await.unwrap();
    assert_eq!((total, late), (2, 1));
    let other = store.workspace("b").await.unwrap();
    assert!(store.tasks(other, &open).await.unwrap().is_empty(), "isolated");
}

fn stored(band: &str, mrr: f64, at: &str) -> StoredState {
    StoredState {
        evaluated_at: ts(at),
        as_of: ts(at).date_naive(),
        journey_version: "v1".into(),
        state: format!("{{\"band\": \"{band}\"}}"),
        summary: StateSummary {
            segment: Some("smb".into()),
            band: Some(band.into()),
            score: Some(0.5),
            stages: vec![("core".into(), Some("adoption".into()))],
            mrr: Some(mrr),
            renewal: Some(keel_core::parse_date("2026-09-01").unwrap()),
        },
    }
}

/// Covers `WriteTx::put_account_states`, `account_state`, `timeline`.
pub async fn account_states_are_replaced_and_their_timeline_appended(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let entry = |at: &str, kind: &str| TimelineEntry { at: ts(at), kind: kind.into(), detail: "{}".into() };
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme")]).await.unwrap();
    tx.put_account_states(&[(
        id("acme"),
        stored("green", 100.0, "2026-02-01T00:00:00Z"),
        vec![entry("2026-02-01T00:00:00Z", "band_changed")],
    )])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin(ws).await.unwrap();
    tx.put_account_states(&[(
        id("acme"),
        stored("red", 100.0, "2026-02-02T00:00:00Z"),
        vec![entry("2026-02-02T00:00:00Z", "moment_started")],
    )])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let state = store.account_state(ws, &id("acme")).await.unwrap().expect("a state");
    assert_eq!(state, stored("red", 100.0, "2026-02-02T00:00:00Z"), "the newest replaces the older");
    let kinds: Vec<String> =
        store.timeline(ws, &id("acme"), 10).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["moment_started", "band_changed"], "newest first");
    assert_eq!(store.timeline(ws, &id("acme"), 1).await.unwrap().len(), 1, "at most the limit");
    assert!(store.account_state(ws, &id("nobody")).await.unwrap().is_none());
    let other = store.workspace("b").await.unwrap();
    assert!(store.account_state(other, &id("acme")).await.unwrap().is_none(), "isolated");
    assert!(store.timeline(other, &id("acme"), 10).await.unwrap().is_empty(), "isolated");
}

/// Covers `list_accounts`: filters, sorts and keyset pages that together
/// list every account once.
pub async fn the_account_list_pages_by_keyset_without_gaps_or_repeats(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let names: Vec<String> = (0..23).map(|i| format!("acct-{i:03}")).collect();
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&names.iter().map(|n| account(n)).collect::<Vec<_>>()).await.unwrap();
    // Every third account is not evaluated; MRR repeats, so the sort needs its tie-break.
    let states: Vec<_> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(i, n)| {
            (
                id(n),
                stored(
                    if i % 2 == 0 { "green" } else { "red" },
                    (i % 4) as f64 * 100.0,
                    "2026-02-01T00:00:00Z",
                ),
                vec![],
            )
        })
        .collect();
    tx.put_account_states(&states).await.unwrap();
    tx.commit().await.unwrap();

    for (sort, descending) in [
        (AccountSort::Id, false),
        (AccountSort::Mrr, true),
        (AccountSort::Name, true),
        (AccountSort::Renewal, false),
    ] {
        let mut seen = Vec::new();
        let mut query = AccountQuery { sort, descending, limit: 5, ..AccountQuery::default() };
        loop {
            let page = store.list_accounts(ws, &query).await.unwrap();
            assert_eq!(page.total, 23);
            assert!(page.rows.len() <= 5);
            seen.extend(page.rows.iter().map(|r| r.account.id.to_string()));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, names, "{sort:?}: every account once");
    }
    let red = store
        .list_accounts(ws, &AccountQuery { band: Some("red".into()), limit: 100, ..AccountQuery::default() })
        .await
        .unwrap();
    assert!(
        red.rows.iter().all(|r| r.evaluated.as_ref().is_some_and(|(_, s)| s.band.as_deref() == Some("red")))
    );
    assert_eq!(
        red.total,
        states.iter().filter(|(_, s, _)| s.summary.band.as_deref() == Some("red")).count() as u64
    );
    let found = store
        .list_accounts(
            ws,
            &AccountQuery { search: Some("ACCT-01".into()), limit: 100, ..AccountQuery::default() },
        )
        .await
        .unwrap();
    assert_eq!(found.total, 10, "acct-010 … acct-019, case-insensitive");
}

/// Covers `WriteTx::record_transitions`, `transitions`.
pub async fn stage_transitions_are_recorded_once(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let change = |on: &str, to: &str| TransitionRecord {
        account: id("acme"),
        product_line: "core".into(),
        on: keel_core::parse_date(on).unwrap(),
        from: None,
        to: Some(to.into()),
        rule: "entry".into(),
        inputs: "{}".into(),
        journey_version: "v1".into(),
        recorded_at: ts("2026-02-10T00:00:00Z"),
    };
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme")]).await.unwrap();
    assert_eq!(
        tx.record_transitions(&[change("2026-01-01", "onboarding"), change("2026-02-01", "adoption")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        tx.record_transitions(&[change("2026-02-01", "adoption")]).await.unwrap(),
        0,
        "already recorded"
    );
    tx.commit().await.unwrap();
    let recorded = store.transitions(ws, &id("acme")).await.unwrap();
    assert_eq!(
        recorded.iter().map(|t| t.to.clone().unwrap()).collect::<Vec<_>>(),
        ["onboarding", "adoption"]
    );
}

/// Covers `forget_message_ids`: a message id older than the window is
/// accepted again; a recent one is still a duplicate; the events stay.
pub async fn old_message_ids_are_forgotten_after_their_window(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let at = "2026-01-01T10:00:00Z";
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme")]).await.unwrap();
    tx.commit().await.unwrap();
    // Each call marks its day's first event id: Jan 1's before the old event.
    store.forget_message_ids(ts("2026-01-01T00:00:00Z"), 30, 0, 1).await.unwrap();
    let mut tx = store.begin(ws).await.unwrap();
    tx.append_events(&[event("acme", "old", "u1", at, at)]).await.unwrap();
    tx.commit().await.unwrap();
    // The hourly task marks each day's first event id; Jan 5's comes after the old event.
    store.forget_message_ids(ts("2026-01-05T00:00:00Z"), 30, 0, 1).await.unwrap();
    let mut tx = store.begin(ws).await.unwrap();
    tx.append_events(&[event("acme", "recent", "u1", "2026-02-15T10:00:00Z", "2026-02-15T10:00:00Z")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut forgotten = 0;
    for part in 0..4 {
        forgotten += store.forget_message_ids(ts("2026-03-10T00:00:00Z"), 30, part, 4).await.unwrap();
    }
    assert_eq!(forgotten, 1, "only the id stored before the window's first mark");
    let mut tx = store.begin(ws).await.unwrap();
    let again = tx
        .append_events(&[
            event("acme", "old", "u1", at, at),
            event("acme", "recent", "u1", "2026-02-15T10:00:00Z", "2026-02-15T10:00:00Z"),
        ])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((again.counts.inserted, again.duplicates.clone()), (1, vec![1]));
    assert_eq!(
        count(&store.status(ws).await.unwrap(), EntityKind::Events),
        3,
        "forgetting an id keeps its event"
    );
}

/// Covers `maintain`, `writable` on a store with room to write.
pub async fn maintenance_and_writability_answer_on_a_healthy_store(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme")]).await.unwrap();
    tx.commit().await.unwrap();
    store.maintain().await.unwrap();
    store.writable(ts("2026-02-01T00:00:00Z")).await.unwrap();
}

/// Covers `record_rejections`, `rejections`: newest first, counted by
/// code, per workspace, only the latest `KEPT_REJECTIONS` kept, nothing
/// kept from a rolled-back transaction.
pub async fn refused_messages_are_kept_newest_first_per_workspace(store: &dyn Store) {
    let (a, b) = (store.workspace("a").await.unwrap(), store.workspace("b").await.unwrap());
    let row = |i: i64, code: &str| keel_store::RejectionRow {
        at: ts("2026-02-01T00:00:00Z") + chrono::Duration::seconds(i),
        code: code.into(),
        reason: format!("reason {i}"),
        message_id: Some(format!("m{i}")),
        user_id: (i % 2 == 0).then(|| format!("u{i}")),
    };
    let mut tx = store.begin(a).await.unwrap();
    tx.record_rejections(&[
        row(1, "unknown_account"),
        row(2, "invalid_timestamp"),
        row(3, "unknown_account"),
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin(a).await.unwrap();
    tx.record_rejections(&[row(4, "unknown_account")]).await.unwrap();
    tx.rollback().await.unwrap();
    let (list, counts) = store.rejections(a, 2).await.unwrap();
    assert_eq!(list, vec![row(3, "unknown_account"), row(2, "invalid_timestamp")]);
    assert_eq!(counts, vec![("invalid_timestamp".to_owned(), 1), ("unknown_account".to_owned(), 2)]);
    assert_eq!(store.rejections(b, 10).await.unwrap(), (vec![], vec![]), "another workspace keeps its own");

    // Only the latest are kept.
    let many: Vec<_> = (0..keel_store::KEPT_REJECTIONS + 5).map(|i| row(10 + i, "invalid_message")).collect();
    let mut tx = store.begin(a).await.unwrap();
    tx.record_rejections(&many).await.unwrap();
    tx.commit().await.unwrap();
    let (list, counts) = store.rejections(a, 1).await.unwrap();
    assert_eq!(list[0], *many.last().unwrap());
    let kept: u64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(kept, keel_store::KEPT_REJECTIONS as u64);
}

fn run(key: &str, open: bool, started: &str) -> PlayRunRow {
    PlayRunRow {
        key: key.into(),
        account: id("acme"),
        play: key.split('/').nth(1).unwrap().into(),
        status: if open { "active".into() } else { "done".into() },
        open,
        holdout: false,
        started: keel_core::parse_date(started).unwrap(),
        outcome: None,
        run: "{}".into(),
        updated_at: ts("2026-02-01T00:00:00Z"),
    }
}

/// Covers `WriteTx::insert_play_run`, `update_play_run`, `play_run`,
/// `play_state`, `put_play_memo`, `append_play_decisions`, and `play_runs`,
/// `play_decisions`.
pub async fn play_runs_start_once_per_key_and_once_open_per_play(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme")]).await.unwrap();
    let first = run("acme/rescue/moment/2026-02-01", true, "2026-02-01");
    assert!(tx.insert_play_run(&first).await.unwrap());
    assert!(!tx.insert_play_run(&first).await.unwrap(), "the same key starts nothing");
    assert!(
        !tx.insert_play_run(&run("acme/rescue/moment/2026-02-08", true, "2026-02-08")).await.unwrap(),
        "one open run per account and play"
    );
    assert!(tx.insert_play_run(&run("acme/nudge/moment/2026-02-08", true, "2026-02-08")).await.unwrap());
    let mut done = first.clone();
    done.open = false;
    done.status = "done".into();
    done.outcome = Some("met".into());
    tx.update_play_run(&done).await.unwrap();
    assert_eq!(tx.play_run(&first.key).await.unwrap(), Some(done.clone()));
    assert!(
        tx.insert_play_run(&run("acme/rescue/moment/2026-02-15", true, "2026-02-15")).await.unwrap(),
        "open again once done"
    );
    tx.put_play_memo(&id("acme"), keel_core::parse_date("2026-02-15").unwrap(), "[\"rescue\"]")
        .await
        .unwrap();
    let decision = DecisionRow {
        run_key: first.key.clone(),
        account: id("acme"),
        play: "rescue".into(),
        at: ts("2026-02-01T00:00:00Z"),
        decision: "started".into(),
        step: None,
        rule: None,
        by: None,
        detail: "moment fired".into(),
        journey_version: "v1".into(),
        inputs: "{}".into(),
    };
    tx.append_play_decisions(std::slice::from_ref(&decision)).await.unwrap();
    let state = tx.play_state(&id("acme"), keel_core::parse_date("2026-01-01").unwrap()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(state.memo, Some((keel_core::parse_date("2026-02-15").unwrap(), "[\"rescue\"]".to_owned())));
    let mut active: Vec<&str> = state.active_runs.iter().map(|r| r.key.as_str()).collect();
    active.sort_unstable();
    assert_eq!(active, ["acme/nudge/moment/2026-02-08", "acme/rescue/moment/2026-02-15"]);
    assert!(
        state.last_started.contains(&("rescue".to_owned(), keel_core::parse_date("2026-02-15").unwrap())),
        "{:?}",
        state.last_started
    );

    assert_eq!(store.play_runs(ws, Some("rescue"), None).await.unwrap().len(), 2);
    assert_eq!(store.play_runs(ws, None, Some(&id("acme"))).await.unwrap().len(), 3);
    assert_eq!(store.play_decisions(ws, None, Some(&first.key)).await.unwrap(), vec![decision]);
    let other = store.workspace("b").await.unwrap();
    assert!(store.play_runs(other, None, None).await.unwrap().is_empty(), "isolated");
}

/// Covers `WriteTx::insert_outbox`, `outbox_entry`, `decide_outbox`,
/// `queue_delivery`, `update_delivery`, and `outbox`, `deliveries`,
/// `due_deliveries`.
pub async fn the_outbox_decides_once_and_deliveries_come_due(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let at = ts("2026-02-01T00:00:00Z");
    let held = OutboxRow {
        id: 0,
        account: id("acme"),
        run_key: "acme/rescue/moment/2026-02-01".into(),
        step: 1,
        approver: "lee@vendor.example".into(),
        rule: "exec_sponsor".into(),
        payload: "{}".into(),
        status: "pending".into(),
        decided_by: None,
        decided_at: None,
        note: None,
        created_at: at,
    };
    let delivery = |step: i64, due: &str| DeliveryRow {
        id: 0,
        account: id("acme"),
        run_key: "acme/rescue/moment/2026-02-01".into(),
        step,
        channel: "webhook".into(),
        customer_facing: false,
        payload: "{}".into(),
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: ts(due),
        last_error: None,
        created_on: keel_core::parse_date("2026-02-01").unwrap(),
        created_at: at,
        sent_at: None,
    };
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme")]).await.unwrap();
    let entry = tx.insert_outbox(&held).await.unwrap().expect("held");
    assert_eq!(tx.insert_outbox(&held).await.unwrap(), None, "the step is held once");
    let mut approved = tx.outbox_entry(entry).await.unwrap().expect("the entry");
    approved.status = "approved".into();
    approved.decided_by = Some("lee@vendor.example".into());
    approved.decided_at = Some(at);
    assert!(tx.decide_outbox(&approved).await.unwrap());
    let mut rejected = approved.clone();
    rejected.status = "rejected".into();
    assert!(!tx.decide_outbox(&rejected).await.unwrap(), "decided already");
    let now_due = tx.queue_delivery(&delivery(2, "2026-02-01T00:00:00Z")).await.unwrap().expect("queued");
    assert_eq!(
        tx.queue_delivery(&delivery(2, "2026-02-01T00:00:00Z")).await.unwrap(),
        None,
        "the step is queued once"
    );
    tx.queue_delivery(&delivery(3, "2026-03-01T00:00:00Z")).await.unwrap().expect("queued");
    tx.commit().await.unwrap();

    assert_eq!(
        store.outbox(ws, Some("approved")).await.unwrap().iter().map(|o| o.id).collect::<Vec<_>>(),
        [entry]
    );
    assert!(store.outbox(ws, Some("pending")).await.unwrap().is_empty());
    let due = store.due_deliveries(ts("2026-02-02T00:00:00Z"), 10).await.unwrap();
    assert_eq!(due.iter().map(|(w, d)| (*w, d.id)).collect::<Vec<_>>(), [(ws, now_due)], "only what is due");
    let mut sent = due[0].1.clone();
    sent.status = "sent".into();
    sent.attempts = 1;
    sent.sent_at = Some(ts("2026-02-02T00:00:00Z"));
    let mut tx = store.begin(ws).await.unwrap();
    tx.update_delivery(&sent).await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        store.due_deliveries(ts("2026-02-02T00:00:00Z"), 10).await.unwrap().is_empty(),
        "sent is not due"
    );
    assert_eq!(store.deliveries(ws, Some("sent")).await.unwrap(), vec![sent]);
    assert_eq!(store.deliveries(ws, None).await.unwrap().len(), 2);
}

/// Covers `book`: accounts by stored band (MRR > 0), former customers (MRR
/// 0), accounts not evaluated, renewals within 90 and 180 days, per owner.
pub async fn the_book_counts_bands_renewals_and_former_customers(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let with_owner = |name: &str, owner: &str| {
        let mut a = account(name);
        a.owner = Some(owner.into());
        a
    };
    let accounts = [
        with_owner("a1", "ann"),
        with_owner("a2", "ann"),
        with_owner("a3", "bob"),
        with_owner("a4", "bob"),
        with_owner("a5", "bob"),
    ];
    let renewing = |mut state: StoredState, on: &str| {
        state.summary.renewal = Some(keel_core::parse_date(on).unwrap());
        state
    };
    let at = "2026-02-01T00:00:00Z";
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&accounts).await.unwrap();
    tx.put_account_states(&[
        (id("a1"), renewing(stored("green", 100.0, at), "2026-03-01"), vec![]),
        (id("a2"), renewing(stored("red", 50.0, at), "2026-07-01"), vec![]),
        (id("a3"), renewing(stored("red", 25.0, at), "2027-01-01"), vec![]),
        (id("a4"), renewing(stored("red", 0.0, at), "2026-03-01"), vec![]),
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let today = keel_core::parse_date("2026-02-10").unwrap();
    let book = store.book(ws, None, today).await.unwrap();
    assert_eq!((book.not_evaluated, book.former), (1, 1), "a5 not evaluated, a4 without MRR");
    let band = |b: &str| book.bands.iter().find(|x| x.band.as_deref() == Some(b)).cloned().unwrap();
    let (green, red) = (band("green"), band("red"));
    assert_eq!(
        (green.accounts, green.mrr, green.renewing_90, green.renewing_180),
        (1, 100.0, (1, 100.0), (1, 100.0))
    );
    assert_eq!((red.accounts, red.mrr, red.renewing_90, red.renewing_180), (2, 75.0, (0, 0.0), (1, 50.0)));
    let bobs = store.book(ws, Some("bob"), today).await.unwrap();
    assert_eq!(
        (bobs.not_evaluated, bobs.former, bobs.bands.iter().map(|b| b.accounts).sum::<u64>()),
        (1, 1, 1)
    );
}

/// Covers `WriteTx::contact`, `record_import` and `status`'s last import.
pub async fn contacts_are_found_by_id_and_the_last_import_is_kept(store: &dyn Store) {
    let ws = store.workspace("a").await.unwrap();
    let world = world(2);
    store_world(store, ws, &world).await;
    let known = world.iter().flat_map(|h| &h.contacts).next().expect("a contact").clone();
    let log = keel_store::ImportLog {
        kind: EntityKind::Contacts,
        source: "contacts.csv".into(),
        finished_at: ts("2026-02-01T10:00:00Z"),
        counts: keel_store::WriteCounts { inserted: 3, updated: 1, unchanged: 0 },
        rejected: 2,
    };
    let mut tx = store.begin(ws).await.unwrap();
    assert_eq!(tx.contact(&known.id).await.unwrap(), Some(known.clone()));
    assert_eq!(tx.contact(&id("nobody")).await.unwrap(), None);
    tx.record_import(&log).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.status(ws).await.unwrap().last_import, Some(log));
}

/// Covers `hold_messages`, `held_messages`, `take_held`, `held_count`: a
/// message id is held once, taking returns a user's messages in the order
/// they were held and forgets them, workspaces keep their own, and nothing
/// of a rolled-back transaction stays.
pub async fn messages_of_users_without_an_account_are_held_until_taken(store: &dyn Store) {
    let (a, b) = (store.workspace("a").await.unwrap(), store.workspace("b").await.unwrap());
    let held = |id: &str, user: &str| keel_store::HeldMessage {
        message_id: id.into(),
        user: keel_core::UserId::parse(user).unwrap(),
        received_at: ts("2026-02-01T00:00:00Z"),
        payload: format!("{{\"m\":\"{id}\"}}"),
    };
    let mut tx = store.begin(a).await.unwrap();
    let fresh = tx.hold_messages(&[held("m1", "ann"), held("m2", "bob"), held("m3", "ann")]).await.unwrap();
    assert_eq!(fresh, [true, true, true]);
    assert_eq!(tx.hold_messages(&[held("m1", "ann")]).await.unwrap(), [false], "held once");
    assert_eq!(tx.held_messages().await.unwrap(), 3);
    tx.commit().await.unwrap();
    assert_eq!(store.held_count(a).await.unwrap(), 3);
    assert_eq!(store.held_count(b).await.unwrap(), 0, "another workspace holds its own");

    let mut tx = store.begin(a).await.unwrap();
    let ann = keel_core::UserId::parse("ann").unwrap();
    assert_eq!(
        tx.take_held(std::slice::from_ref(&ann)).await.unwrap(),
        [held("m1", "ann"), held("m3", "ann")]
    );
    tx.rollback().await.unwrap();
    assert_eq!(store.held_count(a).await.unwrap(), 3, "a rolled-back take keeps them");

    let mut tx = store.begin(a).await.unwrap();
    assert_eq!(tx.take_held(std::slice::from_ref(&ann)).await.unwrap().len(), 2);
    assert_eq!(tx.take_held(&[ann]).await.unwrap(), [], "taken once");
    tx.commit().await.unwrap();
    assert_eq!(store.held_count(a).await.unwrap(), 1);
}

/// Covers `person`, `forget_person`, `append_audit`, `audit_log`, `backup`:
/// a person is found by email or id with their contacts and events, and
/// after the forget by neither, while their events still count; the audit
/// log is newest first and per workspace; a backup holds what was written.
pub async fn a_person_is_exported_then_forgotten_and_admin_actions_are_logged(store: &dyn Store) {
    let (a, b) = (store.workspace("a").await.unwrap(), store.workspace("b").await.unwrap());
    let mut tx = store.begin(a).await.unwrap();
    tx.upsert_accounts(&[account("acme")]).await.unwrap();
    tx.upsert_contacts(&[keel_core::Contact {
        id: id("ann"),
        account: id("acme"),
        email: "ann@acme.example".into(),
        name: "Ann Example".into(),
        role: keel_core::Label::parse("champion").unwrap(),
        active_from: keel_core::parse_date("2025-01-01").unwrap(),
        active_to: None,
    }])
    .await
    .unwrap();
    let received = "2025-03-01T10:00:00Z";
    tx.append_events(&[
        event("acme", "m1", "ann", "2025-03-01T09:00:00Z", received),
        event("acme", "m2", "bob", "2025-03-01T09:00:00Z", received),
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let found = store.person(a, "ANN@acme.example").await.unwrap().expect("found by email, any case");
    assert_eq!((found.contacts.len(), found.events.len()), (1, 1));
    assert_eq!(found.user_ids, ["ann"]);
    assert!(store.person(b, "ann@acme.example").await.unwrap().is_none(), "another workspace's");
    assert!(store.forget_person(a, "nobody@x.example").await.unwrap().is_none());

    let report = store.forget_person(a, "ann").await.unwrap().expect("found by id");
    assert!(report.changed.iter().any(|(place, n)| place == "contacts" && *n == 1), "{report:?}");
    assert!(store.person(a, "ann@acme.example").await.unwrap().is_none());
    assert!(store.person(a, "ann").await.unwrap().is_none());
    let status = store.status(a).await.unwrap();
    assert_eq!((count(&status, EntityKind::Contacts), count(&status, EntityKind::Events)), (0, 2));

    let entry = |action: &str| keel_store::AuditEntry {
        at: ts("2026-02-01T00:00:00Z"),
        actor: "cli:test".into(),
        action: action.into(),
        subject: "s".into(),
        detail: String::new(),
    };
    store.append_audit(a, &entry("key.created")).await.unwrap();
    store.append_audit(a, &entry("key.revoked")).await.unwrap();
    let log = store.audit_log(a, 10).await.unwrap();
    assert_eq!(log, [entry("key.revoked"), entry("key.created")]);
    assert_eq!(store.audit_log(a, 1).await.unwrap().len(), 1);
    assert_eq!(store.audit_log(b, 10).await.unwrap(), []);

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    store.backup(&copy).await.unwrap();
    assert!(std::fs::metadata(&copy).unwrap().len() > 0);
    assert!(store.backup(&copy).await.is_err(), "an existing file is not overwritten");
}

/// `put_timelines`, `timeline_rows`, `timeline_heads`, `drop_other_timelines`,
/// `timelines_upto`, `withdraw_timelines`.
pub async fn an_accounts_timeline_is_replaced_from_a_day_and_read_from_its_last_checkpoint(
    store: &dyn Store,
) {
    let ws = store.workspace("a").await.unwrap();
    let other = store.workspace("b").await.unwrap();
    let w = world(2);
    store_world(store, ws, &w).await;
    let acct = w[0].account.id.clone();
    let second = w[1].account.id.clone();
    let day = |d: &str| keel_core::parse_date(d).unwrap();
    let row = |d: &str, checkpoint: bool| keel_store::TimelineRow {
        day: day(d),
        checkpoint,
        facts: format!("{{\"day\":\"{d}\"}}"),
    };
    let head = |d: &str, n: u64| keel_store::TimelineHead {
        through: day(d),
        records: n,
        known_before: u64::MAX - n,
        known_upto: 1 << 63,
    };
    let write = |account: &ExternalId, from: Option<&str>, rows: &[keel_store::TimelineRow], h| {
        keel_store::TimelineWrite {
            account: account.clone(),
            from: from.map(day),
            rows: rows.to_vec(),
            head: h,
        }
    };
    let rows = [
        row("2026-01-01", true),
        row("2026-01-05", false),
        row("2026-01-29", true),
        row("2026-02-02", false),
    ];
    store.put_timelines(ws, "v1", &[write(&acct, None, &rows, head("2026-02-03", 1))]).await.unwrap();
    store.put_timelines(ws, "v2", &[write(&acct, None, &rows[..1], head("2026-01-01", 2))]).await.unwrap();
    assert_eq!(store.timeline_rows(ws, &acct, "v1", None).await.unwrap(), rows, "every row, in day order");
    assert_eq!(store.timeline_rows(ws, &acct, "v1", Some(day("2026-01-28"))).await.unwrap(), rows[..2]);
    assert_eq!(store.timeline_rows(ws, &acct, "v1", Some(day("2026-01-29"))).await.unwrap(), rows[2..3]);
    assert_eq!(store.timeline_rows(ws, &acct, "v1", Some(day("2026-03-01"))).await.unwrap(), rows[2..]);
    assert!(
        store.timeline_rows(ws, &acct, "v1", Some(day("2025-12-31"))).await.unwrap().is_empty(),
        "before it starts"
    );
    assert_eq!(store.timeline_rows(ws, &acct, "v2", None).await.unwrap(), rows[..1], "each version its own");
    let heads = store.timeline_heads(ws, "v1", &[acct.clone(), second.clone()]).await.unwrap();
    assert_eq!(heads.len(), 1, "only kept timelines have a head: {heads:?}");
    assert_eq!(heads[&acct], head("2026-02-03", 1), "digests come back bit for bit");
    // A restatement from a day replaces that day and the later ones only,
    // and moves the head; several accounts are written together.
    let restated = [row("2026-01-05", true), row("2026-01-06", false)];
    store
        .put_timelines(
            ws,
            "v1",
            &[
                write(&acct, Some("2026-01-05"), &restated, head("2026-01-06", 3)),
                write(&second, None, &rows[..1], head("2026-01-01", 4)),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.timeline_rows(ws, &acct, "v1", None).await.unwrap(),
        [rows[0].clone(), restated[0].clone(), restated[1].clone()]
    );
    let heads = store.timeline_heads(ws, "v1", &[acct.clone(), second.clone()]).await.unwrap();
    assert_eq!((heads[&acct], heads[&second]), (head("2026-01-06", 3), head("2026-01-01", 4)));
    assert!(store.timeline_rows(other, &acct, "v1", None).await.unwrap().is_empty(), "another workspace");
    assert!(store.timeline_heads(other, "v1", std::slice::from_ref(&acct)).await.unwrap().is_empty());
    // Refused as a whole: the known account's rows are not written either.
    let refused = store
        .put_timelines(
            ws,
            "v1",
            &[
                write(&second, None, &[], head("2026-01-01", 5)),
                write(&ExternalId::parse("nobody").unwrap(), None, &rows, head("2026-01-01", 5)),
            ],
        )
        .await;
    assert!(matches!(refused, Err(keel_store::StoreError::UnknownAccount(_))), "{refused:?}");
    assert_eq!(store.timeline_rows(ws, &second, "v1", None).await.unwrap(), rows[..1]);
    // Another version's rows and heads go; the kept version's stay.
    assert_eq!(store.drop_other_timelines(ws, "v1").await.unwrap(), 1);
    assert!(store.timeline_rows(ws, &acct, "v2", None).await.unwrap().is_empty());
    assert!(store.timeline_heads(ws, "v2", std::slice::from_ref(&acct)).await.unwrap().is_empty());
    assert_eq!(store.timeline_rows(ws, &acct, "v1", None).await.unwrap().len(), 3);
    // Many accounts' rows up to a day, in one read.
    let many = store
        .timelines_upto(ws, "v1", &[acct.clone(), second.clone(), id("nobody")], day("2026-01-05"))
        .await
        .unwrap();
    assert_eq!(many.len(), 2, "accounts without rows are left out: {many:?}");
    assert_eq!(many[&acct], [rows[0].clone(), restated[0].clone()], "up to the day, in day order");
    assert_eq!(many[&second], rows[..1]);
    assert!(
        store
            .timelines_upto(other, "v1", std::slice::from_ref(&acct), day("2027-01-01"))
            .await
            .unwrap()
            .is_empty()
    );
    // A withdrawn head: the rows stay, the head goes (only that account's).
    store.withdraw_timelines(ws, "v1", std::slice::from_ref(&acct)).await.unwrap();
    let heads = store.timeline_heads(ws, "v1", &[acct.clone(), second.clone()]).await.unwrap();
    assert_eq!(heads.keys().collect::<Vec<_>>(), [&second]);
    assert_eq!(store.timeline_rows(ws, &acct, "v1", None).await.unwrap().len(), 3);
}
