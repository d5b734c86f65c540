//! CEL expressions in a journey: the declared environment, compilation with
//! type checking, and positions mapped back into the file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use cel_core::{CelType, CheckErrorKind, CompileError, Env, FunctionDecl, OverloadDecl};

use crate::catalog::MetricType;

pub mod bounds;

/// A checked CEL expression, ready to evaluate.
#[derive(Clone)]
pub struct Expr {
    /// The expression text.
    pub source: String,
    /// The metrics (and `account`) it reads, sorted.
    pub reads: Vec<String>,
    /// For a condition `a && b && …`: each top-level conjunct, checked on
    /// its own (empty when the expression is not a conjunction).
    pub conjuncts: Vec<Expr>,
    program: Arc<cel_core::Program>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expr")
            .field("source", &self.source)
            .field("reads", &self.reads)
            .finish_non_exhaustive()
    }
}

impl Expr {
    /// Evaluates against variable bindings.
    pub fn eval(&self, vars: &dyn cel_core::Activation) -> cel_core::Value {
        self.program.eval(vars)
    }
}

/// The identifiers an expression mentions that are declared names
/// (an over-approximation is harmless: it only computes a metric more).
fn reads(source: &str, declared: &BTreeMap<String, MetricType>, extra: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = source
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w == &"account" || declared.contains_key(*w) || extra.contains(w))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Splits `a && b && c` at top-level `&&` (outside parentheses, brackets and
/// string literals). Returns the pieces with their byte offsets.
pub(crate) fn split_conjuncts(source: &str) -> Vec<&str> {
    let bytes = source.as_bytes();
    let (mut depth, mut quote, mut start) = (0i32, None::<u8>, 0);
    let mut parts = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                b'|' | b'?' if depth == 0 => return vec![source],
                b'&' if depth == 0 && bytes.get(i + 1) == Some(&b'&') => {
                    parts.push(source[start..i].trim());
                    start = i + 2;
                    i += 1;
                }
                _ => {}
            },
        }
        i += 1;
    }
    parts.push(source[start..].trim());
    if parts.len() < 2 { vec![source] } else { parts }
}

/// Compilation problems: (byte range within the expression, message).
pub(crate) type ExprErrors = Vec<(Range<usize>, String)>;

/// What an expression may refer to.
pub(crate) struct Scope {
    env: Env,
    declared: BTreeMap<String, MetricType>,
    extra: Vec<&'static str>,
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
        Self { env, declared: metrics.clone(), extra: Vec::new() }
    }

    /// The scope of play conditions and governance rules: the metrics plus
    /// [`crate::catalog::PLAY_VARIABLES`].
    pub fn for_plays(metrics: &BTreeMap<String, MetricType>) -> Self {
        let mut scope = Self::new(metrics);
        for v in crate::catalog::PLAY_VARIABLES {
            let ty = match v.ty {
                Some(ty) => cel_type(ty),
                None => CelType::String,
            };
            scope.env.add_variable(v.name, ty);
            scope.extra.push(v.name);
        }
        scope
    }

    /// Compiles `source`. Errors come back as (byte range within `source`, message).
    pub fn compile(
        &self,
        source: &str,
        expect: Option<MetricType>,
        names: &[&str],
    ) -> Result<(Expr, Option<MetricType>), ExprErrors> {
        // Before the recursive CEL parser sees it: see `bounds`.
        bounds::check(source).map_err(|e| vec![e])?;
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
                let program = self.env.program(&ast).map_err(|e| vec![(0..source.len(), e.to_string())])?;
                let mut conjuncts = Vec::new();
                if ty == Some(MetricType::Bool) {
                    let parts = split_conjuncts(source);
                    if parts.len() > 1 {
                        for part in parts {
                            match self.compile(part, Some(MetricType::Bool), names) {
                                Ok((expr, _)) => conjuncts.push(expr),
                                Err(_) => {
                                    conjuncts.clear();
                                    break;
                                }
                            }
                        }
                    }
                }
                let expr = Expr {
                    source: source.to_owned(),
                    reads: reads(source, &self.declared, &self.extra),
                    conjuncts,
                    program: Arc::new(program),
                };
                Ok((expr, ty))
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

#[cfg(test)]
mod tests {
    use super::split_conjuncts;

    #[test]
    fn conjuncts_split_only_at_top_level() {
        assert_eq!(split_conjuncts("a >= 3 && b < 2 && c"), vec!["a >= 3", "b < 2", "c"]);
        assert_eq!(split_conjuncts("(a && b) && c"), vec!["(a && b)", "c"]);
        assert_eq!(split_conjuncts("s == 'x && y' && c"), vec!["s == 'x && y'", "c"]);
        assert_eq!(split_conjuncts("a && b || c"), vec!["a && b || c"], "a disjunction is one condition");
        assert_eq!(split_conjuncts("a"), vec!["a"]);
    }
}
