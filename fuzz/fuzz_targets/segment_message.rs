//! A Segment message as a client sends it: JSON text, then Keel's checks
//! for every call type (a batch item, and each single-call endpoint).
#![no_main]

use keel_server::segment::{self, Envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let env = Envelope {
        received_at: keel_core::parse_timestamp("2026-03-01T12:00:00Z").unwrap(),
        account_property: Some("account_id".into()),
        ..Envelope::default()
    };
    for kind in
        [None, Some("track"), Some("page"), Some("screen"), Some("identify"), Some("group"), Some("alias")]
    {
        let _ = segment::parse(&value, kind, &env);
    }
});
