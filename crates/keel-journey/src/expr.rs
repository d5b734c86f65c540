//! CEL expressions in a journey: the declared environment, compilation with
//! type checking, and positions mapped back into the file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use cel_core::{CelType, CheckErrorKind, CompileError, Env, FunctionDecl, OverloadDecl};

use crate::catalog::MetricType;

/// A checked CEL expression and where it was written.
#[derive(Debug, Clone)]
pub struct Expr {
    /// The expression text.
    pub source: String,
    /// The type-checked syntax tree.
    pub ast: Box<cel_core::Ast>,
}

/// Compilation problems: (byte range within the expression, message).
pub(crate) type ExprErrors = Vec<(Range<usize>, String)>;

/// What an expression may refer to.
pub(crate) struct Scope {
    env: Env,
}

fn cel_type(ty: MetricType) -> CelType {
    match ty {
        MetricType::Int => CelType::Int,
        MetricType::Double => CelType::Double,
        MetricType::Bool => CelType::Bool,
    }
}

/// CEL's standard library compares int with int and double with double only;
/// journey authors write `mrr >= 5000` and `ratio > 0`, so Keel declares the
/// mixed comparisons too (the evaluator compares numerically).
fn mixed_comparisons() -> Vec<FunctionDecl> {
    ["_<_", "_<=_", "_>_", "_>=_", "_==_", "_!=_"]
        .iter()
        .map(|op| {
            let id = op.trim_matches('_');
            FunctionDecl::new(*op)
                .with_overload(OverloadDecl::function(
                    format!("keel_{id}_double_int"),
                    vec![CelType::Double, CelType::Int],
                    CelType::Bool,
                ))
                .with_overload(OverloadDecl::function(
                    format!("keel_{id}_int_double"),
                    vec![CelType::Int, CelType::Double],
                    CelType::Bool,
                ))
        })
        .collect()
}

impl Scope {
    /// A scope with `account` (its attributes) and the given metrics.
    pub fn new(metrics: &BTreeMap<String, MetricType>) -> Self {
        let mut env = Env::with_standard_library()
            .with_variable("account", CelType::Map(Arc::new(CelType::String), Arc::new(CelType::Dyn)));
        for decl in mixed_comparisons() {
            env.add_function(decl);
        }
        for (name, ty) in metrics {
            env.add_variable(name.clone(), cel_type(*ty));
        }
        Self { env }
    }

    /// Compiles `source`. Errors come back as (byte range within `source`, message).
    pub fn compile(
        &self,
        source: &str,
        expect: Option<MetricType>,
        names: &[&str],
    ) -> Result<(Expr, Option<MetricType>), ExprErrors> {
        match self.env.compile(source) {
            Ok(ast) => {
                let ty = match ast.result_type() {
                    Some(CelType::Int) => Some(MetricType::Int),
                    Some(CelType::Double) => Some(MetricType::Double),
                    Some(CelType::Bool) => Some(MetricType::Bool),
                    _ => None,
                };
                if let Some(expected) = expect
                    && ty != Some(expected)
                    && !(ast.result_type() == Some(&CelType::Dyn))
                {
                    let found = ast.result_type().map_or("unknown".to_owned(), |t| t.to_string());
                    return Err(vec![(
                        0..source.len(),
                        format!("expected a {expected} expression, found {found}"),
                    )]);
                }
                Ok((Expr { source: source.to_owned(), ast: Box::new(ast) }, ty))
            }
            Err(CompileError::Parse(errors)) => Err(errors
                .into_iter()
                .map(|e| {
                    let message = e.message.replace("found None", "found the end of the expression");
                    (e.span.start..e.span.end, format!("syntax error: {message}"))
                })
                .collect()),
            Err(CompileError::Check(errors)) => Err(errors
                .into_iter()
                .map(|e| {
                    let message = match &e.kind {
                        CheckErrorKind::UndeclaredReference { name, .. } => match suggest(name, names) {
                            Some(s) => format!("unknown name `{name}` (did you mean `{s}`?)"),
                            None => format!("unknown name `{name}`"),
                        },
                        CheckErrorKind::NoMatchingOverload { function, arg_types } => {
                            let op = function.trim_matches('_');
                            let types: Vec<String> = arg_types.iter().map(ToString::to_string).collect();
                            format!("type mismatch: `{op}` cannot take ({})", types.join(", "))
                        }
                        _ => e.to_string(),
                    };
                    (e.span.start..e.span.end, message)
                })
                .collect()),
            Err(other) => Err(vec![(0..source.len(), other.to_string())]),
        }
    }
}

/// The closest known name, if one is close enough to be a typo.
pub(crate) fn suggest<'a>(name: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (strsim::levenshtein(name, n), *n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min()
        .map(|(_, n)| n)
}
