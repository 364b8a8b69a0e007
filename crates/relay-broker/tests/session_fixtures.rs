//! Screen reading on recorded PTY byte streams (tests/fixtures, made by record.py): the
//! rendered rows, `/exit` detection and output extraction over real redraws (bash line
//! editing, a Python REPL) and a synthetic spinner followed by a coloured `/exit`.

use std::collections::HashSet;
use std::time::Duration;

use relay_broker::session::detect::{self, Injected, Rules};
use relay_broker::session::driver::{Action, Driver, DriverConfig, Terminal};
use relay_broker::session::screen::Screen;
use relay_broker::session::{SessionEnd, SessionEvent, SessionTiming};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn render(bytes: &[u8], chunk: usize) -> Vec<String> {
    let mut screen = Screen::new(24, 80);
    for piece in bytes.chunks(chunk.max(1)) {
        screen.process(piece);
    }
    screen.all_rows()
}

/// The rows from the echo of `first_typed` up to (not including) the agent's `/exit`.
fn region<'a>(rows: &'a [String], first_typed: &str, injected: &Injected) -> &'a [String] {
    let start = detect::echo_row(rows, &detect::echo_probe(first_typed)).expect("echo row");
    let rows = &rows[start..];
    let end = detect::find_exit(rows, injected, &Rules::for_cli(None)).expect("exit row");
    &rows[..end]
}

#[test]
fn bash_line_editing_renders_the_final_line() {
    let rows = render(&fixture("bash_line_editing.bin"), 4096);
    // Backspace and a mid-line insertion left only the edited command on screen.
    assert!(rows.contains(&"❯ echo hello world".to_owned()), "{rows:#?}");
    assert!(rows.contains(&"hello world".to_owned()), "{rows:#?}");
    assert!(!rows.iter().any(|r| r.contains("helo")), "{rows:#?}");
    // The spinner's frames were overwritten by carriage returns; only "done" stays.
    assert!(rows.contains(&"done".to_owned()));
    assert!(
        !rows
            .iter()
            .any(|r| r.contains("working") && !detect::is_prompt_row(r) && !r.contains("done;")),
        "{rows:#?}"
    );
}

#[test]
fn bash_exit_is_the_printed_row_not_the_typed_command() {
    let rows = render(&fixture("bash_line_editing.bin"), 4096);
    let rules = Rules::for_cli(None);
    let i = detect::find_exit(&rows, &Injected::new(), &rules).expect("an /exit row");
    assert_eq!(rows[i], "/exit");
    assert!(rows[i - 1].starts_with("❯ printf"), "{rows:#?}");
}

#[test]
fn bash_output_is_what_the_commands_printed() {
    let rows = render(&fixture("bash_line_editing.bin"), 4096);
    let typed: Vec<String> = [
        "echo hello world",
        "for f in / - '\\\\' '|'; do printf '\\r%s working' \"$f\"; sleep 0.05; done; printf '\\r\\033[2Kdone\\n'",
        "printf '\\033[1;32m/exit\\033[0m\\n'",
    ]
    .map(String::from)
    .to_vec();
    let rules = Rules::for_cli(None);
    let injected = Injected::of(&typed, &rules);
    let out = detect::extract_output(
        region(&rows, &typed[0], &injected),
        &rules,
        &injected,
        &HashSet::new(),
    );
    // The wrapped second row of the long typed command is part of its echo.
    assert_eq!(out, "hello world\ndone");
}

#[test]
fn split_reads_render_the_same_screen() {
    for name in [
        "bash_line_editing.bin",
        "python_repl.bin",
        "synthetic_spinner_exit.bin",
    ] {
        let bytes = fixture(name);
        let whole = render(&bytes, bytes.len());
        for chunk in [1, 3, 17, 64] {
            assert_eq!(render(&bytes, chunk), whole, "{name} in chunks of {chunk}");
        }
    }
}

#[test]
fn python_repl_exit_and_output() {
    let rows = render(&fixture("python_repl.bin"), 4096);
    let rules = Rules::for_cli(None);
    let i = detect::find_exit(&rows, &Injected::new(), &rules).expect("an /exit row");
    assert_eq!(rows[i], "/exit");
    assert_eq!(rows[i - 1], ">>> print('/exit')");
    let typed: Vec<String> = ["print('spam')", "for i in range(2):", "    print('row', i)"]
        .map(String::from)
        .to_vec();
    let injected = Injected::of(&typed, &rules);
    let out = detect::extract_output(
        region(&rows, &typed[0], &injected),
        &rules,
        &injected,
        &HashSet::new(),
    );
    // `...` continuation prompts are not one of the CLIs' prompt glyphs, so they stay.
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with("...")).collect();
    assert_eq!(lines, ["spam", "row 0", "row 1"], "{out}");
}

#[test]
fn synthetic_spinner_then_coloured_exit() {
    let rows = render(&fixture("synthetic_spinner_exit.bin"), 4096);
    assert!(!rows.iter().any(|r| r.contains("Thinking")), "{rows:#?}");
    let rules = Rules::for_cli(None);
    let injected = Injected::of(&["do the thing"], &rules);
    let out = detect::extract_output(
        region(&rows, "do the thing", &injected),
        &rules,
        &injected,
        &HashSet::new(),
    );
    assert_eq!(out, "First line of the answer\nsecond line, bold part");
}

/// The whole driver over the synthetic fixture: readiness, typing, confirmation, exit.
#[test]
fn the_driver_reads_the_synthetic_session_end_to_end() {
    let bytes = fixture("synthetic_spinner_exit.bin");
    let prompt_end = "\x1b[?2004h\u{276f} ".len();
    let echo_end = prompt_end + "do the thing".len();
    let ms = Duration::from_millis;
    let timing = SessionTiming {
        settle: ms(100),
        enter_delay: ms(50),
        ..SessionTiming::default()
    };
    let t0 = tokio::time::Instant::now();
    let mut d = Driver::new(
        DriverConfig {
            timing,
            nudge: None,
            timeout: None,
            rules: Rules::for_cli(None),
            typed: "do the thing".into(),
            size: (24, 80),
        },
        t0,
    );
    d.on_output(&bytes[..prompt_end], t0);
    let a = d.on_tick(t0 + ms(100));
    assert_eq!(a[0], Action::Emit(SessionEvent::Ready { fallback: false }));
    assert_eq!(
        a[1],
        Action::Terminal(Terminal::Write(b"\x1b[200~do the thing\x1b[201~".to_vec()))
    );
    d.on_output(&bytes[prompt_end..echo_end], t0 + ms(110));
    // Enter goes once the app has been quiet for the Enter pause since echoing the paste.
    assert_eq!(d.on_tick(t0 + ms(150)), []);
    assert_eq!(
        d.on_tick(t0 + ms(160)),
        [Action::Terminal(Terminal::Write(b"\r".to_vec()))]
    );
    let mut actions = Vec::new();
    for piece in bytes[echo_end..].chunks(5) {
        actions.extend(d.on_output(piece, t0 + ms(170)));
    }
    assert_eq!(
        actions,
        [
            Action::Emit(SessionEvent::TaskDelivered { attempts: 1 }),
            Action::Emit(SessionEvent::ExitRequested),
            Action::Terminal(Terminal::End(SessionEnd::ExitRequested)),
        ]
    );
    assert_eq!(
        d.output(),
        "First line of the answer\nsecond line, bold part"
    );
}
