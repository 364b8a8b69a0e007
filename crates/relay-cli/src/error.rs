//! How a command ends: an exit code, and for an error the lines that explain it. Every
//! command returns a [`CliResult`]; `main` is the one place that prints an error and
//! the one place that turns the outcome into the process exit code.

use std::fmt::Display;
use std::process::ExitCode;

use relay_engine::runs::RunsError;
use relay_engine::{EngineError, RunStatus, RunSummary};

/// The exit codes of `agent-relay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything went as asked.
    Success,
    /// A step failed (or the run timed out); a message could not be sent.
    Failed,
    /// The run needs a person (a question, an approval, a blocked checklist).
    NeedsPerson,
    /// Bad input: an invalid workflow, a missing variable, bad usage, an unknown name.
    Invalid,
    /// The machine failed: a CLI is missing, a process cannot start, a disk is full.
    Runtime,
    /// Interrupted (Ctrl+C, TERM, `agent-relay cancel`).
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::NeedsPerson => 2,
            Exit::Invalid => 3,
            Exit::Runtime => 4,
            Exit::Interrupted => 130,
        }
    }

    /// How a finished run ends the program.
    pub fn of_run(summary: &RunSummary) -> Exit {
        match summary.status {
            RunStatus::Completed => Exit::Success,
            RunStatus::Cancelled => Exit::Interrupted,
            RunStatus::NeedsHuman => Exit::NeedsPerson,
            RunStatus::Failed if summary.runtime_error.is_some() => Exit::Runtime,
            RunStatus::Failed => Exit::Failed,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// Why a command failed: the exit code and what to print.
#[derive(Debug)]
pub struct CliError {
    /// How the program ends.
    pub exit: Exit,
    /// Printed as `error: ...` first, when set.
    pub headline: Option<String>,
    /// Printed as they are, after the headline.
    pub lines: Vec<String>,
}

/// What a command returns.
pub type CliResult<T = Exit> = Result<T, CliError>;

impl CliError {
    /// An error that ends the program with `exit`, explained by `message`.
    pub fn new(exit: Exit, message: impl Display) -> Self {
        CliError {
            exit,
            headline: Some(message.to_string()),
            lines: Vec::new(),
        }
    }

    /// Bad input or usage (exit 3).
    pub fn invalid(message: impl Display) -> Self {
        Self::new(Exit::Invalid, message)
    }

    /// The machine failed (exit 4).
    pub fn runtime(message: impl Display) -> Self {
        Self::new(Exit::Runtime, message)
    }

    /// An error explained by `lines` printed as they are (diagnostics with positions).
    pub fn lines(exit: Exit, lines: Vec<String>) -> Self {
        CliError {
            exit,
            headline: None,
            lines,
        }
    }

    /// An error whose explanation was already printed by the code that found it.
    pub fn reported(exit: Exit) -> Self {
        Self::lines(exit, Vec::new())
    }

    /// Adds a line after the explanation.
    pub fn note(mut self, line: impl Into<String>) -> Self {
        self.lines.push(line.into());
        self
    }

    /// Prints the explanation on stderr. A name quoted from the user's input cannot drive
    /// the terminal: control characters other than line breaks are printed as escapes.
    pub fn print(&self) {
        use relay_spec::printable;
        if let Some(h) = &self.headline {
            eprintln!("error: {}", printable(h));
        }
        for l in &self.lines {
            eprintln!("{}", printable(l));
        }
    }
}

impl From<RunsError> for CliError {
    fn from(e: RunsError) -> Self {
        CliError::invalid(e)
    }
}

impl From<relay_nats::NatsError> for CliError {
    fn from(e: relay_nats::NatsError) -> Self {
        use relay_nats::NatsError;
        match e {
            // What the user typed: a URL, a label, a name already in use.
            NatsError::BadUrl { .. } | NatsError::Invalid(_) | NatsError::NameTaken(_) => {
                CliError::invalid(e)
            }
            // The server is down or refused us, JetStream failed, a socket failed.
            NatsError::Unreachable { .. } | NatsError::JetStream(_) | NatsError::Io(_) => {
                CliError::runtime(e)
            }
        }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        match &e {
            EngineError::MissingVars { names } => {
                let flags: Vec<String> = names.iter().map(|n| format!("--var {n}=VALUE")).collect();
                CliError::invalid(format!("{e}; nothing was run"))
                    .note(format!("  pass {}", flags.join(" ")))
            }
            EngineError::UnknownWorkflow(_) | EngineError::LoopFiles(_) => {
                CliError::invalid(format!("{e}; nothing was run"))
            }
            EngineError::Lock(relay_engine::lock::LockError::Busy { .. }) => {
                CliError::invalid(format!("{e}; nothing was run"))
            }
            EngineError::CliMissing { .. } | EngineError::Lock(_) => {
                CliError::runtime(format!("{e}; nothing was run"))
            }
            EngineError::Preflight(p) => match p {
                relay_engine::run::preflight::PreflightError::Failed { output, .. } => {
                    let mut err = CliError::new(Exit::Failed, format!("{e}; nothing was run"));
                    let shown = relay_engine::job::tail_lines(output, 20);
                    if !shown.is_empty() {
                        err = err.note("its output ended with:");
                        for l in shown.lines() {
                            err = err.note(format!("  {l}"));
                        }
                    }
                    err
                }
                _ => CliError::runtime(format!("{e}; nothing was run")),
            },
            EngineError::Unenforceable { findings } => {
                let mut err = CliError::runtime(
                    "the kernel cannot enforce these permissions; nothing was run",
                );
                for f in findings {
                    err = err.note(format!("  {f}"));
                }
                err.note(
                    "  pass --allow-unenforced to start these agents anyway with what can be enforced",
                )
            }
            EngineError::Prices(relay_engine::prices::PricesError::Io { .. }) => {
                CliError::runtime(format!("{e}; nothing was run"))
            }
            EngineError::Prices(_) => CliError::invalid(format!("{e}; nothing was run")),
            EngineError::State(relay_state::open::OpenError::BadUrl { .. }) => {
                CliError::invalid(format!("{e}; nothing was run"))
            }
            EngineError::State(_) => CliError::runtime(format!("{e}; nothing was run")),
            // The disk can fail mid-run: running agents were ended and what was recorded
            // stays.
            EngineError::Worktrees(_) => CliError::runtime(format!("{e}; nothing was run")),
            EngineError::Store(_) => CliError::runtime(format!(
                "{e}; the run stopped and any running agents were ended"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::Failed,
            Exit::NeedsPerson,
            Exit::Invalid,
            Exit::Runtime,
            Exit::Interrupted,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 130]);
    }
}
