//! Interactive mode: a small TUI in the terminal on stdin/stdout that behaves, byte for
//! byte where it matters, like the real CLIs do in a PTY (see the realclients notes):
//! start-up terminal queries, bracketed paste, its own echo, spinner redraws with `\r`,
//! reply glyphs, a footer hint as ready cue, and no exit of its own when a reply says
//! `/exit`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::argv::Cli;
use crate::script::{self, ExitStyle, Flags, Host};
use crate::sys::{self, RawMode};

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const FRAME_MS: u64 = 80;

/// One thing the user (or the terminal) sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    Char(char),
    /// The whole text of a bracketed paste, line breaks as `\n`.
    Paste(String),
    /// CR outside a paste: the Enter key.
    Enter,
    /// LF outside a paste.
    LineFeed,
    Backspace,
    /// The terminal's answer to DA1, as sent (`ESC[?…c`).
    Da1(String),
    /// The terminal's answer to CPR, as sent (`ESC[row;colR`).
    Cpr(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    Esc,
    Csi,
    Osc,
    OscEsc,
    Ss3,
}

/// Turns terminal input bytes into [`Input`]s. Sequences may be split across reads.
#[derive(Debug)]
pub(crate) struct InputParser {
    state: State,
    csi: Vec<u8>,
    utf8: Vec<u8>,
    paste: Option<Vec<u8>>,
}

impl Default for InputParser {
    fn default() -> Self {
        InputParser {
            state: State::Ground,
            csi: Vec::new(),
            utf8: Vec::new(),
            paste: None,
        }
    }
}

impl InputParser {
    pub(crate) fn feed(&mut self, bytes: &[u8], out: &mut Vec<Input>) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Input>) {
        match self.state {
            State::Ground => {
                if b == 0x1b {
                    self.utf8.clear();
                    self.state = State::Esc;
                } else if let Some(p) = &mut self.paste {
                    p.push(b);
                } else {
                    self.ground(b, out);
                }
            }
            State::Esc => {
                self.state = match b {
                    b'[' => {
                        self.csi.clear();
                        State::Csi
                    }
                    b']' => State::Osc,
                    b'O' => State::Ss3,
                    0x1b => State::Esc,
                    // Alt+key and a lone Escape are not text.
                    _ => State::Ground,
                }
            }
            State::Csi => {
                if (0x40..=0x7e).contains(&b) {
                    self.state = State::Ground;
                    self.csi_done(b, out);
                } else if self.csi.len() < 64 {
                    self.csi.push(b);
                } else {
                    self.state = State::Ground;
                }
            }
            State::Osc => match b {
                0x07 => self.state = State::Ground,
                0x1b => self.state = State::OscEsc,
                _ => {}
            },
            State::OscEsc => {
                self.state = if b == b'\\' {
                    State::Ground
                } else {
                    State::Osc
                }
            }
            State::Ss3 => self.state = State::Ground,
        }
    }

    fn ground(&mut self, b: u8, out: &mut Vec<Input>) {
        match b {
            b'\r' => out.push(Input::Enter),
            b'\n' => out.push(Input::LineFeed),
            0x7f | 0x08 => out.push(Input::Backspace),
            0x00..=0x1f => {}
            0x20..=0x7e => {
                self.utf8.clear();
                out.push(Input::Char(b as char));
            }
            _ => {
                self.utf8.push(b);
                let want = match self.utf8[0] {
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf7 => 4,
                    _ => 1,
                };
                if self.utf8.len() >= want {
                    let c = std::str::from_utf8(&self.utf8)
                        .ok()
                        .and_then(|s| s.chars().next())
                        .unwrap_or(char::REPLACEMENT_CHARACTER);
                    self.utf8.clear();
                    out.push(Input::Char(c));
                }
            }
        }
    }

    fn csi_done(&mut self, fin: u8, out: &mut Vec<Input>) {
        let params = String::from_utf8_lossy(&self.csi).into_owned();
        let seq = || format!("\x1b[{params}{}", fin as char);
        match (fin, params.as_str()) {
            (b'~', "200") => self.paste = Some(Vec::new()),
            (b'~', "201") => {
                if let Some(bytes) = self.paste.take() {
                    let text = String::from_utf8_lossy(&bytes)
                        .replace("\r\n", "\n")
                        .replace('\r', "\n");
                    out.push(Input::Paste(text));
                }
            }
            (b'c', p) if p.starts_with('?') => out.push(Input::Da1(seq())),
            (b'R', _) => out.push(Input::Cpr(seq())),
            _ => {}
        }
    }
}

fn env_ms(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

struct Tui {
    cli: Cli,
    input: File,
    signals: RawFd,
    raw: RawMode,
    parser: InputParser,
    pending: VecDeque<Input>,
    answers: Vec<&'static str>,
    line: String,
    hint_shown: bool,
    /// The task's settings, once the task has arrived.
    task: Option<Flags>,
    started: bool,
    ended: bool,
    /// Follow-ups that were relay messages.
    relay_messages: u32,
    /// This turn stopped at a provider's limit.
    limited: bool,
    term_ignored: bool,
    eof: bool,
}

pub(crate) fn run(cli: Cli) -> ! {
    let delay = env_ms("FAKE_AGENT_START_DELAY_MS", 0);
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    let fail = |what: &str, e: std::io::Error| -> ! {
        let _ = writeln!(std::io::stderr(), "fake-agent({}): {what}: {e}", cli.name());
        std::process::exit(2)
    };
    let stdin = std::io::stdin();
    let input = match stdin.as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(e) => fail("cannot use stdin", e),
    };
    let raw = match RawMode::enable(input.as_raw_fd()) {
        Ok(r) => r,
        Err(e) => fail("cannot put the terminal in raw mode", e),
    };
    let signals = match sys::route_exit_signals_to_pipe() {
        Ok(fd) => fd,
        Err(e) => {
            raw.restore();
            fail("cannot handle signals", e)
        }
    };
    let mut tui = Tui {
        cli,
        input,
        signals,
        raw,
        parser: InputParser::default(),
        pending: VecDeque::new(),
        answers: Vec::new(),
        line: String::new(),
        hint_shown: false,
        task: None,
        started: false,
        ended: false,
        relay_messages: 0,
        limited: false,
        term_ignored: false,
        eof: false,
    };
    tui.start();
    tui.main_loop()
}

impl Tui {
    fn out(&self, s: &str) {
        // The terminal may be gone; there is nobody to tell, so errors are ignored.
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(s.as_bytes());
        let _ = o.flush();
    }

    fn start(&mut self) {
        let timeout = env_ms("FAKE_AGENT_QUERY_TIMEOUT_MS", 1000);
        self.out("\x1b[c");
        self.wait_answer("DA1", timeout);
        self.out("\x1b[6n");
        self.wait_answer("CPR", timeout);
        self.out("\x1b[?2004h");
        self.out(&format!("Fake {} agent\r\n\r\n", self.cli.name()));
        self.draw_prompt();
    }

    fn wait_answer(&mut self, kind: &'static str, timeout_ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        while !self.answers.contains(&kind) && !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.pump(left.as_millis().min(i32::MAX as u128) as i32);
        }
    }

    /// Waits up to `timeout_ms` (negative: forever) for input or an exit signal and
    /// takes in what arrived: query answers are logged, the rest is queued.
    fn pump(&mut self, timeout_ms: i32) {
        let fds = if self.eof {
            vec![self.signals]
        } else {
            vec![self.signals, self.input.as_raw_fd()]
        };
        let ready = match sys::poll_readable(&fds, timeout_ms) {
            Ok(r) => r,
            Err(_) => {
                self.eof = true;
                return;
            }
        };
        if ready[0] {
            self.shutdown(0);
        }
        if ready.get(1) != Some(&true) {
            return;
        }
        let mut buf = [0u8; 4096];
        match self.input.read(&mut buf) {
            // EIO is what a PTY slave reads once the master side is closed.
            Ok(0) | Err(_) => self.eof = true,
            Ok(n) => {
                let mut events = Vec::new();
                self.parser.feed(&buf[..n], &mut events);
                for ev in events {
                    match ev {
                        Input::Da1(seq) => self.answered("DA1", &seq),
                        Input::Cpr(seq) => self.answered("CPR", &seq),
                        other => self.pending.push_back(other),
                    }
                }
            }
        }
    }

    fn answered(&mut self, kind: &'static str, seq: &str) {
        self.answers.push(kind);
        if let Some(path) = std::env::var_os("FAKE_AGENT_QUERY_LOG") {
            let line = format!("{kind} {}\n", seq.replace('\x1b', "ESC"));
            let _ = script::append_line(Path::new(&path), &line);
        }
    }

    fn main_loop(&mut self) -> ! {
        loop {
            while let Some(ev) = self.pending.pop_front() {
                self.handle(ev);
            }
            if self.eof {
                if self.term_ignored {
                    // Only SIGKILL ends an agent that ignores SIGTERM and lost its terminal.
                    loop {
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                }
                self.shutdown(0);
            }
            self.pump(-1);
        }
    }

    fn prompt_col(&self) -> usize {
        self.cli.prompt().chars().count() + 1
    }

    /// Draws the prompt with the ready hint on the line below it, cursor after the prompt.
    fn draw_prompt(&mut self) {
        self.out(self.cli.prompt());
        if let Some(hint) = self.cli.ready_hint() {
            self.out(&format!("\r\n{hint}\x1b[1A\x1b[{}G", self.prompt_col()));
            self.hint_shown = true;
        }
    }

    /// Real CLIs hide the shortcuts hint while something is typed.
    fn set_hint(&mut self, shown: bool) {
        let Some(hint) = self.cli.ready_hint() else {
            return;
        };
        if shown == self.hint_shown {
            return;
        }
        let body = if shown {
            format!("\r{hint}")
        } else {
            "\x1b[2K".into()
        };
        self.out(&format!("\x1b7\x1b[1B{body}\x1b8"));
        self.hint_shown = shown;
    }

    fn insert(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.set_hint(false);
        self.line.push_str(text);
        self.out(&text.replace('\n', "\r\n\x1b[2K  "));
    }

    fn handle(&mut self, ev: Input) {
        match ev {
            Input::Char(c) => self.insert(c.encode_utf8(&mut [0; 4])),
            Input::Paste(text) => self.insert(&text),
            Input::LineFeed if self.cli.line_feed_submits() => self.submit(),
            Input::LineFeed => self.insert("\n"),
            Input::Enter => self.submit(),
            Input::Backspace => self.backspace(),
            Input::Da1(_) | Input::Cpr(_) => {}
        }
    }

    fn backspace(&mut self) {
        match self.line.pop() {
            None => {}
            Some('\n') => {
                let last = self.line.rsplit('\n').next().unwrap_or("");
                let indent = if self.line.contains('\n') {
                    3
                } else {
                    self.prompt_col()
                };
                let col = indent + last.chars().count();
                self.out(&format!("\x1b[2K\x1b[1A\x1b[{col}G"));
            }
            Some(_) => self.out("\x08 \x08"),
        }
        if self.line.is_empty() {
            self.set_hint(true);
        }
    }

    fn submit(&mut self) {
        if self.line.trim().is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.line);
        self.hint_shown = false;
        self.out("\r\n\x1b[2K");
        let trimmed = text.trim();
        if trimmed == "/exit" || trimmed == "/quit" {
            self.shutdown(0);
        }
        let markers = match script::parse(&text) {
            Ok(m) => m,
            Err(msg) => {
                self.stderr(&msg);
                self.shutdown(2);
            }
        };
        let first = self.task.is_none();
        if first {
            self.task = Some(Flags::of(&markers));
            self.started = true;
            script::log_lifecycle("start");
        }
        self.think();
        let mut turn = self.task.unwrap_or_default();
        self.limited = false;
        if first {
            script::run(&markers, &text, self);
            if self.limited {
                // Stays at its prompt, as a real TUI does after a provider's limit.
            } else if !turn.no_exit {
                self.finish(turn.exit_style);
            }
        } else {
            if text.starts_with("Relay message from ") {
                self.relay_messages += 1;
                self.reply(&format!("got: {text}"));
            } else if text.starts_with("HUMAN_ANSWER:") {
                self.reply(&format!("got: {text}"));
            }
            script::run(&markers, &text, self);
            turn.absorb(&markers);
            if self.limited {
            } else if let Some(n) = turn.wait_messages {
                if self.relay_messages >= n {
                    self.finish(turn.exit_style);
                }
            } else if !turn.no_exit {
                self.print_exit(turn.exit_style);
            } else if turn.obey_nudge {
                self.reply("ok, finishing");
                self.finish(turn.exit_style);
            }
        }
        self.out("\r\n");
        self.draw_prompt();
    }

    fn think(&mut self) {
        let total = env_ms("FAKE_AGENT_THINK_MS", 300);
        let mut spent = 0;
        let mut frame = 0;
        while spent < total {
            self.out(&format!("\r{} Thinking", SPINNER[frame % SPINNER.len()]));
            let step = FRAME_MS.min(total - spent);
            self.sleep(step);
            spent += step;
            frame += 1;
        }
        if total > 0 {
            self.out("\r\x1b[2K");
        }
    }

    /// The agent is done with its task: it says so in the log, then writes `/exit`.
    fn finish(&mut self, style: ExitStyle) {
        if !self.ended {
            self.ended = true;
            script::log_lifecycle("end");
        }
        self.print_exit(style);
    }

    fn print_exit(&mut self, style: ExitStyle) {
        match style {
            ExitStyle::Plain => self.out("/exit\r\n"),
            ExitStyle::Color => self.out("\x1b[1;32m/exit\x1b[0m\r\n"),
            ExitStyle::Glyph => self.out(&format!("{}/exit\r\n", self.cli.reply_prefix())),
            ExitStyle::Spinner => {
                for frame in SPINNER.iter().take(6) {
                    self.out(&format!("\r{frame} Finishing"));
                    self.sleep(40);
                }
                self.out("\r/exit\x1b[K\r\n");
            }
        }
    }

    fn shutdown(&mut self, code: i32) -> ! {
        self.out("\x1b[?2004l");
        self.raw.restore();
        if self.started && !self.ended {
            script::log_lifecycle("end");
        }
        std::process::exit(code)
    }
}

impl Host for Tui {
    fn reply(&mut self, text: &str) {
        let mut s = String::new();
        for (i, line) in text.split('\n').enumerate() {
            s.push_str(if i == 0 {
                self.cli.reply_prefix()
            } else {
                self.cli.continuation_prefix()
            });
            s.push_str(line);
            s.push_str("\r\n");
        }
        self.out(&s);
    }

    fn stderr(&mut self, text: &str) {
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "{}\r\n", text.replace('\n', "\r\n"));
        let _ = e.flush();
    }

    /// Sleeps, but exits at once on SIGTERM/SIGHUP as a real TUI would.
    fn sleep(&mut self, ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let wait = left.as_millis().min(i32::MAX as u128) as i32;
            if let Ok(ready) = sys::poll_readable(&[self.signals], wait)
                && ready[0]
            {
                self.shutdown(0);
            }
        }
    }

    fn exit(&mut self, code: i32) -> ! {
        self.shutdown(code)
    }

    /// A TUI shows the limit in its transcript and waits at its prompt: no `/exit`.
    fn limit_reached(&mut self, _on_stdout: bool, text: &str) {
        self.reply(text);
        self.limited = true;
    }

    fn crash(&mut self) -> ! {
        sys::disable_core_dumps();
        std::process::abort()
    }

    fn ignore_term(&mut self) {
        sys::ignore_term_signals();
        self.term_ignored = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Input> {
        let mut p = InputParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        out
    }

    #[test]
    fn typed_text_and_keys() {
        assert_eq!(
            parse_all(&[b"a\x7f\r\n"]),
            [
                Input::Char('a'),
                Input::Backspace,
                Input::Enter,
                Input::LineFeed
            ]
        );
    }

    #[test]
    fn utf8_split_across_reads() {
        let bytes = "❯".as_bytes();
        assert_eq!(parse_all(&[&bytes[..1], &bytes[1..]]), [Input::Char('❯')]);
    }

    #[test]
    fn paste_keeps_line_breaks_and_does_not_submit() {
        assert_eq!(
            parse_all(&[b"\x1b[200~one\r\ntwo\rthree\x1b[2", b"01~\r"]),
            [Input::Paste("one\ntwo\nthree".into()), Input::Enter]
        );
    }

    #[test]
    fn query_answers_are_not_input() {
        assert_eq!(
            parse_all(&[b"\x1b[?62;22c\x1b[12;", b"1Rx"]),
            [
                Input::Da1("\x1b[?62;22c".into()),
                Input::Cpr("\x1b[12;1R".into()),
                Input::Char('x')
            ]
        );
    }

    #[test]
    fn other_sequences_are_ignored() {
        assert_eq!(
            parse_all(&[b"\x1b[A\x1bOP\x1b]11;rgb:0/0/0\x07\x1b]10;x\x1b\\\x1bxy"]),
            [Input::Char('y')]
        );
    }
}
