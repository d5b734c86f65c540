//! Issue 19, item 9: backups taken while the server writes, restored whole;
//! a person forgotten down to the bytes of the database file; an access
//! request answered; every admin action in an append-only log.

use std::path::Path;

use crate::{counts, keel, serve_with_ingest_key, stderr, stdout};

const EMAIL: &str = "annabel.quigley@acme-corp.test";
const NAME: &str = "Annabel Quigley";

/// Every file of the database (the file, its write-ahead log and index).
fn database_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", db.display())) {
            bytes.extend(b);
        }
    }
    bytes
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn import(db: &Path, kind: &str, csv: &str) {
    let file = db.parent().unwrap().join(format!("{kind}.csv"));
    std::fs::write(&file, csv).unwrap();
    let out = keel(db, &["import", kind, file.to_str().unwrap()]);
    assert!(out.status.success(), "{kind}: {}{}", stdout(&out), stderr(&out));
}

#[test]
fn a_forgotten_person_leaves_no_byte_of_their_email_or_name_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    import(&db, "accounts", "id,name,created_date\nacme,Acme,2025-01-01\n");
    import(
        &db,
        "contacts",
        &format!(
            "id,account_id,email,name,role,active_from,active_to\n\
             ann,acme,{EMAIL},{NAME},user,2025-01-01,2025-06-01\n\
             ann~2025-06-01,acme,{EMAIL},{NAME},champion,2025-06-01,\n\
             bob,acme,bob@acme-corp.test,Bob Stays,user,2025-01-01,\n"
        ),
    );
    import(
        &db,
        "events",
        &format!(
            "message_id,account_id,user_id,event,timestamp,properties\n\
             e1,acme,ann,report_viewed,2025-03-01T10:00:00Z,\"{{\"\"email\"\":\"\"{EMAIL}\"\"}}\"\n\
             e2,acme,ann,report_viewed,2025-03-02T10:00:00Z,\n\
             e3,acme,bob,report_viewed,2025-03-02T10:00:00Z,\n"
        ),
    );
    import(
        &db,
        "surveys",
        "id,account_id,contact_id,kind,score,comment,responded_at\n\
         s1,acme,ann,nps,3,My manager reads these; call me on my mobile,2025-03-05T10:00:00Z\n",
    );
    import(
        &db,
        "touchpoints",
        &format!(
            "id,account_id,kind,occurred_at,owner,notes\n\
             t1,acme,call,2025-03-06T10:00:00Z,csm@keel.test,Called {NAME} ({EMAIL}) about the renewal\n"
        ),
    );
    let before = database_bytes(&db);
    assert!(holds(&before, EMAIL) && holds(&before, NAME), "the test data is in the file to begin with");

    // An access request: everything held about her.
    let out = keel(&db, &["export", "contact", EMAIL]);
    assert!(out.status.success(), "{}", stderr(&out));
    let data: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(data["contacts"].as_array().unwrap().len(), 2, "{data}");
    assert_eq!(data["events"].as_array().unwrap().len(), 2, "{data}");
    assert_eq!(data["events"][0]["properties"]["email"], EMAIL, "{data}");
    assert_eq!(data["surveys"][0]["score"], 3, "{data}");
    assert_eq!(data["user_ids"], serde_json::json!(["ann"]));

    let out = keel(&db, &["forget", "contact", EMAIL, "--reference", "DSR-7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = database_bytes(&db);
    assert!(!holds(&after, EMAIL), "her email is gone from every byte of the database");
    assert!(!holds(&after, NAME), "her name is gone from every byte of the database");
    assert!(!holds(&after, "call me on my mobile"), "her survey comment is gone");
    assert!(holds(&after, "bob@acme-corp.test"), "other people stay");

    // The anonymous aggregates stay: her events count, her score counts.
    let c = counts(&db);
    let count =
        |kind: &str| c.as_array().unwrap().iter().find(|r| r[0] == kind).unwrap()[1].as_u64().unwrap();
    assert_eq!((count("contacts"), count("events"), count("surveys")), (1, 3, 1), "{c}");
    let out = keel(&db, &["export", "contact", EMAIL]);
    assert!(!out.status.success() && stderr(&out).contains("holds no contact"), "{}", stderr(&out));
    let out = keel(&db, &["export", "contact", "ann"]);
    assert!(!out.status.success(), "her user id is gone too: {}", stdout(&out));

    // The audit log keeps the request's reference, not who it was.
    let log = stdout(&keel(&db, &["audit"]));
    assert!(log.contains("person.forgotten") && log.contains("DSR-7"), "{log}");
    assert!(!holds(&database_bytes(&db), EMAIL));
}

#[test]
fn a_backup_taken_while_the_server_writes_restores_whole_and_restore_refuses_a_live_database() {
    use std::io::{Read as _, Write as _};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let (server, url, key) = serve_with_ingest_key(&db);
    let addr = url.trim_start_matches("http://").to_owned();
    // Batches keep arriving while the backup is taken.
    let writer = {
        let (addr, key) = (addr.clone(), key.clone());
        std::thread::spawn(move || {
            for b in 0..40 {
                let batch: Vec<String> = (0..50)
                    .map(|i| {
                        format!(
                            r#"{{"type":"track","messageId":"b{b}-{i}","userId":"u{i}","event":"report_viewed","context":{{"groupId":"acct-{}"}}}}"#,
                            i % 5
                        )
                    })
                    .collect();
                let body = format!(r#"{{"batch":[{}]}}"#, batch.join(","));
                let mut conn = std::net::TcpStream::connect(&addr).unwrap();
                write!(
                    conn,
                    "POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                let mut answer = String::new();
                conn.read_to_string(&mut answer).unwrap();
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            }
        })
    };
    let online = dir.path().join("online.db");
    let out = keel(&db, &["backup", online.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    writer.join().unwrap();

    // Restoring over the database the server has open is refused.
    let out = keel(&db, &["restore", online.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("in use"), "{}", stderr(&out));
    server.stop();

    // The online copy is whole: it restores, and holds a prefix of the events.
    let restored = dir.path().join("restored.db");
    let out = keel(&restored, &["restore", online.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = |db: &Path| counts(db)[3][1].as_u64().unwrap();
    assert!(
        events(&restored) <= 2_000 && events(&restored) % 50 == 0,
        "whole batches only: {}",
        events(&restored)
    );

    // A backup of the stopped database restores to the same contents.
    let full = dir.path().join("full.db");
    assert!(keel(&db, &["backup", full.to_str().unwrap()]).status.success());
    let out = keel(&db, &["backup", full.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("exists already"), "{}", stderr(&out));
    assert!(keel(&restored, &["restore", full.to_str().unwrap()]).status.success());
    assert_eq!(counts(&restored), counts(&db));
    assert_eq!(events(&restored), 2_000);
    let keys = |db: &Path| stdout(&keel(db, &["keys", "list"]));
    assert_eq!(keys(&restored), keys(&db), "keys come back too");

    // A file that is not a backup is refused, and the database is untouched.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, just some bytes long enough to look like one..").unwrap();
    let out = keel(&restored, &["restore", junk.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_eq!(events(&restored), 2_000);

    // Key creation was logged.
    let log = stdout(&keel(&db, &["audit"]));
    assert!(log.contains("key.created"), "{log}");
}
