//! Terminal queries and screen-wiping sequences in the agent's output stream.
//!
//! A raw PTY has no terminal emulator behind it, so the queries a TUI sends at start-up
//! (device attributes, cursor position, colours) go unanswered unless the session answers
//! them; several CLIs stall or misbehave without answers. Each query must get exactly one
//! answer, in the order asked, so the scanner reports every complete query once, at the
//! byte where it ends, keeping its state across reads because a sequence may be split
//! between two of them.
//!
//! The same scanner also reports the sequences that are about to wipe rendered text
//! (clear screen, clear scrollback, leaving the alternate screen), so that the session can
//! capture the agent's output just before it disappears.

/// A question a TUI asked its terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// Primary device attributes, `ESC[c` or `ESC[0c`.
    DeviceAttributes,
    /// Cursor position report, `ESC[6n`.
    CursorPosition,
    /// Default foreground colour, `OSC 10;?`.
    Foreground {
        /// Whether the query ended in BEL (answers mirror the terminator).
        bel: bool,
    },
    /// Default background colour, `OSC 11;?`.
    Background {
        /// Whether the query ended in BEL (answers mirror the terminator).
        bel: bool,
    },
}

/// Something in the stream the session acts on at a precise byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A query to answer.
    Query(Query),
    /// `ESC[2J`: the visible screen is about to be erased.
    ClearScreen,
    /// `ESC[3J`: the scrollback is erased.
    ClearScrollback,
    /// The app leaves the alternate screen, which then loses its contents.
    LeaveAltScreen,
}

/// A mark found in one chunk of output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Offset in the chunk where the sequence starts (0 when it began in an earlier chunk).
    pub start: usize,
    /// Offset in the chunk just past the sequence's last byte.
    pub end: usize,
    /// What it is.
    pub mark: Mark,
}

/// Longest parameter string kept for a CSI sequence; longer ones are never queries.
const MAX_CSI: usize = 32;
/// Longest OSC body kept; titles can be long, but the colour queries are tiny.
const MAX_OSC: usize = 16;

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

#[derive(Debug, Clone, Default)]
enum State {
    #[default]
    Ground,
    Escape,
    Csi,
    Osc,
    OscEscape,
    /// DCS, SOS, PM and APC strings: skipped up to their terminator.
    Str,
    StrEscape,
}

/// Finds queries and screen-wiping sequences in a byte stream fed in arbitrary pieces.
#[derive(Debug, Default)]
pub struct QueryScanner {
    state: State,
    buf: Vec<u8>,
    overflow: bool,
    start: Option<usize>,
}

impl QueryScanner {
    /// A scanner in the ground state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans the next chunk of output and returns the marks completed in it, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Found> {
        let mut found = Vec::new();
        // A sequence that began in an earlier chunk starts, for this chunk, at 0.
        if self.start.is_some() {
            self.start = Some(0);
        }
        for (i, &b) in chunk.iter().enumerate() {
            self.step(i, b, &mut found);
        }
        found
    }

    fn begin(&mut self, i: usize, state: State) {
        self.state = state;
        self.buf.clear();
        self.overflow = false;
        if matches!(self.state, State::Escape) {
            self.start = Some(i);
        }
    }

    fn finish(&mut self, i: usize, mark: Option<Mark>, found: &mut Vec<Found>) {
        if let Some(mark) = mark {
            found.push(Found {
                start: self.start.unwrap_or(0),
                end: i + 1,
                mark,
            });
        }
        self.state = State::Ground;
        self.start = None;
        self.buf.clear();
        self.overflow = false;
    }

    fn push(&mut self, b: u8, cap: usize) {
        if self.buf.len() < cap {
            self.buf.push(b);
        } else {
            self.overflow = true;
        }
    }

    fn step(&mut self, i: usize, b: u8, found: &mut Vec<Found>) {
        match self.state {
            State::Ground => {
                if b == ESC {
                    self.begin(i, State::Escape);
                }
            }
            State::Escape => match b {
                b'[' => self.state = State::Csi,
                b']' => self.state = State::Osc,
                b'P' | b'X' | b'^' | b'_' => self.state = State::Str,
                ESC => self.begin(i, State::Escape),
                _ => self.finish(i, None, found),
            },
            State::Csi => match b {
                ESC => self.begin(i, State::Escape),
                0x20..=0x3f => self.push(b, MAX_CSI),
                0x40..=0x7e => {
                    let mark = if self.overflow {
                        None
                    } else {
                        csi_mark(&self.buf, b)
                    };
                    self.finish(i, mark, found);
                }
                // C0 controls inside a CSI are executed by terminals without ending it.
                _ => {}
            },
            State::Osc => match b {
                BEL => {
                    let mark = osc_mark(&self.buf, self.overflow, true);
                    self.finish(i, mark, found);
                }
                ESC => self.state = State::OscEscape,
                _ => self.push(b, MAX_OSC),
            },
            State::OscEscape => {
                if b == b'\\' {
                    let mark = osc_mark(&self.buf, self.overflow, false);
                    self.finish(i, mark, found);
                } else {
                    // An unterminated OSC cut short by a new escape sequence.
                    self.finish(i, None, found);
                    self.begin(i.saturating_sub(1), State::Escape);
                    self.step(i, b, found);
                }
            }
            State::Str => {
                if b == ESC {
                    self.state = State::StrEscape;
                }
            }
            State::StrEscape => {
                if b == b'\\' {
                    self.finish(i, None, found);
                } else {
                    self.finish(i, None, found);
                    self.begin(i.saturating_sub(1), State::Escape);
                    self.step(i, b, found);
                }
            }
        }
    }
}

fn csi_mark(params: &[u8], fin: u8) -> Option<Mark> {
    match (params, fin) {
        (b"" | b"0", b'c') => Some(Mark::Query(Query::DeviceAttributes)),
        (b"6", b'n') => Some(Mark::Query(Query::CursorPosition)),
        (b"2", b'J') => Some(Mark::ClearScreen),
        (b"3", b'J') => Some(Mark::ClearScrollback),
        ([b'?', rest @ ..], b'l') => rest
            .split(|&c| c == b';')
            .any(|p| matches!(p, b"1049" | b"1047" | b"47"))
            .then_some(Mark::LeaveAltScreen),
        _ => None,
    }
}

fn osc_mark(body: &[u8], overflow: bool, bel: bool) -> Option<Mark> {
    if overflow {
        return None;
    }
    match body {
        b"10;?" => Some(Mark::Query(Query::Foreground { bel })),
        b"11;?" => Some(Mark::Query(Query::Background { bel })),
        _ => None,
    }
}

/// The answer a VT220-class xterm with a white-on-black palette gives to `query`, with the
/// cursor at the 0-based `(row, col)`.
pub fn answer(query: Query, cursor: (u16, u16)) -> Vec<u8> {
    fn osc(code: u8, rgb: &str, bel: bool) -> Vec<u8> {
        let end = if bel { "\x07" } else { "\x1b\\" };
        format!("\x1b]{code};rgb:{rgb}{end}").into_bytes()
    }
    match query {
        Query::DeviceAttributes => b"\x1b[?62;22c".to_vec(),
        Query::CursorPosition => {
            let (row, col) = cursor;
            format!("\x1b[{};{}R", u32::from(row) + 1, u32::from(col) + 1).into_bytes()
        }
        Query::Foreground { bel } => osc(10, "ffff/ffff/ffff", bel),
        Query::Background { bel } => osc(11, "0000/0000/0000", bel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(chunks: &[&[u8]]) -> Vec<Mark> {
        let mut s = QueryScanner::new();
        chunks
            .iter()
            .flat_map(|c| s.feed(c))
            .map(|f| f.mark)
            .collect()
    }

    #[test]
    fn finds_each_query_once_in_order() {
        let got = marks(&[b"hi\x1b[c\x1b[6n\x1b]11;?\x07\x1b]10;?\x1b\\\x1b[0c"]);
        assert_eq!(
            got,
            [
                Mark::Query(Query::DeviceAttributes),
                Mark::Query(Query::CursorPosition),
                Mark::Query(Query::Background { bel: true }),
                Mark::Query(Query::Foreground { bel: false }),
                Mark::Query(Query::DeviceAttributes),
            ]
        );
    }

    #[test]
    fn queries_split_across_reads_are_found_once() {
        let stream: &[u8] = b"a\x1b[6nb\x1b]10;?\x1b\\c\x1b[c";
        for cut in 0..=stream.len() {
            let (x, y) = stream.split_at(cut);
            assert_eq!(
                marks(&[x, y]),
                [
                    Mark::Query(Query::CursorPosition),
                    Mark::Query(Query::Foreground { bel: false }),
                    Mark::Query(Query::DeviceAttributes),
                ],
                "cut at {cut}"
            );
        }
        let one_by_one: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(marks(&one_by_one).len(), 3);
    }

    #[test]
    fn other_sequences_are_not_queries() {
        let got = marks(&[
            b"\x1b[>c\x1b[?u\x1b[>0q\x1b[5n\x1b[1;31m\x1b]0;title\x07\x1b]11;rgb:0/0/0\x07",
            b"\x1bP+q544e\x1b\\\x1b[16c\x1b[?6n",
        ]);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn reports_offsets_within_the_chunk() {
        let mut s = QueryScanner::new();
        let f = s.feed(b"ab\x1b[6ncd");
        assert_eq!((f[0].start, f[0].end), (2, 6));
        let f = s.feed(b"\x1b[");
        assert!(f.is_empty());
        let f = s.feed(b"2Jx");
        assert_eq!((f[0].start, f[0].end, f[0].mark), (0, 2, Mark::ClearScreen));
    }

    #[test]
    fn wiping_sequences_are_marked() {
        assert_eq!(
            marks(&[b"\x1b[3J\x1b[?1049l\x1b[?1049h\x1b[?25;47l"]),
            [
                Mark::ClearScrollback,
                Mark::LeaveAltScreen,
                Mark::LeaveAltScreen
            ]
        );
    }

    #[test]
    fn an_escape_inside_an_osc_starts_a_new_sequence() {
        assert_eq!(
            marks(&[b"\x1b]0;half\x1b[6n"]),
            [Mark::Query(Query::CursorPosition)]
        );
    }

    #[test]
    fn answers_look_like_xterm() {
        assert_eq!(answer(Query::DeviceAttributes, (0, 0)), b"\x1b[?62;22c");
        assert_eq!(answer(Query::CursorPosition, (4, 9)), b"\x1b[5;10R");
        assert_eq!(
            answer(Query::Foreground { bel: false }, (0, 0)),
            b"\x1b]10;rgb:ffff/ffff/ffff\x1b\\"
        );
        assert_eq!(
            answer(Query::Background { bel: true }, (0, 0)),
            b"\x1b]11;rgb:0000/0000/0000\x07"
        );
    }
}
