//! Why a workflow (or steps) file could not be read: the error type, bounded reading,
//! and turning a parser error into a message with a position, a snippet and, for a
//! misspelt name, the closest known one.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Pos, strip_position_suffix, unlocate};
use serde_saphyr::budget::BudgetBreach;

use crate::limits::{MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, yaml_options};
use crate::suggest::unknown_name_message;

/// Why a workflow file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The text is not a valid workflow.
    #[error("{origin}:{}:{}: {message}", pos.line, pos.column)]
    Syntax {
        /// File name (or `<input>`).
        origin: String,
        /// Where.
        pos: Pos,
        /// What went wrong and what was expected.
        message: String,
        /// The offending source line with a caret under the column.
        snippet: String,
    },
}

impl LoadError {
    /// The offending source line and caret, when there is one.
    pub fn snippet(&self) -> Option<&str> {
        match self {
            LoadError::Syntax { snippet, .. } if !snippet.is_empty() => Some(snippet),
            _ => None,
        }
    }
}

/// The text of the file at `path`. Reads at most
/// [`MAX_FILE_BYTES`](crate::limits::MAX_FILE_BYTES) (one more shows the file is too large),
/// so a huge or endless file (a device, a pipe) cannot exhaust memory.
pub(crate) fn read_bounded(path: &Path) -> Result<String, LoadError> {
    let io_err = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_large(&path.display().to_string()));
    }
    String::from_utf8(bytes).map_err(|e| {
        io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()),
        ))
    })
}

pub(crate) fn too_large(origin: &str) -> LoadError {
    LoadError::Syntax {
        origin: origin.to_string(),
        pos: Pos { line: 1, column: 1 },
        message: format!(
            "the file is larger than {} MiB, the most a workflow file may be",
            MAX_FILE_BYTES / (1024 * 1024)
        ),
        snippet: String::new(),
    }
}

pub(crate) fn syntax_error(e: &serde_saphyr::Error, source: &str, origin: &str) -> LoadError {
    let mut pos = e
        .location()
        .as_ref()
        .and_then(Pos::from_location)
        .unwrap_or(Pos { line: 1, column: 1 });
    let message = match e.without_snippet() {
        other if budget_breach(other).is_some() => {
            budget_breach(other).map(budget_message).unwrap_or_default()
        }
        serde_saphyr::Error::SerdeUnknownField {
            field, expected, ..
        } => unknown_name_message("field", field, expected),
        serde_saphyr::Error::SerdeUnknownVariant {
            variant, expected, ..
        } => unknown_name_message("value", variant, expected),
        other => {
            let text = other.to_string();
            match unlocate(&text) {
                Some((at, text)) => {
                    pos = at;
                    text
                }
                None => strip_position_suffix(&text),
            }
        }
    };
    LoadError::Syntax {
        origin: origin.to_string(),
        pos,
        message,
        snippet: snippet_at(source, pos),
    }
}

/// The parser's budget breach behind `e`, however many alias and snippet wrappers it is
/// behind.
fn budget_breach(mut e: &serde_saphyr::Error) -> Option<&BudgetBreach> {
    loop {
        match e {
            serde_saphyr::Error::AliasError { error, .. }
            | serde_saphyr::Error::WithSnippet { error, .. } => e = error,
            serde_saphyr::Error::Budget { breach, .. } => return Some(breach),
            _ => return None,
        }
    }
}

/// `n` with a comma between each three digits: `1,000,000`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a breach of the parser's budget means, with the limit crossed.
fn budget_message(breach: &BudgetBreach) -> String {
    let budget = yaml_options().budget.unwrap_or_default();
    const TAIL: &str = "the file expands to more than this tool reads";
    match breach {
        BudgetBreach::RecordedAnchorEvents { .. } => format!(
            "too many alias expansions (more than {}): {TAIL}",
            grouped(budget.max_recorded_anchor_events)
        ),
        BudgetBreach::RecordedAnchorBytes { .. } => format!(
            "aliases repeat too much text (more than {} MiB): {TAIL}",
            budget.max_recorded_anchor_bytes / (1024 * 1024)
        ),
        BudgetBreach::Aliases { .. } | BudgetBreach::AliasAnchorRatio { .. } => format!(
            "too many aliases (more than {}, or too many for its anchors): {TAIL}",
            grouped(budget.max_aliases)
        ),
        BudgetBreach::Anchors { .. } => format!(
            "too many anchors (more than {}): {TAIL}",
            grouped(budget.max_anchors)
        ),
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => format!(
            "too many YAML values (more than {}, aliases expanded): {TAIL}",
            grouped(MAX_NODES)
        ),
        BudgetBreach::ScalarBytes { .. } => format!(
            "too much text (more than {} MiB, aliases expanded): {TAIL}",
            budget.max_total_scalar_bytes / (1024 * 1024)
        ),
        BudgetBreach::Depth { .. } => {
            format!("collections nest deeper than {MAX_DEPTH} levels: {TAIL}")
        }
        BudgetBreach::Documents { .. } => format!(
            "too many YAML documents (more than {}): a workflow file is one document",
            grouped(budget.max_documents)
        ),
        BudgetBreach::MergeKeys { .. } => format!(
            "too many merge keys `<<` (more than {}): {TAIL}",
            grouped(budget.max_merge_keys)
        ),
        BudgetBreach::SequenceUnbalanced => {
            "the YAML is unbalanced (a collection closed that was never opened)".to_string()
        }
        _ => format!("the file crosses a limit of the YAML reader: {TAIL}"),
    }
}

/// The source line at `pos` with a caret under its column.
pub fn snippet_at(source: &str, pos: Pos) -> String {
    let Some(line) = source.lines().nth((pos.line as usize).saturating_sub(1)) else {
        return String::new();
    };
    let num = pos.line.to_string();
    let pad = " ".repeat(num.len());
    let caret_col = (pos.column as usize)
        .saturating_sub(1)
        .min(line.chars().count());
    let lead: String = line
        .chars()
        .take(caret_col)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("{pad} |\n{num} | {line}\n{pad} | {lead}^")
}
