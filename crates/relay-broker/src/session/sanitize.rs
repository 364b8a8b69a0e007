//! The one gate for text on its way into an agent's terminal: the task (with the outputs
//! of other steps interpolated into it), relayed messages, nudges and dialog answers all
//! become keystrokes here and nowhere else.
//!
//! Typed text is data, never commands to the terminal or the TUI: an escape sequence in
//! it could close a bracketed paste early (what follows would arrive as keystrokes), a CR
//! would submit half a task, and a line starting with `/exit` or `!` would be a command of
//! the CLI instead of text. So every escape sequence and every C0/C1 control character
//! is removed (which cannot leave a paste marker behind: both markers start with ESC),
//! line breaks become `\n`, and how a `\n` is typed depends on whether the app enabled
//! bracketed paste.

/// Start of a bracketed paste (DECSET 2004 apps read what follows as pasted text).
pub const PASTE_START: &str = "\x1b[200~";
/// End of a bracketed paste.
pub const PASTE_END: &str = "\x1b[201~";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    Text,
    /// After ESC: the next character says what kind of sequence this is.
    Escape,
    /// ESC followed by intermediate bytes (`ESC ( B`): ends at the next final byte.
    EscapeIntermediate,
    /// A control sequence: parameters and intermediates up to a final byte.
    Csi,
    /// OSC, DCS, SOS, PM, APC: a string up to BEL or ST (or, since this is text and not
    /// a terminal, the end of the line).
    String,
    /// ESC inside a string: `\` ends it (ST).
    StringEscape,
}

/// `text` with every escape sequence and control character removed, CR and CRLF turned
/// into `\n` and tabs into spaces. The result holds no character below U+0020 but `\n`,
/// no DEL, no C1 control, so it can never hold a paste marker; and cleaning it again
/// changes nothing.
pub fn terminal_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut scan = Scan::Text;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match scan {
            Scan::Text => match c {
                '\x1b' => scan = Scan::Escape,
                '\u{9b}' => scan = Scan::Csi,
                '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => scan = Scan::String,
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    out.push('\n');
                }
                '\n' => out.push('\n'),
                '\t' => out.push(' '),
                c if is_control(c) => {}
                c => out.push(c),
            },
            Scan::Escape => {
                scan = match c {
                    '[' => Scan::Csi,
                    ']' | 'P' | 'X' | '^' | '_' => Scan::String,
                    '\x1b' => Scan::Escape,
                    ' '..='/' => Scan::EscapeIntermediate,
                    // A two-character escape (`ESC 7`, `ESC M`, ...): both dropped. A line
                    // break is text, so it stays.
                    '\n' | '\r' => {
                        chars_push_break(&mut out, c, &mut chars);
                        Scan::Text
                    }
                    _ => Scan::Text,
                };
            }
            Scan::EscapeIntermediate => {
                if !(' '..='/').contains(&c) {
                    scan = Scan::Text;
                    if c == '\n' || c == '\r' {
                        chars_push_break(&mut out, c, &mut chars);
                    }
                }
            }
            Scan::Csi => {
                if ('@'..='~').contains(&c) {
                    scan = Scan::Text;
                } else if !(' '..='?').contains(&c) {
                    // Not part of a control sequence: the sequence was cut short; the
                    // character is read as text again (controls are dropped there).
                    scan = Scan::Text;
                    match c {
                        '\x1b' => scan = Scan::Escape,
                        '\n' | '\r' => chars_push_break(&mut out, c, &mut chars),
                        c if is_control(c) => {}
                        c => out.push(c),
                    }
                }
            }
            Scan::String => match c {
                '\x07' | '\u{9c}' => scan = Scan::Text,
                '\x1b' => scan = Scan::StringEscape,
                '\n' | '\r' => {
                    scan = Scan::Text;
                    chars_push_break(&mut out, c, &mut chars);
                }
                _ => {}
            },
            Scan::StringEscape => {
                scan = match c {
                    '\\' => Scan::Text,
                    '\x1b' => Scan::StringEscape,
                    '\n' | '\r' => {
                        chars_push_break(&mut out, c, &mut chars);
                        Scan::Text
                    }
                    _ => Scan::String,
                };
            }
        }
    }
    out
}

fn chars_push_break(
    out: &mut String,
    c: char,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) {
    if c == '\r' && chars.peek() == Some(&'\n') {
        chars.next();
    }
    out.push('\n');
}

/// C0 controls, DEL and C1 controls (line breaks are handled before this is asked).
fn is_control(c: char) -> bool {
    c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c)
}

/// The text as it is typed: clean (see [`terminal_text`]), never starting with a
/// character the CLIs read as a command (`/` for slash commands, `!` for a shell command
/// in Claude Code), and, when the app has no bracketed paste (where a newline may submit
/// what was typed so far), on one line.
pub fn typed_text(text: &str, bracketed: bool) -> String {
    let clean = terminal_text(text);
    let text = if bracketed {
        clean
    } else {
        clean
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let body = text.trim_start();
    if body.starts_with(['/', '!']) {
        format!("Task: {body}")
    } else {
        text
    }
}

/// The bytes that type `text`: clean, wrapped in the paste markers when the app enabled
/// bracketed paste. Nothing in it submits; Enter is a separate write.
pub fn keystrokes(text: &str, bracketed: bool) -> Vec<u8> {
    wrap(&typed_text(text, bracketed), bracketed)
}

/// The bytes of text already made by [`typed_text`]: in the paste markers when
/// `bracketed`.
pub fn wrap(typed: &str, bracketed: bool) -> Vec<u8> {
    if bracketed {
        format!("{PASTE_START}{typed}{PASTE_END}").into_bytes()
    } else {
        typed.as_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nested_paste_markers_cannot_reassemble() {
        // One `replace` pass over this leaves `ESC[201~` behind.
        let nasty = "a\x1b[20\x1b[201~1~b";
        let clean = terminal_text(nasty);
        assert!(!clean.contains('\x1b'), "{clean:?}");
        assert_eq!(keystrokes(nasty, true), b"\x1b[200~a1~b\x1b[201~");
    }

    #[test]
    fn carriage_returns_never_submit() {
        assert_eq!(terminal_text("one\rtwo\r\nthree\n"), "one\ntwo\nthree\n");
        assert_eq!(keystrokes("one\rtwo", false), b"one two");
        assert_eq!(keystrokes("one\rtwo", true), b"\x1b[200~one\ntwo\x1b[201~");
    }

    #[test]
    fn commands_of_the_cli_stay_text() {
        assert_eq!(typed_text("/exit", true), "Task: /exit");
        assert_eq!(typed_text("  !rm -rf ~", true), "Task: !rm -rf ~");
        // Without bracketed paste the lines become one: `/exit` on a line of its own
        // would be submitted as a command.
        assert_eq!(typed_text("do it\n/exit\n!ls", false), "do it /exit !ls");
        assert_eq!(typed_text("plain", false), "plain");
    }

    #[test]
    fn escape_sequences_of_every_kind_are_removed() {
        let s = "\x1b[1;32mgreen\x1b[0m \x1b]0;title\x07t \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \
                 \x1bPdcs\x1b\\d \x1b(Bx \x1b7y\x1b8 \u{9b}31mz \x08\x7f\x00end\ttab";
        assert_eq!(terminal_text(s), "green t link d x y z end tab");
    }

    #[test]
    fn an_unterminated_string_ends_at_the_line() {
        assert_eq!(terminal_text("a\x1b]0;never closed\nnext"), "a\nnext");
    }

    fn adversarial() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\x1b[200~".to_owned()),
            Just("\x1b[201~".to_owned()),
            Just("\x1b[20".to_owned()),
            Just("0~".to_owned()),
            Just("1~".to_owned()),
            Just("\x1b".to_owned()),
            Just("[".to_owned()),
            Just("\u{9b}".to_owned()),
            Just("\r".to_owned()),
            Just("\n".to_owned()),
            Just("\x07".to_owned()),
            Just("\x1b]".to_owned()),
            Just("\x1b\\".to_owned()),
            Just("/exit".to_owned()),
            Just("!".to_owned()),
            "[a-z ]{0,4}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn clean_text_has_no_marker_no_control_and_is_stable(s in adversarial()) {
            let clean = terminal_text(&s);
            prop_assert!(!clean.contains(PASTE_START));
            prop_assert!(!clean.contains(PASTE_END));
            prop_assert!(clean.chars().all(|c| c == '\n' || !is_control(c)), "{:?}", clean);
            prop_assert_eq!(terminal_text(&clean), clean.clone());
        }

        #[test]
        fn typed_bytes_hold_one_paste_and_no_early_submit(s in adversarial(), bracketed in any::<bool>()) {
            let bytes = keystrokes(&s, bracketed);
            let text = String::from_utf8(bytes).expect("utf-8 in, utf-8 out");
            let body = if bracketed {
                let inner = text
                    .strip_prefix(PASTE_START)
                    .and_then(|t| t.strip_suffix(PASTE_END));
                prop_assert!(inner.is_some(), "{:?}", text);
                inner.unwrap_or_default().to_owned()
            } else {
                text
            };
            prop_assert!(!body.contains('\x1b'));
            prop_assert!(!body.contains('\r'));
            if !bracketed {
                prop_assert!(!body.contains('\n'));
            }
            prop_assert!(!body.trim_start().starts_with(['/', '!']));
            prop_assert_eq!(typed_text(&body, bracketed), body.clone());
        }
    }
}
