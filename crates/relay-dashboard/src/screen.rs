//! An agent's terminal as the agent page shows it: its transcript (`attempt-N.pty`, every
//! byte the agent wrote) fed into the broker's screen model, read on from where the last
//! look stopped so a live agent costs only its new bytes; and what a live page is sent
//! of it: the visible rows when they changed and the history rows it has not had yet.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use relay_broker::session::screen::Screen;
use serde::Serialize;

/// Rows of scrolled-off history the page keeps for the transcript view.
pub const HISTORY_ROWS: usize = 5_000;

/// Most bytes read from a transcript in one look (the rest waits for the next).
const READ_CHUNK: u64 = 4 * 1024 * 1024;

/// What the page draws.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScreenView {
    /// The attempt whose terminal this is.
    pub attempt: u32,
    /// The visible rows, trailing spaces removed.
    pub rows: Vec<String>,
    /// The cursor: (row, column), 0-based.
    pub cursor: (u16, u16),
    /// Rows that scrolled off, oldest first (the transcript as text).
    pub history: Vec<String>,
}

/// What changed on a terminal since a page was last sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScreenPatch {
    /// The attempt whose terminal this is.
    pub attempt: u32,
    /// The visible rows, trailing spaces removed.
    pub rows: Vec<String>,
    /// The cursor: (row, column), 0-based.
    pub cursor: (u16, u16),
    /// Absolute number of the oldest history row still kept (older ones are dropped).
    pub history_first: u64,
    /// Absolute number of the first row of `history`.
    pub history_from: u64,
    /// History rows the page was not sent yet, oldest first.
    pub history: Vec<String>,
}

/// What a page was last sent of a terminal.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    attempt: Option<u32>,
    /// Absolute number of the row after the last history row sent.
    top: u64,
    rows: Vec<String>,
    cursor: (u16, u16),
}

/// A transcript followed into a screen.
pub struct Terminal {
    path: PathBuf,
    attempt: u32,
    screen: Screen,
    offset: u64,
}

impl Terminal {
    /// A terminal of `rows` x `cols` for the transcript at `path`.
    pub fn new(path: &Path, attempt: u32, rows: u16, cols: u16) -> Terminal {
        Terminal {
            path: path.to_path_buf(),
            attempt,
            screen: Screen::with_history(rows, cols, HISTORY_ROWS),
            offset: 0,
        }
    }

    /// The transcript of `attempt` of the node whose directory is `step_dir`.
    pub fn of_attempt(step_dir: &Path, attempt: u32, size: (u16, u16)) -> Terminal {
        Terminal::new(
            &step_dir.join(format!("attempt-{attempt}.pty")),
            attempt,
            size.0,
            size.1,
        )
    }

    /// The attempt whose transcript this is.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Feeds bytes the transcript gained (pure: tests feed recorded bytes).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.screen.process(bytes);
        self.offset += bytes.len() as u64;
    }

    /// How many bytes of the transcript it has read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads what the file gained since the last look; true when there was something.
    pub fn refresh(&mut self) -> std::io::Result<bool> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        if len <= self.offset {
            return Ok(false);
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.take(READ_CHUNK).read_to_end(&mut buf)?;
        self.feed(&buf);
        Ok(!buf.is_empty())
    }

    /// What changed since `sent` (which is brought up to date); `None` when nothing did.
    pub fn patch(&self, sent: &mut Sent) -> Option<ScreenPatch> {
        let rows = self.screen.visible_rows();
        let cursor = self.screen.cursor();
        let first = self.screen.first_abs();
        let top = self.screen.top_abs();
        let same = sent.attempt == Some(self.attempt);
        let from = if same { sent.top.max(first) } else { first };
        if same && rows == sent.rows && cursor == sent.cursor && from >= top {
            return None;
        }
        let history = self.screen.history_from(from);
        *sent = Sent {
            attempt: Some(self.attempt),
            top,
            rows: rows.clone(),
            cursor,
        };
        Some(ScreenPatch {
            attempt: self.attempt,
            rows,
            cursor,
            history_first: first,
            history_from: from,
            history,
        })
    }

    /// The screen now.
    pub fn view(&self) -> ScreenView {
        let visible = self.screen.visible_rows();
        let mut all = self.screen.all_rows();
        all.truncate(all.len().saturating_sub(visible.len()));
        ScreenView {
            attempt: self.attempt,
            rows: visible,
            cursor: self.screen.cursor(),
            history: all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screen_is_what_the_bytes_draw_not_the_bytes() {
        let mut t = Terminal::new(Path::new("/nonexistent"), 1, 4, 20);
        t.feed(b"\x1b[2J\x1b[Hhello\r\n\x1b[31mred\x1b[0m text\r\nwrong\x1b[2K\rright");
        let v = t.view();
        assert_eq!(v.rows, vec!["hello", "red text", "right", ""]);
        assert_eq!(v.cursor, (2, 5));
        assert!(v.history.is_empty());
    }

    #[test]
    fn the_offset_is_what_was_read_not_what_the_file_has_since() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attempt-1.pty");
        std::fs::write(&path, b"first\r\n").unwrap();
        let mut t = Terminal::new(&path, 1, 4, 20);
        while t.refresh().unwrap() {}
        assert_eq!(t.offset(), 7);
        // Written after the last read: not counted until read, so a follower starting
        // from the offset gets it.
        std::fs::write(&path, b"first\r\nREADY\r\n").unwrap();
        assert_eq!(t.offset(), 7);
        while t.refresh().unwrap() {}
        assert_eq!(t.offset(), 14);
        assert_eq!(t.view().rows[1], "READY");
    }

    #[test]
    fn scrolled_rows_become_history() {
        let mut t = Terminal::new(Path::new("/nonexistent"), 2, 2, 10);
        t.feed(b"one\r\ntwo\r\nthree\r\nfour");
        let v = t.view();
        assert_eq!(v.rows, vec!["three", "four"]);
        assert_eq!(v.history, vec!["one", "two"]);
        assert_eq!(v.attempt, 2);
    }

    #[test]
    fn a_page_is_sent_only_the_rows_it_has_not_had() {
        let mut t = Terminal::new(Path::new("/nonexistent"), 1, 2, 10);
        let mut sent = Sent::default();
        t.feed(b"one\r\ntwo\r\nthree");
        let p = t.patch(&mut sent).unwrap();
        assert_eq!(
            (p.history_from, p.history.clone()),
            (0, vec!["one".to_string()])
        );
        assert_eq!(p.rows, vec!["two", "three"]);
        assert_eq!(t.patch(&mut sent), None, "nothing changed, nothing sent");
        t.feed(b"\r\nfour");
        let p = t.patch(&mut sent).unwrap();
        assert_eq!((p.history_from, p.history), (1, vec!["two".to_string()]));
        t.feed(b"!");
        let p = t.patch(&mut sent).unwrap();
        assert!(p.history.is_empty(), "only the visible rows changed");
        assert_eq!(p.rows, vec!["three", "four!"]);
        // Another attempt's terminal starts the page over.
        let mut t2 = Terminal::new(Path::new("/nonexistent"), 2, 2, 10);
        t2.feed(b"a\r\nb\r\nc");
        let p = t2.patch(&mut sent).unwrap();
        assert_eq!(
            (p.attempt, p.history_from, p.history),
            (2, 0, vec!["a".to_string()])
        );
    }

    #[test]
    fn a_growing_file_is_read_on_from_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attempt-1.pty");
        let mut t = Terminal::new(&path, 1, 3, 20);
        assert!(!t.refresh().unwrap(), "no file yet is no change");
        std::fs::write(&path, b"abc").unwrap();
        assert!(t.refresh().unwrap());
        assert!(!t.refresh().unwrap());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"def").unwrap();
        assert!(t.refresh().unwrap());
        assert_eq!(t.view().rows[0], "abcdef");
    }
}
