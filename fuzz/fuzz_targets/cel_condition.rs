//! A CEL condition as a report parameter or a journey expression carries
//! it: compiled against the default journey's metrics, and, when it
//! compiles, evaluated with every metric bound.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn journey() -> &'static keel_journey::Journey {
    static JOURNEY: OnceLock<keel_journey::Journey> = OnceLock::new();
    JOURNEY.get_or_init(|| {
        keel_journey::check("journey.toml", keel_journey::DEFAULT_JOURNEY)
            .expect("the default journey checks")
    })
}

fn vars() -> cel_core::MapActivation {
    let mut vars = cel_core::MapActivation::new();
    for (i, (name, ty)) in journey().metric_types.iter().enumerate() {
        let value: cel_core::Value = match ty {
            keel_journey::MetricType::Bool => (i % 2 == 0).into(),
            keel_journey::MetricType::Int => (i as i64 * 7 - 20).into(),
            keel_journey::MetricType::Double => (i as f64 * 0.37 - 1.0).into(),
        };
        vars.insert(name.clone(), value);
    }
    vars
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    if let Ok(expr) = keel_journey::compile_condition(journey(), source) {
        let _ = expr.eval(&vars());
    }
});
