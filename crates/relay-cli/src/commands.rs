//! `run` and `validate`: load the file, report problems with positions, start the engine,
//! and turn its outcome into output and an exit code.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use relay_engine::Checked;
use relay_spec::validate::{required_vars, select_workflow};
use relay_spec::{Diagnostic, Loaded, Report};

use crate::diagnostics::{exit_of, invalid, load_error_lines, plural, print_diagnostics};
use crate::error::{CliError, CliResult, Exit};
use crate::execute::{Job, Output, execute, workdir};

/// Options shared by commands that read a workflow.
#[derive(Args, Debug)]
pub struct WorkflowArgs {
    /// The workflow file (relay.yaml), `-` for standard input, a script that builds one
    /// with the SDK (`.py`, `.js`, `.mjs`, `.mts`, `.ts`), or the name of a template when no such
    /// file exists.
    pub file: PathBuf,
    /// Which workflow of the file to use (default: the first).
    #[arg(short, long)]
    pub workflow: Option<String>,
    /// A variable for `{{name}}` in tasks and commands (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// A YAML or JSON file of variables (`--var` wins over it).
    #[arg(long, value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
    /// Variables as a JSON object, or `@FILE` holding one (`--var` wins over it; lists
    /// and objects become their JSON text).
    #[arg(long, value_name = "JSON|@FILE")]
    pub input: Option<String>,
    /// Print the pattern in effect, why it was chosen, and the plan; run nothing.
    #[arg(long)]
    pub explain: bool,
}

/// `run` options.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub wf: WorkflowArgs,
    /// Stand in the built-in rehearsal agent for every agent CLI (no tokens, no installs).
    #[arg(long)]
    pub rehearse: bool,
    /// Print one JSON summary on stdout at the end.
    #[arg(long)]
    pub json: bool,
    /// Print every event as one JSON object per line on stdout (with `--json`, the
    /// summary is the last line).
    #[arg(long)]
    pub events_json: bool,
    /// Print only the final summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Start agents whose permissions this kernel cannot fully enforce, with what it can
    /// (each rule not enforced is recorded as a warning).
    #[arg(long)]
    pub allow_unenforced: bool,
    /// Continue an interrupted or failed run instead (same as `agent-relay resume RUN_ID`).
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["start_from", "previous_run"])]
    pub resume: Option<String>,
    /// Start from this step: its upstream steps are taken from an earlier run.
    #[arg(long, value_name = "STEP")]
    pub start_from: Option<String>,
    /// The earlier run `--start-from` reuses (default: the latest run).
    #[arg(long, value_name = "RUN_ID", requires = "start_from")]
    pub previous_run: Option<String>,
    /// Serve the web dashboard while the run goes and print its URL.
    #[arg(long)]
    pub dashboard: bool,
    /// Port of `--dashboard` on 127.0.0.1 (default: any free port).
    #[arg(long, value_name = "PORT", requires = "dashboard")]
    pub dashboard_port: Option<u16>,
    #[command(flatten)]
    pub nats: crate::workers::NatsArgs,
}

/// `validate` options.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub wf: WorkflowArgs,
}

/// Reads FILE (`-`: standard input; a `.py`, `.js`, `.mjs` or `.ts` script (and the like) is run to
/// build it); when there is no such file, FILE may name a template.
fn load(path: &std::path::Path) -> CliResult<crate::source::Source> {
    if let Some(source) = crate::source::load(path)? {
        return Ok(source);
    }
    load_yaml(path).map(crate::source::Source::from)
}

fn load_yaml(path: &std::path::Path) -> CliResult<Loaded> {
    if let Some(template) = crate::templates::load_by_name(path) {
        return template.map_err(|code| CliError::reported(exit_of(code)));
    }
    relay_spec::load_file(path).map_err(|e| CliError::lines(Exit::Invalid, load_error_lines(&e)))
}

/// The names given with `--var`.
fn typed_vars(args: &WorkflowArgs) -> Vec<String> {
    args.vars
        .iter()
        .filter_map(|v| relay_spec::vars::parse_var(v).ok().map(|(k, _)| k))
        .collect()
}

fn collect_vars(args: &WorkflowArgs) -> CliResult<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    if let Some(f) = &args.vars_file {
        vars.extend(relay_spec::vars::read_vars_file(f).map_err(CliError::invalid)?);
    }
    if let Some(i) = &args.input {
        vars.extend(relay_spec::vars::parse_input(i).map_err(CliError::invalid)?);
    }
    for v in &args.vars {
        let (k, val) = relay_spec::vars::parse_var(v).map_err(CliError::invalid)?;
        vars.insert(k, val);
    }
    Ok(vars)
}

/// Loads and validates (once); errors become one `CliError` listing every finding.
fn load_checked(args: &WorkflowArgs) -> CliResult<(Checked, Report, BTreeMap<String, String>)> {
    let source = load(&args.file)?;
    let mut vars = source.vars;
    vars.extend(collect_vars(args)?);
    let workflow = args.workflow.as_deref().or(source.workflow.as_deref());
    match Checked::new(source.loaded, workflow) {
        Ok((checked, report)) => {
            let loaded = checked.loaded();
            relay_state::open::check(loaded.file.state.as_ref()).map_err(|e| {
                CliError::lines(
                    Exit::Invalid,
                    vec![format!("{}: error: {e}; nothing was run", loaded.origin)],
                )
            })?;
            Ok((checked, report, vars))
        }
        Err(failed) => {
            let (loaded, report) = *failed;
            Err(invalid(&loaded, &report, "nothing was run"))
        }
    }
}

/// Prints the pattern, why, who may message whom, and the plan (`--explain`).
fn explain(loaded: &Loaded, workflow: Option<&str>) -> CliResult {
    let (_, wf) = select_workflow(&loaded.file, workflow).map_err(CliError::invalid)?;
    let (plan, hooks) = relay_engine::patterns::build(&loaded.file, wf);
    println!("workflow `{}`", wf.name);
    println!(
        "pattern: {} ({})",
        plan.pattern.pattern.as_str(),
        plan.pattern.reason
    );
    let topology = match &hooks.topology {
        relay_messaging::Topology::All => "every agent may message every other".to_string(),
        relay_messaging::Topology::Hub(h) => format!(
            "spokes message only the hub ({})",
            h.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        relay_messaging::Topology::Tree(_) => {
            "agents message their manager and direct reports".to_string()
        }
        relay_messaging::Topology::Chain(c) => {
            format!(
                "agents message their neighbours in the chain {}",
                c.join(" -> ")
            )
        }
    };
    println!("messaging: {topology}");
    let workdir = crate::execute::workdir()?;
    for line in relay_engine::enforcement::check(&loaded.file, wf, &workdir, false).explain_lines()
    {
        println!("{line}");
    }
    println!("plan:");
    for line in plan.describe() {
        println!("  {line}");
    }
    Ok(Exit::Success)
}

/// `agent-relay validate FILE`.
pub fn validate(args: ValidateArgs) -> CliResult {
    let (checked, report, vars) = load_checked(&args.wf)?;
    let loaded = checked.loaded();
    if args.wf.explain {
        return explain(loaded, checked.workflow());
    }
    let mut warnings: Vec<Diagnostic> = report.warnings().cloned().collect();
    warnings.extend(relay_engine::capabilities::not_yet_effective(&loaded.file));
    print_diagnostics(loaded, &warnings.iter().collect::<Vec<_>>());
    let vars = loaded.file.vars_with_defaults(&vars);
    if let Ok((_, wf)) = select_workflow(&loaded.file, checked.workflow()) {
        let all = relay_spec::templates::variables(&loaded.file, Some(wf));
        let missing = relay_spec::validate::missing_vars(wf, &vars);
        crate::templates::warn_stray_vars(&all, &wf.name, &typed_vars(&args.wf), &missing);
        let needed = required_vars(wf);
        if !needed.is_empty() {
            eprintln!(
                "workflow `{}` uses variables: {}",
                wf.name,
                needed.iter().cloned().collect::<Vec<_>>().join(", ")
            );
            // Only an error when the user supplied variables and still left some out.
            if !missing.is_empty()
                && (!args.wf.vars.is_empty()
                    || args.wf.vars_file.is_some()
                    || args.wf.input.is_some())
            {
                let lines = missing
                    .iter()
                    .map(|m| {
                        format!(
                            "{}: error: missing variable `{m}` (pass --var {m}=VALUE)",
                            loaded.origin
                        )
                    })
                    .collect();
                return Err(CliError::lines(Exit::Invalid, lines));
            }
        }
    }
    let steps: usize = loaded.file.workflows.iter().map(|w| w.steps.len()).sum();
    println!(
        "{}: valid ({} workflow{}, {} step{}, {} agent{}{})",
        loaded.origin,
        loaded.file.workflows.len(),
        plural(loaded.file.workflows.len()),
        steps,
        plural(steps),
        loaded.file.agents.len(),
        plural(loaded.file.agents.len()),
        if warnings.is_empty() {
            String::new()
        } else {
            format!(", {} warning{}", warnings.len(), plural(warnings.len()))
        }
    );
    Ok(Exit::Success)
}

/// `agent-relay run FILE`.
pub fn run(args: RunArgs) -> CliResult {
    let out = Output {
        json: args.json,
        quiet: args.quiet,
        events_json: args.events_json,
    };
    if let Some(id) = &args.resume {
        return crate::runs_cmd::resume(id, out, &args.nats);
    }
    let (checked, _, vars) = load_checked(&args.wf)?;
    if args.wf.explain {
        return explain(checked.loaded(), checked.workflow());
    }
    let typed = typed_vars(&args.wf);
    crate::templates::check_required_vars(checked.loaded(), checked.workflow(), &vars, &typed)
        .map_err(|code| CliError::reported(exit_of(code)))?;
    let workdir = workdir()?;
    let resume = match &args.start_from {
        None => None,
        Some(step) => {
            let prev = args.previous_run.as_deref().unwrap_or("last");
            let dir = relay_engine::runs::find_run(&workdir, prev)?;
            Some(relay_engine::runs::prepare_start_from(
                &dir,
                checked.loaded(),
                checked.workflow(),
                step,
            )?)
        }
    };
    let nats = args.nats.resolve(&checked.loaded().file)?;
    execute(
        Job {
            checked,
            vars,
            rehearse: args.rehearse,
            allow_unenforced: args.allow_unenforced,
            resume,
            workdir,
            dashboard: args.dashboard.then(|| args.dashboard_port.unwrap_or(0)),
            nats,
        },
        out,
    )
}
