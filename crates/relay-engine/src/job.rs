//! What a run node means concretely, resolved without I/O: the agent, the task or command
//! with variables and upstream outputs filled in and the pattern's context appended, the
//! working directory, the check, retries and timeouts (format defaults come from the
//! spec's accessors), and where its files go. Also the task of a retry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_spec::template::{Piece, Quoting, Ref, fill_state, render, render_deferred, written};
use relay_spec::{Agent, RelayFile, StepType, VerificationType, WorkflowDef};

use crate::patterns::result_text;
use crate::plan::{NodeId, NodeLookup, NodeRef, RunSpec, StepIdx};

/// A verification with its value already interpolated.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Which check.
    pub kind: VerificationType,
    /// Its argument.
    pub value: String,
    /// Bound on a custom command.
    pub timeout: Duration,
    /// What the check means, for messages.
    pub description: Option<String>,
}

/// What a step runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// A task for an agent.
    Agent(Box<Agent>),
    /// A shell command (`sh -c`).
    Command {
        /// Whether stdout becomes the output (`captureOutput`).
        capture_output: bool,
        /// Whether a non-zero exit fails the step (`failOnError`).
        fail_on_error: bool,
    },
    /// A git worktree to create (or find, on a resume); the output is its absolute path.
    Worktree {
        /// Its branch.
        branch: String,
        /// Where a new branch starts.
        base: String,
        /// Whether a missing branch is created.
        create: bool,
        /// Where it goes, relative to the step's directory unless absolute.
        path: String,
    },
    /// Wait for something to happen to local files.
    WaitFor {
        /// Globs, relative to the step's directory unless absolute.
        paths: Vec<String>,
        /// Which events count (`created`, `updated`, `deleted`; empty: any).
        events: Vec<String>,
        /// Bound on the wait.
        timeout: Option<Duration>,
    },
    /// Something only a hosted service can do: the step fails with this reason.
    Unavailable(String),
    /// A one-shot agent repairing what made another step fail; what it changes is
    /// recorded, and changing a protected file fails the repair.
    Repair {
        /// The repairing agent.
        agent: Box<Agent>,
        /// Globs of files it may not change (`errorHandling.protect`).
        protect: Vec<String>,
    },
}

/// One run node, ready to run: everything resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct StepJob {
    /// The node.
    pub node: NodeId,
    /// Its name in events, logs and `AGENT_RELAY_STEP`.
    pub label: String,
    /// The workflow step it stands for.
    pub step: StepIdx,
    /// The step's name.
    pub step_name: String,
    /// What runs.
    pub work: Work,
    /// The task (agents) or command (deterministic steps), interpolated; a
    /// `{{state.KEY}}` in it is still as written (see `state`).
    pub text: String,
    /// The `{{state.KEY}}` references of the text, filled when an attempt starts.
    pub state: Option<StateSlots>,
    /// The run's shared board is appended to the task when an attempt starts.
    pub append_board: bool,
    /// Working directory.
    pub cwd: PathBuf,
    /// The verification, unless the node is judged by a gate.
    pub check: Option<Check>,
    /// Attempts allowed (retries + 1).
    pub max_attempts: u32,
    /// Pause before a retry.
    pub retry_delay: Duration,
    /// Bound on each attempt.
    pub timeout: Option<Duration>,
    /// The node's directory in the run directory.
    pub step_dir: PathBuf,
    /// Whether its agent may ask a person (`humanAssistance` not off for the step).
    pub human_assistance: bool,
    /// What it may read, write, reach and run (its agent's, or a deterministic step's
    /// own); `None` for what runs without any.
    pub permissions: Option<relay_spec::permissions::EffectivePermissions>,
    /// The checklist its agent must mark done (`verification: {type: checklist}`);
    /// judged by the run state, not by a check.
    pub checklist: Vec<relay_spec::ChecklistItem>,
    /// Whether a step of its agent continues a conversation (`session: resume`), so an
    /// interactive session is started in one a later step can name, and its terminal is
    /// kept open for that step when the launcher can keep it.
    pub keeps_session: bool,
    /// Whether this step continues its agent's conversation (`session: resume` or
    /// `inherit`): an interactive one in the terminal the agent's earlier step left open,
    /// when there is one.
    pub continues_session: bool,
}

/// The section appended to the task of a step with a checklist: the items, and how to
/// mark them.
pub fn checklist_section(items: &[relay_spec::ChecklistItem]) -> String {
    let mut t = String::from(
        "\n\n## Checklist\nThis step is complete only when every item below is marked done. Mark \
         each one as you finish it with `\"$AGENT_RELAY_BIN\" task done ID` (add `--note TEXT` \
         to say how); if one cannot be done, `\"$AGENT_RELAY_BIN\" task blocked ID --reason \
         TEXT`.",
    );
    for i in items {
        if i.title.is_empty() {
            t.push_str(&format!("\n- [ ] {}", i.id));
        } else {
            t.push_str(&format!("\n- [ ] {}: {}", i.id, i.title));
        }
    }
    t
}

/// The start of a job's text with its `{{state.KEY}}` references still to fill. The
/// run's state is read when each attempt starts, so an agent sees what others wrote
/// before it began, not when the run was planned.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSlots {
    pieces: Vec<Piece>,
    quoting: Quoting,
}

impl StateSlots {
    /// The keys to read.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .pieces
            .iter()
            .filter_map(|p| match p {
                Piece::State(k) => Some(k.as_str()),
                Piece::Text(_) => None,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// `text` (an attempt's text, which starts with the job's) with the references
    /// filled from `values`, or why not. What follows the references' part (context,
    /// the note of a retry) is kept as it is and never read for references.
    pub fn fill(&self, text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
        let head = written(&self.pieces);
        // Every attempt's text begins with the job's, which begins with this head.
        let Some(rest) = text.strip_prefix(&head) else {
            return Err("the task no longer begins as resolved (a bug)".to_owned());
        };
        let filled = fill_state(&self.pieces, values, self.quoting).map_err(|m| missing(&m))?;
        Ok(format!("{filled}{rest}"))
    }
}

impl StepJob {
    /// The agent, for agent steps.
    pub fn agent(&self) -> Option<&Agent> {
        match &self.work {
            Work::Agent(a) | Work::Repair { agent: a, .. } => Some(a),
            _ => None,
        }
    }
}

/// What resolving a node needs to know about the run.
pub struct JobCtx<'a> {
    /// The workflow file.
    pub file: &'a RelayFile,
    /// The workflow.
    pub wf: &'a WorkflowDef,
    /// User variables.
    pub vars: &'a BTreeMap<String, String>,
    /// The run's working directory (steps' default cwd).
    pub workdir: &'a Path,
    /// The directories of `paths`, resolved.
    pub paths: &'a BTreeMap<String, PathBuf>,
    /// The run directory.
    pub run_dir: &'a Path,
}

/// A node to resolve.
pub struct NodeToRun<'a> {
    /// Its id.
    pub id: NodeId,
    /// Its label.
    pub label: &'a str,
    /// Its step.
    pub step: StepIdx,
    /// How it differs from its step.
    pub spec: &'a RunSpec,
    /// The agent it runs on (chosen by the pattern's hooks).
    pub agent: Option<&'a str>,
}

fn missing(refs: &[Ref]) -> String {
    let refs: Vec<String> = refs.iter().map(|r| r.to_string()).collect();
    format!("no value for {}", refs.join(", "))
}

/// Resolves `node` against the variables and completed `outputs` (by step name) and the
/// results of other nodes. An error fails only this node, with the reason.
pub fn resolve(
    ctx: &JobCtx<'_>,
    node: &NodeToRun<'_>,
    outputs: &BTreeMap<String, String>,
    results: &dyn NodeLookup,
) -> Result<StepJob, String> {
    let step = ctx
        .wf
        .steps
        .get(node.step.get())
        .ok_or_else(|| format!("node `{}` names no step", node.label))?;
    let spec = node.spec;
    let merged;
    let outputs = if spec.fallback_outputs.is_empty() {
        outputs
    } else {
        let mut all = spec.fallback_outputs.clone();
        all.extend(outputs.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged = all;
        &merged
    };
    let mut vars = ctx.vars.clone();
    vars.extend(spec.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    let fill = |text: &str, q: Quoting| render(text, &vars, outputs, q).map_err(|m| missing(&m));
    let agent = node
        .agent
        .and_then(|a| ctx.file.agents.iter().find(|x| x.name == a))
        .cloned();
    let (work, raw, quoting) = match (step.kind(), agent.clone()) {
        _ if spec.command.is_some() => (
            Work::Command {
                capture_output: true,
                fail_on_error: true,
            },
            spec.command.as_deref().unwrap_or_default(),
            Quoting::Shell,
        ),
        (StepType::Deterministic, _) => (
            Work::Command {
                capture_output: step.captures_output(),
                fail_on_error: step.fails_on_error(),
            },
            spec.task
                .as_deref()
                .or(step.command.as_deref())
                .unwrap_or(""),
            Quoting::Shell,
        ),
        (StepType::Agent, Some(a)) => (
            Work::Agent(Box::new(a)),
            // The step's task, else its agent's own `task`.
            spec.task
                .as_deref()
                .or(step.task.as_deref())
                .or(agent.as_ref().and_then(|x| x.task.as_deref()))
                .unwrap_or(""),
            Quoting::None,
        ),
        (StepType::Agent, None) => {
            return Err(match node.agent {
                Some(a) => format!("step `{}`: no agent `{a}`", step.name),
                None => format!("step `{}` has no agent", step.name),
            });
        }
        (StepType::Worktree, _) => (
            Work::Worktree {
                branch: fill(step.branch.as_deref().unwrap_or(&step.name), Quoting::None)?,
                base: fill(step.base_branch(), Quoting::None)?,
                create: step.creates_branch(),
                path: fill(&step.worktree_path(), Quoting::None)?,
            },
            "",
            Quoting::None,
        ),
        (StepType::WaitFor, _) => {
            let w = step.wait_for.clone().unwrap_or_default();
            let local = w.provider.as_deref().is_none_or(|p| p == "local");
            let work = if local {
                Work::WaitFor {
                    paths: w
                        .all_paths()
                        .into_iter()
                        .map(|p| fill(p, Quoting::None))
                        .collect::<Result<_, _>>()?,
                    events: w.all_events().into_iter().map(str::to_owned).collect(),
                    timeout: w.timeout().or(step.timeout_with(agent.as_ref())),
                }
            } else {
                Work::Unavailable(format!(
                    "waiting for `{}` events needs that hosted service, which is not reachable \
                     offline (only `provider: local` file events are watched here)",
                    w.provider.as_deref().unwrap_or_default()
                ))
            };
            (work, "", Quoting::None)
        }
        (StepType::Integration, _) => (
            Work::Unavailable(format!(
                "the `{}` integration{} needs its hosted service, which is not reachable offline",
                step.integration.as_deref().unwrap_or("unnamed"),
                step.action
                    .as_deref()
                    .map(|a| format!(" (action `{a}`)"))
                    .unwrap_or_default()
            )),
            "",
            Quoting::None,
        ),
    };
    let pieces = render_deferred(raw, &vars, outputs, quoting).map_err(|m| missing(&m))?;
    let mut text = written(&pieces);
    let state = pieces
        .iter()
        .any(|p| matches!(p, Piece::State(_)))
        .then_some(StateSlots { pieces, quoting });
    if matches!(work, Work::Agent(_)) {
        for (heading, body) in &spec.context {
            text.push_str(&format!("\n\n## {heading}\n{body}"));
        }
        for (heading, input) in &spec.inputs {
            let result = match input {
                NodeRef::Id(id) => results.result(*id),
                NodeRef::New(_) => None,
            };
            text.push_str(&format!("\n\n## {heading}\n{}", result_text(result)));
        }
    }
    // The step's own directory first, then its agent's; `cwd` is a path (variables and
    // outputs filled in: a worktree step's output), `workdir` names an entry of `paths`.
    let named = |w: &Option<String>| w.as_deref().and_then(|n| ctx.paths.get(n)).cloned();
    let cwd = match (
        &step.cwd,
        named(&step.workdir),
        agent.as_ref().and_then(|a| a.cwd.clone()),
        agent.as_ref().and_then(|a| named(&a.workdir)),
    ) {
        (Some(c), ..) => ctx.workdir.join(fill(c, Quoting::None)?),
        (None, Some(dir), ..) => dir,
        (None, None, Some(c), _) => ctx.workdir.join(fill(&c, Quoting::None)?),
        (None, None, None, Some(dir)) => dir,
        (None, None, None, None) => ctx.workdir.to_path_buf(),
    };
    let checklist = match (&step.verification, spec.unverified) {
        (Some(v), false) if v.kind == VerificationType::Checklist => v.items.clone(),
        _ => Vec::new(),
    };
    if !checklist.is_empty() && matches!(work, Work::Agent(_)) {
        text.push_str(&checklist_section(&checklist));
    }
    let check = match (&step.verification, spec.unverified) {
        (Some(v), false) if v.kind == VerificationType::Checklist => None,
        (Some(v), false) => {
            let raw = v.value.as_ref().map(|s| s.as_text()).unwrap_or_default();
            let q = if v.kind == VerificationType::Custom {
                Quoting::Shell
            } else {
                Quoting::None
            };
            Some(Check {
                kind: v.kind,
                value: fill(&raw, q)?,
                timeout: v.timeout(),
                description: v.description.clone(),
            })
        }
        _ => None,
    };
    let eh = ctx.file.error_handling.as_ref();
    let retries = spec
        .retries
        .unwrap_or_else(|| step.retries_with(agent.as_ref(), eh));
    // Validation made sure these resolve.
    let permissions = match &work {
        Work::Agent(a) => relay_spec::permissions::effective_permissions(ctx.file, a).ok(),
        Work::Command { .. } => {
            relay_spec::permissions::step_permissions(ctx.file, step).and_then(Result::ok)
        }
        _ => None,
    };
    let timeout = step.timeout_with(agent.as_ref());
    let keeps_session = work_agent_keeps_session(ctx.wf, &work);
    let continues_session = step.session.is_some_and(relay_spec::SessionMode::continues);
    Ok(StepJob {
        node: node.id,
        label: node.label.to_owned(),
        step: node.step,
        step_name: step.name.clone(),
        append_board: spec.board && matches!(work, Work::Agent(_)),
        work,
        text,
        state,
        cwd,
        check,
        max_attempts: retries.saturating_add(1),
        retry_delay: eh.map_or(Duration::ZERO, |e| e.retry_delay()),
        timeout,
        step_dir: crate::store::step_dir_of(ctx.run_dir, node.label),
        human_assistance: !step.human_assistance_off(),
        permissions,
        checklist,
        keeps_session,
        continues_session,
    })
}

/// Whether a step of `work`'s agent in `wf` continues a conversation; asked only of
/// interactive agents (one-shot CLIs name their conversation themselves).
fn work_agent_keeps_session(wf: &WorkflowDef, work: &Work) -> bool {
    let Work::Agent(agent) = work else {
        return false;
    };
    if !agent.is_interactive() {
        return false;
    }
    wf.steps.iter().any(|s| {
        s.agent.as_deref() == Some(agent.name.as_str())
            && s.session.is_some_and(relay_spec::SessionMode::continues)
    })
}

/// The task of the attempt after a question: the task, what the agent said, and the
/// person's answer.
pub fn answered_text(job: &StepJob, output: &str, question: &str, answer: &str) -> String {
    let mut t = job.text.clone();
    let tail = tail_lines(output, 20);
    if !tail.is_empty() {
        // Quoted so that its own markers (the question) are not read as said again.
        let quoted: Vec<String> = tail.lines().map(|l| format!("  | {l}")).collect();
        t.push_str(&format!(
            "\n\n---\nLast time you wrote:\n{}",
            quoted.join("\n")
        ));
    }
    t.push_str(&format!(
        "\n\nYou asked: {question}\nHUMAN_ANSWER: {answer}\nGo on with the task."
    ));
    t
}

/// The last `n` non-empty lines of `text`.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The text of attempt `attempt` of `job`: the task as resolved for the first, and for a
/// retry of an agent step the task followed by what went wrong last time.
pub fn attempt_text(job: &StepJob, attempt: u32, previous: Option<&Previous>) -> String {
    match (previous, &job.work) {
        (Some(prev), Work::Agent(_)) => {
            let mut t = format!(
                "{}\n\n---\nThis is attempt {attempt} of {}. The previous attempt failed: {}.",
                job.text, job.max_attempts, prev.reason
            );
            if let Some(code) = prev.exit_code {
                t.push_str(&format!(" It exited with code {code}."));
            }
            let tail = tail_lines(&prev.output, 20);
            if !tail.is_empty() {
                t.push_str("\nThe end of its output was:\n");
                t.push_str(&tail);
            }
            t.push_str("\nPlease fix that and complete the task.");
            t
        }
        _ => job.text.clone(),
    }
}

/// One attempt to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The node, resolved.
    pub job: std::sync::Arc<StepJob>,
    /// Which attempt (from 1).
    pub attempt: u32,
    /// Its task or command.
    pub text: String,
    /// The conversation of its agent it continues (`session: resume`), when there is one.
    pub session: Option<String>,
}

/// How many repairs a failing step of `wf` may get before its retries: with
/// `strategy: retry` (or `onError: retry`), `repairRetries`, else the retry budget when a
/// `repairAgent` is named, else none.
pub fn repair_budget(file: &RelayFile, wf: &WorkflowDef) -> u32 {
    let Some(eh) = file.error_handling.as_ref() else {
        return 0;
    };
    if file.on_error_for(wf) != relay_spec::OnError::Retry {
        return 0;
    }
    match (eh.repair_retries, &eh.repair_agent) {
        (Some(r), _) => r,
        (None, Some(_)) => eh.max_retries(),
        (None, None) => 0,
    }
}

/// The job that repairs `failed` before its next attempt: the `repairAgent`, else the
/// step's own agent, else `upstream` (the nearest agent upstream of a deterministic
/// step); `None` when there is none. `k` counts the repairs of this step.
pub fn repair_job(
    ctx: &JobCtx<'_>,
    failed: &StepJob,
    previous: &Previous,
    upstream: Option<&str>,
    k: u32,
) -> Option<StepJob> {
    let eh = ctx.file.error_handling.as_ref();
    let name = eh
        .and_then(|e| e.repair_agent.as_deref())
        .or(failed.agent().map(|a| a.name.as_str()))
        .or(upstream)?;
    let agent = ctx.file.agent(name)?.clone();
    let what = match &failed.work {
        Work::Agent(_) => "the task",
        _ => "the command",
    };
    let mut text = format!(
        "The step `{}` failed: {}.\n\nIt ran {what}:\n{}\n",
        failed.step_name,
        previous.reason,
        clip(&failed.text, 4000)
    );
    if let Some(code) = previous.exit_code {
        text.push_str(&format!("It exited with code {code}.\n"));
    }
    let tail = tail_lines(&previous.output, 40);
    if !tail.is_empty() {
        text.push_str(&format!("The end of its output was:\n{tail}\n"));
    }
    text.push_str(
        "\nFind the cause and change what needs changing so that its next attempt passes. \
         Say briefly what you changed.",
    );
    let protect = eh.map(|e| e.protect.clone()).unwrap_or_default();
    if !protect.is_empty() {
        text.push_str(&format!(
            " Do not change these files: {}.",
            protect.join(", ")
        ));
    }
    let label = format!("{}:repair#{k}", failed.label);
    let permissions = relay_spec::permissions::effective_permissions(ctx.file, &agent).ok();
    Some(StepJob {
        node: failed.node,
        step: failed.step,
        step_name: failed.step_name.clone(),
        work: Work::Repair {
            agent: Box::new(agent),
            protect,
        },
        text,
        // The failed step's text is shown as it was written, never filled again.
        state: None,
        append_board: false,
        cwd: failed.cwd.clone(),
        check: None,
        max_attempts: 1,
        retry_delay: Duration::ZERO,
        timeout: failed.timeout,
        step_dir: crate::store::step_dir_of(ctx.run_dir, &label),
        human_assistance: false,
        permissions,
        checklist: Vec::new(),
        keeps_session: false,
        continues_session: false,
        label,
    })
}

/// At most `max` bytes of `text` (cut at a character boundary).
fn clip(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// What a failed attempt left for the next one to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    /// Why it failed.
    pub reason: String,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// Its output.
    pub output: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::NodeResult;

    struct NoNodes;
    impl NodeLookup for NoNodes {
        fn label(&self, _: NodeId) -> &str {
            ""
        }
        fn result(&self, _: NodeId) -> Option<&NodeResult> {
            None
        }
    }

    fn job_of(yaml: &str, spec: RunSpec, outputs: &[(&str, &str)]) -> Result<StepJob, String> {
        let loaded = relay_spec::parse(yaml, "t.yaml").unwrap();
        let wf = &loaded.file.workflows[0];
        let vars = BTreeMap::from([("who".to_string(), "world".to_string())]);
        let outputs: BTreeMap<String, String> = outputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ctx = JobCtx {
            file: &loaded.file,
            wf,
            vars: &vars,
            workdir: Path::new("/w"),
            paths: &BTreeMap::new(),
            run_dir: Path::new("/w/.agent-relay/runs/r"),
        };
        let agent = wf.steps[1].agent.clone();
        resolve(
            &ctx,
            &NodeToRun {
                id: NodeId::new(1),
                label: "b",
                step: StepIdx(1),
                spec: &spec,
                agent: agent.as_deref(),
            },
            &outputs,
            &NoNodes,
        )
    }

    const FILE: &str = "name: t
agents: [{name: a, cli: claude, cwd: sub, constraints: {retries: 2, timeoutMs: 5000}}]
errorHandling: {retryDelayMs: 30}
workflows:
  - name: w
    steps:
      - {name: a1, agent: a, task: first}
      - name: b
        agent: a
        dependsOn: [a1]
        task: \"hello {{who}}: {{steps.a1.output}}\"
        verification: {type: output_contains, value: \"{{who}}\"}
";

    #[test]
    fn a_node_resolves_with_variables_outputs_and_defaults() {
        let job = job_of(FILE, RunSpec::default(), &[("a1", "done")]).unwrap();
        assert_eq!(job.text, "hello world: done");
        assert_eq!(job.cwd, Path::new("/w/sub"));
        assert_eq!(job.max_attempts, 3, "the agent's retries");
        assert_eq!(job.timeout, Some(Duration::from_millis(5000)));
        assert_eq!(job.retry_delay, Duration::from_millis(30));
        let check = job.check.unwrap();
        assert_eq!(check.value, "world");
        assert_eq!(check.timeout, Duration::from_secs(60));
        assert_eq!(job.step_dir, Path::new("/w/.agent-relay/runs/r/steps/b"));
    }

    #[test]
    fn state_references_are_filled_when_an_attempt_starts() {
        let file = FILE.replace("hello {{who}}", "hello {{state.plan}} {{who}}");
        let job = job_of(&file, RunSpec::default(), &[("a1", "done")]).unwrap();
        assert_eq!(job.text, "hello {{state.plan}} world: done");
        let slots = job.state.clone().unwrap();
        assert_eq!(slots.keys(), ["plan"]);
        let prev = Previous {
            reason: "r".into(),
            exit_code: None,
            output: "{{state.plan}}".into(),
        };
        let retry = attempt_text(&job, 2, Some(&prev));
        let values = BTreeMap::from([("plan".to_string(), "the plan".to_string())]);
        let filled = slots.fill(&retry, &values).unwrap();
        assert!(filled.starts_with("hello the plan world: done\n\n---"));
        assert!(
            filled.contains("\n{{state.plan}}"),
            "what came from an attempt's output is not filled: {filled}"
        );
        let err = slots.fill(&job.text, &BTreeMap::new()).unwrap_err();
        assert!(err.contains("no value for {{state.plan}}"), "{err}");
        assert!(
            job_of(FILE, RunSpec::default(), &[("a1", "x")])
                .unwrap()
                .state
                .is_none()
        );
    }

    #[test]
    fn a_missing_output_fails_only_the_node() {
        let err = job_of(FILE, RunSpec::default(), &[]).unwrap_err();
        assert!(err.contains("no value for {{steps.a1.output}}"), "{err}");
    }

    #[test]
    fn pattern_context_is_appended_and_gated_nodes_skip_the_check() {
        let spec = RunSpec {
            context: vec![("Your vote".into(), "End with VOTE.".into())],
            unverified: true,
            retries: Some(0),
            ..RunSpec::default()
        };
        let job = job_of(FILE, spec, &[("a1", "x")]).unwrap();
        assert!(job.text.ends_with("\n\n## Your vote\nEnd with VOTE."));
        assert!(job.check.is_none());
        assert_eq!(job.max_attempts, 1);
    }

    #[test]
    fn a_retry_tells_the_agent_what_failed() {
        let job = job_of(FILE, RunSpec::default(), &[("a1", "x")]).unwrap();
        let prev = Previous {
            reason: "exit code 2".into(),
            exit_code: Some(2),
            output: "line one\nboom".into(),
        };
        let t = attempt_text(&job, 2, Some(&prev));
        assert!(t.starts_with("hello world: x\n\n---\nThis is attempt 2 of 3."));
        assert!(t.contains("It exited with code 2."));
        assert!(t.contains("line one\nboom"));
        assert_eq!(attempt_text(&job, 1, None), "hello world: x");
    }

    #[test]
    fn a_step_without_a_task_takes_its_agents_own() {
        let yaml = "name: t\nagents: [{name: a, cli: claude, task: 'review {{who}}'}]\nworkflows:\n  - name: w\n    steps:\n      - {name: a1, agent: a, task: first}\n      - {name: b, agent: a}\n";
        let job = job_of(yaml, RunSpec::default(), &[]).unwrap();
        assert_eq!(job.text, "review world");
    }
}
