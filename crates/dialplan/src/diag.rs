//! Diagnostics: `file:line:col: severity: message`.
//!
//! Every problem found while loading a dialplan is reported in the format that
//! compilers use, so that editors and CI logs can jump straight to the
//! offending key. Line and column are 1-based and count Unicode characters.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a [`Diagnostic`] is.
///
/// Errors make a dialplan unusable (the loader refuses it and hot reload keeps
/// the previous version); warnings point at likely mistakes (an unreachable
/// node) that do not endanger callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The dialplan is rejected.
    Error,
    /// The dialplan is accepted, but something looks wrong.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem in one file, with the exact place it was found.
///
/// `Display` renders `dialplans/main.toml:12:5: error: message`, the format
/// `ringback check` prints and operators paste into tickets. A `line` of 0
/// means "the whole file" (e.g. it could not be read) and renders without the
/// position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// The file the problem is in (as given to the loader, not canonicalised,
    /// so messages match what the operator typed).
    pub file: PathBuf,
    /// 1-based line, or 0 for a problem with the whole file.
    pub line: usize,
    /// 1-based column in characters, or 0 together with `line == 0`.
    pub col: usize,
    /// What is wrong and what is allowed instead.
    pub message: String,
    /// Whether the problem rejects the dialplan.
    pub severity: Severity,
}

impl Diagnostic {
    /// An error that concerns a whole file (unreadable, empty directory…).
    pub fn file_error(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: 0,
            col: 0,
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// True for [`Severity::Error`]; saves callers a `matches!`.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.severity,
                self.message
            )
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file.display(),
                self.line,
                self.col,
                self.severity,
                self.message
            )
        }
    }
}

/// Sorts diagnostics by file, position, then severity, so that output is
/// stable and reads top to bottom like the files themselves.
pub fn sort_diagnostics(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.col, a.severity, &a.message)
            .cmp(&(&b.file, b.line, b.col, b.severity, &b.message))
    });
}

/// Collects diagnostics for one source text and turns byte spans (what the
/// TOML parser gives) into line/column positions (what humans need).
pub(crate) struct Sink<'s> {
    file: PathBuf,
    src: &'s str,
    line_starts: Vec<usize>,
    pub(crate) diags: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(file: &Path, src: &'s str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Sink {
            file: file.to_path_buf(),
            src,
            line_starts,
            diags: Vec::new(),
        }
    }

    /// 1-based (line, column) of a byte offset; out-of-range offsets are
    /// clamped so a bad span can never panic.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self.src[start..offset].chars().count() + 1;
        (line + 1, col)
    }

    pub(crate) fn push(&mut self, span: &Range<usize>, severity: Severity, message: String) {
        let (line, col) = self.position(span.start);
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line,
            col,
            message,
            severity,
        });
    }

    pub(crate) fn error(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Error, message.into());
    }

    pub(crate) fn warning(&mut self, span: &Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Warning, message.into());
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    pub(crate) fn src(&self) -> &'s str {
        self.src
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_chars() {
        let s = Sink::new(Path::new("x.toml"), "ab\n\u{e9}cd\n\nz");
        assert_eq!(s.position(0), (1, 1));
        assert_eq!(s.position(1), (1, 2));
        assert_eq!(s.position(3), (2, 1));
        // 'é' is two bytes: 'c' is byte 5 but column 2.
        assert_eq!(s.position(5), (2, 2));
        assert_eq!(s.position(8), (3, 1));
        assert_eq!(s.position(9), (4, 1));
        // clamped, and a mid-character offset does not panic
        assert_eq!(s.position(4), (2, 1));
        assert_eq!(s.position(999), (4, 2));
    }

    #[test]
    fn display_matches_compiler_format() {
        let d = Diagnostic {
            file: "dialplans/main.toml".into(),
            line: 12,
            col: 5,
            message: "unknown node `mian`".into(),
            severity: Severity::Error,
        };
        assert_eq!(
            d.to_string(),
            "dialplans/main.toml:12:5: error: unknown node `mian`"
        );
        let f = Diagnostic::file_error("dialplans/x.toml", "cannot read file");
        assert_eq!(f.to_string(), "dialplans/x.toml: error: cannot read file");
    }
}
