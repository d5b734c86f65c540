//! A file as `keel import` reads it: the first byte picks the record kind
//! and the format (CSV or JSON lines), the rest is the file.
#![no_main]

use keel_core::{EntityKind, ExternalId};
use keel_import::{Format, ImportOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_first() else { return };
    let kind = EntityKind::ALL[usize::from(pick) % EntityKind::ALL.len()];
    let format = if pick & 0x80 == 0 { Format::Csv } else { Format::Jsonl };
    let now = keel_core::parse_timestamp("2026-03-01T12:00:00Z").unwrap();
    let options = ImportOptions::new(kind, now);
    let known = [ExternalId::parse("acme").unwrap(), ExternalId::parse("initech").unwrap()];
    let _ = keel_import::check_rows(file, format, b',', &options, &known);
});
