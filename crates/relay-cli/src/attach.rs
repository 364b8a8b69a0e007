//! `agent-relay attach RUN_ID STEP [--read-only]`: a live interactive agent's terminal in
//! yours. Its screen is drawn from the transcript and followed as it grows; what you type
//! goes to the agent through the session's attach socket, and relayed messages for it
//! wait until you leave. Ctrl+] detaches; the agent goes on.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use relay_engine::runs::Standing;
use relay_engine::snapshot::{Snapshot, StepState};

use crate::error::{CliError, CliResult, Exit};

/// The key that detaches (Ctrl+]).
pub const DETACH: u8 = 0x1d;

/// `attach` options.
#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Run id, a unique prefix of one, or `last`.
    pub run_id: String,
    /// The step (or pattern node) whose agent to attach to.
    pub step: String,
    /// Only watch: nothing you type reaches the agent, and messages keep flowing.
    #[arg(long)]
    pub read_only: bool,
}

/// The transcript of the live attempt of `step` in the run in `dir`.
fn live_transcript(dir: &Path, step: &str) -> CliResult<PathBuf> {
    let info = relay_engine::runs::run_info(dir);
    if info.status != Standing::Running {
        return Err(CliError::invalid(format!(
            "run {} is not running ({})",
            info.run_id,
            info.status.as_str()
        )));
    }
    let snap = Snapshot::load(dir)
        .map_err(|e| CliError::runtime(format!("cannot read the run's events: {e}")))?;
    let Some(rec) = snap.steps.get(step) else {
        let known: Vec<&str> = snap.steps.keys().map(String::as_str).collect();
        return Err(CliError::invalid(format!(
            "no step `{step}` has started in run {} (started: {})",
            info.run_id,
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
    };
    if rec.state != StepState::Running {
        return Err(CliError::invalid(format!(
            "step `{step}` is not running; there is no live agent to attach to"
        )));
    }
    let path =
        relay_engine::store::step_dir_of(dir, step).join(format!("attempt-{}.pty", rec.attempts));
    if !path.exists() {
        return Err(CliError::invalid(format!(
            "step `{step}` runs its agent one-shot (`interactive: false`); it has no terminal to attach to"
        )));
    }
    Ok(path)
}

/// Connects to the session and waits for its greeting.
fn connect(transcript: &Path) -> CliResult<UnixStream> {
    let path = relay_broker::session::attach::socket_path(transcript);
    let mut s = UnixStream::connect(&path).map_err(|e| {
        CliError::runtime(format!(
            "cannot reach the agent's session at {}: {e} (has it just ended?)",
            path.display()
        ))
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| CliError::runtime(e.to_string()))?;
    let mut greeting = [0u8; 1];
    match s.read_exact(&mut greeting) {
        Ok(()) if greeting[0] == relay_broker::session::attach::GREETING => Ok(s),
        _ => Err(CliError::runtime(
            "the agent's session did not take the attach (someone else may be attached)",
        )),
    }
}

/// The screen so far, as a frame to print: cleared, the rendered rows, the cursor.
fn first_frame(transcript: &Path) -> (Vec<u8>, u64) {
    let size = relay_engine::Settings::from_env().pty_size;
    let mut t = relay_dashboard::screen::Terminal::new(transcript, 0, size.0, size.1);
    while t.refresh().unwrap_or(false) {}
    // Followed from what the frame holds: bytes written after the last read are not
    // skipped (the file's length, read after, would count them as shown).
    let offset = t.offset();
    let v = t.view();
    let mut frame = b"\x1b[2J\x1b[H".to_vec();
    frame.extend(v.rows.join("\r\n").into_bytes());
    frame.extend(format!("\x1b[{};{}H", v.cursor.0 + 1, v.cursor.1 + 1).into_bytes());
    (frame, offset)
}

/// `agent-relay attach`.
pub fn attach(args: AttachArgs) -> CliResult {
    use std::io::IsTerminal;
    let wd = crate::execute::workdir()?;
    let dir = relay_engine::runs::find_run(&wd, &args.run_id)?;
    let transcript = live_transcript(&dir, &args.step)?;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(CliError::invalid(
            "attach needs a terminal on stdin and stdout",
        ));
    }
    let mut session = if args.read_only {
        None
    } else {
        Some(connect(&transcript)?)
    };
    eprintln!(
        "attached to `{}`{}; Ctrl+] detaches",
        args.step,
        if args.read_only {
            " (read-only)"
        } else {
            "; relayed messages wait until you detach"
        }
    );
    ratatui::crossterm::terminal::enable_raw_mode()
        .map_err(|e| CliError::runtime(format!("cannot switch the terminal to raw mode: {e}")))?;
    let (frame, offset) = first_frame(&transcript);
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let done = done.clone();
        let transcript = transcript.clone();
        let dir = dir.clone();
        let step = args.step.clone();
        std::thread::spawn(move || follow(&transcript, &dir, &step, frame, offset, &done))
    };
    let (tx, keys) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut why = "detached";
    while !done.load(Ordering::Relaxed) {
        let Ok(bytes) = keys.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let (typed, leave) = match bytes.iter().position(|&b| b == DETACH) {
            Some(i) => (&bytes[..i], true),
            None => (&bytes[..], false),
        };
        if let Some(s) = &mut session
            && !typed.is_empty()
            && s.write_all(typed).is_err()
        {
            why = "the session ended";
            break;
        }
        if leave {
            break;
        }
    }
    if done.load(Ordering::Relaxed) {
        why = "the step ended";
    }
    done.store(true, Ordering::Relaxed);
    drop(session);
    let _ = follower.join();
    let _ = ratatui::crossterm::terminal::disable_raw_mode();
    eprintln!("\r\n{why}: `{}` goes on without you", args.step);
    Ok(Exit::Success)
}

/// Prints the first frame, then every byte the transcript gains, until `done` or the step
/// stops running (then sets `done`).
fn follow(
    transcript: &Path,
    dir: &Path,
    step: &str,
    frame: Vec<u8>,
    mut offset: u64,
    done: &AtomicBool,
) {
    let mut out = std::io::stdout();
    let _ = out.write_all(&frame);
    let _ = out.flush();
    let mut checks = 0u32;
    while !done.load(Ordering::Relaxed) {
        if let Ok(mut f) = std::fs::File::open(transcript)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_ok() && !buf.is_empty() {
                offset += buf.len() as u64;
                let _ = out.write_all(&buf);
                let _ = out.flush();
            }
        }
        checks += 1;
        if checks.is_multiple_of(20) {
            let running = Snapshot::load(dir)
                .ok()
                .and_then(|s| s.steps.get(step).map(|r| r.state == StepState::Running))
                .unwrap_or(false);
            if !running {
                done.store(true, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
