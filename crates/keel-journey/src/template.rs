//! Step templates (minijinja syntax): checked when the journey loads, so a
//! typo in `{{ acount.name }}` is a diagnostic, not an empty email.

use std::ops::Range;

use minijinja::Environment;

use crate::catalog::TEMPLATE_VARIABLES;
use crate::expr::suggest;

/// Template problems: (byte range within the template, message).
pub(crate) type TemplateErrors = Vec<(Range<usize>, String)>;

/// Instructions a template may run when rendered: plenty for an email or a
/// task, and a bound on a loop inside a loop inside a loop.
pub const FUEL: u64 = 100_000;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.set_fuel(Some(FUEL));
    env
}

/// Checks syntax and that every variable is one a play run provides;
/// `metrics.<name>` must name a metric. Returns the metrics it reads.
pub(crate) fn check(source: &str, metrics: &[&str]) -> Result<Vec<String>, TemplateErrors> {
    let env = environment();
    let template = match env.template_from_str(source) {
        Ok(t) => t,
        Err(e) => {
            let range = e.range().unwrap_or(0..source.len());
            let detail = e.detail().unwrap_or("invalid template");
            return Err(vec![(range, format!("template syntax error: {detail}"))]);
        }
    };
    let top: Vec<&str> = TEMPLATE_VARIABLES.iter().map(|(n, _)| *n).collect();
    let mut used: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    used.sort();
    let mut errors = Vec::new();
    let mut reads = Vec::new();
    for path in used {
        let mut parts = path.split('.');
        let head = parts.next().unwrap_or_default();
        if !top.contains(&head) {
            let at = locate(source, head);
            let message = match suggest(head, &top) {
                Some(s) => format!("unknown template variable `{head}` (did you mean `{s}`?)"),
                None => format!("unknown template variable `{head}`; known: {}", top.join(", ")),
            };
            errors.push((at, message));
        } else if head == "metrics"
            && let Some(metric) = parts.next()
            && !metrics.contains(&metric)
        {
            let at = locate(source, &format!("metrics.{metric}"));
            let message = match suggest(metric, metrics) {
                Some(s) => format!("unknown metric `{metric}` (did you mean `{s}`?)"),
                None => format!("unknown metric `{metric}`"),
            };
            errors.push((at, message));
        } else if head == "metrics"
            && let Some(metric) = path.split('.').nth(1)
        {
            reads.push(metric.to_owned());
        }
    }
    reads.dedup();
    if errors.is_empty() { Ok(reads) } else { Err(errors) }
}

/// Where a variable path first appears (the whole template when not found verbatim).
fn locate(source: &str, path: &str) -> Range<usize> {
    source.find(path).map_or(0..source.len(), |i| i..i + path.len())
}

/// Renders a checked template against a context (any serializable value).
pub fn render(source: &str, context: &impl serde::Serialize) -> Result<String, String> {
    let env = environment();
    env.render_str(source, context).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_checked_against_the_variables_a_run_provides() {
        assert!(check("Hi {{ contact.name }}, about {{ account.name }}", &[]).is_ok());
        let errors = check("Hi {{ acount.name }}", &[]).unwrap_err();
        assert_eq!(errors[0].0, 6..12);
        assert!(errors[0].1.contains("did you mean `account`"), "{errors:?}");
        let errors = check("{{ metrics.mrrr }}", &["mrr"]).unwrap_err();
        assert!(errors[0].1.contains("unknown metric `mrrr` (did you mean `mrr`?)"), "{errors:?}");
        let errors = check("{% if x %}", &[]).unwrap_err();
        assert!(errors[0].1.starts_with("template syntax error"), "{errors:?}");
    }

    #[test]
    fn a_template_renders_its_context() {
        let ctx = serde_json::json!({"account": {"name": "Acme"}, "metrics": {"mrr": 1200.5}});
        let out = render("{{ account.name }} pays {{ metrics.mrr }}{{ account.nothing }}", &ctx).unwrap();
        assert_eq!(out, "Acme pays 1200.5");
    }
}
