//! Judgements over rendered screen rows, free of I/O: is the TUI ready, which row is the
//! agent's `/exit`, where the echo of the typed task is, and what clean output the agent
//! wrote.
//!
//! Everything here works on rows of a rendered screen (what a person would see), never on
//! the raw or ANSI-stripped byte stream: TUIs move the cursor instead of writing spaces
//! and newlines, so only the rendered rows have the agent's lines in them.

use std::collections::HashSet;
use std::time::Duration;

use relay_spec::Cli;

use crate::cli_table;

/// Glyphs that start an input prompt row; such rows echo what was typed in.
pub const PROMPT_GLYPHS: [char; 4] = ['>', '❯', '›', '┃'];

/// Reply glyphs recognised for every CLI, on top of the CLI's own.
pub const REPLY_GLYPHS: [&str; 4] = ["●", "•", "✦", "⏺"];

/// The word an agent prints on a row of its own to say it is done.
pub const EXIT_WORD: &str = "/exit";

/// How many characters of the typed text identify its echo.
const PROBE_CHARS: usize = 24;

/// Per-CLI screen conventions used by the judgements.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Glyphs a reply row may start with.
    pub reply_glyphs: Vec<String>,
    /// Text that means the TUI is ready; empty = unknown.
    pub ready_cues: Vec<String>,
    /// Starts of the CLI's own status rows (timings, token counts), which are not output.
    pub status_rows: Vec<String>,
    /// Text that means the CLI is still starting up, prompt or not.
    pub busy_cues: Vec<String>,
    /// The CLI's own prompt glyphs beyond [`PROMPT_GLYPHS`] (each followed by a space).
    pub prompt_glyphs: Vec<String>,
    /// The CLI, for its own words for a provider's limit ([`crate::ratelimit`]).
    pub cli: Option<Cli>,
}

impl Rules {
    /// The rules for `cli`, or the generic ones.
    pub fn for_cli(cli: Option<Cli>) -> Self {
        let mut reply_glyphs: Vec<String> = REPLY_GLYPHS.iter().map(|g| g.to_string()).collect();
        let mut ready_cues = Vec::new();
        let mut status_rows = Vec::new();
        let mut busy_cues = Vec::new();
        let mut prompt_glyphs = Vec::new();
        if let Some(cli) = cli {
            let p = cli_table::profile(cli);
            for g in p.reply_glyphs {
                if !reply_glyphs.iter().any(|known| known == g) {
                    reply_glyphs.push(g.to_string());
                }
            }
            ready_cues = p.ready_cues.iter().map(|c| c.to_string()).collect();
            status_rows = p.status_rows.iter().map(|c| c.to_string()).collect();
            busy_cues = p.busy_cues.iter().map(|c| c.to_string()).collect();
            prompt_glyphs = p.prompt_glyphs.iter().map(|c| c.to_string()).collect();
        }
        Rules {
            reply_glyphs,
            ready_cues,
            status_rows,
            busy_cues,
            prompt_glyphs,
            cli,
        }
    }
}

/// Readiness: a ready cue is on screen (when cues are known) and the output has been
/// quiet for `settle`. `quiet` is `None` before the first output.
pub fn is_ready(
    visible: &[String],
    cues: &[String],
    quiet: Option<Duration>,
    settle: Duration,
) -> bool {
    let Some(quiet) = quiet else {
        return false;
    };
    if quiet < settle {
        return false;
    }
    cues.is_empty()
        || visible
            .iter()
            .any(|row| cues.iter().any(|c| row.contains(c.as_str())))
}

/// Glyphs that, at the start of the cursor's row (or just before the cursor), mean the
/// cursor is on an input line: the CLIs' prompts (gemini shows `*` in YOLO mode) plus
/// those of shells and REPLs.
pub const INPUT_GLYPHS: [char; 9] = ['>', '❯', '›', '┃', '*', '$', '#', '%', '»'];

/// What the rendered screen says about taking a task, before the quiet time is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Nothing that looks like an input line yet.
    NotYet,
    /// A start-up dialog is shown; the task must not be typed into it.
    Dialog(&'static Dialog),
    /// The CLI's own ready cue is shown (a hint: a shorter quiet time will do).
    Cue,
    /// The cursor is on an input line: a prompt glyph at the start of its row or just
    /// before it, or inside an input box.
    InputLine,
}

/// A start-up dialog a CLI may show before its prompt.
#[derive(Debug, PartialEq, Eq)]
pub struct Dialog {
    /// What it asks, for events and reasons.
    pub name: &'static str,
    /// Lowercase phrases that must all be on screen.
    pub phrases: &'static [&'static str],
    /// The keys that answer it, when answering is safe; `None` = it needs a person (a
    /// login, a credential choice, a safety warning), and is reported as the reason the
    /// agent is not ready.
    pub answer: Option<&'static str>,
}

/// The start-up dialogs recognised. Trusting the working folder and picking a theme are
/// answered with their default (Enter); declining release notes is answered with `n`.
/// Choosing a credential, logging in and accepting a bypass-permissions warning are
/// decisions for a person.
pub const DIALOGS: &[Dialog] = &[
    Dialog {
        name: "bypass-permissions warning",
        phrases: &["bypass permissions mode"],
        answer: None,
    },
    Dialog {
        name: "use this API key?",
        phrases: &["use this api key"],
        answer: None,
    },
    Dialog {
        name: "login",
        phrases: &["select login method"],
        answer: None,
    },
    Dialog {
        name: "login",
        phrases: &["how would you like to authenticate"],
        answer: None,
    },
    Dialog {
        name: "login",
        phrases: &["sign in with chatgpt"],
        answer: None,
    },
    Dialog {
        name: "login",
        phrases: &["enter gemini api key"],
        answer: None,
    },
    Dialog {
        name: "trust this folder",
        phrases: &["do you trust the files in this folder"],
        answer: Some("\r"),
    },
    Dialog {
        name: "trust this folder",
        phrases: &["trust the contents of this directory"],
        answer: Some("\r"),
    },
    Dialog {
        name: "theme picker",
        phrases: &["choose the text style"],
        answer: Some("\r"),
    },
    Dialog {
        name: "release notes",
        phrases: &["what's new in this version", "(y)es/(n)o"],
        answer: Some("n\r"),
    },
    Dialog {
        name: "press enter to continue",
        phrases: &["press enter to continue"],
        answer: Some("\r"),
    },
];

/// The start-up dialog shown on `visible`, if any.
pub fn dialog(visible: &[String]) -> Option<&'static Dialog> {
    let screen = visible.join("\n").to_lowercase();
    DIALOGS
        .iter()
        .find(|d| d.phrases.iter().all(|p| screen.contains(p)))
}

/// Whether the cursor at `cursor` (row, col) sits on an input line of `visible`.
pub fn cursor_on_input(visible: &[String], cursor: (u16, u16)) -> bool {
    let Some(row) = visible.get(usize::from(cursor.0)) else {
        return false;
    };
    let t = row.trim_start();
    if t.starts_with(['│', '┃']) {
        // Inside an input box: the border is left of the cursor.
        let border = row.chars().count() - t.chars().count();
        return usize::from(cursor.1) > border;
    }
    if t.starts_with(INPUT_GLYPHS) {
        return true;
    }
    let before: String = row.chars().take(usize::from(cursor.1)).collect();
    before.trim_end().ends_with(INPUT_GLYPHS)
}

/// Whether `row` (the input line) holds a collapsed paste waiting to be submitted:
/// claude shows `[Pasted text #1 +4 lines]`, codex `[Pasted Content 1200 chars]`, gemini
/// `[Pasted Text: 6 lines]` in place of a long pasted text.
pub fn paste_placeholder(row: &str) -> bool {
    let row = row.to_lowercase();
    row.contains("[pasted text") || row.contains("[pasted content")
}

/// Whether `visible` shows the CLI's text for "cannot take input yet".
pub fn busy(visible: &[String], rules: &Rules) -> bool {
    visible
        .iter()
        .any(|row| rules.busy_cues.iter().any(|c| row.contains(c.as_str())))
}

/// What `visible` says about readiness: a dialog first (ready text can be drawn before a
/// dialog over it), then the CLI's own "still starting" text, then its ready cue, then
/// the cursor on an input line.
pub fn readiness(visible: &[String], cursor: (u16, u16), rules: &Rules) -> Readiness {
    if let Some(d) = dialog(visible) {
        return Readiness::Dialog(d);
    }
    if busy(visible, rules) {
        return Readiness::NotYet;
    }
    let cue = visible
        .iter()
        .any(|row| rules.ready_cues.iter().any(|c| row.contains(c.as_str())));
    if cue {
        Readiness::Cue
    } else if cursor_on_input(visible, cursor) {
        Readiness::InputLine
    } else {
        Readiness::NotYet
    }
}

/// The text after the prompt glyph when `row` is an input prompt row (the echo of typed
/// input), allowing indentation and an input-box border in front.
pub fn prompt_body(row: &str) -> Option<&str> {
    let t = row.trim_start();
    let t = t.strip_prefix('│').map(str::trim_start).unwrap_or(t);
    let body = t.trim_start_matches(PROMPT_GLYPHS);
    // A REPL's `>>>` is one prompt made of several glyphs.
    (body.len() < t.len()).then(|| body.trim())
}

/// Whether `row` is an input prompt row.
pub fn is_prompt_row(row: &str) -> bool {
    prompt_body(row).is_some()
}

/// [`prompt_body`] with the CLI's own prompt glyphs too.
pub fn prompt_body_for<'a>(row: &'a str, rules: &Rules) -> Option<&'a str> {
    if let Some(body) = prompt_body(row) {
        return Some(body);
    }
    let t = row.trim_start();
    rules.prompt_glyphs.iter().find_map(|g| {
        let rest = t.strip_prefix(g.as_str())?;
        (rest.is_empty() || rest.starts_with(' ')).then(|| rest.trim())
    })
}

/// [`is_prompt_row`] with the CLI's own prompt glyphs too.
pub fn is_prompt_row_for(row: &str, rules: &Rules) -> bool {
    prompt_body_for(row, rules).is_some()
}

/// How an `/exit` row looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// `/exit` alone, maybe indented.
    Bare,
    /// `/exit` after a reply glyph.
    Glyph,
}

/// `row` trimmed, and without the reply glyph it starts with (and whether it had one).
fn after_glyph<'a>(row: &'a str, rules: &Rules) -> (&'a str, bool) {
    let t = row.trim();
    match rules
        .reply_glyphs
        .iter()
        .find_map(|g| t.strip_prefix(g.as_str()))
    {
        Some(rest) => (rest.trim(), true),
        None => (t, false),
    }
}

/// The rest of `text` after `prefix`, ignoring ASCII case.
fn strip_prefix_nocase<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// Whether `body` (a row without indentation and reply glyph) is one of the completion
/// markers agents of the reference format are trained to print: `STEP_COMPLETE:<step>`,
/// or `OWNER_DECISION: COMPLETE | INCOMPLETE_RETRY | INCOMPLETE_FAIL`. Markdown emphasis
/// and code marks around it are allowed.
pub fn is_end_marker(body: &str) -> bool {
    let b = body.trim_matches(|c: char| c == '*' || c == '`' || c.is_whitespace());
    if let Some(step) = strip_prefix_nocase(b, "STEP_COMPLETE:") {
        let step = step.trim().trim_matches('`');
        return !step.is_empty() && !step.contains(char::is_whitespace);
    }
    strip_prefix_nocase(b, "OWNER_DECISION:").is_some_and(|v| {
        let v = v.trim().trim_matches(|c| c == '*' || c == '`');
        ["COMPLETE", "INCOMPLETE_RETRY", "INCOMPLETE_FAIL"]
            .iter()
            .any(|w| v.eq_ignore_ascii_case(w))
    })
}

/// Whether `row` ends the session: exactly `/exit`, or a completion marker
/// ([`is_end_marker`]), after optional indentation or a reply glyph. Prompt rows (typed
/// input) and rows with more text (menus) are not.
pub fn exit_kind(row: &str, rules: &Rules) -> Option<ExitKind> {
    if is_prompt_row_for(row, rules) {
        return None;
    }
    let (body, glyph) = after_glyph(row, rules);
    (body == EXIT_WORD || is_end_marker(body)).then_some(if glyph {
        ExitKind::Glyph
    } else {
        ExitKind::Bare
    })
}

/// How many rows of `rows[exit..]`, the session's end row and what follows it, are the
/// agent's output: none for `/exit`; for a completion marker, the marker and the
/// `REASON:` rows right after it.
pub fn marker_rows(rows: &[String], exit: usize, rules: &Rules) -> usize {
    let Some(row) = rows.get(exit) else {
        return 0;
    };
    if after_glyph(row, rules).0 == EXIT_WORD {
        return 0;
    }
    1 + rows[exit + 1..]
        .iter()
        .take_while(|r| {
            strip_prefix_nocase(after_glyph(r, rules).0.trim_start_matches('*'), "REASON:")
                .is_some()
        })
        .count()
}

/// The questions for a person in an agent's output, in order: `HUMAN_QUESTION: ...`
/// lines, and `OWNER_DECISION: NEEDS_CLARIFICATION` with the `REASON:` line after it.
pub fn questions(output: &str) -> Vec<String> {
    let lines: Vec<&str> = output
        .lines()
        .map(|l| {
            l.trim()
                .trim_start_matches(['●', '•', '✦', '⏺', '-', '*'])
                .trim()
                .trim_matches(['*', '`'])
                .trim()
        })
        .collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(q) = strip_prefix_nocase(l, "HUMAN_QUESTION:").map(str::trim) {
            if !q.is_empty() {
                out.push(q.to_owned());
            }
        } else if strip_prefix_nocase(l, "OWNER_DECISION:")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("NEEDS_CLARIFICATION"))
        {
            let reason = lines
                .get(i + 1)
                .and_then(|n| strip_prefix_nocase(n, "REASON:"))
                .map(str::trim)
                .filter(|r| !r.is_empty());
            out.push(reason.unwrap_or("the agent needs clarification").to_owned());
        }
    }
    out
}

/// Text the session typed in (the task, nudges), prepared for recognising its echo.
#[derive(Debug, Clone, Default)]
pub struct Injected {
    /// Each text, whitespace collapsed.
    collapsed: Vec<String>,
    /// Every non-blank line of every text, whitespace collapsed.
    lines: HashSet<String>,
    /// How many lines look like a bare `/exit`.
    bare_exits: usize,
    /// How many lines look like a glyph-prefixed `/exit`.
    glyph_exits: usize,
}

impl Injected {
    /// Nothing typed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The texts typed so far, read with `rules`.
    pub fn of<S: AsRef<str>>(texts: &[S], rules: &Rules) -> Self {
        let mut injected = Self::new();
        for t in texts {
            injected.push(t.as_ref(), rules);
        }
        injected
    }

    /// Records one more typed text.
    pub fn push(&mut self, text: &str, rules: &Rules) {
        self.collapsed.push(plain(text));
        for line in text.lines() {
            match exit_kind(line, rules) {
                Some(ExitKind::Bare) => self.bare_exits += 1,
                Some(ExitKind::Glyph) => self.glyph_exits += 1,
                None => {}
            }
            let line = plain(line);
            if !line.is_empty() {
                self.lines.insert(line);
            }
        }
    }
}

/// The first `/exit` row the agent wrote in `rows` (the rows since the task was typed).
///
/// The echo of injected text is on screen before any reply, so for every line of the
/// injected texts that itself looks like `/exit`, the first row of that kind is taken to
/// be its echo and skipped.
pub fn find_exit(rows: &[String], injected: &Injected, rules: &Rules) -> Option<usize> {
    let (mut skip_bare, mut skip_glyph) = (injected.bare_exits, injected.glyph_exits);
    for (i, row) in rows.iter().enumerate() {
        let skip = match exit_kind(row, rules) {
            None => continue,
            Some(ExitKind::Bare) => &mut skip_bare,
            Some(ExitKind::Glyph) => &mut skip_glyph,
        };
        if *skip == 0 {
            return Some(i);
        }
        *skip -= 1;
    }
    None
}

/// Text as a markdown-rendering TUI shows it (codex drops code and emphasis marks from the
/// user's message), whitespace collapsed: how typed text is compared with its echo.
fn plain(s: &str) -> String {
    collapse_ws(&s.replace(['`', '*'], ""))
}

/// Text with runs of whitespace collapsed to one space and ends trimmed.
pub fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The start of the first non-blank line of `typed`, which identifies its echo.
pub fn echo_probe(typed: &str) -> String {
    let line = typed.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    collapse_ws(line).chars().take(PROBE_CHARS).collect()
}

/// The end of `typed` (its last characters, whitespace collapsed), which identifies it
/// on the input row when its start is shared with other typed texts.
pub fn echo_tail(typed: &str) -> String {
    let all: Vec<char> = collapse_ws(typed).chars().collect();
    all[all.len().saturating_sub(PROBE_CHARS)..]
        .iter()
        .collect()
}

/// The last prompt row in `rows` that echoes text starting with `probe` (or a collapsed
/// paste placeholder).
pub fn echo_row(rows: &[String], probe: &str) -> Option<usize> {
    echo_row_for(rows, probe, &Rules::default())
}

/// [`echo_row`] with the CLI's own prompt glyphs too.
pub fn echo_row_for(rows: &[String], probe: &str, rules: &Rules) -> Option<usize> {
    if probe.is_empty() {
        return None;
    }
    rows.iter().rposition(|row| {
        let Some(body) = prompt_body_for(row, rules) else {
            return false;
        };
        let body = collapse_ws(body);
        if body.starts_with("[Pasted text") {
            return true;
        }
        // A narrow screen may wrap the probe; a long enough common start still counts.
        let n = body.chars().count().min(probe.chars().count());
        n >= probe.chars().count().min(8) && body.chars().take(n).eq(probe.chars().take(n))
    })
}

/// Whether `row` is interface decoration rather than agent text: a line made only of
/// box-drawing characters, a status line holding a ready cue, or one of the CLI's own
/// status rows.
pub fn is_chrome(row: &str, rules: &Rules) -> bool {
    let t = row.trim();
    if t.is_empty() {
        return false;
    }
    let boxy = t
        .chars()
        .all(|c| c.is_whitespace() || ('\u{2500}'..='\u{259f}').contains(&c));
    boxy || rules.ready_cues.iter().any(|c| t.contains(c.as_str()))
        || rules.status_rows.iter().any(|s| t.starts_with(s.as_str()))
}

/// Whether `row` starts with one of the reply glyphs.
fn starts_with_glyph(row: &str, rules: &Rules) -> bool {
    let t = row.trim_start();
    rules.reply_glyphs.iter().any(|g| t.starts_with(g.as_str()))
}

/// `row` without surrounding whitespace and input-box borders, whitespace collapsed.
fn unboxed(row: &str) -> String {
    collapse_ws(row.trim_matches(|c: char| c.is_whitespace() || c == '│' || c == '┃'))
}

/// Follows the echo of one injected text down the rows after its prompt row: what of
/// the text (whitespace collapsed) has not been seen yet.
#[derive(Debug, Default)]
struct Echo {
    rest: String,
}

impl Echo {
    /// Starts at a prompt row whose `body` begins one of the `injected` texts.
    fn start(body: &str, injected: &Injected) -> Echo {
        let body = plain(body);
        let rest = injected
            .collapsed
            .iter()
            .find(|t| !body.is_empty() && t.starts_with(&body))
            .map(|t| t[body.len()..].trim_start().to_owned())
            .unwrap_or_default();
        Echo { rest }
    }

    /// Whether `row` continues the echo; consumes it if so.
    fn take(&mut self, row: &str) -> bool {
        let row = plain(&unboxed(row));
        if row.is_empty() || self.rest.is_empty() || !self.rest.starts_with(&row) {
            self.rest.clear();
            return false;
        }
        self.rest = self.rest[row.len()..].trim_start().to_owned();
        true
    }
}

/// Whether `row` is a whole line of injected text, as a terminal echoes it without a
/// prompt. A row with a reply glyph is the agent's, even when it repeats the task.
fn is_injected_line(row: &str, injected: &Injected, rules: &Rules) -> bool {
    !starts_with_glyph(row, rules) && injected.lines.contains(&plain(row))
}

/// The agent's clean output from `rows` (the rows it wrote after the task, cut before its
/// `/exit`): echo of injected text, prompt rows, decoration and rows in `exclude` are
/// dropped, reply glyphs and the common indent removed, blank runs squeezed.
pub fn extract_output(
    rows: &[String],
    rules: &Rules,
    injected: &Injected,
    exclude: &HashSet<String>,
) -> String {
    let mut kept: Vec<String> = Vec::new();
    let mut echo = Echo::default();
    for row in rows {
        let t = row.trim_end();
        if t.trim().is_empty() {
            kept.push(String::new());
            continue;
        }
        if let Some(body) = prompt_body_for(t, rules) {
            echo = Echo::start(body.trim_end_matches(['│', '┃', ' ']), injected);
            continue;
        }
        if echo.take(t) {
            continue;
        }
        if is_chrome(t, rules) || exclude.contains(t.trim()) || is_injected_line(t, injected, rules)
        {
            continue;
        }
        kept.push(unglyph(t, rules));
    }
    // Only spaces count as indent, so cutting that many bytes never splits a character.
    let indent = kept
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<&str> = Vec::new();
    for line in &kept {
        let line = line.get(indent..).unwrap_or("").trim_end();
        let blank = line.is_empty();
        if blank && out.last().is_none_or(|l| l.is_empty()) {
            continue;
        }
        out.push(line);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// `row` with a leading reply glyph replaced by spaces, keeping the columns of the text so
/// continuation lines dedent along with it.
fn unglyph(row: &str, rules: &Rules) -> String {
    let body = row.trim_start();
    let lead = &row[..row.len() - body.len()];
    for g in &rules.reply_glyphs {
        if let Some(rest) = body.strip_prefix(g.as_str())
            && (rest.is_empty() || rest.starts_with(' '))
        {
            return format!("{lead}{}{rest}", " ".repeat(g.chars().count()));
        }
    }
    row.to_owned()
}

/// Whether Enter only inserted a line break in an input box: `before` the visible rows
/// down to the cursor's row `left` when Enter was pressed, `visible` and `row` now. The
/// cursor is on a blank row of the box with the rest of the interface still below, and
/// the row it left (the end of what was typed) is right above it: in place (the cursor
/// one row down), or with the box moved up a row whole (the rows the text was typed on
/// each one row higher; gemini drops its paste hint above the box then). A submit may
/// show the text elsewhere, a row or two of it, never the box moved so.
pub fn line_break_inserted(before: &[String], left: usize, visible: &[String], row: usize) -> bool {
    let Some(typed_end) = before.get(left).filter(|r| !r.trim().is_empty()) else {
        return false;
    };
    let kept = if row == left + 1 {
        visible.get(left) == Some(typed_end)
    } else if row == left && left >= 1 {
        visible.get(row - 1) == Some(typed_end)
            && (1..left.min(3)).all(|i| visible.get(row - 1 - i) == before.get(left - i))
    } else {
        false
    };
    kept && visible.get(row).is_some_and(|r| {
        r.trim_matches(|c: char| c.is_whitespace() || c == '│' || c == '┃')
            .is_empty()
    })
        // Inside a box: the rest of the interface is still below, pushed down a row.
        // (A cursor that went down past the end of everything is a submit.)
        && visible[row + 1..].iter().any(|r| !r.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    fn claude() -> Rules {
        Rules::for_cli(Some(Cli::Claude))
    }

    #[test]
    fn exit_rows_allow_glyphs_and_indentation_only() {
        let r = claude();
        assert_eq!(exit_kind("/exit", &r), Some(ExitKind::Bare));
        assert_eq!(exit_kind("     /exit   ", &r), Some(ExitKind::Bare));
        assert_eq!(exit_kind("● /exit", &r), Some(ExitKind::Glyph));
        assert_eq!(exit_kind("  • /exit", &r), Some(ExitKind::Glyph));
        assert_eq!(exit_kind("✦ /exit", &r), Some(ExitKind::Glyph));
        assert_eq!(exit_kind("⏺ /exit", &r), Some(ExitKind::Glyph));
        for no in [
            "❯ /exit",
            "> /exit",
            "› /exit",
            "┃  /exit",
            "│ > /exit",
            "/exit  Exit the CLI",
            "  /exit           Exit the REPL",
            "print /exit when done",
            "/exits",
            "● /exit now",
            "x /exit",
        ] {
            assert_eq!(exit_kind(no, &r), None, "{no:?}");
        }
    }

    #[test]
    fn completion_markers_end_a_session_like_exit() {
        let r = claude();
        for yes in [
            "STEP_COMPLETE:build",
            "● STEP_COMPLETE:build",
            "  `STEP_COMPLETE:build`",
            "OWNER_DECISION: COMPLETE",
            "⏺ **OWNER_DECISION: INCOMPLETE_RETRY**",
            "owner_decision: incomplete_fail",
        ] {
            assert!(exit_kind(yes, &r).is_some(), "{yes:?}");
        }
        for no in [
            "❯ STEP_COMPLETE:build",
            "print STEP_COMPLETE:build when done",
            "STEP_COMPLETE:",
            "STEP_COMPLETE: two words",
            "OWNER_DECISION: NEEDS_CLARIFICATION",
            "OWNER_DECISION: COMPLETE once tests pass",
            "OWNER_DECISION:",
        ] {
            assert_eq!(exit_kind(no, &r), None, "{no:?}");
        }
        let screen = rows("● working\nOWNER_DECISION: INCOMPLETE_FAIL\nREASON: no access\n\n❯ ");
        let at = find_exit(&screen, &Injected::new(), &r);
        assert_eq!(at, Some(1));
        assert_eq!(marker_rows(&screen, 1, &r), 2);
        let screen = rows("● done\n/exit\nREASON: x");
        assert_eq!(marker_rows(&screen, 1, &r), 0);
        // A marker line of the task is its echo, not the agent's.
        let task = Injected::of(&["Build it. When done print:\nSTEP_COMPLETE:build"], &r);
        let screen = rows("❯ Build it. When done print:\n  STEP_COMPLETE:build\n\n● building");
        assert_eq!(find_exit(&screen, &task, &r), None);
    }

    #[test]
    fn questions_for_a_person_are_read_from_the_output() {
        assert_eq!(
            questions(
                "● looking\n● HUMAN_QUESTION: which port?\nmore\n**OWNER_DECISION: NEEDS_CLARIFICATION**\nREASON: which db?\nOWNER_DECISION: NEEDS_CLARIFICATION"
            ),
            ["which port?", "which db?", "the agent needs clarification"]
        );
        assert!(questions("I may print HUMAN_QUESTION: later\nHUMAN_QUESTION:").is_empty());
    }

    #[test]
    fn echoed_exit_lines_of_the_task_are_skipped() {
        let r = claude();
        let task = Injected::of(&["Do it.\n/exit\nthen stop"], &r);
        let screen = rows("❯ Do it.\n/exit\nthen stop\n\n● done");
        assert_eq!(find_exit(&screen, &task, &r), None);
        let screen = rows("❯ Do it.\n/exit\nthen stop\n\n● done\n/exit");
        assert_eq!(find_exit(&screen, &task, &r), Some(5));
        let screen = rows("❯ Do it.\n/exit\nthen stop\n\n● /exit");
        assert_eq!(find_exit(&screen, &task, &r), Some(4));
    }

    #[test]
    fn nudge_text_mentions_exit_but_is_not_an_exit_row() {
        let r = claude();
        let nudge = "You seem idle. If your task is done, print /exit on its own line.";
        assert_eq!(
            find_exit(&rows(nudge), &Injected::of(&[nudge], &r), &r),
            None
        );
    }

    #[test]
    fn a_cli_still_initializing_is_not_ready_though_its_prompt_shows() {
        let gemini = Rules::for_cli(Some(Cli::Gemini));
        let screen = rows(
            "ℹ Initializing... Prompts will be queued.\n  Queued (press ↑ to edit):\n > \n Type your message",
        );
        assert_eq!(readiness(&screen, (2, 3), &gemini), Readiness::NotYet);
        // The info line stays in the conversation once gemini is up: not busy.
        let screen = rows("ℹ Initializing... Prompts will be queued.\n > \n Type your message");
        assert_eq!(readiness(&screen, (1, 3), &gemini), Readiness::Cue);
    }

    #[test]
    fn readiness_needs_a_cue_and_quiet() {
        let screen = rows("Welcome\n❯ \n? for shortcuts");
        let cues = claude().ready_cues;
        let settle = Duration::from_millis(100);
        assert!(is_ready(&screen, &cues, Some(settle), settle));
        assert!(!is_ready(&screen, &cues, Some(settle / 2), settle));
        assert!(!is_ready(&screen, &cues, None, settle));
        assert!(!is_ready(&rows("Loading…"), &cues, Some(settle), settle));
        assert!(is_ready(&rows("$ "), &[], Some(settle), settle));
    }

    #[test]
    fn echo_is_found_by_the_start_of_the_typed_text() {
        let probe = echo_probe("\n  Build the   thing\nsecond line");
        assert_eq!(probe, "Build the thing");
        let screen = rows("banner\n❯ Build the thing\n● ok\n❯ ");
        assert_eq!(echo_row(&screen, &probe), Some(1));
        assert_eq!(echo_row(&rows("Build the thing"), &probe), None);
        assert_eq!(
            echo_row(&rows("> [Pasted text #1 +20 lines]"), &probe),
            Some(0)
        );
        let long = echo_probe("Summarise the repository layout and then say hi");
        assert_eq!(echo_row(&rows("› Summarise the reposi"), &long), Some(0));
        assert_eq!(echo_row(&rows("› Sum"), &long), None);
    }

    #[test]
    fn output_drops_echo_prompt_and_decoration() {
        let r = claude();
        let task = Injected::of(
            &["Please write a haiku about terminals that wrap long lines around\nthen /exit"],
            &r,
        );
        let screen = rows(
            "──────────────\n\
             ❯ Please write a haiku about terminals that wr\n\
             ap long lines around\n\
             then /exit\n\
             \n\
             ● Green text on black glass\n\
             \x20 cursor blinks, waiting for words\n\
             \x20 the prompt returns home\n\
             \n\
             ──────────────\n\
             ❯ \n\
             ──────────────\n\
             \x20 ? for shortcuts",
        );
        let out = extract_output(&screen, &r, &task, &HashSet::new());
        assert_eq!(
            out,
            "Green text on black glass\ncursor blinks, waiting for words\nthe prompt returns home"
        );
    }

    #[test]
    fn output_dedents_uniform_indentation_and_squeezes_blanks() {
        let r = Rules::for_cli(Some(Cli::Opencode));
        let screen = rows("     first\n\n\n\n     second\n        nested\n\n");
        assert_eq!(
            extract_output(&screen, &r, &Injected::new(), &HashSet::new()),
            "first\n\nsecond\n   nested"
        );
    }

    #[test]
    fn short_replies_that_happen_to_be_in_the_task_are_kept() {
        let r = claude();
        let task = Injected::of(&["Say ok if the build works"], &r);
        let screen = rows("❯ Say ok if the build works\n\n● ok");
        assert_eq!(extract_output(&screen, &r, &task, &HashSet::new()), "ok");
    }

    #[test]
    fn replies_that_repeat_task_text_are_kept() {
        let r = claude();
        let task = Injected::of(&["[[fake:say=a\\nb]] Summarise the module layout"], &r);
        let screen = rows(
            "❯ [[fake:say=a\\nb]] Summarise the module layout\n\n● Summarise the module layout\n  module layout",
        );
        assert_eq!(
            extract_output(&screen, &r, &task, &HashSet::new()),
            "Summarise the module layout\nmodule layout"
        );
    }

    #[test]
    fn a_whole_injected_line_echoed_without_a_prompt_is_dropped() {
        let r = Rules::for_cli(None);
        let nudge = "You seem idle. If your task is done, print /exit on its own line.".to_owned();
        let screen = rows(&format!("working\n{nudge}\nidle now"));
        assert_eq!(
            extract_output(&screen, &r, &Injected::of(&[nudge], &r), &HashSet::new()),
            "working\nidle now"
        );
    }

    #[test]
    fn excluded_rows_are_dropped() {
        let r = Rules::for_cli(Some(Cli::Codex));
        let exclude: HashSet<String> = ["│ >_ OpenAI Codex (v0.169.0) │".to_owned()].into();
        let screen = rows("│ >_ OpenAI Codex (v0.169.0) │\n› hi\n• PONG");
        assert_eq!(
            extract_output(&screen, &r, &Injected::new(), &exclude),
            "PONG"
        );
    }

    #[test]
    fn the_echo_of_a_markdown_rendered_task_is_not_output() {
        // Codex renders the user's message as markdown: code marks disappear.
        let rules = Rules::for_cli(None);
        let typed = "Say hi.\n\nTo message, run `agent-relay send --to NAME \"text\"`.";
        let injected = Injected::of(&[typed], &rules);
        let rows: Vec<String> = [
            "\u{203a} Say hi.",
            "",
            "  To message, run agent-relay send --to NAME \"text\".",
            "",
            "\u{2022} hi",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            extract_output(&rows, &rules, &injected, &HashSet::new()),
            "hi"
        );
    }
}
