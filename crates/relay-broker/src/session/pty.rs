//! The PTY side of a session: the CLI spawned as the leader of its own session and
//! process group, and three plain threads around it, because every PTY call blocks:
//! a reader that copies output to the transcript and into a bounded channel, a writer
//! that makes each keystroke message one `write`, and a waiter that reaps the child.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::unistd::{Pid, getpgid};
use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};
use tokio::sync::{mpsc, oneshot};

use super::SessionError;

/// Chunks of output buffered between the reader thread and the session; when full, the
/// reader stops reading and the app's writes block, which bounds memory.
const OUTPUT_CHUNKS: usize = 64;

/// Bytes asked for per read.
const READ_SIZE: usize = 16 * 1024;

/// What is needed to start the CLI.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: std::path::PathBuf,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Terminal size (rows, cols).
    pub size: (u16, u16),
    /// Permissions the kernel enforces on the CLI.
    pub sandbox: Option<crate::sandbox::Sandbox>,
}

/// A running CLI in a PTY.
pub struct Pty {
    /// Process group id (= the child's pid).
    pub pgid: u32,
    /// Output chunks from the reader thread.
    pub output: Output,
    /// The child's exit.
    pub exit: ExitWatch,
    input: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    /// Where the reader copies output; a session that continues for another step
    /// records into that step's transcript.
    transcript: Recording,
    threads: Vec<JoinHandle<()>>,
    // Kept for the session's lifetime; the reader and writer use their own duplicates.
    _master: Box<dyn MasterPty + Send>,
    // The sandbox's private temp directory lives as long as the session.
    _sandbox: Option<crate::sandbox::Prepared>,
}

/// Starts the CLI in a new PTY; output is also copied to `transcript`.
pub fn spawn(launch: &Launch, transcript: File) -> Result<Pty, SessionError> {
    let program = launch.argv.first().cloned().unwrap_or_default();
    let spawn_err = |reason: String| SessionError::Spawn {
        program: program.clone(),
        reason,
    };
    if program.is_empty() {
        return Err(spawn_err("empty argv".into()));
    }
    if !launch.cwd.is_dir() {
        // portable-pty silently falls back to $HOME for a missing directory.
        return Err(spawn_err(format!(
            "working directory {} does not exist",
            launch.cwd.display()
        )));
    }
    // Built before the terminal exists, so that a refusal leaves nothing to clean up.
    let prepared = match &launch.sandbox {
        Some(sandbox) => {
            let resolved = crate::process::which(&program)
                .unwrap_or_else(|| std::path::PathBuf::from(&program));
            crate::sandbox::prepare(sandbox, &resolved, &launch.env)
                .map_err(SessionError::Sandbox)?
        }
        None => None,
    };
    let (rows, cols) = launch.size;
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: rows.max(1),
            cols: cols.max(1),
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(|e| SessionError::Pty(format!("cannot open a pty: {e:#}")))?;

    // Taken before the child exists, so that failing here leaves nothing to clean up.
    let master = pair.master;
    let reader = master
        .try_clone_reader()
        .map_err(|e| SessionError::Pty(format!("cannot read the pty: {e:#}")))?;
    let writer = master
        .take_writer()
        .map_err(|e| SessionError::Pty(format!("cannot write the pty: {e:#}")))?;

    let mut cmd = CommandBuilder::from_argv(launch.argv.iter().map(Into::into).collect());
    cmd.cwd(&launch.cwd);
    cmd.env("TERM", "xterm-256color");
    for (k, v) in launch.env.iter().chain(
        prepared
            .iter()
            .flat_map(|p| p.env())
            .collect::<Vec<_>>()
            .iter(),
    ) {
        cmd.env(k, v);
    }
    let slave = pair.slave;
    let spawned = match &prepared {
        // portable-pty owns the child's pre_exec (session, controlling terminal, stray
        // descriptors closed), so the child is forked from a thread that restricted
        // itself first and inherits that.
        Some(p) => {
            let (slave, spawned) = crate::sandbox::spawn_confined(p, move || {
                let spawned = slave.spawn_command(cmd);
                (slave, spawned)
            })
            .map_err(|e| spawn_err(format!("cannot apply the agent's permissions: {e}")))?;
            drop(slave);
            spawned
        }
        None => {
            let spawned = slave.spawn_command(cmd);
            drop(slave);
            spawned
        }
    };
    // Only the child may hold the slave side (dropped above), so that reads end when
    // the child's session is gone.
    let mut child = spawned.map_err(|e| spawn_err(format!("{e:#}")))?;

    let Some(pid) = child.process_id() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(SessionError::Pty("the child has no process id".into()));
    };
    // portable-pty calls setsid() in the child, so the child leads its own group; ending
    // the session signals that whole group, so make sure.
    let leads_group = i32::try_from(pid)
        .ok()
        .and_then(|raw| getpgid(Some(Pid::from_raw(raw))).ok())
        .is_some_and(|pgid| i64::from(pgid.as_raw()) == i64::from(pid));
    if !leads_group {
        let _ = child.kill();
        let _ = child.wait();
        return Err(SessionError::Pty(format!(
            "child {pid} is not the leader of its own process group"
        )));
    }

    let (out_tx, out_rx) = mpsc::channel(OUTPUT_CHUNKS);
    let recording: Recording = Arc::new(Mutex::new(Some(transcript)));
    let transcript = recording.clone();
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let (exit_tx, exit_rx) = oneshot::channel();

    let mut threads = Vec::new();
    let thread = |name: &str| std::thread::Builder::new().name(format!("{name}-{pid}"));
    let spawn_thread = |r: std::io::Result<JoinHandle<()>>| {
        r.map_err(|e| SessionError::Pty(format!("cannot start a pty thread: {e}")))
    };
    let waiter = spawn_thread(thread("pty-wait").spawn(move || {
        let code = match child.wait() {
            Ok(status) if status.signal().is_none() => i32::try_from(status.exit_code()).ok(),
            _ => None,
        };
        let _ = exit_tx.send(code);
    }));
    match waiter {
        Ok(h) => threads.push(h),
        Err(e) => {
            crate::group::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            return Err(e);
        }
    }
    let started =
        spawn_thread(thread("pty-read").spawn(move || read_loop(reader, transcript, out_tx)))
            .and_then(|r| {
                threads.push(r);
                spawn_thread(thread("pty-write").spawn(move || write_loop(writer, in_rx)))
            });
    match started {
        Ok(h) => threads.push(h),
        Err(e) => {
            crate::group::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            return Err(e);
        }
    }

    Ok(Pty {
        pgid: pid,
        output: Output {
            rx: out_rx,
            done: false,
        },
        exit: ExitWatch {
            rx: exit_rx,
            code: None,
        },
        input: Some(in_tx),
        transcript: recording,
        threads,
        _master: master,
        _sandbox: prepared,
    })
}

/// Records a session's output from now on into `file`, which begins with `prelude`
/// (the screen as it is, so that the transcript replays to what the agent sees).
/// Blocking file I/O: call it off the runtime's worker threads.
pub fn record_into(recording: &Recording, mut file: File, prelude: &[u8]) {
    let mut current = recording.lock().unwrap_or_else(PoisonError::into_inner);
    match file.write_all(prelude) {
        Ok(()) => *current = Some(file),
        Err(e) => {
            tracing::warn!(%e, "cannot write the session transcript; not recording");
            *current = None;
        }
    }
}

/// The transcript file the reader copies output to; `None` once writing it failed.
pub type Recording = Arc<Mutex<Option<File>>>;

fn read_loop(mut reader: Box<dyn Read + Send>, transcript: Recording, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = match reader.read(&mut buf) {
            // EOF, or EIO once no process holds the slave side any more.
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        {
            let mut file = transcript.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(f) = file.as_mut()
                && let Err(e) = f.write_all(&buf[..n])
            {
                // The session is worth more than its transcript: keep going without it.
                tracing::warn!(%e, "cannot write the session transcript; no longer recording");
                *file = None;
            }
        }
        if tx.blocking_send(buf[..n].to_vec()).is_err() {
            break;
        }
    }
}

fn write_loop(mut writer: Box<dyn Write + Send>, rx: std::sync::mpsc::Receiver<Vec<u8>>) {
    for bytes in rx {
        if let Err(e) = writer.write_all(&bytes).and_then(|()| writer.flush()) {
            tracing::debug!(%e, "pty write failed");
            break;
        }
    }
}

/// The stream of output chunks.
pub struct Output {
    rx: mpsc::Receiver<Vec<u8>>,
    done: bool,
}

impl Output {
    /// The next chunk; `None` once when the reader thread has finished, after which it
    /// never resolves (so it can sit in a `select!` without spinning).
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        if self.done {
            std::future::pending::<()>().await;
        }
        let chunk = self.rx.recv().await;
        self.done = chunk.is_none();
        chunk
    }

    /// Whether the reader thread has finished and every chunk was taken.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// The child's exit, reported by the waiter thread.
pub struct ExitWatch {
    rx: oneshot::Receiver<Option<i32>>,
    code: Option<Option<i32>>,
}

impl ExitWatch {
    /// Waits for the child to exit; its exit code, `None` when a signal ended it.
    pub async fn wait(&mut self) -> Option<i32> {
        if let Some(code) = self.code {
            return code;
        }
        // A dropped sender means the waiter thread died; the child is treated as gone.
        let code = (&mut self.rx).await.ok().flatten();
        self.code = Some(code);
        code
    }

    /// Whether the exit was already seen.
    pub fn has_exited(&self) -> bool {
        self.code.is_some()
    }
}

impl Pty {
    /// The transcript the reader copies to, for [`record_into`].
    pub fn recording(&self) -> Recording {
        self.transcript.clone()
    }

    /// Queues `bytes` as one write to the terminal.
    pub fn write(&self, bytes: Vec<u8>) {
        if let Some(tx) = &self.input {
            let _ = tx.send(bytes);
        }
    }

    /// Stops the writer and waits up to `limit` for every thread to finish. Call once the
    /// process group is gone: the writer sends EOF to the terminal as it closes, and the
    /// reader ends only when nothing holds the slave side.
    pub async fn shutdown(&mut self, limit: Duration) {
        self.input = None;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Keep the channel moving so a reader blocked on a full channel can see EOF.
            while self.output.rx.try_recv().is_ok() {}
            if self.threads.iter().all(JoinHandle::is_finished) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    pgid = self.pgid,
                    "pty threads still running; a process outside the group may hold the terminal"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
