//! One-shot subprocesses (non-interactive agents, deterministic steps, custom checks):
//! stdin is the spec's `stdin` text (a task, a script) or /dev/null, stdout is captured as
//! the output, stderr is appended to a log file.
//! The child leads its own process group; timeouts and cancellation end the whole group,
//! and whatever the leader left behind in its group is ended when it exits.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use serde::{Deserialize, Serialize};

use crate::group::{EndPolicy, end_child_group, reap_leftovers};

/// Most bytes of stdout kept: the first and the last half of it, the middle replaced by
/// a line saying how much was dropped (the end is kept because agents print their
/// verdicts and markers last).
pub const OUTPUT_CAP: usize = 16 * 1024 * 1024;

/// What to run: plain data, so it can be handed to a launcher on another machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// Program name (looked up on PATH) or path.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Extra environment on top of the coordinator's.
    pub env: Vec<(String, String)>,
    /// Bound on the run.
    pub timeout: Option<Duration>,
    /// File stderr is appended to; `None` discards it.
    pub stderr_path: Option<PathBuf>,
    /// Grace between TERM and KILL when the group is ended on timeout or cancellation.
    pub kill_grace: Duration,
    /// The permissions the kernel enforces on the process and everything it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::sandbox::Sandbox>,
    /// The CLI's structured output to read usage from (stdout is then the reply text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::usage::UsageFormat>,
    /// Stop the process once it has used more tokens than this (needs `usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Text written to the process's stdin, which is then closed: how tasks and scripts
    /// reach a process without appearing in its argv (no size limit, nothing in `ps`).
    /// `None` is /dev/null.
    #[serde(default)]
    pub stdin: Option<String>,
}

/// How a process run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessEnd {
    /// It exited by itself.
    Exited,
    /// The timeout ran out and the group was ended.
    TimedOut,
    /// Cancelled from outside and the group was ended.
    Cancelled,
    /// It passed its token limit and the group was ended.
    TokenLimit,
}

/// The result of a process run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessOutcome {
    /// How it ended.
    pub end: ProcessEnd,
    /// Exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Captured stdout (lossy UTF-8).
    pub stdout: String,
    /// Bytes of stdout dropped from the middle because it passed [`OUTPUT_CAP`].
    #[serde(default)]
    pub dropped: u64,
    /// Its process group id.
    pub pgid: u32,
    /// Tokens it used, when its output reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::usage::Usage>,
    /// The model it reported using.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation it reported (see [`crate::usage::Meter::session`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// Why a process could not be run. Plain data (the OS error as text), so a launcher on
/// another machine can report it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ProcessError {
    /// The program is not installed.
    #[error("`{program}` is not installed (not found on PATH)")]
    NotFound {
        /// The program.
        program: String,
    },
    /// The working directory does not exist.
    #[error("working directory {} does not exist", cwd.display())]
    NoCwd {
        /// The directory.
        cwd: PathBuf,
    },
    /// Spawning failed for another reason.
    #[error("cannot start `{program}`: {reason}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        reason: String,
    },
    /// The process's permissions cannot be enforced (or set up) here.
    #[error("{0}")]
    Sandbox(crate::sandbox::SandboxError),
    /// The stderr log could not be opened.
    #[error("cannot open log {}: {reason}", path.display())]
    Log {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

/// Finds `program` the way a shell would: a path containing `/` as is, else on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `spec` to its end. `on_spawn` is told the process group id as soon as it exists.
pub async fn run_process(
    spec: ProcessSpec,
    cancel: CancellationToken,
    on_spawn: impl FnOnce(u32) + Send,
) -> Result<ProcessOutcome, ProcessError> {
    let resolved = which(&spec.program).ok_or_else(|| ProcessError::NotFound {
        program: spec.program.clone(),
    })?;
    if !spec.cwd.is_dir() {
        return Err(ProcessError::NoCwd {
            cwd: spec.cwd.clone(),
        });
    }
    let stderr = match &spec.stderr_path {
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| ProcessError::Log {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            Stdio::from(f)
        }
        None => Stdio::null(),
    };
    let prepared = match spec.sandbox.clone() {
        // Resolving globs reads the file tree: not on the async runtime.
        Some(sandbox) => {
            let (program, env) = (resolved.clone(), spec.env.clone());
            tokio::task::spawn_blocking(move || crate::sandbox::prepare(&sandbox, &program, &env))
                .await
                .map_err(|e| ProcessError::Spawn {
                    program: spec.program.clone(),
                    reason: format!("the permission set-up failed: {e}"),
                })?
                .map_err(ProcessError::Sandbox)?
        }
        None => None,
    };
    let mut cmd = tokio::process::Command::new(&resolved);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    if let Some(p) = &prepared {
        cmd.envs(p.env());
        crate::sandbox::confine(&mut cmd, p);
    }
    let mut child = cmd.spawn().map_err(|e| ProcessError::Spawn {
        program: spec.program.clone(),
        reason: e.to_string(),
    })?;
    let pgid = child.id().unwrap_or(0);
    on_spawn(pgid);
    // Fed while the process runs: a process that reads little of it (or exits early)
    // only ends the write with a broken pipe.
    if let (Some(text), Some(mut pipe)) = (spec.stdin.clone(), child.stdin.take()) {
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = pipe.write_all(text.as_bytes()).await;
            let _ = pipe.shutdown().await;
        });
    }

    let mut stdout = child.stdout.take();
    let over_limit = std::sync::Arc::new(tokio::sync::Notify::new());
    let over = over_limit.clone();
    let (format, max_tokens) = (spec.usage, spec.max_tokens);
    let reader = tokio::spawn(async move {
        let mut kept = Capture::new(OUTPUT_CAP);
        let mut meter = format.map(crate::usage::Meter::new);
        let mut told = false;
        if let Some(out) = stdout.as_mut() {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match out.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        kept.push(&chunk[..n]);
                        if let Some(m) = meter.as_mut() {
                            m.feed(&chunk[..n]);
                            if !told && max_tokens.is_some_and(|max| m.usage().total() > max) {
                                told = true;
                                over.notify_one();
                            }
                        }
                    }
                }
            }
        }
        let (raw, dropped) = kept.finish();
        match meter {
            Some(m) => {
                let session = m.session().map(str::to_string);
                let (text, usage, model) = m.finish();
                (text, dropped, Some(usage), model, session)
            }
            None => (raw, dropped, None, None, None),
        }
    });

    let timeout = async {
        match spec.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let policy = EndPolicy::terminate(spec.kill_grace);
    let (end, status) = tokio::select! {
        status = child.wait() => (ProcessEnd::Exited, status.ok()),
        () = timeout => (ProcessEnd::TimedOut, end_child_group(&mut child, pgid, &policy).await),
        () = cancel.cancelled() => (ProcessEnd::Cancelled, end_child_group(&mut child, pgid, &policy).await),
        () = over_limit.notified() => (ProcessEnd::TokenLimit, end_child_group(&mut child, pgid, &policy).await),
    };
    // The leader is gone; nothing it started may outlive it in its group.
    reap_leftovers(pgid, spec.kill_grace).await;
    // Its private temp directory goes with it.
    drop(prepared);
    // A straggler outside the group could hold stdout open; don't wait on it for ever.
    let (stdout, dropped, usage, model, session) =
        match tokio::time::timeout(Duration::from_secs(2), reader).await {
            Ok(Ok(kept)) => kept,
            _ => (String::new(), 0, None, None, None),
        };
    use std::os::unix::process::ExitStatusExt;
    Ok(ProcessOutcome {
        end,
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stdout,
        dropped,
        pgid,
        usage,
        model,
        session,
    })
}

/// Output kept within a cap: the first half, and a sliding window of the last half.
struct Capture {
    cap: usize,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Capture {
    fn new(cap: usize) -> Self {
        Capture {
            cap,
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            dropped: 0,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        let half = self.cap / 2;
        if self.head.len() < half {
            let n = bytes.len().min(half - self.head.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(self.cap - half);
        if over > 0 {
            self.tail.drain(..over);
            self.dropped += over as u64;
        }
    }

    /// The text kept (lossy UTF-8) and how many bytes were dropped.
    fn finish(mut self) -> (String, u64) {
        let mut all = self.head;
        if self.dropped > 0 {
            all.extend_from_slice(
                format!("\n[{} bytes of output dropped here]\n", self.dropped).as_bytes(),
            );
        }
        all.extend(self.tail.drain(..));
        (String::from_utf8_lossy(&all).into_owned(), self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ProcessSpec {
        ProcessSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: std::env::temp_dir(),
            env: vec![("RELAY_T".into(), "1".into())],
            timeout: None,
            stderr_path: None,
            kill_grace: Duration::from_millis(200),
            sandbox: None,
            usage: None,
            max_tokens: None,
            stdin: None,
        }
    }

    #[test]
    fn long_output_keeps_its_start_and_its_end() {
        let mut c = Capture::new(10);
        c.push(b"START");
        c.push(b"middle-middle-middle");
        c.push(b"END");
        let (text, dropped) = c.finish();
        assert_eq!(dropped, 18, "28 bytes in, 10 kept");
        assert_eq!(text, "START\n[18 bytes of output dropped here]\nleEND");
        let mut small = Capture::new(10);
        small.push(b"hi");
        assert_eq!(small.finish(), ("hi".to_string(), 0));
    }

    #[tokio::test]
    async fn captures_stdout_and_exit_code() {
        let out = run_process(
            sh("echo hi $RELAY_T; exit 3"),
            CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(out.end, ProcessEnd::Exited);
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, "hi 1\n");
    }

    #[tokio::test]
    async fn stdin_text_of_any_size_reaches_the_process() {
        let mut spec = sh("wc -c");
        spec.stdin = Some("x".repeat(4 << 20));
        let out = run_process(spec, CancellationToken::new(), |_| {})
            .await
            .unwrap();
        assert_eq!(out.stdout.trim(), (4u64 << 20).to_string());
        // A process that never reads it is not held up by it.
        let mut spec = sh("exit 0");
        spec.stdin = Some("y".repeat(4 << 20));
        let out = run_process(spec, CancellationToken::new(), |_| {})
            .await
            .unwrap();
        assert_eq!(out.exit_code, Some(0));
        // Without text, stdin is empty.
        let out = run_process(sh("wc -c"), CancellationToken::new(), |_| {})
            .await
            .unwrap();
        assert_eq!(out.stdout.trim(), "0");
    }

    #[tokio::test]
    async fn missing_program_is_named() {
        let mut spec = sh("");
        spec.program = "no-such-agent-cli".into();
        let err = run_process(spec, CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`no-such-agent-cli` is not installed")
        );
    }

    #[tokio::test]
    async fn timeout_ends_the_whole_group() {
        let mut spec = sh("sleep 30 & sleep 30; echo never");
        spec.timeout = Some(Duration::from_millis(100));
        let mut pgid = 0;
        let out = run_process(spec, CancellationToken::new(), |g| pgid = g)
            .await
            .unwrap();
        assert_eq!(out.end, ProcessEnd::TimedOut);
        assert!(pgid > 1);
        assert!(!crate::group::group_alive(pgid), "group {pgid} survived");
    }

    #[tokio::test]
    async fn leftovers_of_a_finished_leader_are_ended() {
        let mut pgid = 0;
        let out = run_process(
            sh("(trap '' TERM; sleep 30) > /dev/null & echo started"),
            CancellationToken::new(),
            |g| pgid = g,
        )
        .await
        .unwrap();
        assert_eq!(out.exit_code, Some(0));
        assert!(
            !crate::group::group_alive(pgid),
            "background child survived"
        );
    }

    #[tokio::test]
    async fn cancel_ends_the_group() {
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c2.cancel();
        });
        let out = run_process(sh("sleep 30"), cancel, |_| {}).await.unwrap();
        assert_eq!(out.end, ProcessEnd::Cancelled);
    }
}
