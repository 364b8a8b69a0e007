//! What gets typed into a TUI and how: the task (or a pointer to a file holding a long
//! one), nudges, bracketed paste, and the separate Enter key.
//!
//! Enter is always its own write after a pause: codex and gemini take text and `\r` that
//! arrive in one burst as a paste, turn the `\r` into a newline in the composer, and never
//! submit.

use std::path::{Path, PathBuf};

/// Tasks longer than this many bytes are put in a file and pointed to instead of typed:
/// long pastes get collapsed, truncated or split by some TUIs.
pub const LONG_TASK_BYTES: usize = 4000;

/// The line typed into an idle agent.
pub const NUDGE_TEXT: &str = "You seem idle. If your task is done, print /exit on its own line.";

/// The Enter key.
pub const ENTER: &[u8] = b"\r";

/// The bytes that type `text`: cleaned by [`super::sanitize`] (the one gate for text
/// on its way into a terminal), wrapped in bracketed-paste markers when the app enabled
/// them, so newlines in the text do not submit early.
pub fn paste_bytes(text: &str, bracketed: bool) -> Vec<u8> {
    super::sanitize::keystrokes(text, bracketed)
}

/// Where a long task is written: beside the transcript, named after it.
pub fn task_file_path(transcript: &Path) -> PathBuf {
    let stem = transcript
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "session".to_owned());
    transcript.with_file_name(format!("{stem}.task.md"))
}

/// The short line typed in place of a long task.
pub fn pointer_line(task_file: &Path) -> String {
    format!(
        "Your task is in the file {}. Read it and do it.",
        task_file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_paste_wraps_and_cannot_be_closed_early() {
        assert_eq!(paste_bytes("a\nb", true), b"\x1b[200~a\nb\x1b[201~");
        assert_eq!(paste_bytes("a\x1b[201~b", true), b"\x1b[200~ab\x1b[201~");
        assert_eq!(paste_bytes("plain", false), b"plain");
        // Markers nested so that removing one leaves the other: nothing is left.
        assert_eq!(
            paste_bytes("a\x1b[20\x1b[201~1~b", true),
            b"\x1b[200~a1~b\x1b[201~"
        );
    }

    #[test]
    fn the_task_file_sits_beside_the_transcript() {
        assert_eq!(
            task_file_path(Path::new("/runs/r1/step.log")),
            Path::new("/runs/r1/step.task.md")
        );
        assert!(pointer_line(Path::new("/x/t.md")).contains("/x/t.md"));
    }

    #[test]
    fn the_nudge_is_one_line() {
        assert!(!NUDGE_TEXT.contains('\n'));
    }
}
