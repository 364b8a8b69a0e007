//! Turning an attempt into what a launcher runs: the environment every agent and step
//! gets, and the process or session spec (argv from the one per-CLI table, the rehearsal
//! agent under `--rehearse`, timing from the settings). Pure: no I/O.

use relay_broker::Launcher;
use relay_broker::cli_table::{
    Invocation, McpServer, McpSetup, SessionArg, insert_mcp_args, interactive_args_in, mcp_setup,
    oneshot_args_in, profile, session_support, usage_format,
};
use relay_broker::process::ProcessSpec;
use relay_broker::sandbox::Sandbox;
use relay_broker::sandbox::plan::{Context, plan};
use relay_broker::session::{SessionSpec, SessionTiming};
use relay_broker::watchdog::{COORDINATOR_ENV, RUN_ID_ENV};
use relay_spec::{Access, Agent, Cli, VerificationType};

use super::Shared;
use crate::job::{Check, StepJob};

/// The line appended to every interactive task so the agent knows how to finish.
pub const EXIT_INSTRUCTION: &str = "When you have finished, print /exit on a line of its own.";

/// The same line for an agent given the run's MCP server.
pub const MCP_EXIT_INSTRUCTION: &str = "When you have finished, call the agent-relay tool `report_done` with your result (or print /exit on a line of its own).";

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
    if let Some(w) = &shared.worktrees {
        env.push((
            crate::worktrees::RUN_BRANCH_ENV.to_string(),
            w.run_branch().to_string(),
        ));
    }
    env.extend(shared.messaging.env(job.agent().map(|a| a.name.as_str())));
    env
}

/// The name the run's MCP server goes by in each CLI (claude calls its tools
/// `mcp__agent-relay__send` and so on).
pub const MCP_SERVER_NAME: &str = "agent-relay";

/// The variables `agent-relay mcp` needs from the environment of the CLI that starts it.
const MCP_ENV: [&str; 7] = [
    relay_messaging::SOCKET_ENV,
    relay_messaging::access::TOKEN_ENV,
    "AGENT_RELAY_NAME",
    "AGENT_RELAY_STEP",
    RUN_ID_ENV,
    "AGENT_RELAY_RUN_DIR",
    "AGENT_RELAY_BIN",
];

/// How `agent`'s CLI is given the run's MCP server (`agent-relay mcp`) for `job`: `None`
/// when the agent turned it off (`mcp: false`), its CLI takes no MCP servers, or under
/// `--rehearse` (the rehearsal agent stands in for the CLI).
pub(super) fn mcp_of<L: Launcher>(
    shared: &Shared<L>,
    job: &StepJob,
    agent: &Agent,
) -> Option<McpSetup> {
    if shared.rehearse || !agent.wants_mcp() {
        return None;
    }
    let server = McpServer {
        name: MCP_SERVER_NAME.to_string(),
        command: shared.self_bin.display().to_string(),
        args: vec!["mcp".to_string()],
        env: MCP_ENV.iter().map(|s| s.to_string()).collect(),
        secrets: shared
            .messaging
            .env(Some(&agent.name))
            .into_iter()
            .filter(|(k, _)| k == relay_messaging::access::TOKEN_ENV)
            .collect(),
    };
    mcp_setup(agent.cli, &server, &job.step_dir)
}

/// Writes the file an MCP setup needs (gemini's settings), private to the user.
pub(super) async fn write_mcp_file(setup: &McpSetup) -> Result<(), String> {
    let Some((path, text)) = &setup.file else {
        return Ok(());
    };
    let write = async {
        use tokio::io::AsyncWriteExt;
        let mut f = crate::store::private_file()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .await?;
        f.write_all(text.as_bytes()).await?;
        f.flush().await
    };
    write
        .await
        .map_err(|e| format!("cannot write the MCP settings {}: {e}", path.display()))
}

/// Hints that let the rehearsal agent satisfy the step's verification.
fn rehearsal_env(check: Option<&Check>) -> Vec<(String, String)> {
    let Some(c) = check else {
        return Vec::new();
    };
    let (key, value) = match c.kind {
        VerificationType::OutputContains => ("AGENT_RELAY_REHEARSE_SAY", c.value.clone()),
        VerificationType::FileExists => ("AGENT_RELAY_REHEARSE_WRITE", c.value.clone()),
        VerificationType::ExitCode => ("AGENT_RELAY_REHEARSE_EXIT_CODE", c.value.clone()),
        VerificationType::Custom => match relay_spec::CustomCheck::parse(&c.value) {
            // The whole output is matched: the rehearsal prints that one line only.
            relay_spec::CustomCheck::Regex(p) => match regex_example(p) {
                Some(line) => {
                    return vec![
                        ("AGENT_RELAY_REHEARSE_SAY".to_string(), line),
                        ("AGENT_RELAY_REHEARSE_ONLY".to_string(), "1".to_string()),
                    ];
                }
                None => return Vec::new(),
            },
            relay_spec::CustomCheck::Command(_) => return Vec::new(),
        },
        VerificationType::Checklist => return Vec::new(),
    };
    vec![(key.to_string(), value)]
}

/// A line matching `pattern`, for a rehearsal agent to print: literals kept, the first
/// alternative of a group taken, optional parts left out, one of anything repeated, a
/// class's first character. `None` when the guess does not match.
fn regex_example(pattern: &str) -> Option<String> {
    let re = regex::Regex::new(pattern).ok()?;
    let mut body = pattern;
    if let Some(rest) = body.strip_prefix("(?") {
        let end = rest.find(')')?;
        body = &rest[end + 1..];
    }
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    // Characters of the current alternative; `|` at depth 0 ends the example, at depth
    // > 0 skips to the group's end.
    let mut depth = 0usize;
    let mut skipping: Option<usize> = None;
    while let Some(c) = chars.next() {
        if let Some(d) = skipping {
            match c {
                '\\' => {
                    chars.next();
                }
                '(' => depth += 1,
                ')' => {
                    if depth == d {
                        skipping = None;
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
            continue;
        }
        match c {
            '^' | '$' => {}
            '(' => {
                depth += 1;
                if chars.peek() == Some(&'?') {
                    // `(?:` and the like.
                    for n in chars.by_ref() {
                        if n == ':' {
                            break;
                        }
                    }
                }
            }
            ')' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => break,
            '|' => skipping = Some(depth),
            '?' | '*' => {
                out.pop();
            }
            '+' => {}
            '{' => {
                for n in chars.by_ref() {
                    if n == '}' {
                        break;
                    }
                }
            }
            '.' => out.push('x'),
            '[' => {
                let first = chars.next()?;
                let first = if first == '^' { 'x' } else { first };
                out.push(first);
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                }
            }
            '\\' => match chars.next()? {
                'd' => out.push('0'),
                'w' => out.push('a'),
                's' => out.push(' '),
                'b' | 'B' | 'A' | 'z' => {}
                other => out.push(other),
            },
            other => out.push(other),
        }
    }
    re.is_match(&out).then_some(out)
}

/// The sandbox the kernel puts `job` in, from its permissions; `None` under `--rehearse`
/// (a rehearsal prints what would be enforced instead) and when nothing is restricted.
pub(super) fn sandbox_of<L: Launcher>(
    shared: &Shared<L>,
    job: &StepJob,
    cli: Option<Cli>,
) -> Option<Sandbox> {
    if shared.rehearse {
        return None;
    }
    let perms = job.permissions.as_ref()?;
    let (owner, agent) = match job.agent() {
        Some(a) => (format!("agent `{}`", a.name), Some(a.name.as_str())),
        None => (format!("step `{}`", job.step_name), None),
    };
    let writable: &[&str] = cli.map(|c| profile(c).state_paths).unwrap_or(&[]);
    let extra: &[String] = job
        .agent()
        .map(|a| a.additional_paths.as_slice())
        .unwrap_or(&[]);
    plan(
        &owner,
        perms,
        &Context {
            agent,
            root: &job.cwd,
            extra,
            writable,
            readable: vec![job.step_dir.display().to_string()],
            allow_unenforced: shared.allow_unenforced,
        },
    )
    .sandbox
}

/// How `agent`'s CLI is invoked: in its own read-only mode for a `readonly` agent.
fn invocation(job: &StepJob, usage: bool) -> Invocation {
    Invocation {
        readonly: job
            .permissions
            .as_ref()
            .is_some_and(|p| p.access == Access::Readonly),
        usage,
    }
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
        sandbox: None,
        usage: None,
        max_tokens: None,
        stdin: None,
    }
}

/// What `sh -c` runs for a deterministic command: the command itself arrives on stdin
/// (so its size is bounded only by memory and `ps` shows none of it) and runs with
/// stdin at /dev/null, as a command given with `-c` would.
const COMMAND_RUNNER: &str = "__agent_relay_command=$(cat); exec </dev/null; eval \"unset __agent_relay_command; $__agent_relay_command\"";

/// A deterministic step's command.
pub(super) fn command_process<L: Launcher>(
    shared: &Shared<L>,
    job: &StepJob,
    command: &str,
) -> ProcessSpec {
    let env = base_env(shared, job);
    let mut spec = process(
        shared,
        job,
        "sh".into(),
        vec!["-c".into(), COMMAND_RUNNER.into()],
        env,
    );
    spec.sandbox = sandbox_of(shared, job, None);
    spec.stdin = Some(command.to_string());
    spec
}

/// The task as a CLI that takes it as an argument gets it: unchanged when it fits in one
/// argument, else written to a private file in the step's directory with a pointer to
/// it as the task.
pub(super) async fn fit_argument(
    job: &StepJob,
    agent: &Agent,
    task: String,
) -> Result<String, String> {
    use relay_broker::cli_table::{ARG_TASK_MAX, TASK_FILE, TaskInput};
    if profile(agent.cli).task_input != TaskInput::Argument || task.len() <= ARG_TASK_MAX {
        return Ok(task);
    }
    let path = job.step_dir.join(TASK_FILE);
    let write = async {
        use tokio::io::AsyncWriteExt;
        let mut f = crate::store::private_file()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .await?;
        f.write_all(task.as_bytes()).await?;
        f.flush().await
    };
    write
        .await
        .map_err(|e| format!("cannot write the task file {}: {e}", path.display()))?;
    Ok(format!(
        "Your task is too long for the command line; it is in the file {}. Read that file and do what it says.",
        path.display()
    ))
}

/// A one-shot agent (or, under `--rehearse`, the rehearsal agent standing in for any).
pub(super) fn agent_process<L: Launcher>(
    shared: &Shared<L>,
    job: &StepJob,
    agent: &Agent,
    task: &str,
    resume: Option<&str>,
    mcp: Option<&McpSetup>,
) -> ProcessSpec {
    let mut env = base_env(shared, job);
    if shared.rehearse {
        env.extend(rehearsal_env(job.check.as_ref()));
        if !job.checklist.is_empty() {
            let ids: Vec<&str> = job.checklist.iter().map(|i| i.id.as_str()).collect();
            env.push(("AGENT_RELAY_REHEARSE_TASKS".into(), ids.join(",")));
        }
        let args = vec![
            "rehearse-agent".into(),
            "--cli".into(),
            agent.cli.as_str().into(),
        ];
        let mut spec = process(
            shared,
            job,
            shared.self_bin.display().to_string(),
            args,
            env,
        );
        spec.stdin = Some(task.to_string());
        return spec;
    }
    let how = invocation(job, true);
    let mut one = oneshot_args_in(agent.cli, agent.effective_model(), task, how, resume);
    if let Some(m) = mcp {
        insert_mcp_args(agent.cli, &mut one.args, m.args.clone());
        env.extend(m.env.iter().cloned());
    }
    let mut spec = process(
        shared,
        job,
        profile(agent.cli).program.into(),
        one.args,
        env,
    );
    spec.stdin = one.stdin;
    spec.sandbox = sandbox_of(shared, job, Some(agent.cli));
    spec.usage = usage_format(agent.cli, how);
    spec.max_tokens = agent.constraints.as_ref().and_then(|c| c.max_tokens);
    spec
}

/// The conversation an interactive session of `agent` works in: `resume` continued, or
/// a new one named `fresh()` when a later step of the agent will continue it; `None`
/// when its CLI cannot be given one (see `cli_table::session_support`).
pub(super) fn conversation<L: Launcher>(
    shared: &Shared<L>,
    job: &StepJob,
    agent: &Agent,
    resume: Option<&str>,
    fresh: impl FnOnce() -> String,
) -> Option<Conversation> {
    if shared.rehearse || !session_support(agent.cli).interactive {
        return None;
    }
    match resume {
        Some(id) => Some(Conversation {
            id: id.to_string(),
            resumed: true,
        }),
        None if job.keeps_session => Some(Conversation {
            id: fresh(),
            resumed: false,
        }),
        None => None,
    }
}

/// An interactive session's conversation (see [`conversation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Conversation {
    /// The CLI's session id.
    pub id: String,
    /// Whether it continues an earlier step's.
    pub resumed: bool,
}

/// An interactive agent's terminal session for attempt `attempt`, in `conversation`.
pub(super) fn session<L: Launcher>(
    shared: &Shared<L>,
    job: &StepJob,
    agent: &Agent,
    attempt: u32,
    task: String,
    conversation: Option<&Conversation>,
    mcp: Option<&McpSetup>,
) -> SessionSpec {
    let p = profile(agent.cli);
    let mut argv = vec![p.program.to_string()];
    let session = conversation.map(|c| match c.resumed {
        true => SessionArg::Resume(&c.id),
        false => SessionArg::Start(&c.id),
    });
    let mut args = interactive_args_in(
        agent.cli,
        agent.effective_model(),
        invocation(job, false),
        session,
    );
    let mut env = base_env(shared, job);
    if let Some(m) = mcp {
        insert_mcp_args(agent.cli, &mut args, m.args.clone());
        env.extend(m.env.iter().cloned());
    }
    argv.extend(args);
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
        env,
        task,
        cli: Some(agent.cli),
        transcript_path: job.step_dir.join(format!("attempt-{attempt}.pty")),
        timeout: job.timeout,
        size: shared.settings.pty_size,
        timing,
        nudge: shared.nudge.clone(),
        sandbox: sandbox_of(shared, job, Some(agent.cli)),
        // A later step of the agent continues this one: its terminal stays open for it.
        carry: job.keeps_session.then(|| relay_broker::session::Carry {
            run: shared.run_id.clone(),
            agent: agent.name.clone(),
            take: job.continues_session,
        }),
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

#[cfg(test)]
mod tests {
    use super::regex_example;

    #[test]
    fn rehearsals_find_a_line_that_matches_a_check() {
        assert_eq!(
            regex_example("(?i)^all answered$").as_deref(),
            Some("all answered")
        );
        assert_eq!(
            regex_example("VERDICT: (pass|fail)").as_deref(),
            Some("VERDICT: pass")
        );
        assert_eq!(regex_example("^v\\d+\\.\\d+$").as_deref(), Some("v0.0"));
        assert_eq!(
            regex_example("tests? passed").as_deref(),
            Some("test passed")
        );
        assert_eq!(
            regex_example("[A-Z]{3}-[0-9]+"),
            None,
            "a guess that does not match is dropped"
        );
    }
}
