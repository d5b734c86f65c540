//! Re-importing changes nothing, and the order of repeated imports does not matter.

use keel_core::EntityKind;
use keel_import::Format;
use keel_store::Store;
use proptest::prelude::*;

use crate::{export_kind, fixture, world};

#[tokio::test]
async fn reimporting_every_kind_is_a_no_op() {
    let world = world(8, 12, 11);
    let f = fixture().await;
    let mut paths = Vec::new();
    for kind in EntityKind::ALL {
        let format = if kind == EntityKind::Events { Format::Jsonl } else { Format::Csv };
        let path = export_kind(f.dir.path(), &world, kind, format);
        f.import(kind, &path).await;
        paths.push((kind, path));
    }
    let before = f.snapshot().await;
    let known_before = f.store.usage(f.ws, &world[0].account.id).await.unwrap();
    for (kind, path) in &paths {
        let again = f.import(*kind, path).await;
        assert_eq!(again.counts.inserted, 0, "{kind}");
        assert_eq!(again.counts.updated, 0, "{kind}");
        assert_eq!(again.counts.unchanged, again.rows, "{kind}");
    }
    assert_eq!(f.snapshot().await, before);
    assert_eq!(
        f.store.usage(f.ws, &world[0].account.id).await.unwrap(),
        known_before,
        "rollups counted twice"
    );
}

#[tokio::test]
async fn a_changed_row_is_an_update_and_the_rest_unchanged() {
    let f = fixture().await;
    let a = f.write("a.csv", b"id,name,created_date,attr.tier\nx,X,2025-01-01,smb\ny,Y,2025-01-01,smb\n");
    f.import(EntityKind::Accounts, &a).await;
    let b =
        f.write("b.csv", b"id,name,created_date,attr.tier\nx,X,2025-01-01,enterprise\ny,Y,2025-01-01,smb\n");
    let report = f.import(EntityKind::Accounts, &b).await;
    assert_eq!((report.counts.inserted, report.counts.updated, report.counts.unchanged), (0, 1, 1));
    assert_eq!(f.snapshot().await.accounts[0].attributes["tier"], "enterprise");
}

/// The files of one small world: accounts first, then the other kinds, with
/// the events split into three overlapping chunks.
fn files(dir: &std::path::Path) -> (std::path::PathBuf, Vec<(EntityKind, std::path::PathBuf)>) {
    let world = world(5, 8, 23);
    let accounts = export_kind(dir, &world, EntityKind::Accounts, Format::Csv);
    let mut rest = Vec::new();
    for kind in
        EntityKind::ALL.into_iter().filter(|k| !matches!(k, EntityKind::Accounts | EntityKind::Events))
    {
        let format = if kind == EntityKind::Contacts { Format::Jsonl } else { Format::Csv };
        rest.push((kind, export_kind(dir, &world, kind, format)));
    }
    let events = export_kind(dir, &world, EntityKind::Events, Format::Jsonl);
    let lines: Vec<String> = std::fs::read_to_string(&events).unwrap().lines().map(str::to_owned).collect();
    let third = lines.len() / 3;
    for (i, (lo, hi)) in
        [(0, 2 * third), (third, lines.len()), (third / 2, lines.len() - third / 2)].into_iter().enumerate()
    {
        let path = dir.join(format!("events_{i}.jsonl"));
        std::fs::write(&path, lines[lo..hi].join("\n")).unwrap();
        rest.push((EntityKind::Events, path));
    }
    (accounts, rest)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn any_order_of_repeated_imports_ends_in_the_same_store(
        order in Just((0..9usize).collect::<Vec<_>>()).prop_shuffle(),
        repeats in proptest::collection::vec(0..9usize, 0..8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let reference = fixture().await;
            let (accounts, rest) = files(reference.dir.path());
            reference.import(EntityKind::Accounts, &accounts).await;
            for (kind, path) in &rest {
                reference.import(*kind, path).await;
            }
            let expected = reference.snapshot().await;

            let f = fixture().await;
            let (accounts, rest) = files(f.dir.path());
            f.import(EntityKind::Accounts, &accounts).await;
            for i in order.iter().chain(repeats.iter()) {
                let (kind, path) = &rest[*i];
                let report = f.import(*kind, path).await;
                prop_assert_eq!(report.rejected, 0);
                if *i == 0 {
                    // Accounts may be re-imported at any point, too.
                    f.import(EntityKind::Accounts, &accounts).await;
                }
            }
            prop_assert_eq!(f.snapshot().await, expected);
            Ok(())
        })?;
    }
}
