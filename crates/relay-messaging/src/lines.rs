//! Messages an agent sends by printing them: a line `->relay:NAME text` (or
//! `->relay:#channel text`, `->relay:* text`), or a block
//!
//! ```text
//! ->relay:NAME <<<
//! any number of lines
//! >>>
//! ```
//!
//! Lines are read as rendered: a reply glyph (`● `, `• `, `✦ `, ...) or indentation in
//! front is allowed, as real CLIs draw replies that way. The caller passes only text the
//! agent wrote (never the echo of what was typed into it).

use crate::model::Target;

/// What starts a relay line.
pub const PREFIX: &str = "->relay:";

const BLOCK_OPEN: &str = "<<<";
const BLOCK_CLOSE: &str = ">>>";

/// One message an agent printed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RelayLine {
    /// Where it goes.
    pub target: Target,
    /// Its text (several lines for a block).
    pub text: String,
}

/// The relay lines found in some text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Complete messages, in order.
    pub lines: Vec<RelayLine>,
    /// The last complete message is a one-line form on the last non-blank line: more of
    /// it may still be on its way, so a live reader waits for quiet before sending it.
    pub last_may_grow: bool,
}

/// `line` without indentation and one leading reply glyph.
fn body<'a>(line: &'a str, glyphs: &[&str]) -> &'a str {
    let t = line.trim_start();
    for g in glyphs {
        if let Some(rest) = t.strip_prefix(g)
            && (rest.is_empty() || rest.starts_with(' '))
        {
            return rest.trim_start();
        }
    }
    t
}

/// The target and the rest of a relay line, if `line` is one.
fn relay_head<'a>(line: &'a str, glyphs: &[&str]) -> Option<(Target, &'a str)> {
    let rest = body(line, glyphs).strip_prefix(PREFIX)?;
    let (name, text) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    Some((Target::parse(name)?, text))
}

/// Finds every relay line and block in `text`. An unterminated block is not a message
/// yet and ends the scan.
pub fn scan(text: &str, glyphs: &[&str]) -> Scan {
    let rows: Vec<&str> = text.lines().collect();
    let last_nonblank = rows.iter().rposition(|r| !r.trim().is_empty());
    let mut out = Scan::default();
    let mut i = 0;
    while i < rows.len() {
        let Some((target, rest)) = relay_head(rows[i], glyphs) else {
            i += 1;
            continue;
        };
        if rest == BLOCK_OPEN {
            let Some(close) = (i + 1..rows.len()).find(|&j| body(rows[j], glyphs) == BLOCK_CLOSE)
            else {
                return out;
            };
            let text = dedent(&rows[i + 1..close]);
            if !text.trim().is_empty() {
                out.lines.push(RelayLine { target, text });
                out.last_may_grow = false;
            }
            i = close + 1;
            continue;
        }
        if !rest.is_empty() {
            out.lines.push(RelayLine {
                target,
                text: rest.to_owned(),
            });
            out.last_may_grow = Some(i) == last_nonblank;
        }
        i += 1;
    }
    out
}

/// Lines with their common indentation removed, blank ends dropped.
fn dedent(lines: &[&str]) -> String {
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let body: Vec<&str> = lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect();
    let first = body
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(body.len());
    let last = body
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(first, |i| i + 1);
    body[first..last].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLYPHS: [&str; 3] = ["●", "•", "✦"];

    fn line(target: &str, text: &str) -> RelayLine {
        RelayLine {
            target: Target::parse(target).unwrap(),
            text: text.into(),
        }
    }

    #[test]
    fn one_line_forms_with_glyphs_and_indent() {
        let s = scan(
            "thinking\n● ->relay:bob hello there\n  ->relay:#ops  deploy done \n     ->relay:* all hands\nend",
            &GLYPHS,
        );
        assert_eq!(
            s.lines,
            [
                line("bob", "hello there"),
                line("#ops", "deploy done"),
                line("*", "all hands")
            ]
        );
        assert!(!s.last_may_grow);
        assert!(scan("• ->relay:bob hi", &GLYPHS).last_may_grow);
    }

    #[test]
    fn lines_that_only_mention_relay_are_not_messages() {
        let s = scan(
            "print ->relay:bob hi to send\n->relay:bob\n->relay:NAME` x\n->relay: bob hi\n❯ ->relay:bob typed",
            &GLYPHS,
        );
        assert_eq!(s.lines, []);
    }

    #[test]
    fn blocks_carry_several_lines() {
        let s = scan(
            "● ->relay:bob <<<\n  first line\n    indented\n\n  last\n  >>>\n● done",
            &GLYPHS,
        );
        assert_eq!(s.lines, [line("bob", "first line\n  indented\n\nlast")]);
    }

    #[test]
    fn an_open_block_is_not_sent_yet() {
        let s = scan("->relay:a one\n->relay:bob <<<\npart", &GLYPHS);
        assert_eq!(s.lines, [line("a", "one")]);
        assert!(!s.last_may_grow);
    }
}
