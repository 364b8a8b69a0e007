//! The screen model: a vt100 emulator fed with every output byte, plus a bounded history
//! of the rows that scrolled off the top of the main screen.
//!
//! Rows of the main screen get absolute numbers that stay put as the screen scrolls
//! (history rows first, then the visible rows), so "the rows after the point where the
//! task was typed" can be named long after that point scrolled away. vt100's own
//! scrollback is not used because it offers no cheap way to read it back row by row; the
//! history here is filled from vt100's scroll callback instead.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU16;

use vt100::capture::{BasicFormattedCaptureState, basic_formatted_to_plain};

/// Rows of main-screen history kept: far more than any agent's reply, so the whole output
/// of a session is kept; past it the oldest rows are dropped, and counted, so the outcome
/// can say that its output was cut. (At ~100 bytes a row this bounds a session's history
/// to about 20 MB.)
pub const HISTORY_ROWS: usize = 200_000;

/// Collects rows as they scroll off the top of the main screen.
#[derive(Debug)]
struct History {
    rows: VecDeque<String>,
    /// Absolute number of `rows[0]`.
    base: u64,
    cap: usize,
    /// Rows dropped because the cap was reached (not those a clear-scrollback wiped).
    dropped: u64,
}

impl History {
    fn push(&mut self, row: String) {
        if self.rows.len() == self.cap {
            self.rows.pop_front();
            self.base += 1;
            self.dropped += 1;
        }
        self.rows.push_back(row);
    }

    fn clear(&mut self) {
        self.base += self.rows.len() as u64;
        self.rows.clear();
    }
}

impl vt100::Callbacks for History {
    fn on_scroll(&mut self, contents: vt100::capture::RowContents<'_>, alternate_screen: bool) {
        // Alternate-screen apps redraw everything in place; rows they scroll away inside
        // their own layout are not conversation history of the main screen.
        if alternate_screen {
            return;
        }
        let mut formatted = String::new();
        let mut state = BasicFormattedCaptureState::new();
        // Writing into a String cannot fail.
        let _ = contents.write_formatted_basic(&mut formatted, &mut state);
        let plain: String = basic_formatted_to_plain(&formatted).collect();
        self.push(plain.trim_end().to_owned());
    }
}

/// A rendered terminal screen with numbered history.
pub struct Screen {
    parser: vt100::Parser<History>,
    cols: u16,
}

impl Screen {
    /// A blank screen of `rows` x `cols` (each at least 1).
    pub fn new(rows: u16, cols: u16) -> Self {
        Self::with_history(rows, cols, HISTORY_ROWS)
    }

    /// A blank screen keeping at most `history` scrolled-off rows.
    pub fn with_history(rows: u16, cols: u16, history: usize) -> Self {
        let r = NonZeroU16::new(rows).unwrap_or(NonZeroU16::MIN);
        let c = NonZeroU16::new(cols).unwrap_or(NonZeroU16::MIN);
        let history = History {
            rows: VecDeque::new(),
            base: 0,
            cap: history.max(1),
            dropped: 0,
        };
        Screen {
            // Capacity 0 makes vt100 hand every scrolled-off row to the callback.
            parser: vt100::Parser::new_with_callbacks(r, c, 0, history),
            cols: c.get(),
        }
    }

    /// Feeds output bytes.
    pub fn process(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
    }

    /// Escape codes that draw the visible screen as it is now (contents, cursor, input
    /// modes) on a blank terminal: how a transcript begins that continues a session.
    pub fn state_formatted(&self) -> Vec<u8> {
        self.parser.screen().state_formatted().into_bytes()
    }

    /// Forgets the history, as a terminal does on `ESC[3J`.
    pub fn clear_history(&mut self) {
        self.parser.callbacks_mut().clear();
    }

    /// The cursor as 0-based (row, col) within the visible screen.
    pub fn cursor(&self) -> (u16, u16) {
        self.parser.screen().cursor_position()
    }

    /// Whether the app asked for bracketed paste.
    pub fn bracketed_paste(&self) -> bool {
        self.parser.screen().bracketed_paste()
    }

    /// Whether the app hid the cursor (it may draw its own, elsewhere).
    pub fn cursor_hidden(&self) -> bool {
        self.parser.screen().hide_cursor()
    }

    /// Rows of history dropped because the cap was reached.
    pub fn dropped_rows(&self) -> u64 {
        self.parser.callbacks().dropped
    }

    /// Whether the alternate screen is shown.
    pub fn alternate(&self) -> bool {
        self.parser.screen().alternate_screen()
    }

    /// The visible rows as text, trailing spaces removed.
    pub fn visible_rows(&self) -> Vec<String> {
        self.parser
            .screen()
            .rows(0, self.cols)
            .map(|r| r.trim_end().to_owned())
            .collect()
    }

    /// Absolute number of the first row still held (history or, without history, the top
    /// visible row).
    pub fn first_abs(&self) -> u64 {
        self.parser.callbacks().base
    }

    /// Absolute number of the top visible row of the main screen.
    pub fn top_abs(&self) -> u64 {
        let h = self.parser.callbacks();
        h.base + h.rows.len() as u64
    }

    /// History rows from absolute row `from` on (of those still held), oldest first.
    pub fn history_from(&self, from: u64) -> Vec<String> {
        let h = self.parser.callbacks();
        let skip = usize::try_from(from.saturating_sub(h.base)).unwrap_or(usize::MAX);
        h.rows.iter().skip(skip).cloned().collect()
    }

    /// History rows followed by the visible rows; index 0 is row [`Screen::first_abs`].
    pub fn all_rows(&self) -> Vec<String> {
        let h = self.parser.callbacks();
        let mut rows: Vec<String> = h.rows.iter().cloned().collect();
        rows.extend(self.visible_rows());
        rows
    }

    /// A hash of what is shown (rows, cursor, which screen): equal hashes = no visible change.
    pub fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.visible_rows().hash(&mut h);
        self.cursor().hash(&mut h);
        self.alternate().hash(&mut h);
        self.top_abs().hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriage_returns_and_erases_leave_only_the_final_row() {
        let mut s = Screen::new(5, 40);
        s.process(b"\xe2\xa0\x8b thinking\r\xe2\xa0\x99 thinking\r\x1b[2Kdone\r\n");
        assert_eq!(s.visible_rows()[0], "done");
    }

    #[test]
    fn scrolled_rows_keep_their_numbers() {
        let mut s = Screen::new(3, 20);
        for i in 0..7 {
            s.process(format!("line {i}\r\n").as_bytes());
        }
        // 7 lines and an empty cursor row on a 3-row screen: 5 rows scrolled away.
        assert_eq!(s.top_abs(), 5);
        let all = s.all_rows();
        assert_eq!(all[0], "line 0");
        assert_eq!(all[6], "line 6");
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn history_is_bounded() {
        let mut s = Screen::with_history(2, 10, 3);
        for i in 0..10 {
            s.process(format!("{i}\r\n").as_bytes());
        }
        assert_eq!(s.first_abs(), 6);
        assert_eq!(s.all_rows()[0], "6");
        assert_eq!(s.dropped_rows(), 6);
        assert_eq!(
            s.history_from(0),
            ["6", "7", "8"],
            "from before what is held"
        );
        assert_eq!(s.history_from(8), ["8"]);
        assert!(s.history_from(9).is_empty(), "from the top: nothing new");
    }

    #[test]
    fn alternate_screen_rows_do_not_enter_history() {
        let mut s = Screen::new(2, 10);
        s.process(b"\x1b[?1049h");
        for i in 0..5 {
            s.process(format!("{i}\r\n").as_bytes());
        }
        assert!(s.alternate());
        assert_eq!(s.top_abs(), 0);
        s.process(b"\x1b[?1049l");
        assert!(!s.alternate());
    }

    #[test]
    fn clearing_history_moves_the_base_forward() {
        let mut s = Screen::new(2, 10);
        s.process(b"a\r\nb\r\nc\r\n");
        let top = s.top_abs();
        s.clear_history();
        assert_eq!(s.first_abs(), top);
        assert_eq!(s.top_abs(), top);
    }

    #[test]
    fn bracketed_paste_mode_is_visible() {
        let mut s = Screen::new(2, 10);
        assert!(!s.bracketed_paste());
        s.process(b"\x1b[?2004h");
        assert!(s.bracketed_paste());
    }
}
