//! `journey.toml`: the post-sale journey as code.
//!
//! [`check`] parses a journey file, type-checks every CEL expression against
//! the metrics Keel declares, resolves every reference, and returns either a
//! [`Journey`] or every [`Diagnostic`] it found, each naming file, line and
//! column. [`DEFAULT_JOURNEY`] is the journey `keel init` and `keel demo`
//! install. No I/O happens here.

pub mod catalog;
mod check;
mod diagnostic;
mod expr;
mod model;
mod schema;
pub mod template;

pub use catalog::{BuiltinMetric, MetricType};
pub use check::check;
pub use diagnostic::Diagnostic;
pub use expr::Expr;
pub use model::*;

/// The default journey, drawn from the post-sale journey articles Keel was
/// conceived from (see docs/journey.md).
pub const DEFAULT_JOURNEY: &str = include_str!("default_journey.toml");

/// Compiles a boolean CEL condition over the journey's metrics (as reports
/// take them from the command line). The error names the column (1-based)
/// where the problem starts.
pub fn compile_condition(journey: &Journey, source: &str) -> Result<Expr, String> {
    let scope = expr::Scope::new(&journey.metric_types);
    let names: Vec<&str> = journey.metric_types.keys().map(String::as_str).collect();
    match scope.compile(source, Some(MetricType::Bool), &names) {
        Ok((expr, _)) => Ok(expr),
        Err(errors) => Err(errors
            .iter()
            .map(|(range, message)| format!("column {}: {message}", range.start + 1))
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_journey_checks_clean_and_fills_the_map() {
        let journey = match check("journey.toml", DEFAULT_JOURNEY) {
            Ok(j) => j,
            Err(diagnostics) => {
                panic!("{}", diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
            }
        };
        let stages: Vec<&str> = journey.stages.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            stages,
            ["onboarding", "adoption", "value_realization", "expansion", "renewal", "advocacy"]
        );
        for row in catalog::MAP_ROWS {
            let mut months: Vec<u8> = journey
                .map
                .cells
                .iter()
                .filter(|c| c.row == *row)
                .flat_map(|c| c.months.0..=c.months.1)
                .collect();
            months.sort_unstable();
            assert_eq!(months, (1..=12).collect::<Vec<u8>>(), "row {row} covers every month");
        }
        for pattern in [
            "no_internal_kickoff",
            "first_value_undefined",
            "no_alignment_meeting",
            "insights_never_shared",
            "renewal_without_value_evidence",
        ] {
            assert!(journey.moments.iter().any(|m| m.id == pattern), "failure pattern {pattern} is a moment");
        }
        assert_eq!(journey.metric_types.get("reports_per_active_user"), Some(&MetricType::Double));
    }

    #[test]
    fn a_condition_compiles_against_the_journeys_metrics_or_names_its_column() {
        let journey = crate::check("journey.toml", crate::DEFAULT_JOURNEY).unwrap();
        let ok = crate::compile_condition(&journey, "first_value_reached && mrr > 100.0").unwrap();
        assert_eq!(ok.reads, ["first_value_reached", "mrr"]);
        let err = crate::compile_condition(&journey, "mrr > 1.0 && no_such_metric").unwrap_err();
        assert!(err.contains("column") && err.contains("no_such_metric"), "{err}");
        assert!(crate::compile_condition(&journey, "mrr").unwrap_err().contains("expected a bool"));
    }
}
