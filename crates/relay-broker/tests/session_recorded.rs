//! Recorded sessions of the real CLIs (tests/fixtures/real/<cli>-<version>.jsonl, made
//! by crates/relay-testkit/real-clis/record.sh against the mock model) replayed into the
//! session driver on a fake clock: the output arrives at the recorded moments, the
//! driver's own decisions are checked (ready from the screen, the task taken, a relayed
//! message typed into the live session and taken, the agent's `/exit`, clean output).
//! A CLI update that changes its screen fails here, not in a user's run.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use relay_broker::session::detect::{self, Readiness, Rules};
use relay_broker::session::driver::{Action, Driver, DriverConfig, Messaging};
use relay_broker::session::screen::Screen;
use relay_broker::session::{SessionEnd, SessionEvent, SessionTiming};
use relay_messaging::MessageId;
use relay_spec::Cli;
use tokio::time::Instant;

/// One recorded session.
struct Recording {
    rows: u16,
    cols: u16,
    /// (seconds since start, output bytes)
    out: Vec<(f64, Vec<u8>)>,
    /// (seconds since start, bytes written) for every paste the recorder made.
    pastes: Vec<(f64, String)>,
}

fn b64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn load(name: &str) -> Recording {
    let path = format!("{}/tests/fixtures/real/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().expect("header")).unwrap();
    let mut rec = Recording {
        rows: header["rows"].as_u64().unwrap() as u16,
        cols: header["cols"].as_u64().unwrap() as u16,
        out: Vec::new(),
        pastes: Vec::new(),
    };
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["t"].as_f64().unwrap();
        if let Some(o) = v["out"].as_str() {
            rec.out.push((t, b64(o)));
        } else if let Some(i) = v["in"].as_str() {
            let bytes = b64(i);
            if let Some(text) = bytes
                .strip_prefix(b"\x1b[200~")
                .and_then(|b| b.strip_suffix(b"\x1b[201~"))
            {
                rec.pastes
                    .push((t, String::from_utf8_lossy(text).into_owned()));
            }
        }
    }
    rec
}

fn fixture_for(cli: &str) -> String {
    let dir = format!("{}/tests/fixtures/real", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{cli}-")) && n.ends_with(".jsonl"))
        .collect();
    names.sort();
    names
        .pop()
        .unwrap_or_else(|| panic!("no recording of {cli} in {dir}"))
}

/// What the driver did over a replay.
struct Replay {
    events: Vec<SessionEvent>,
    /// How many writes typed the task's text.
    task_typed: usize,
    delivered: Vec<MessageId>,
    end: Option<SessionEnd>,
    output: String,
}

/// Replays `rec` into a driver for `cli`: output at its recorded moments, ticks at every
/// deadline in between, the relayed message offered shortly before the recorder typed
/// it. The driver's writes go nowhere (the recording reacts to what the recorder typed).
fn replay(cli: Cli, rec: &Recording) -> Replay {
    let ms = Duration::from_millis;
    let (task_at, task) = rec.pastes[0].clone();
    let probe = task.clone();
    let (message_at, message) = rec.pastes[1].clone();
    let timing = SessionTiming {
        idle_threshold: None,
        ..SessionTiming::default()
    };
    let t0 = Instant::now();
    let at = |s: f64| t0 + Duration::from_secs_f64(s);
    let mut d = Driver::new(
        DriverConfig {
            timing: timing.clone(),
            nudge: None,
            timeout: Some(Duration::from_secs(600)),
            rules: Rules::for_cli(Some(cli)),
            typed: task,
            size: (rec.rows, rec.cols),
        },
        t0,
    );
    let mut r = Replay {
        events: Vec::new(),
        task_typed: 0,
        delivered: Vec::new(),
        end: None,
        output: String::new(),
    };
    let take = |actions: Vec<Action>, r: &mut Replay| {
        for a in actions {
            match a {
                Action::Emit(e) => r.events.push(e),
                Action::Messaging(Messaging::Delivered(id)) => r.delivered.push(id),
                Action::Terminal(relay_broker::session::driver::Terminal::End(e)) => {
                    r.end.get_or_insert(e);
                }
                Action::Terminal(relay_broker::session::driver::Terminal::Write(w))
                    if String::from_utf8_lossy(&w).contains(&probe) =>
                {
                    r.task_typed += 1;
                }
                _ => {}
            }
        }
    };
    // The message is offered before the recorder typed it, by the time the driver needs
    // to be quiet and pause before Enter.
    let offer_at = at(message_at) - timing.settle - timing.enter_delay - ms(50);
    let mut offered = false;
    let mut spins = 0;
    let mut now = t0;
    for (t, bytes) in &rec.out {
        let when = at(*t);
        loop {
            if !offered && offer_at <= when && d.wants_message() {
                let due = offer_at.max(now);
                take(d.on_tick(due), &mut r);
                d.offer_message(MessageId(1), message.clone(), due);
                offered = true;
                now = due;
            }
            match d.next_deadline(now) {
                Some(due) if due <= when => {
                    // A deadline never stays in the past: the driver acts on it or moves it.
                    assert!(
                        due >= now || spins < 3,
                        "the driver spins at a past deadline"
                    );
                    spins = if due <= now { spins + 1 } else { 0 };
                    now = due.max(now);
                    take(d.on_tick(now), &mut r);
                }
                _ => break,
            }
            if r.end.is_some() {
                break;
            }
        }
        if r.end.is_some() {
            break;
        }
        now = when.max(now);
        take(d.on_output(bytes, now), &mut r);
        take(d.on_tick(now), &mut r);
        if r.end.is_some() {
            break;
        }
    }
    let _ = task_at;
    r.output = d.output().to_owned();
    r
}

fn check(cli: Cli) {
    let name = fixture_for(cli.as_str());
    let rec = load(&name);
    let r = replay(cli, &rec);
    let kinds: Vec<&SessionEvent> = r.events.iter().collect();
    assert_eq!(
        kinds.first(),
        Some(&&SessionEvent::Ready { fallback: false }),
        "{name}: ready from the screen: {:?}",
        r.events
    );
    // The replayed screen reacts when the recorder typed, not when the driver did, so
    // the driver may take a second attempt; it must never type the task twice.
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, SessionEvent::TaskDelivered { .. })),
        "{name}: {:?}",
        r.events
    );
    assert_eq!(r.task_typed, 1, "{name}: the task was typed once");
    assert_eq!(
        r.delivered,
        [MessageId(1)],
        "{name}: the message: {:?}",
        r.events
    );
    assert_eq!(
        r.end,
        Some(SessionEnd::ExitRequested),
        "{name}: {:?}",
        r.events
    );
    let lines: Vec<&str> = r
        .output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        lines.contains(&"PONG_TASK") && lines.contains(&"PONG_MSG"),
        "{name}: output {:?}",
        r.output
    );
    assert!(
        !r.output.contains("REPLY:"),
        "{name}: the echo of what was typed is not output: {:?}",
        r.output
    );
}

#[test]
fn claude_recorded() {
    check(Cli::Claude);
}

#[test]
fn codex_recorded() {
    check(Cli::Codex);
}

#[test]
fn gemini_recorded() {
    check(Cli::Gemini);
}

#[test]
fn opencode_recorded() {
    check(Cli::Opencode);
}

#[test]
fn aider_recorded() {
    check(Cli::Aider);
}

/// The screen rules alone, at the moment the recorder typed the task: the screen is ready
/// by the CLI's cue or by the cursor on its input line, and shows no dialog.
#[test]
fn every_recorded_ready_screen_is_ready_by_the_rules() {
    for (cli, generic_too) in [
        (Cli::Claude, true),
        (Cli::Codex, true),
        (Cli::Gemini, true),
        (Cli::Opencode, true),
        (Cli::Aider, true),
    ] {
        let name = fixture_for(cli.as_str());
        let rec = load(&name);
        let task_at = rec.pastes[0].0;
        let mut screen = Screen::new(rec.rows, rec.cols);
        for (t, bytes) in rec.out.iter().filter(|(t, _)| *t < task_at) {
            let _ = t;
            screen.process(bytes);
        }
        let visible = screen.visible_rows();
        let ready = detect::readiness(&visible, screen.cursor(), &Rules::for_cli(Some(cli)));
        assert!(
            matches!(ready, Readiness::Cue | Readiness::InputLine),
            "{name}: {ready:?} at {:?} in {visible:#?}",
            screen.cursor()
        );
        if generic_too {
            // Without the per-CLI cue the cursor on the input line is enough.
            let generic = detect::readiness(&visible, screen.cursor(), &Rules::for_cli(None));
            assert_eq!(
                generic,
                Readiness::InputLine,
                "{name}: {:?} in {visible:#?}",
                screen.cursor()
            );
        }
    }
}

/// A real gemini run that broke us: gemini showed its prompt and took the task, then said
/// "Initializing... Prompts will be queued." and listed the task as queued; the relayed
/// message typed meanwhile was merged into the same prompt, so the task's own reply never
/// came. While gemini shows that, it is busy by its rules: no message is typed.
#[test]
fn gemini_queueing_prompts_is_busy() {
    let path = format!(
        "{}/tests/fixtures/real/gemini-0.61.0-typed-while-initializing.pty",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    let message = bytes
        .windows(b"Relay message from send-g".len())
        .position(|w| w == b"Relay message from send-g")
        .expect("the message's echo");
    let mut screen = Screen::new(40, 120);
    screen.process(&bytes[..message]);
    let visible = screen.visible_rows();
    let gemini = Rules::for_cli(Some(Cli::Gemini));
    assert!(detect::busy(&visible, &gemini), "{visible:#?}");
    assert_eq!(
        detect::readiness(&visible, screen.cursor(), &gemini),
        Readiness::NotYet
    );
}

/// A real gemini run that broke the first fix: gemini's "Initializing... Prompts will be
/// queued." line stays in the conversation after start-up, so taken as "busy" it kept a
/// relayed message out for good; and without `/exit`, gemini's footer rows above its input
/// box were read as output. Once the reply is there, gemini is not busy, and the output is
/// the reply alone.
#[test]
fn gemini_after_initializing_is_not_busy_and_its_footer_is_not_output() {
    let path = format!(
        "{}/tests/fixtures/real/gemini-0.61.0-after-initializing.pty",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    let mut screen = Screen::new(40, 120);
    screen.process(&bytes);
    let rows = screen.all_rows();
    let gemini = Rules::for_cli(Some(Cli::Gemini));
    assert!(!detect::busy(&screen.visible_rows(), &gemini), "{rows:#?}");
    let start = detect::echo_row(&rows, "REPLY:PONG_GEMINI_PTY").expect("the task's echo");
    let end = usize::from(screen.cursor().0) + 1;
    let task = "REPLY:PONG_GEMINI_PTY";
    let injected = detect::Injected::of(&[task], &gemini);
    let out = detect::extract_output(
        &rows[start..end],
        &gemini,
        &injected,
        &std::collections::HashSet::new(),
    );
    // The peers note and exit line of the task are its echo (continuation rows).
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !l.contains("Other agents")
                && !l.contains("--channel")
                && !l.contains("lines starting")
                && !l.contains("When you have finished")
        })
        .collect();
    assert_eq!(lines, ["PONG_GEMINI_PTY"], "{out:?}");
}

/// A real claude run that broke us under load: the task, pasted, showed as
/// `[Pasted text #1 +4 lines]` on the input line; the Enter after it was swallowed while
/// the footer changed, the task was taken as delivered, and the relayed message typed next
/// went into the same prompt. Up to the message's echo, the input line holds the
/// placeholder: the paste is pending, so neither delivery nor a message may follow.
#[test]
fn claude_collapsed_paste_on_the_input_line_is_pending() {
    let path = format!(
        "{}/tests/fixtures/real/claude-2.1.197-paste-not-submitted.pty",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    // claude draws the spaces of the echo as cursor moves: find the sender's name.
    let message = bytes
        .windows(b"send-c".len())
        .position(|w| w == b"send-c")
        .expect("the message's echo");
    let mut screen = Screen::new(40, 120);
    screen.process(&bytes[..message]);
    let visible = screen.visible_rows();
    let row = &visible[usize::from(screen.cursor().0)];
    assert!(detect::paste_placeholder(row), "{row:?} in {visible:#?}");
}

/// A real gemini run that broke us with four TUIs starting at once: the pasted task showed
/// as `[Pasted Text: 511 chars]` in gemini's input box, the Enter after it was swallowed,
/// and the task was taken as delivered; the agent then sat there until its timeout.
/// gemini keeps its cursor one row below the text of its input box, so the placeholder is
/// on the row above the cursor's: still pending.
#[test]
fn gemini_collapsed_paste_above_the_cursor_is_pending() {
    let path = format!(
        "{}/tests/fixtures/real/gemini-0.61.0-paste-not-submitted.pty",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    let mut screen = Screen::new(40, 120);
    screen.process(&bytes);
    let visible = screen.visible_rows();
    let at = usize::from(screen.cursor().0);
    assert!(!detect::paste_placeholder(&visible[at]), "{visible:#?}");
    assert!(
        detect::paste_placeholder(&visible[at - 1]),
        "{:?} in {visible:#?}",
        visible[at - 1]
    );
}

/// A real gemini terminal kept open from an earlier step, given its next task 200 ms
/// after it printed `/exit`: it took the Enter after the pasted task as a line break and
/// redrew its input box a row higher (its paste hint above the box gone), so the cursor
/// stayed on the same row with the text's last row right above it. The task was taken
/// as delivered and the agent sat until its timeout. That is a line break, not a submit.
#[test]
fn gemini_line_break_with_the_box_moved_up_is_no_submit() {
    let path = format!(
        "{}/tests/fixtures/real/gemini-0.61.0-continued-enter-line-break.pty",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap();
    // The frame with the pasted task (after the screen the earlier task left) ends with
    // the cursor after its last row.
    let pasted = bytes
        .windows(b"SECOND_GEMINIPTY".len())
        .position(|w| w == b"SECOND_GEMINIPTY")
        .expect("the pasted task");
    let frame = b"\x1b[4A\x1b[9G";
    let at_enter = pasted
        + bytes[pasted..]
            .windows(frame.len())
            .position(|w| w == frame)
            .expect("the end of the pasted frame")
        + frame.len();
    let mut screen = Screen::new(40, 120);
    screen.process(&bytes[..at_enter]);
    let left = usize::from(screen.cursor().0);
    let mut before = screen.visible_rows();
    before.truncate(left + 1);
    assert!(before[left].ends_with("own)."), "{before:#?}");
    screen.process(&bytes[at_enter..]);
    let visible = screen.visible_rows();
    let row = usize::from(screen.cursor().0);
    assert_eq!(row, left, "the box moved up a row: {visible:#?}");
    assert!(
        detect::line_break_inserted(&before, left, &visible, row),
        "{visible:#?}"
    );
}
