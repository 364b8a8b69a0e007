//! Why a workflow (or steps) file could not be read: the error type, bounded reading,
//! and turning a parser error into a message with a position, a snippet and, for a
//! misspelt name, the closest known one.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Pos, strip_position_suffix, unlocate};
use crate::limits::MAX_FILE_BYTES;
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
