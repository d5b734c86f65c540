//! A journey file as `keel journey check` and `POST /api/v1/journey/validate`
//! take it: TOML, then every expression, template and reference checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    if let Err(diagnostics) = keel_journey::check("journey.toml", source) {
        // Each diagnostic renders (names its place) without panicking.
        for d in diagnostics {
            let _ = d.to_string();
        }
    }
});
