//! Building a workflow in code instead of YAML: `RelayFile::builder(name)` gathers
//! agents, steps and run-wide settings into the same typed [`RelayFile`] the loader
//! produces, and [`RelayFile::to_yaml`] writes it out in the relay.yaml format (the field
//! names are the format's, because the YAML comes from the same serde types).
//!
//! ```
//! use relay_spec::{Agent, Cli, OnError, Pattern, RelayFile, Step, Verification};
//!
//! let file = RelayFile::builder("ship")
//!     .pattern(Pattern::Dag)
//!     .max_concurrency(2)
//!     .agent(Agent::builder("dev", Cli::Claude).role("developer").interactive(false))
//!     .step(Step::builder("context").command("git log --oneline -5"))
//!     .step(
//!         Step::builder("plan")
//!             .agent("dev")
//!             .task("Plan it from {{steps.context.output}}")
//!             .depends_on(["context"])
//!             .verification(Verification::output_contains("PLAN_READY")),
//!     )
//!     .on_error(OnError::Retry, Some(1), Some(500))
//!     .build();
//! let yaml = file.to_yaml().unwrap();
//! assert!(yaml.contains("maxConcurrency: 2"));
//! assert!(yaml.contains("dependsOn:"));
//! ```
//!
//! A builder checks nothing; `validate` (or `agent-relay validate -`) does, with the
//! same messages as for a file.

use crate::types::{
    Agent, Cli, Constraints, ErrorHandling, OnError, Pattern, RelayFile, Scalar, Step, StepType,
    Swarm, VariableDef, Verification, VerificationType, WorkflowDef,
};

/// A workflow could not be written as YAML.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the workflow as YAML: {0}")]
pub struct ToYamlError(String);

impl RelayFile {
    /// A builder of a file with one workflow; `name` names both.
    pub fn builder(name: impl Into<String>) -> FileBuilder {
        let name = name.into();
        FileBuilder {
            file: RelayFile {
                version: Some(Scalar::Text("1.0".into())),
                name: name.clone(),
                description: None,
                paths: Vec::new(),
                permission_profiles: Default::default(),
                swarm: None,
                agents: Vec::new(),
                workflows: Vec::new(),
                error_handling: None,
                coordination: None,
                state: None,
                trajectories: None,
                integrations: None,
                variables: Default::default(),
            },
            workflow: WorkflowDef {
                name,
                description: None,
                preflight: Vec::new(),
                on_error: None,
                steps: Vec::new(),
            },
        }
    }

    /// The file in the relay.yaml format.
    pub fn to_yaml(&self) -> Result<String, ToYamlError> {
        serde_saphyr::to_string(self).map_err(|e| ToYamlError(e.to_string()))
    }
}

/// Builds a [`RelayFile`] with one workflow (see the module's example).
#[derive(Debug, Clone)]
pub struct FileBuilder {
    file: RelayFile,
    workflow: WorkflowDef,
}

impl FileBuilder {
    fn swarm(&mut self) -> &mut Swarm {
        self.file.swarm.get_or_insert_with(Swarm::default)
    }

    /// The workflow's description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.workflow.description = Some(text.into());
        self
    }

    /// Names the workflow differently from the file.
    pub fn workflow_name(mut self, name: impl Into<String>) -> Self {
        self.workflow.name = name.into();
        self
    }

    /// `swarm.pattern`.
    pub fn pattern(mut self, pattern: Pattern) -> Self {
        self.swarm().pattern = Some(pattern);
        self
    }

    /// `swarm.maxConcurrency`.
    pub fn max_concurrency(mut self, n: u32) -> Self {
        self.swarm().max_concurrency = Some(n);
        self
    }

    /// `swarm.timeoutMs`: a bound on the whole run.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.swarm().timeout_ms = Some(ms);
        self
    }

    /// `swarm.channel`: the channel every agent joins.
    pub fn channel(mut self, name: impl Into<String>) -> Self {
        self.swarm().channel = Some(name.into());
        self
    }

    /// A declared variable with a default value (`variables`).
    pub fn variable(mut self, name: impl Into<String>, default: impl Into<String>) -> Self {
        self.file.variables.insert(
            name.into(),
            VariableDef {
                description: None,
                default: Some(Scalar::Text(default.into())),
            },
        );
        self
    }

    /// An agent.
    pub fn agent(mut self, agent: impl Into<Agent>) -> Self {
        self.file.agents.push(agent.into());
        self
    }

    /// A step of the workflow, after those added before it.
    pub fn step(mut self, step: impl Into<Step>) -> Self {
        self.workflow.steps.push(step.into());
        self
    }

    /// What a failed step does (`errorHandling.strategy`), with the run-wide retries and
    /// the pause between attempts.
    pub fn on_error(
        mut self,
        strategy: OnError,
        max_retries: Option<u32>,
        retry_delay_ms: Option<u64>,
    ) -> Self {
        let eh = self
            .file
            .error_handling
            .get_or_insert_with(ErrorHandling::default);
        eh.strategy = Some(strategy);
        eh.max_retries = max_retries;
        eh.retry_delay_ms = retry_delay_ms;
        self
    }

    /// Changes the file in any other way (settings the builder has no method for).
    pub fn with(mut self, change: impl FnOnce(&mut RelayFile)) -> Self {
        change(&mut self.file);
        self
    }

    /// The file.
    pub fn build(self) -> RelayFile {
        let mut file = self.file;
        file.workflows.push(self.workflow);
        file
    }
}

impl Agent {
    /// A builder of an agent run by `cli`.
    pub fn builder(name: impl Into<String>, cli: Cli) -> AgentBuilder {
        AgentBuilder(Agent {
            name: name.into(),
            cli,
            role: None,
            task: None,
            model: None,
            constraints: None,
            permissions: None,
            interactive: None,
            cwd: None,
            workdir: None,
            additional_paths: Vec::new(),
            channels: Vec::new(),
            watch: Vec::new(),
            subscriptions: Vec::new(),
            preset: None,
            description: None,
            reports_to: None,
            worktree: None,
            placement: None,
            mcp: None,
        })
    }
}

/// Builds an [`Agent`].
#[derive(Debug, Clone)]
pub struct AgentBuilder(Agent);

impl AgentBuilder {
    fn constraints(&mut self) -> &mut Constraints {
        self.0.constraints.get_or_insert_with(Constraints::default)
    }

    /// What the agent is for (also drives pattern auto-selection).
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.0.role = Some(role.into());
        self
    }

    /// The model the CLI is asked for.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.0.model = Some(model.into());
        self
    }

    /// Retries of this agent's steps that set none (`constraints.retries`).
    pub fn retries(mut self, n: u32) -> Self {
        self.constraints().retries = Some(n);
        self
    }

    /// A bound on each attempt of this agent's steps (`constraints.timeoutMs`).
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.constraints().timeout_ms = Some(ms);
        self
    }

    /// A terminal session (`true`, the default) or a one-shot subprocess.
    pub fn interactive(mut self, yes: bool) -> Self {
        self.0.interactive = Some(yes);
        self
    }

    /// The task of this agent's steps that set none.
    pub fn task(mut self, task: impl Into<String>) -> Self {
        self.0.task = Some(task.into());
        self
    }

    /// Changes the agent in any other way.
    pub fn with(mut self, change: impl FnOnce(&mut Agent)) -> Self {
        change(&mut self.0);
        self
    }

    /// The agent.
    pub fn build(self) -> Agent {
        self.0
    }
}

impl From<AgentBuilder> for Agent {
    fn from(b: AgentBuilder) -> Agent {
        b.0
    }
}

impl Step {
    /// A builder of a step; an agent step unless [`StepBuilder::command`] makes it a
    /// deterministic one.
    pub fn builder(name: impl Into<String>) -> StepBuilder {
        StepBuilder(Step {
            name: name.into(),
            ..Step::default()
        })
    }
}

/// Builds a [`Step`].
#[derive(Debug, Clone)]
pub struct StepBuilder(Step);

impl StepBuilder {
    /// The agent that does the step.
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.0.agent = Some(agent.into());
        self
    }

    /// The task given to the agent.
    pub fn task(mut self, task: impl Into<String>) -> Self {
        self.0.task = Some(task.into());
        self
    }

    /// Makes the step a deterministic one running this shell command.
    pub fn command(mut self, command: impl Into<String>) -> Self {
        self.0.step_type = Some(StepType::Deterministic);
        self.0.command = Some(command.into());
        self
    }

    /// Steps that must complete first.
    pub fn depends_on<S: Into<String>>(mut self, steps: impl IntoIterator<Item = S>) -> Self {
        self.0.depends_on.extend(steps.into_iter().map(Into::into));
        self
    }

    /// The check that decides whether the step succeeded.
    pub fn verification(mut self, v: Verification) -> Self {
        self.0.verification = Some(v);
        self
    }

    /// Retries after a failed attempt.
    pub fn retries(mut self, n: u32) -> Self {
        self.0.retries = Some(n);
        self
    }

    /// A bound on each attempt.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.0.timeout_ms = Some(ms);
        self
    }

    /// The step's output is also the variable `{{name}}` for later steps.
    pub fn output_var(mut self, name: impl Into<String>) -> Self {
        self.0.output_var = Some(name.into());
        self
    }

    /// Changes the step in any other way.
    pub fn with(mut self, change: impl FnOnce(&mut Step)) -> Self {
        change(&mut self.0);
        self
    }

    /// The step.
    pub fn build(self) -> Step {
        self.0
    }
}

impl From<StepBuilder> for Step {
    fn from(b: StepBuilder) -> Step {
        b.0
    }
}

impl Verification {
    fn of(kind: VerificationType, value: Scalar) -> Verification {
        Verification {
            kind,
            value: Some(value),
            description: None,
            timeout_ms: None,
            items: Vec::new(),
        }
    }

    /// The output contains `text`.
    pub fn output_contains(text: impl Into<String>) -> Verification {
        Verification::of(VerificationType::OutputContains, Scalar::Text(text.into()))
    }

    /// The process exited with `code`.
    pub fn exit_code(code: i64) -> Verification {
        Verification::of(VerificationType::ExitCode, Scalar::Int(code))
    }

    /// A file exists at `path`, relative to the step's cwd.
    pub fn file_exists(path: impl Into<String>) -> Verification {
        Verification::of(VerificationType::FileExists, Scalar::Text(path.into()))
    }

    /// The shell command exits 0 (or, as `regex:PATTERN`, the output matches).
    pub fn custom(command: impl Into<String>) -> Verification {
        Verification::of(VerificationType::Custom, Scalar::Text(command.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RelayFile {
        RelayFile::builder("ship")
            .description("Plan, build, check")
            .pattern(Pattern::Dag)
            .max_concurrency(2)
            .timeout_ms(600_000)
            .channel("dev")
            .variable("feature", "a /health endpoint")
            .agent(
                Agent::builder("planner", Cli::Claude)
                    .role("planner")
                    .model("sonnet")
                    .retries(1)
                    .interactive(false),
            )
            .step(Step::builder("context").command("git log --oneline -5"))
            .step(
                Step::builder("plan")
                    .agent("planner")
                    .task("Plan {{feature}}: {{steps.context.output}}\nEnd with PLAN_READY.")
                    .depends_on(["context"])
                    .verification(Verification::output_contains("PLAN_READY"))
                    .timeout_ms(60_000),
            )
            .on_error(OnError::Retry, Some(2), Some(100))
            .build()
    }

    #[test]
    fn the_yaml_reads_back_as_the_same_file_and_validates() {
        let file = sample();
        let yaml = file.to_yaml().unwrap();
        let loaded = crate::parse(&yaml, "built").unwrap();
        assert_eq!(loaded.file, file, "{yaml}");
        let report = crate::validate(&loaded, None);
        assert!(!report.has_errors(), "{yaml}\n{report:?}");
    }

    #[test]
    fn field_names_are_the_formats() {
        let yaml = sample().to_yaml().unwrap();
        for key in [
            "maxConcurrency: 2",
            "timeoutMs: 600000",
            "channel: dev",
            "dependsOn:",
            "errorHandling:",
            "strategy: retry",
            "maxRetries: 2",
            "retryDelayMs: 100",
            "type: deterministic",
            "type: output_contains",
            "interactive: false",
            "retries: 1",
            "pattern: dag",
        ] {
            assert!(yaml.contains(key), "`{key}` missing from\n{yaml}");
        }
    }
}
