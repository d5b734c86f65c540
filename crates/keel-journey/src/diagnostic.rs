//! Diagnostics that name the place: `file:line:col: message`, the source
//! line, and a caret under the offending text.

use std::fmt;
use std::ops::Range;

/// One problem found in a journey file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The source line.
    pub excerpt: String,
    /// Width of the caret (characters), at least 1.
    pub width: usize,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)?;
        let gutter = self.line.to_string().len();
        writeln!(f, "{:gutter$} |", "")?;
        writeln!(f, "{} | {}", self.line, self.excerpt)?;
        write!(f, "{:gutter$} | {}{}", "", " ".repeat(self.column - 1), "^".repeat(self.width))
    }
}

/// Maps byte offsets of one source file to lines and columns.
pub(crate) struct SourceMap<'a> {
    file: &'a str,
    src: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub fn new(file: &'a str, src: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Self { file, src, line_starts }
    }

    pub fn src(&self) -> &'a str {
        self.src
    }

    /// The start of the character holding byte `at` (the end if past it).
    fn char_start(&self, at: usize) -> usize {
        let mut at = at.min(self.src.len());
        while !self.src.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    /// A diagnostic pointing at `span` (byte offsets into the file).
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        // Spans come from other parsers (CEL, templates) through escapes:
        // one may fall inside a character, which then is the one meant.
        let start = self.char_start(span.start);
        let line = self.line_starts.partition_point(|&s| s <= start).max(1);
        let line_start = self.line_starts[line - 1];
        let line_end = self.src[line_start..].find('\n').map_or(self.src.len(), |i| line_start + i);
        let excerpt = self.src[line_start..line_end].trim_end_matches('\r');
        let column = self.src[line_start..start].chars().count() + 1;
        let end = self.char_start(span.end).clamp(start, line_end);
        let width = self.src[start..end].chars().count().max(1);
        Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
            excerpt: excerpt.to_owned(),
            width,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `journey_check` fuzz target: a template error's span,
    /// shifted by escapes in the TOML string, ended inside an em dash and
    /// the checker panicked slicing there.
    #[test]
    fn a_span_that_starts_or_ends_inside_a_character_points_at_that_character() {
        let src = "title = \"a — b\"\nnext = 1\n";
        let map = SourceMap::new("journey.toml", src);
        let dash = src.find('—').unwrap();
        for span in [dash + 1..dash + 2, dash..dash + 1, dash + 2..dash + 9, dash + 1..dash + 1] {
            let d = map.at(span.clone(), "here");
            assert_eq!((d.line, d.column), (1, 12), "{span:?}");
            assert!(d.width >= 1, "{span:?}");
            assert!(d.to_string().contains("^"), "{d}");
        }
    }
}
