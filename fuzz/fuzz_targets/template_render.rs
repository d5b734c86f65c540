//! A play step's template (an email body, a task title): rendered against
//! a play run's context, bounded by the template fuel.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let context = serde_json::json!({
        "account": {"id": "acme", "name": "Acme", "owner": "csm@keel.test", "attributes": {"plan": "pro"}},
        "metrics": {"active_users_28d": 12, "active_seat_ratio": 0.4},
        "moment": {"id": "usage_cliff", "started": "2026-02-01"},
        "play": {"id": "rescue"},
        "contact": {"name": "Ann", "email": "ann@acme.test"},
    });
    let _ = keel_journey::template::render(source, &context);
});
