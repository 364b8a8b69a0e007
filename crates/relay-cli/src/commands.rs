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
    /// The workflow file (relay.yaml).
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
}

/// `validate` options.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub wf: WorkflowArgs,
}

fn print_diagnostics(loaded: &Loaded, diags: &[&Diagnostic]) {
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

fn load(path: &std::path::Path) -> Result<Loaded, ExitCode> {
    relay_spec::load_file(path).map_err(|e| {
        match &e {
            LoadError::Io { .. } => eprintln!("error: {e}"),
            LoadError::Syntax { .. } => {
                eprintln!("{}", e.to_string().replacen(": ", ": error: ", 1));
                if let Some(s) = e.snippet() {
                    eprintln!("{s}");
                }
            }
        }
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
                format!(", {warnings} warning{}", if warnings == 1 { "" } else { "s" })
            } else {
                String::new()
            }
        );
        return Err(ExitCode::from(EXIT_INVALID));
    }
    Ok((loaded, vars))
}

/// `agent-relay validate FILE`.
pub fn validate(args: ValidateArgs) -> ExitCode {
    let (loaded, vars) = match load_checked(&args.wf) {
        Ok(x) => x,
        Err(code) => return code,
    };
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
                    eprintln!("{}: error: missing variable `{m}` (pass --var {m}=VALUE)", loaded.origin);
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
    let (loaded, vars) = match load_checked(&args.wf) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let workdir = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot determine the working directory: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    rt.block_on(async move {
        let cancel = CancellationToken::new();
        spawn_signal_handlers(cancel.clone());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let view = progress::spawn(rx, progress::Mode::pick(args.quiet));
        let req = RunRequest {
            loaded,
            workflow: args.wf.workflow.clone(),
            vars,
            workdir,
            self_bin: crate::self_bin(),
            rehearse: args.rehearse,
            settings: Settings::from_env(),
            observer: Some(tx),
            cancel,
        };
        let result = relay_engine::run(Arc::new(LocalLauncher), req).await;
        let _ = view.await;
        match result {
            Ok(summary) => {
                progress::print_summary(&summary);
                if args.json {
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
        other => eprintln!("error: {other}; nothing was run"),
    }
    ExitCode::from(e.exit_code() as u8)
}

/// Ctrl+C, TERM and HUP cancel the run; the engine ends every agent group before exiting.
fn spawn_signal_handlers(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
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
