//! `run` and `validate`: load the file, report problems with positions, start the engine,
//! and turn its outcome into output and an exit code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use relay_broker::LocalLauncher;
use relay_engine::{EngineError, RunRequest, Settings};
use relay_spec::validate::{required_vars, select_workflow};
use relay_spec::{Diagnostic, LoadError, Loaded};
use tokio_util::sync::CancellationToken;

use crate::{EXIT_INVALID, EXIT_RUNTIME, progress};

/// Options shared by commands that read a workflow.
#[derive(Args, Debug)]
pub struct WorkflowArgs {
    /// The workflow file (relay.yaml), or the name of a template when no such file exists.
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
    /// Print only the final summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Continue an interrupted or failed run instead (same as `agent-relay resume RUN_ID`).
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = ["start_from", "previous_run"])]
    pub resume: Option<String>,
    /// Start from this step: its upstream steps are taken from an earlier run.
    #[arg(long, value_name = "STEP")]
    pub start_from: Option<String>,
    /// The earlier run `--start-from` reuses (default: the latest run).
    #[arg(long, value_name = "RUN_ID", requires = "start_from")]
    pub previous_run: Option<String>,
}

/// How the outcome of a run is shown.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON summary on stdout.
    pub json: bool,
    /// Only the final summary on stderr.
    pub quiet: bool,
}

/// `validate` options.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub wf: WorkflowArgs,
}

pub(crate) fn print_diagnostics(loaded: &Loaded, diags: &[&Diagnostic]) {
    for d in diags {
        eprintln!("{}", d.render(&loaded.origin));
        if let Some(pos) = d.pos {
            let snippet = relay_spec::load::snippet_at(&loaded.source, pos);
            if !snippet.is_empty() {
                eprintln!("{snippet}");
            }
        }
    }
}

/// Prints why a workflow could not be read, with the offending line when there is one.
pub(crate) fn print_load_error(e: &LoadError) {
    match e {
        LoadError::Io { .. } => eprintln!("error: {e}"),
        LoadError::Syntax { .. } => {
            eprintln!("{}", e.to_string().replacen(": ", ": error: ", 1));
            if let Some(s) = e.snippet() {
                eprintln!("{s}");
            }
        }
    }
}

/// Reads FILE; when there is no such file, FILE may name a template.
fn load(path: &std::path::Path) -> Result<Loaded, ExitCode> {
    if let Some(template) = crate::templates::load_by_name(path) {
        return template;
    }
    relay_spec::load_file(path).map_err(|e| {
        print_load_error(&e);
        ExitCode::from(EXIT_INVALID)
    })
}

fn collect_vars(args: &WorkflowArgs) -> Result<BTreeMap<String, String>, ExitCode> {
    let mut vars = BTreeMap::new();
    if let Some(f) = &args.vars_file {
        match relay_spec::vars::read_vars_file(f) {
            Ok(v) => vars.extend(v),
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::from(EXIT_INVALID));
            }
        }
    }
    for v in &args.vars {
        match relay_spec::vars::parse_var(v) {
            Ok((k, val)) => {
                vars.insert(k, val);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::from(EXIT_INVALID));
            }
        }
    }
    Ok(vars)
}

/// Loads and validates; prints every finding. `Err` carries the exit code.
fn load_checked(args: &WorkflowArgs) -> Result<(Loaded, BTreeMap<String, String>), ExitCode> {
    let loaded = load(&args.file)?;
    let vars = collect_vars(args)?;
    let report = relay_spec::validate(&loaded, args.workflow.as_deref());
    let errors: Vec<&Diagnostic> = report.errors().collect();
    if !errors.is_empty() {
        print_diagnostics(&loaded, &errors);
        let warnings = report.warnings().count();
        eprintln!(
            "{}: {} error{}{}; nothing was run",
            loaded.origin,
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            if warnings > 0 {
                format!(
                    ", {warnings} warning{}",
                    if warnings == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            }
        );
        return Err(ExitCode::from(EXIT_INVALID));
    }
    Ok((loaded, vars))
}

/// Prints the pattern, why, who may message whom, and the plan (`--explain`).
fn explain(loaded: &Loaded, workflow: Option<&str>) -> ExitCode {
    let Ok((_, wf)) = select_workflow(&loaded.file, workflow) else {
        return ExitCode::from(EXIT_INVALID);
    };
    let plan = relay_engine::patterns::build(&loaded.file, wf);
    println!("workflow `{}`", wf.name);
    println!(
        "pattern: {} ({})",
        plan.pattern.pattern.as_str(),
        plan.pattern.reason
    );
    let topology = match &plan.topology {
        relay_engine::patterns::Topology::All => "every agent may message every other".to_string(),
        relay_engine::patterns::Topology::Hub(h) => format!(
            "spokes message only the hub ({})",
            h.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        relay_engine::patterns::Topology::Tree(_) => {
            "agents message their manager and direct reports".to_string()
        }
        relay_engine::patterns::Topology::Chain(c) => {
            format!(
                "agents message their neighbours in the chain {}",
                c.join(" -> ")
            )
        }
    };
    println!("messaging: {topology}");
    println!("plan:");
    for line in plan.describe() {
        println!("  {line}");
    }
    ExitCode::SUCCESS
}

/// `agent-relay validate FILE`.
pub fn validate(args: ValidateArgs) -> ExitCode {
    let (loaded, vars) = match load_checked(&args.wf) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if args.wf.explain {
        return explain(&loaded, args.wf.workflow.as_deref());
    }
    let report = relay_spec::validate(&loaded, args.wf.workflow.as_deref());
    let mut warnings: Vec<Diagnostic> = report.warnings().cloned().collect();
    warnings.extend(relay_engine::capabilities::not_yet_effective(&loaded.file));
    print_diagnostics(&loaded, &warnings.iter().collect::<Vec<_>>());
    let mut missing_any = false;
    let vars = loaded.file.vars_with_defaults(&vars);
    if let Ok((_, wf)) = select_workflow(&loaded.file, args.wf.workflow.as_deref()) {
        let needed = required_vars(wf);
        if !needed.is_empty() {
            let missing: Vec<&String> = needed.iter().filter(|v| !vars.contains_key(*v)).collect();
            eprintln!(
                "workflow `{}` uses variables: {}",
                wf.name,
                needed.iter().cloned().collect::<Vec<_>>().join(", ")
            );
            // Only an error when the user supplied variables and still left some out.
            if !missing.is_empty() && (!args.wf.vars.is_empty() || args.wf.vars_file.is_some()) {
                for m in &missing {
                    eprintln!(
                        "{}: error: missing variable `{m}` (pass --var {m}=VALUE)",
                        loaded.origin
                    );
                }
                missing_any = true;
            }
        }
    }
    if missing_any {
        return ExitCode::from(EXIT_INVALID);
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
    ExitCode::SUCCESS
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `agent-relay run FILE`.
pub fn run(args: RunArgs) -> ExitCode {
    let out = Output {
        json: args.json,
        quiet: args.quiet,
    };
    if let Some(id) = &args.resume {
        return crate::runs_cmd::resume(id, out);
    }
    let (loaded, vars) = match load_checked(&args.wf) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if args.wf.explain {
        return explain(&loaded, args.wf.workflow.as_deref());
    }
    if let Err(code) =
        crate::templates::check_required_vars(&loaded, args.wf.workflow.as_deref(), &vars)
    {
        return code;
    }
    let workdir = match workdir() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let resume = match &args.start_from {
        None => None,
        Some(step) => {
            let prev = args.previous_run.as_deref().unwrap_or("last");
            let found = relay_engine::runs::find_run(&workdir, prev).and_then(|dir| {
                relay_engine::runs::prepare_start_from(
                    &dir,
                    &loaded,
                    args.wf.workflow.as_deref(),
                    step,
                )
            });
            match found {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_INVALID);
                }
            }
        }
    };
    execute(
        Job {
            loaded,
            workflow: args.wf.workflow.clone(),
            vars,
            rehearse: args.rehearse,
            resume,
            workdir,
        },
        out,
    )
}

/// The working directory runs are kept under.
pub fn workdir() -> Result<PathBuf, ExitCode> {
    std::env::current_dir().map_err(|e| {
        eprintln!("error: cannot determine the working directory: {e}");
        ExitCode::from(EXIT_RUNTIME)
    })
}

/// A run to execute.
pub struct Job {
    /// The workflow file.
    pub loaded: Loaded,
    /// Which workflow.
    pub workflow: Option<String>,
    /// Variables.
    pub vars: BTreeMap<String, String>,
    /// Rehearsal agents.
    pub rehearse: bool,
    /// What it takes over from an earlier run.
    pub resume: Option<relay_engine::ResumeFrom>,
    /// Where runs are kept.
    pub workdir: PathBuf,
}

/// The single-threaded async runtime the commands run on (agents' terminals are read by
/// threads of their own, so one thread is enough for the coordinator).
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_RUNTIME)
        })
}

/// Runs `job` on the local machine and turns the outcome into output and an exit code.
pub fn execute(job: Job, out: Output) -> ExitCode {
    let rt = match crate::commands::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let cancel = CancellationToken::new();
        spawn_signal_handlers(cancel.clone());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let view = progress::spawn(rx, progress::Mode::pick(out.quiet));
        let req = RunRequest {
            loaded: job.loaded,
            workflow: job.workflow,
            vars: job.vars,
            workdir: job.workdir,
            self_bin: crate::self_bin(),
            rehearse: job.rehearse,
            settings: Settings::from_env(),
            observer: Some(tx),
            cancel,
            resume: job.resume,
        };
        let result = relay_engine::run(Arc::new(LocalLauncher), req).await;
        let _ = view.await;
        match result {
            Ok(summary) => {
                progress::print_summary(&summary);
                if out.json {
                    match serde_json::to_string(&summary) {
                        Ok(s) => println!("{s}"),
                        Err(e) => eprintln!("error: cannot encode the summary: {e}"),
                    }
                }
                ExitCode::from(summary.exit_code() as u8)
            }
            Err(e) => report_engine_error(&e),
        }
    })
}

fn report_engine_error(e: &EngineError) -> ExitCode {
    match e {
        EngineError::Invalid(report) => {
            for d in report.errors() {
                eprintln!("{}", d.render("workflow"));
            }
        }
        EngineError::MissingVars { names } => {
            eprintln!("error: {e}; nothing was run");
            let flags: Vec<String> = names.iter().map(|n| format!("--var {n}=VALUE")).collect();
            eprintln!("  pass {}", flags.join(" "));
        }
        EngineError::UnknownWorkflow(_) | EngineError::CliMissing { .. } | EngineError::Lock(_) => {
            eprintln!("error: {e}; nothing was run")
        }
        // The disk can fail mid-run: running agents were ended and what was recorded stays.
        EngineError::Store(_) => {
            eprintln!("error: {e}; the run stopped and any running agents were ended")
        }
    }
    ExitCode::from(e.exit_code() as u8)
}

/// Ctrl+C, TERM and HUP cancel the run; the engine ends every agent group before exiting.
/// A file-size limit (the nearest thing to a full disk) must fail writes with an error the
/// engine reports, not kill the coordinator, so SIGXFSZ gets a handler too.
fn spawn_signal_handlers(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    if let Ok(mut xfsz) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
        tokio::spawn(async move { while xfsz.recv().await.is_some() {} });
    }
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        let cancel = cancel.clone();
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move {
                if s.recv().await.is_some() {
                    cancel.cancel();
                }
            });
        }
    }
}
