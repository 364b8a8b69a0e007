//! Making relayed text safe to put in front of another agent: no escape sequences, no
//! control characters, no invisible direction overrides; and folding it onto the one
//! line that is typed into a terminal.
//!
//! Text from one agent ends up typed into another agent's terminal. An escape sequence
//! in it could move that terminal's cursor, end a bracketed paste early and turn the
//! rest into keystrokes, or set the window title; a bare CR or LF would submit early.

use crate::model::Target;

/// Longest message text accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// What stands for a line break when a message is folded onto one line.
pub const FOLD: &str = " ⏎ ";

/// `text` without escape sequences, control characters (line breaks and tabs aside) and
/// invisible formatting characters; `\r\n` and lone `\r` become `\n`, tabs a space, and
/// trailing blanks and blank lines at either end are dropped.
pub fn sanitize(text: &str) -> String {
    if is_clean(text) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // A C1 CSI or OSC introducer starts a sequence just like ESC [ / ESC ] does.
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            c if c.is_control() || is_invisible_format(c) => {}
            c => out.push(c),
        }
    }
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    let first = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let last = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(first, |i| i + 1);
    lines[first..last].join("\n")
}

/// Whether `text` is already what [`sanitize`] would make of it (the common case, checked
/// in one pass without allocating).
fn is_clean(text: &str) -> bool {
    let mut prev = '\n';
    for c in text.chars() {
        let bad = match c {
            '\n' => prev == '\n' || prev == ' ',
            '\t' | '\r' => true,
            c => c.is_control() || is_invisible_format(c),
        };
        if bad {
            return false;
        }
        prev = c;
    }
    // Not empty, and no trailing blank or line break.
    !matches!(prev, '\n' | ' ')
}

/// Zero-width and direction-changing characters: they make text read differently from
/// what it is.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{061c}')
}

fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | 'X' | '^' | '_') => skip_string(chars),
        // Two-character sequences (ESC 7, ESC c, ...); charset selections take one more.
        Some('(' | ')' | '*' | '+' | '#' | '%') => {
            chars.next();
        }
        _ => {}
    }
}

/// Parameters and intermediates up to the final byte (`@` to `~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            return;
        }
    }
}

/// A string sequence (OSC, DCS, ...) up to BEL or ST (`ESC \` or U+009C).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

/// Sanitized text folded onto one line: line breaks become [`FOLD`].
pub fn one_line(text: &str) -> String {
    sanitize(text).split('\n').collect::<Vec<_>>().join(FOLD)
}

/// The line typed into a terminal agent for a message: `Relay message from SENDER:`,
/// for channel and broadcast messages where it went, then the text on one line.
pub fn injection_line(from: &str, target: &Target, text: &str) -> String {
    let via = match target {
        Target::Agent(_) => String::new(),
        Target::Channel(c) => format!("[#{c}] "),
        Target::Broadcast => "[to everyone] ".to_owned(),
    };
    format!("Relay message from {from}: {via}{}", one_line(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_controls_are_removed() {
        assert_eq!(sanitize("a\x1b[31mred\x1b[0m b"), "ared b");
        assert_eq!(sanitize("x\x1b]0;title\x07y"), "xy");
        assert_eq!(
            sanitize("x\x1b]8;;http://e\x1b\\link\x1b]8;;\x1b\\y"),
            "xlinky"
        );
        assert_eq!(sanitize("p\x1b[201~q"), "pq");
        assert_eq!(sanitize("bell\x07 nul\0 bs\x08 del\x7f"), "bell nul bs del");
        assert_eq!(sanitize("c1\u{9b}2Jcsi"), "c1csi");
        assert_eq!(sanitize("\u{202e}evil\u{200b}"), "evil");
        assert_eq!(sanitize("tab\there"), "tab here");
    }

    #[test]
    fn clean_text_takes_the_fast_path_unchanged() {
        for t in [
            "plain",
            "two\nlines",
            "  indented\n    more",
            "ünïcödé ⏎ ok",
        ] {
            assert!(is_clean(t), "{t:?}");
            assert_eq!(sanitize(t), t);
        }
        for t in [
            "",
            "\nlead",
            "trail \nx",
            "end\n",
            "a\n\nb",
            "t\tab",
            "x\x1b[0m",
        ] {
            assert!(!is_clean(t), "{t:?}");
        }
        // Blank lines inside the text survive the slow path.
        assert_eq!(sanitize("a\n\nb"), "a\n\nb");
    }

    #[test]
    fn line_breaks_are_normalised_and_ends_trimmed() {
        assert_eq!(sanitize("\n\n one\r\ntwo\rthree  \n\n"), " one\ntwo\nthree");
    }

    #[test]
    fn injection_is_one_line_naming_the_sender() {
        let line = injection_line(
            "alice",
            &Target::Agent("bob".into()),
            "hi\nthere\r\n\x1b[2Jok",
        );
        assert_eq!(line, "Relay message from alice: hi ⏎ there ⏎ ok");
        assert!(!line.contains(['\n', '\r', '\x1b']));
        assert_eq!(
            injection_line("a", &Target::Channel("ops".into()), "x"),
            "Relay message from a: [#ops] x"
        );
        assert_eq!(
            injection_line("a", &Target::Broadcast, "x"),
            "Relay message from a: [to everyone] x"
        );
    }
}
