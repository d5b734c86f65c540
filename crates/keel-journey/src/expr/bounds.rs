//! Limits on one CEL expression, checked before the expression reaches the
//! CEL parser.
//!
//! The CEL parser, checker and evaluator recurse once per level of nesting
//! and once per operator of a left-leaning chain, with no limit of their
//! own: 512 nested `(` in a report's `?condition=` overflowed a request
//! thread's stack and aborted the whole server. This scan walks the text
//! once, without recursion, and refuses an expression that is longer,
//! deeper or has more operators than the limits below, naming the byte
//! where it first went over. The limits are far beyond any journey
//! condition a person writes (the default journey's deepest nesting is 3,
//! its longest expression has 9 operators) and far below what overflows a
//! 1 MiB stack (the test at the bottom proves the second part).

use std::ops::Range;

/// The longest expression, in bytes.
pub const MAX_BYTES: usize = 4096;
/// The deepest nesting: brackets, ternaries and runs of unary operators together.
pub const MAX_NESTING: usize = 32;
/// The most operators (binary, member access, ternary) in one expression.
pub const MAX_OPERATORS: usize = 256;

/// Checks `source` against the limits; the error names the byte range
/// where the expression first goes over one.
pub(crate) fn check(source: &str) -> Result<(), (Range<usize>, String)> {
    if source.len() > MAX_BYTES {
        return Err((
            MAX_BYTES..source.len(),
            format!("the expression is {} bytes long; the limit is {MAX_BYTES}", source.len()),
        ));
    }
    let bytes = source.as_bytes();
    // One entry per open bracket: the ternaries opened at that level.
    let mut levels: Vec<usize> = vec![0];
    let mut unary_run = 0usize;
    let mut operators = 0usize;
    let mut expect_operand = true;
    let mut i = 0;
    let nesting = |levels: &[usize], unary: usize| levels.len() - 1 + levels.iter().sum::<usize>() + unary;
    let too_deep =
        |at: usize| Err((at..at + 1, format!("the expression nests deeper than {MAX_NESTING} levels")));
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                let raw = i > 0 && matches!(bytes[i - 1], b'r' | b'R');
                i = skip_string(bytes, i, raw);
                unary_run = 0;
                expect_operand = false;
                continue;
            }
            b'(' | b'[' | b'{' => {
                levels.push(0);
                unary_run = 0;
                expect_operand = true;
                if nesting(&levels, 0) > MAX_NESTING {
                    return too_deep(i);
                }
            }
            b')' | b']' | b'}' => {
                if levels.len() > 1 {
                    levels.pop();
                }
                expect_operand = false;
            }
            b',' | b':' => expect_operand = true,
            b'?' => {
                operators += 1;
                if let Some(open) = levels.last_mut() {
                    *open += 1;
                }
                expect_operand = true;
                if nesting(&levels, 0) > MAX_NESTING {
                    return too_deep(i);
                }
            }
            b'!' | b'-' if expect_operand && bytes.get(i + 1) != Some(&b'=') => {
                unary_run += 1;
                if nesting(&levels, unary_run) > MAX_NESTING {
                    return too_deep(i);
                }
            }
            b'&' | b'|' | b'=' | b'!' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%' | b'.' => {
                // Two-character operators (`&&`, `<=`, …) count once.
                if matches!(bytes.get(i + 1), Some(b'&' | b'|' | b'='))
                    && matches!(b, b'&' | b'|' | b'=' | b'!' | b'<' | b'>')
                {
                    i += 1;
                }
                operators += 1;
                unary_run = 0;
                expect_operand = true;
            }
            b if b.is_ascii_digit() => {
                i = skip_number(bytes, i);
                unary_run = 0;
                expect_operand = false;
                continue;
            }
            _ => {
                // An identifier; a byte the parser will refuse (`#`, `$`) is
                // stepped over alone.
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                if i == start {
                    i += 1;
                }
                unary_run = 0;
                expect_operand = false;
                continue;
            }
        }
        if operators > MAX_OPERATORS {
            return Err((i..i + 1, format!("the expression has more than {MAX_OPERATORS} operators")));
        }
        i += 1;
    }
    Ok(())
}

/// The index just past the string literal opening at `start` (or the end of
/// the text when it is unterminated: the parser reports that).
fn skip_string(bytes: &[u8], start: usize, raw: bool) -> usize {
    let q = bytes[start];
    let triple = bytes.get(start..start + 3) == Some(&[q, q, q][..]);
    let mut i = start + if triple { 3 } else { 1 };
    while i < bytes.len() {
        if bytes[i] == b'\\' && !raw {
            i += 2;
            continue;
        }
        if triple {
            if bytes.get(i..i + 3) == Some(&[q, q, q][..]) {
                return i + 3;
            }
        } else if bytes[i] == q {
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The index just past the number literal starting at `start` (digits, a
/// fraction, an exponent, a `u` suffix, hex digits).
fn skip_number(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        let exponent_sign = matches!(b, b'+' | b'-') && i > start && matches!(bytes[i - 1], b'e' | b'E');
        let fraction = b == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        if b.is_ascii_alphanumeric() || exponent_sign || fraction {
            i += 1;
        } else {
            break;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{MAX_BYTES, MAX_NESTING, MAX_OPERATORS};
    use crate::catalog::MetricType;
    use crate::expr::Scope;

    /// Compiles and evaluates `source` on a thread with a 1 MiB stack (half
    /// of a Tokio worker's): an expression within the limits must neither
    /// overflow it nor be refused.
    fn runs_on_a_small_stack(source: String) {
        let shown = source.chars().take(40).collect::<String>();
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let scope = Scope::new(&BTreeMap::new());
                let (expr, _) = scope
                    .compile(&source, None, &[])
                    .unwrap_or_else(|e| panic!("refused within the limits: {e:?}"));
                expr.eval(&cel_core::EmptyActivation);
            })
            .expect("a thread starts")
            .join()
            .unwrap_or_else(|_| panic!("{shown}… did not compile and run"));
    }

    /// The error `source` gets: its byte range and message.
    fn refused(source: &str) -> (std::ops::Range<usize>, String) {
        let scope = Scope::new(&BTreeMap::from([("x".to_owned(), MetricType::Int)]));
        let errors = scope.compile(source, Some(MetricType::Bool), &["x"]).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().expect("one error")
    }

    fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn expressions_at_the_limits_compile_and_run_on_a_small_stack() {
        runs_on_a_small_stack(nested("(", "true", ")", MAX_NESTING));
        runs_on_a_small_stack(nested("[", "1", "]", MAX_NESTING));
        runs_on_a_small_stack(nested("{1: ", "1", "}", MAX_NESTING));
        runs_on_a_small_stack(format!("{}true", "!".repeat(MAX_NESTING)));
        runs_on_a_small_stack(format!("{}1 == 1", "-".repeat(MAX_NESTING - 1) + "-"));
        runs_on_a_small_stack(format!("{}1", "true ? 1 : ".repeat(MAX_NESTING)));
        runs_on_a_small_stack(vec!["1"; MAX_OPERATORS + 1].join(" + "));
        runs_on_a_small_stack(nested(
            "(",
            &vec!["1"; MAX_OPERATORS - MAX_NESTING + 1].join(" + "),
            ") == 1",
            MAX_NESTING,
        ));
        runs_on_a_small_stack(vec!["true"; MAX_OPERATORS + 1].join(" && "));
        runs_on_a_small_stack(format!("size('{}') > 0", "x".repeat(MAX_BYTES - 14)));
    }

    #[test]
    fn deep_or_long_expressions_are_refused_where_they_go_over() {
        let (at, message) = refused(&nested("(", "true", ")", 512));
        assert_eq!(
            (at, message.as_str()),
            (MAX_NESTING..MAX_NESTING + 1, "the expression nests deeper than 32 levels")
        );
        assert_eq!(refused(&nested("[", "1", "]", 512)).0, MAX_NESTING..MAX_NESTING + 1);
        assert_eq!(
            refused(&format!("x > 1 && {}true", "!".repeat(1000))).0,
            9 + MAX_NESTING..10 + MAX_NESTING
        );
        assert_eq!(refused(&format!("{}1 > 0", "-".repeat(1000))).0, MAX_NESTING..MAX_NESTING + 1);
        let ternaries = format!("{}true", "true ? true : ".repeat(100));
        assert_eq!(refused(&ternaries).1, "the expression nests deeper than 32 levels");
        let (at, message) = refused(&vec!["x"; 1000].join("+"));
        assert_eq!(message, "the expression has more than 256 operators");
        assert_eq!(at.start, 2 * MAX_OPERATORS + 1, "the 257th `+`");
        let (at, message) = refused(&format!("x == {}", "1".repeat(MAX_BYTES)));
        assert_eq!(
            (at.start, message),
            (MAX_BYTES, format!("the expression is {} bytes long; the limit is 4096", MAX_BYTES + 5))
        );
    }

    #[test]
    fn brackets_and_operators_inside_strings_and_comments_do_not_count() {
        let scope = Scope::new(&BTreeMap::new());
        for source in [
            format!("'{}' != ''", "(".repeat(1000)),
            format!("\"\"\"{}\"\"\" != ''", "+".repeat(1000)),
            format!("r'\\{}' != ''", "[".repeat(1000)),
            format!("// {}\ntrue", "(".repeat(1000)),
            "1.5e-3 < 2.0 && -1 < 0 && !false && [1, 2][0] == 1".to_owned(),
        ] {
            scope.compile(&source, None, &[]).unwrap_or_else(|e| panic!("{source}: {e:?}"));
        }
    }
}
