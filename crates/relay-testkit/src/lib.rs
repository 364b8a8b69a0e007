//! Test support for agent-relay: the `fake-agent` binary, which impersonates the
//! coding-agent CLIs (claude, codex, gemini, aider, goose, opencode, droid) without an
//! LLM, and helpers for tests that run it.
//!
//! The fake acts on `[[fake:CMD=ARG]]` markers in its task text; the protocol, argv
//! shapes, environment variables and TUI behaviour are described in the crate README.
//!
//! ```no_run
//! let bin_dir = std::env::temp_dir().join("my-test-bin");
//! relay_testkit::install_fake_clis(&bin_dir).unwrap();
//! // Put `bin_dir` first on PATH for the coordinator under test, give it a unique tag...
//! let tag = format!("t-{}", std::process::id());
//! // ...run it with RELAY_TEST_TAG=$tag, then:
//! assert!(relay_testkit::processes_with_env("RELAY_TEST_TAG", &tag).is_empty());
//! ```

mod agent;
mod argv;
pub mod chromium;
mod conversation;
pub mod mcp_client;
pub mod nats;
mod oneshot;
mod procs;
mod script;
mod structured;
mod sys;
mod tui;

use std::path::{Path, PathBuf};

pub use procs::{processes_with_env, wait_for_no_processes_with_env};

/// The names the fake answers to; [`install_fake_clis`] creates one symlink per name.
pub const CLI_NAMES: [&str; 7] = [
    "claude", "codex", "gemini", "aider", "goose", "opencode", "droid",
];

/// The entry point of the `fake-agent` binary.
#[doc(hidden)]
pub fn run_fake_agent() -> ! {
    agent::main()
}

/// Path of the built `fake-agent` binary.
///
/// `$FAKE_AGENT_BIN` if set; otherwise `fake-agent` in the target directory of the running
/// test (`target/<profile>/deps/<test>-<hash>` → `target/<profile>/fake-agent`).
///
/// # Panics
/// If the binary is not there. Cargo builds it for this crate's own tests only; other
/// crates' tests need `cargo build -p relay-testkit` first.
pub fn fake_agent_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FAKE_AGENT_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "FAKE_AGENT_BIN={} does not exist; build it with: cargo build -p relay-testkit",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("cannot locate the running executable");
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let candidate = dir.join("fake-agent");
    assert!(
        candidate.is_file(),
        "fake-agent not found at {}; build it with: cargo build -p relay-testkit \
         (or set FAKE_AGENT_BIN)",
        candidate.display()
    );
    candidate
}

/// Creates `dir` (if needed) with symlinks `claude`, `codex`, `gemini`, `aider`, `goose`,
/// `opencode` and `droid` to [`fake_agent_path`]. Put `dir` first on `PATH` and the
/// coordinator under test runs the fake instead of the real CLIs. Existing entries with
/// those names are replaced.
pub fn install_fake_clis(dir: &Path) -> std::io::Result<()> {
    let target = fake_agent_path();
    std::fs::create_dir_all(dir)?;
    for name in CLI_NAMES {
        let link = dir.join(name);
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::os::unix::fs::symlink(&target, &link)?;
    }
    Ok(())
}

/// The largest number of steps running at once, from the text of a `FAKE_AGENT_LOG`
/// (`start <step> <pid>` / `end <step> <pid>` lines, in the order they were written).
/// An `end` without its `start` and unrelated lines are ignored; a step that never
/// ended (killed, crashed) stays open.
pub fn max_overlap(log_text: &str) -> usize {
    let mut open: Vec<(&str, &str)> = Vec::new();
    let mut max = 0;
    for line in log_text.lines() {
        let mut words = line.split_whitespace();
        let (Some(event), Some(step), Some(pid), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        match event {
            "start" => {
                open.push((step, pid));
                max = max.max(open.len());
            }
            "end" => {
                if let Some(i) = open.iter().position(|&k| k == (step, pid)) {
                    open.swap_remove(i);
                }
            }
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_of_sequential_and_parallel_steps() {
        assert_eq!(max_overlap(""), 0);
        assert_eq!(max_overlap("start a 1\nend a 1\nstart b 2\nend b 2\n"), 1);
        let log =
            "start a 1\nstart b 2\nstart c 3\nend b 2\nend a 1\nstart d 4\nend c 3\nend d 4\n";
        assert_eq!(max_overlap(log), 3);
        // A retry of the same step is a different process.
        assert_eq!(max_overlap("start a 1\nstart a 2\nend a 1\nend a 2\n"), 2);
    }

    #[test]
    fn overlap_ignores_noise_and_unmatched_ends() {
        assert_eq!(
            max_overlap("end x 9\ngarbage\nstart a 1\nend a 1\nstart b 2\n"),
            1
        );
    }
}

/// The Python interpreter itself, not a version-manager shim in front of it (which can
/// take longer to start than the agents it runs); `python3` when it cannot be asked.
fn python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            std::process::Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "python3".to_owned())
        })
        .clone()
}

/// The fixture agents: small terminal programs that behave unlike the CLIs the fake
/// agent copies (see `agents/` in this crate), each answering `REPLY:` in what it is
/// typed the way the mock model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixtureAgent {
    /// No banner, no ready cue, no reply glyph: a bare `❯ ` prompt (raw mode, its own
    /// echo, bracketed paste).
    BarePrompt,
    /// Line-oriented: cooked terminal, every line break submits, answers at once, no
    /// bracketed paste.
    LineOriented,
    /// Boots behind a spinner, answers after seconds of spinner, `/exit` in colour.
    SlowSpinner,
}

impl FixtureAgent {
    /// Every fixture agent.
    pub const ALL: [FixtureAgent; 3] = [
        FixtureAgent::BarePrompt,
        FixtureAgent::LineOriented,
        FixtureAgent::SlowSpinner,
    ];

    /// A short name, for test tags and messages.
    pub fn name(self) -> &'static str {
        match self {
            FixtureAgent::BarePrompt => "bare-prompt",
            FixtureAgent::LineOriented => "line-oriented",
            FixtureAgent::SlowSpinner => "slow-spinner",
        }
    }

    /// The script that runs it (with `python3`).
    pub fn script(self) -> PathBuf {
        let file = match self {
            FixtureAgent::BarePrompt => "bare_prompt.py",
            FixtureAgent::LineOriented => "line_agent.py",
            FixtureAgent::SlowSpinner => "slow_spinner.py",
        };
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("agents")
            .join(file)
    }

    /// argv that runs it.
    pub fn argv(self) -> Vec<String> {
        vec![python(), self.script().to_string_lossy().into_owned()]
    }

    /// Installs it in `dir` as an executable named `cli` (for `PATH`), which ignores the
    /// CLI's arguments.
    pub fn install_as(self, dir: &Path, cli: &str) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(cli);
        let _ = std::fs::remove_file(&path);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec '{}' '{}'\n",
                python(),
                self.script().display()
            ),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(path)
    }
}
