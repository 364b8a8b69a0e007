//! `agent-relay`: run relay.yaml workflows of coding agents, validate them, print the
//! schema. Every command returns a `CliResult`; this is the one place that prints an
//! error and decides the exit code (see `error::Exit`): 0 success, 1 a step failed,
//! 2 a person is needed, 3 invalid workflow or usage, 4 runtime failure, 130 interrupted.

mod attach;
mod commands;
mod cwd;
mod dashboard;
mod diagnostics;
mod error;
mod events_out;
mod execute;
mod knobs;
mod mcp;
mod messaging;
mod prices_cmd;
mod progress;
mod prompt;
mod rehearse;
mod runs_cmd;
mod script;
mod sdk_bundle;
mod source;
mod state_cmd;
mod steer;
mod tasks_cmd;
mod templates;
mod watch;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use error::{CliResult, Exit};

/// Exit code for a bad workflow file or bad usage.
pub const EXIT_INVALID: u8 = 3;
/// Exit code for a failure of the machine (missing CLI, cannot spawn, disk).
pub const EXIT_RUNTIME: u8 = 4;

#[derive(Parser, Debug)]
#[command(
    name = "agent-relay",
    version,
    about = "Run swarms of coding agents from a relay.yaml workflow, offline.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a workflow file.
    Run(commands::RunArgs),
    /// Check a workflow file and list every problem (exit 0 when valid, 3 when not).
    Validate(commands::ValidateArgs),
    /// Continue a run that was interrupted or failed; completed steps are kept.
    Resume {
        /// Run id, a unique prefix of one, or `last`.
        run_id: String,
        /// Print one JSON summary on stdout at the end.
        #[arg(long)]
        json: bool,
        /// Print only the final summary.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the runs in this directory, newest first.
    Runs {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a run's steps and their states.
    Status(runs_cmd::StatusArgs),
    /// Print a run's events (and a step's output), optionally following a live run.
    Logs(runs_cmd::LogsArgs),
    /// Print every decision a run made (pattern, retries, repairs, verdicts, votes,
    /// nudges), with its reason and evidence.
    Trajectory {
        /// Run id, a unique prefix of one, or `last`.
        run_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a live run from another terminal: its agents are ended, it exits 130.
    Cancel {
        /// Run id, a unique prefix of one, or `last`.
        run_id: String,
    },
    /// List, show and install workflow templates (`run NAME` runs one).
    Templates(templates::TemplatesArgs),
    /// Send a message to an agent, a channel or everyone in a run.
    Send(messaging::SendArgs),
    /// Print your unread messages and mark them read.
    Inbox(messaging::InboxArgs),
    /// Serve the run's tools (send, inbox, agents, board, ask_human, report_done) to an
    /// agent's CLI as a stdio MCP server; agent-relay gives it to every agent's CLI.
    Mcp(mcp::McpArgs),
    /// List the agents of a run, their state and channels.
    Agents(messaging::AgentsArgs),
    /// List a run's messages and their states.
    Messages(messaging::MessagesArgs),
    /// List the questions agents asked that wait for an answer (one run, or every live one).
    Questions {
        /// Run id, a unique prefix of one, or `last` (default: every live run here).
        run_id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Answer the question a step's agent asked; the step goes on with the answer.
    Answer(messaging::AnswerArgs),
    /// Approve a step that waits for approval (`approval: required`); it starts.
    Approve(steer::DecideArgs),
    /// Reject a step that waits for approval; it fails without running.
    Reject(steer::DecideArgs),
    /// List the steps that wait for approval (one run, or every live one).
    Approvals {
        /// Run id, a unique prefix of one, or `last` (default: every live run here).
        run_id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause a live run: no new step starts; running ones go on.
    Pause {
        /// Run id, a unique prefix of one, or `last`.
        run_id: String,
    },
    /// Unpause a paused run.
    Unpause {
        /// Run id, a unique prefix of one, or `last`.
        run_id: String,
    },
    /// Start a run's steps that are parked on a rate limit now, without waiting for the
    /// reset.
    Unpark {
        /// Run id, a unique prefix of one, or `last`.
        run_id: String,
    },
    /// List the per-model prices that cost tokens, or add one (`prices set MODEL ...`).
    Prices(prices_cmd::PricesArgs),
    /// Read and write the run's shared board.
    Board(messaging::BoardArgs),
    /// Read, write, compare-and-set and watch the run's shared state.
    State(state_cmd::StateArgs),
    /// Mark an item of your step's checklist done or blocked (agents of a step with
    /// `verification: {type: checklist}`).
    Task(tasks_cmd::TaskArgs),
    /// List the checklists of a run (or of every live run here) and their marks.
    Tasks {
        /// Run id, a unique prefix of one, or `last` (default: every live run here).
        run_id: Option<String>,
        /// Only this step's checklist.
        step: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Claim files (paths or globs) so no other agent takes them while you work.
    Claim(state_cmd::ClaimArgs),
    /// Release your file claims.
    Release(state_cmd::ReleaseArgs),
    /// Take step attempts from a NATS server and run them on this machine.
    Worker(workers::WorkerArgs),
    /// List the workers a NATS server knows, their capacity, labels and attempts.
    Workers(workers::WorkersArgs),
    /// Follow a run full-screen in this terminal: steps, the selected agent's screen,
    /// messages; keys move between agents, cancel and answer (line view when not a tty).
    Watch {
        /// Run id, a unique prefix of one, or `last`.
        #[arg(default_value = "last")]
        run_id: String,
    },
    /// Attach to a live interactive agent: its screen here, your typing there; relayed
    /// messages wait until you detach (Ctrl+]).
    Attach(attach::AttachArgs),
    /// Serve the web dashboard of this directory's runs on 127.0.0.1 (prints its URL).
    Serve(dashboard::ServeArgs),
    /// Print the JSON Schema of relay.yaml.
    Schema,
    /// A run's watchdog: ends the run's agents if its coordinator dies (started by `run`).
    #[command(hide = true)]
    Watchdog {
        /// The run.
        #[arg(long)]
        run_id: String,
        /// The coordinator's pid.
        #[arg(long)]
        coordinator: u32,
        /// Grace between TERM and KILL.
        #[arg(long, default_value_t = 1500)]
        grace_ms: u64,
    },
    /// The built-in rehearsal agent that stands in for every CLI under `run --rehearse`.
    #[command(hide = true)]
    RehearseAgent {
        /// The CLI being stood in for.
        #[arg(long)]
        cli: String,
        /// The task; read from stdin when not given.
        #[arg(last = true)]
        task: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Invalid
            } else {
                Exit::Success
            };
            let _ = e.print();
            return code.into();
        }
    };
    // The rehearsal agent stands in for an agent CLI: its exit code is the agent's own.
    if let Command::RehearseAgent { cli, task } = &cli.command {
        let task = if task.is_empty() {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text);
            text
        } else {
            task.join(" ")
        };
        return rehearse::main(cli, &task);
    }
    // A bug must not leave agents running or a lie on screen: the run's watchdog ends
    // them, and the panic becomes an error with the runtime-failure code.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli.command)));
    match outcome {
        Ok(Ok(exit)) => exit.into(),
        Ok(Err(e)) => {
            e.print();
            e.exit.into()
        }
        Err(_) => {
            eprintln!(
                "error: agent-relay stopped on an internal error (a bug; the message is above)"
            );
            Exit::Runtime.into()
        }
    }
}

fn dispatch(command: Command) -> CliResult {
    // The commands that start, end or show agents read the numeric knobs.
    if matches!(
        command,
        Command::Run(_)
            | Command::Resume { .. }
            | Command::Worker(_)
            | Command::Attach(_)
            | Command::Serve(_)
            | Command::Watch { .. }
            | Command::Cancel { .. }
    ) {
        knobs::check()?;
    }
    match command {
        Command::Schema => {
            let schema = relay_spec::json_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            Ok(Exit::Success)
        }
        Command::Validate(args) => commands::validate(args),
        Command::Attach(args) => attach::attach(args),
        Command::Watch { run_id } => watch::watch(&run_id),
        Command::Serve(args) => dashboard::serve(args, execute::runtime()?, execute::workdir()?),
        Command::Run(args) => commands::run(args),
        Command::Resume {
            run_id,
            json,
            quiet,
        } => runs_cmd::resume(
            &run_id,
            execute::Output {
                json,
                quiet,
                events_json: false,
            },
            &workers::NatsArgs::from_env(),
        ),
        Command::Runs { json } => runs_cmd::list(json),
        Command::Status(args) => runs_cmd::status(args),
        Command::Logs(args) => runs_cmd::logs(args),
        Command::Cancel { run_id } => runs_cmd::cancel(&run_id),
        Command::Trajectory { run_id, json } => runs_cmd::trajectory(&run_id, json),
        Command::Templates(args) => {
            let code = templates::main(args);
            if code == ExitCode::SUCCESS {
                Ok(Exit::Success)
            } else {
                Err(error::CliError::reported(diagnostics::exit_of(code)))
            }
        }
        Command::Send(args) => messaging::send(args),
        Command::Inbox(args) => messaging::inbox(args),
        Command::Mcp(args) => mcp::mcp(args),
        Command::Agents(args) => messaging::agents(args),
        Command::Messages(args) => messaging::messages(args),
        Command::Board(args) => messaging::board(args),
        Command::State(args) => state_cmd::state(args),
        Command::Task(args) => tasks_cmd::task(args),
        Command::Tasks { run_id, step, json } => tasks_cmd::tasks(run_id, step, json),
        Command::Claim(args) => state_cmd::claim(args),
        Command::Release(args) => state_cmd::release(args),
        Command::Worker(args) => workers::worker(args),
        Command::Workers(args) => workers::workers(args),
        Command::Questions { run_id, json } => messaging::questions(run_id, json),
        Command::Answer(args) => messaging::answer(args),
        Command::Approve(args) => steer::decide(args, true),
        Command::Reject(args) => steer::decide(args, false),
        Command::Approvals { run_id, json } => steer::approvals(run_id, json),
        Command::Pause { run_id } => steer::pause(run_id, true),
        Command::Unpause { run_id } => steer::pause(run_id, false),
        Command::Unpark { run_id } => messaging::unpark(run_id),
        Command::Prices(args) => prices_cmd::prices(args),
        Command::RehearseAgent { .. } => Ok(Exit::Success),
        Command::Watchdog {
            run_id,
            coordinator,
            grace_ms,
        } => {
            let rt = execute::runtime()?;
            rt.block_on(async {
                // Signals meant for the coordinator's terminal are not for the watchdog.
                use tokio::signal::unix::{SignalKind, signal};
                let _ignored: Vec<_> = [SignalKind::interrupt(), SignalKind::hangup()]
                    .into_iter()
                    .filter_map(|k| signal(k).ok())
                    .collect();
                relay_broker::watchdog::watch(
                    std::io::stdin(),
                    &run_id,
                    coordinator,
                    std::time::Duration::from_millis(grace_ms),
                )
                .await
            });
            Ok(Exit::Success)
        }
    }
}

/// The absolute path of this program, for `AGENT_RELAY_BIN`.
pub fn self_bin() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("agent-relay"))
}
