//! Turning an attempt into what a launcher runs: the environment every agent and step
//! gets, and the process or session spec (argv from the one per-CLI table, the rehearsal
//! agent under `--rehearse`, timing from the settings). Pure: no I/O.

use relay_broker::Launcher;
use relay_broker::cli_table::{interactive_args, oneshot_args, profile};
use relay_broker::process::ProcessSpec;
use relay_broker::session::{SessionSpec, SessionTiming};
use relay_broker::watchdog::{COORDINATOR_ENV, RUN_ID_ENV};
use relay_spec::{Agent, VerificationType};

use super::Shared;
use crate::job::{Check, StepJob};

/// The line appended to every interactive task so the agent knows how to finish.
pub const EXIT_INSTRUCTION: &str = "When you have finished, print /exit on a line of its own.";

/// The environment of every agent, step and check of `job`.
pub(super) fn base_env<L: Launcher>(shared: &Shared<L>, job: &StepJob) -> Vec<(String, String)> {
    let mut env = vec![
        (RUN_ID_ENV.to_string(), shared.run_id.clone()),
        (COORDINATOR_ENV.to_string(), std::process::id().to_string()),
        ("AGENT_RELAY_STEP".to_string(), job.label.clone()),
        (
            "AGENT_RELAY_BIN".to_string(),
            shared.self_bin.display().to_string(),
        ),
        (
            "AGENT_RELAY_RUN_DIR".to_string(),
            shared.run_dir.display().to_string(),
        ),
    ];
    if let Some(a) = job.agent() {
        env.push(("AGENT_RELAY_NAME".to_string(), a.name.clone()));
    }
    env.extend(shared.messaging.env(job.agent().map(|a| a.name.as_str())));
    env
}

/// Hints that let the rehearsal agent satisfy the step's verification.
fn rehearsal_env(check: Option<&Check>) -> Vec<(String, String)> {
    let Some(c) = check else {
        return Vec::new();
    };
    let key = match c.kind {
        VerificationType::OutputContains => "AGENT_RELAY_REHEARSE_SAY",
        VerificationType::FileExists => "AGENT_RELAY_REHEARSE_WRITE",
        VerificationType::ExitCode => "AGENT_RELAY_REHEARSE_EXIT_CODE",
        VerificationType::Custom => return Vec::new(),
    };
    vec![(key.to_string(), c.value.clone())]
}

fn process<L: Launcher>(
    shared: &Shared<L>,
    job: &StepJob,
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
) -> ProcessSpec {
    ProcessSpec {
        program,
        args,
        cwd: job.cwd.clone(),
        env,
        timeout: job.timeout,
        stderr_path: Some(job.step_dir.join("stderr.log")),
        kill_grace: shared.settings.kill_grace,
    }
}

/// A deterministic step's command.
pub(super) fn command_process<L: Launcher>(
    shared: &Shared<L>,
    job: &StepJob,
    command: &str,
) -> ProcessSpec {
    let env = base_env(shared, job);
    process(
        shared,
        job,
        "sh".into(),
        vec!["-c".into(), command.to_string()],
        env,
    )
}

/// A one-shot agent (or, under `--rehearse`, the rehearsal agent standing in for any).
pub(super) fn agent_process<L: Launcher>(
    shared: &Shared<L>,
    job: &StepJob,
    agent: &Agent,
    task: &str,
) -> ProcessSpec {
    let mut env = base_env(shared, job);
    if shared.rehearse {
        env.extend(rehearsal_env(job.check.as_ref()));
        let args = vec![
            "rehearse-agent".into(),
            "--cli".into(),
            agent.cli.as_str().into(),
            "--".into(),
            task.to_string(),
        ];
        return process(
            shared,
            job,
            shared.self_bin.display().to_string(),
            args,
            env,
        );
    }
    process(
        shared,
        job,
        profile(agent.cli).program.into(),
        oneshot_args(agent.cli, agent.effective_model(), task),
        env,
    )
}

/// An interactive agent's terminal session for attempt `attempt`.
pub(super) fn session<L: Launcher>(
    shared: &Shared<L>,
    job: &StepJob,
    agent: &Agent,
    attempt: u32,
    task: String,
) -> SessionSpec {
    let p = profile(agent.cli);
    let mut argv = vec![p.program.to_string()];
    argv.extend(interactive_args(agent.cli, agent.effective_model()));
    let mut timing: SessionTiming = shared.settings.session_timing();
    // The agent's own threshold when it sets one (0 disables), else the settings'.
    if agent
        .constraints
        .as_ref()
        .is_some_and(|c| c.idle_threshold_secs.is_some())
    {
        timing.idle_threshold = agent.idle_threshold();
    }
    SessionSpec {
        argv,
        cwd: job.cwd.clone(),
        env: base_env(shared, job),
        task,
        cli: Some(agent.cli),
        transcript_path: job.step_dir.join(format!("attempt-{attempt}.pty")),
        timeout: job.timeout,
        size: shared.settings.pty_size,
        timing,
        nudge: shared.nudge.clone(),
    }
}

/// The script a worktree step runs: the worktree at `path` for `branch` (existing, or new
/// from `base` when `create`), found again on a resume; it prints the worktree's
/// absolute path. A rehearsal outside a git repository makes a plain directory instead.
pub(super) fn worktree_script(
    branch: &str,
    base: &str,
    create: bool,
    path: &str,
    rehearse: bool,
) -> String {
    let q = relay_spec::template::shell_quote;
    format!(
        r#"set -e
branch={branch}; base={base}; dir={path}; create={create}; rehearse={rehearse}
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  if [ "$rehearse" = yes ]; then
    mkdir -p "$dir"; cd "$dir"; pwd -P; exit 0
  fi
  echo "not a git repository: $PWD (a worktree step needs one)" >&2; exit 1
fi
if [ -e "$dir/.git" ]; then
  :
elif git show-ref --verify --quiet "refs/heads/$branch"; then
  git worktree add "$dir" "$branch" >&2
elif [ "$create" = yes ]; then
  git worktree add -b "$branch" "$dir" "$base" >&2
else
  echo "branch $branch does not exist, and createBranch is false" >&2; exit 1
fi
cd "$dir"; pwd -P
"#,
        branch = q(branch),
        base = q(base),
        path = q(path),
        create = if create { "yes" } else { "no" },
        rehearse = if rehearse { "yes" } else { "no" },
    )
}
