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

    /// A diagnostic pointing at `span` (byte offsets into the file).
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let start = span.start.min(self.src.len());
        let line = self.line_starts.partition_point(|&s| s <= start).max(1);
        let line_start = self.line_starts[line - 1];
        let line_end = self.src[line_start..].find('\n').map_or(self.src.len(), |i| line_start + i);
        let excerpt = self.src[line_start..line_end].trim_end_matches('\r');
        let column = self.src[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
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
