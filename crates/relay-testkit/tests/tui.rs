//! The real `fake-agent` binary in interactive mode, driven through a real PTY the way
//! the coordinator drives the real CLIs.

// clippy's allow-unwrap-in-tests covers #[test] fns only, not these helpers.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, ExitStatus, MasterPty, PtySize, native_pty_system};

const DEADLINE: Duration = Duration::from_secs(20);

type Screen = Arc<(Mutex<Vec<u8>>, Condvar)>;

struct Session {
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    output: Screen,
    _master: Box<dyn MasterPty + Send>,
    dir: tempfile::TempDir,
}

impl Session {
    fn spawn(cli: &str, args: &[&str], env: &[(&str, &str)]) -> Session {
        let dir = tempfile::tempdir().unwrap();
        relay_testkit::install_fake_clis(&dir.path().join("bin")).unwrap();
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols: 120,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut cmd = CommandBuilder::new(dir.path().join("bin").join(cli));
        cmd.args(args);
        cmd.cwd(dir.path());
        for key in [
            "FAKE_AGENT_LOG",
            "FAKE_AGENT_QUERY_LOG",
            "FAKE_AGENT_STATE_DIR",
            "FAKE_AGENT_START_DELAY_MS",
        ] {
            cmd.env_remove(key);
        }
        // Nothing answers the start-up queries unless a test does; don't wait long.
        cmd.env("FAKE_AGENT_QUERY_TIMEOUT_MS", "20");
        cmd.env("FAKE_AGENT_THINK_MS", "50");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pty.slave.spawn_command(cmd).unwrap();
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().unwrap();
        let writer = pty.master.take_writer().unwrap();
        let output: Screen = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let (lock, cvar) = &*sink;
                lock.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(&buf[..n]);
                cvar.notify_all();
            }
        });
        Session {
            child,
            writer,
            output,
            _master: pty.master,
            dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.process_id().unwrap()
    }

    /// Bytes received so far.
    fn len(&self) -> usize {
        self.output.0.lock().unwrap().len()
    }

    fn text_before(&self, at: usize) -> String {
        String::from_utf8_lossy(&self.output.0.lock().unwrap()[..at]).into_owned()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.0.lock().unwrap()).into_owned()
    }

    /// Waits until `needle` appears at or after byte `from`; returns the offset after it.
    fn wait_for_after(&self, from: usize, needle: &str) -> usize {
        let deadline = Instant::now() + DEADLINE;
        let (lock, cvar) = &*self.output;
        let mut buf = lock.lock().unwrap();
        loop {
            if let Some(i) = buf
                .get(from..)
                .unwrap_or_default()
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
            {
                return from + i + needle.len();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {needle:?} after byte {from}; output so far:\n{:?}",
                String::from_utf8_lossy(&buf)
            );
            buf = cvar.wait_timeout(buf, left).unwrap().0;
        }
    }

    /// The rows of the screen a terminal would show, trailing blanks trimmed.
    fn rows(&self) -> Vec<String> {
        render(&self.output.0.lock().unwrap())
    }

    /// Waits until some row of the rendered screen reads exactly `row`.
    fn wait_for_row(&self, row: &str) {
        let deadline = Instant::now() + DEADLINE;
        let (lock, cvar) = &*self.output;
        let mut buf = lock.lock().unwrap();
        loop {
            let rows = render(&buf);
            if rows.iter().any(|r| r == row) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for the row {row:?}; screen:\n{}",
                rows.join("\n")
            );
            buf = cvar.wait_timeout(buf, left).unwrap().0;
        }
    }

    fn wait_for(&self, needle: &str) -> usize {
        self.wait_for_after(0, needle)
    }

    fn send(&mut self, bytes: &str) {
        self.writer.write_all(bytes.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    fn paste(&mut self, text: &str) {
        self.send(&format!("\x1b[200~{text}\x1b[201~"));
    }

    /// Enter as its own write after a pause, as the coordinator sends it.
    fn enter(&mut self) {
        std::thread::sleep(Duration::from_millis(100));
        self.send("\r");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit; output:\n{:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn render(bytes: &[u8]) -> Vec<String> {
    let size = |n: u16| std::num::NonZeroU16::new(n).unwrap();
    let mut parser = vt100::Parser::new(size(40), size(120), 0);
    parser.process(bytes);
    parser
        .screen()
        .rows(0, 120)
        .map(|r| r.trim_end().to_string())
        .collect()
}

fn kill(sig: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn banner_prompt_and_ready_cue_of_every_cli() {
    /// (cli, interactive argv, prompt, ready cue, quit command)
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static str,
        Option<&'static str>,
        &'static str,
    );
    let cases: [Case; 7] = [
        (
            "claude",
            &["--dangerously-skip-permissions"],
            "❯ ",
            Some("? for shortcuts"),
            "/exit",
        ),
        (
            "codex",
            &["--dangerously-bypass-approvals-and-sandbox"],
            "> ",
            Some("? for shortcuts"),
            "/exit",
        ),
        (
            "gemini",
            &["--yolo"],
            "> ",
            Some("Type your message"),
            "/quit",
        ),
        ("opencode", &[], "> ", Some("ctrl+p commands"), "/exit"),
        ("aider", &["--yes-always", "--no-git"], "> ", None, "/exit"),
        ("goose", &["session"], "> ", None, "/exit"),
        ("droid", &[], "> ", None, "/exit"),
    ];
    for (cli, args, prompt, cue, quit) in cases {
        let mut s = Session::spawn(cli, args, &[]);
        let at = s.wait_for("\x1b[?2004h");
        let at = s.wait_for_after(at, &format!("Fake {cli} agent\r\n\r\n"));
        let at = s.wait_for_after(at, prompt);
        if let Some(cue) = cue {
            s.wait_for_after(at, cue);
        }
        s.send(quit);
        s.wait_for_after(at, quit);
        s.enter();
        let status = s.wait_exit();
        assert!(status.success(), "{cli}: {status:?}");
    }
}

#[test]
fn pasted_task_runs_and_prints_exit_but_the_agent_stays() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let log_path = log.path().to_str().unwrap().to_string();
    let mut s = Session::spawn(
        "claude",
        &["--dangerously-skip-permissions"],
        &[("FAKE_AGENT_LOG", &log_path), ("AGENT_RELAY_STEP", "ping")],
    );
    s.wait_for("? for shortcuts");
    s.paste("answer [[fake:say=PONG\\nsecond line]] [[fake:write=out.txt:done]]");
    s.wait_for_row("❯ answer [[fake:say=PONG\\nsecond line]] [[fake:write=out.txt:done]]");
    assert!(
        !s.rows().iter().any(|r| r == "? for shortcuts"),
        "the hint stays hidden while there is input"
    );
    let at = s.len();
    s.enter();
    let at = s.wait_for_after(at, "Thinking");
    let at = s.wait_for_after(at, "\r\x1b[2K● PONG\r\n  second line\r\n");
    let at = s.wait_for_after(at, "/exit\r\n");
    // After /exit the prompt and its hint come back; the agent keeps running.
    s.wait_for_after(at, "? for shortcuts");
    assert!(s.child.try_wait().unwrap().is_none(), "exited by itself");
    assert_eq!(std::fs::read_to_string(s.path("out.txt")).unwrap(), "done");
    let pid = s.pid();
    assert_eq!(
        std::fs::read_to_string(log.path()).unwrap(),
        format!("start ping {pid}\nend ping {pid}\n")
    );

    s.send("/exit");
    s.enter();
    assert!(s.wait_exit().success());
    assert_eq!(
        std::fs::read_to_string(log.path()).unwrap().lines().count(),
        2,
        "end is logged once"
    );
}

#[test]
fn cr_inside_a_paste_is_a_line_break_not_a_submit() {
    let mut s = Session::spawn("codex", &[], &[]);
    s.wait_for("? for shortcuts");
    s.paste("first line\r[[fake:echo-task]]");
    s.wait_for_row("> first line");
    s.wait_for_row("  [[fake:echo-task]]");
    assert!(!s.text().contains("Thinking"), "the paste was submitted");
    s.enter();
    let at = s.wait_for("• first line\r\n  [fake:echo-task]]\r\n");
    s.wait_for_after(at, "/exit\r\n");
}

#[test]
fn typed_input_is_echoed_and_backspace_erases() {
    let mut s = Session::spawn("gemini", &["--yolo"], &[]);
    s.wait_for("Type your message");
    s.send("[[fake:echo-task]] xy");
    s.wait_for_row("> [[fake:echo-task]] xy");
    s.send("\x7f");
    s.wait_for_row("> [[fake:echo-task]] x");
    s.send("\x7f\x7f");
    s.wait_for_row("> [[fake:echo-task]]");
    s.send(" z");
    s.enter();
    s.wait_for("✦ [fake:echo-task]] z\r\n");
}

#[test]
fn query_answers_are_logged_in_order_and_not_typed() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let log_path = log.path().to_str().unwrap().to_string();
    let mut s = Session::spawn(
        "claude",
        &[],
        &[
            ("FAKE_AGENT_QUERY_LOG", &log_path),
            ("FAKE_AGENT_QUERY_TIMEOUT_MS", "20000"),
        ],
    );
    let at = s.wait_for("\x1b[c");
    assert!(
        !s.text().contains("\x1b[6n"),
        "CPR asked before DA1 was answered"
    );
    s.send("\x1b[?62;22c");
    s.wait_for_after(at, "\x1b[6n");
    s.send("\x1b[12;1R");
    s.wait_for("? for shortcuts");
    assert_eq!(
        std::fs::read_to_string(log.path()).unwrap(),
        "DA1 ESC[?62;22c\nCPR ESC[12;1R\n"
    );
    s.paste("[[fake:echo-task]]");
    s.enter();
    s.wait_for("● [fake:echo-task]]\r\n");
    assert!(!s.text().contains("62;22c"));
    assert!(!s.text().contains("12;1R"));
}

#[test]
fn idle_agent_answers_relay_messages_and_obeys_a_nudge() {
    let mut s = Session::spawn("claude", &[], &[]);
    s.wait_for("? for shortcuts");
    s.paste("[[fake:no-exit]][[fake:obey-nudge]][[fake:say=waiting]]");
    s.enter();
    let at = s.wait_for("● waiting\r\n");
    let at = s.wait_for_after(at, "? for shortcuts");
    assert!(
        !s.text_before(at).contains("/exit"),
        "an idle agent printed /exit"
    );
    s.paste("Relay message from alice: hi");
    s.enter();
    let at = s.wait_for_after(at, "● got: Relay message from alice: hi\r\n");
    let at = s.wait_for_after(at, "● ok, finishing\r\n");
    s.wait_for_after(at, "/exit\r\n");
}

#[test]
fn exit_styles() {
    for (cli, style, drawn) in [
        ("claude", "color", "\x1b[1;32m/exit\x1b[0m\r\n"),
        ("codex", "spinner", " Finishing\r/exit\x1b[K\r\n"),
        ("gemini", "glyph", "✦ /exit\r\n"),
        ("opencode", "glyph", "\r\x1b[2K     /exit\r\n"),
        ("droid", "plain", "\r\x1b[2K/exit\r\n"),
    ] {
        let mut s = Session::spawn(cli, &[], &[]);
        s.wait_for("\x1b[?2004h");
        s.paste(&format!("[[fake:exit-style={style}]]"));
        s.enter();
        s.wait_for(drawn);
    }
}

#[test]
fn aider_submits_on_line_feed() {
    let mut s = Session::spawn("aider", &[], &[]);
    s.wait_for("Fake aider agent");
    s.send("[[fake:say=hi]]\n");
    let at = s.wait_for("\x1b[2Khi\r\n");
    s.wait_for_after(at, "/exit\r\n");
    s.wait_for_row("hi");
    s.wait_for_row("/exit");
}

#[test]
fn sigterm_and_sighup_end_the_tui_with_0_unless_ignored() {
    let mut s = Session::spawn("claude", &[], &[]);
    s.wait_for("? for shortcuts");
    kill("-TERM", s.pid());
    assert!(s.wait_exit().success());

    let mut s = Session::spawn("gemini", &[], &[]);
    s.wait_for("Type your message");
    kill("-HUP", s.pid());
    assert!(s.wait_exit().success());

    let mut s = Session::spawn("claude", &[], &[]);
    s.wait_for("? for shortcuts");
    s.paste("[[fake:ignore-term]][[fake:no-exit]][[fake:say=stuck]]");
    s.enter();
    let at = s.wait_for("● stuck\r\n");
    s.wait_for_after(at, "? for shortcuts");
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .unwrap();
    assert_ne!(ignored & (1 << (libc::SIGTERM - 1)), 0);
    assert_ne!(ignored & (1 << (libc::SIGHUP - 1)), 0);
    kill("-TERM", s.pid());
    kill("-HUP", s.pid());
    // Still answering: the prompt takes a new message.
    s.paste("Relay message from x: still there?");
    s.enter();
    s.wait_for_after(at, "got: Relay message from x: still there?");
    kill("-KILL", s.pid());
    assert!(!s.wait_exit().success());
}

#[test]
fn unknown_marker_in_a_typed_task_exits_2() {
    let mut s = Session::spawn("claude", &[], &[]);
    s.wait_for("? for shortcuts");
    s.paste("[[fake:dance]]");
    s.enter();
    s.wait_for("fake-agent: unknown marker dance");
    assert_eq!(s.wait_exit().exit_code(), 2);
}
