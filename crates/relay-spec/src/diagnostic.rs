//! Positions in a workflow file and findings about it: what every other module reports
//! with. A leaf: it depends on nothing else in the crate.

use std::fmt;

use serde_saphyr::Location;

/// A position in a workflow file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl Pos {
    pub(crate) fn from_location(l: &Location) -> Option<Pos> {
        (l.line() > 0).then(|| Pos {
            line: l.line(),
            column: l.column().max(1),
        })
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The workflow cannot run.
    Error,
    /// The workflow runs, but something in it has no effect or looks wrong.
    Warning,
}

/// One finding, with the position it is about when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the file.
    pub pos: Option<Pos>,
    /// What is wrong, naming the thing.
    pub message: String,
}

impl Diagnostic {
    /// An error at `pos`.
    pub fn error(pos: Option<Pos>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            pos,
            message: message.into(),
        }
    }

    /// A warning at `pos`.
    pub fn warning(pos: Option<Pos>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            pos,
            message: message.into(),
        }
    }

    /// `origin:line:col: error: message`.
    pub fn render(&self, origin: &str) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let message = printable(&self.message);
        match self.pos {
            Some(p) => format!("{origin}:{}:{}: {sev}: {message}", p.line, p.column),
            None => format!("{origin}: {sev}: {message}"),
        }
    }
}

/// `text` with every control character but a line break and a tab written as an
/// escape (`\u{1b}`), so a name quoted in a message, or text an agent sent, cannot
/// drive the terminal it is printed on.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let drives = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(drives) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if drives(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Everything validation found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Findings in file order (errors and warnings).
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    pub(crate) fn sort(&mut self) {
        self.diagnostics
            .sort_by_key(|d| (d.pos.unwrap_or(Pos { line: 0, column: 0 }), d.severity));
    }
}

/// Marks the position a custom deserialisation error is about, for errors raised after
/// the parser has moved past the offending node (the step past the limit, a key only
/// known to be wrong once the whole mapping is read). `syntax_error` reads it back.
pub(crate) fn located(pos: Pos, message: impl fmt::Display) -> String {
    format!("{MARK}{}:{}{MARK}{message}", pos.line, pos.column)
}

// Printable, because the parser escapes control characters in messages.
const MARK: &str = "@@relay-at@@";

/// The position and message of a [`located`] error message.
pub(crate) fn unlocate(message: &str) -> Option<(Pos, String)> {
    let start = message.find(MARK)?;
    let rest = &message[start + MARK.len()..];
    let end = rest.find(MARK)?;
    let (line, column) = rest[..end].split_once(':')?;
    let pos = Pos {
        line: line.parse().ok()?,
        column: column.parse().ok()?,
    };
    let text = strip_position_suffix(&rest[end + MARK.len()..]);
    Some((pos, text))
}

/// saphyr appends " at line L, column C" to plain messages; we print the position first.
pub(crate) fn strip_position_suffix(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains("column") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_a_message_are_escaped_when_rendered() {
        let d = Diagnostic::error(None, "step `a\u{1b}[31m` uses unknown agent `x\u{7}`");
        let shown = d.render("f.yaml");
        assert_eq!(
            shown,
            "f.yaml: error: step `a\\u{1b}[31m` uses unknown agent `x\\u{7}`"
        );
        assert!(!shown.chars().any(char::is_control));
        // Plain messages, line breaks and tabs are left as they are.
        let d = Diagnostic::warning(None, "two\nlines\tand a tab");
        assert_eq!(d.render("f"), "f: warning: two\nlines\tand a tab");
        assert_eq!(printable("a\r\u{8}\u{9b}b"), "a\\r\\u{8}\\u{9b}b");
    }
}
