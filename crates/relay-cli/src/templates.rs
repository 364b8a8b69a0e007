//! `agent-relay templates list|show|install`, and the fallback that lets `run NAME` and
//! `validate NAME` pick a template when no file of that name exists. The registry itself
//! (search order, shadowing, validation on install) is the `relay-templates` crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use relay_spec::Loaded;
use relay_spec::validate::{missing_vars, select_workflow};
use relay_templates::{Registry, Source, TemplateError, Variable, variables};

use crate::{EXIT_INVALID, EXIT_RUNTIME};

/// `templates` options.
#[derive(Args, Debug)]
pub struct TemplatesArgs {
    #[command(subcommand)]
    pub command: TemplatesCommand,
}

/// The `templates` subcommands.
#[derive(Subcommand, Debug)]
pub enum TemplatesCommand {
    /// List every template: name, pattern, where it comes from, description, variables.
    List,
    /// Print a template's YAML (save it, edit it, install it under a name of your own).
    Show {
        /// The template's name.
        name: String,
    },
    /// Validate a workflow file and copy it into your user template directory.
    Install {
        /// The workflow file.
        file: PathBuf,
        /// The name to install it under (default: the file name without .yaml).
        #[arg(long)]
        name: Option<String>,
        /// Replace a user template of that name, or hide a built-in one.
        #[arg(long)]
        force: bool,
    },
}

fn registry() -> Registry {
    Registry::from_env(std::env::current_dir().ok().as_deref())
}

/// `agent-relay templates ...`.
pub fn main(args: TemplatesArgs) -> ExitCode {
    let reg = registry();
    match args.command {
        TemplatesCommand::List => list(&reg),
        TemplatesCommand::Show { name } => match reg.source(&name) {
            Ok((_, text)) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => report(&e),
        },
        TemplatesCommand::Install { file, name, force } => {
            match reg.install(&file, name.as_deref(), force) {
                Ok(done) => {
                    println!(
                        "installed template `{}` to {}",
                        done.name,
                        done.path.display()
                    );
                    if done.hides_builtin {
                        println!("note: it hides the built-in template `{}`", done.name);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => report(&e),
            }
        }
    }
}

fn list(reg: &Registry) -> ExitCode {
    let entries = reg.list();
    let source_of = |s: &Source, hides: &[Source]| match hides.first() {
        Some(h) => format!("{} (hides {})", s.kind(), h.kind()),
        None => s.kind().to_string(),
    };
    let rows: Vec<[String; 4]> = entries
        .iter()
        .map(|e| {
            let (pattern, description) = match &e.summary {
                Ok(s) => (
                    s.pattern.map(|p| p.as_str()).unwrap_or("dag").to_string(),
                    s.description.clone().unwrap_or_default(),
                ),
                Err(why) => ("-".to_string(), format!("cannot be read: {why}")),
            };
            [
                e.name.clone(),
                pattern,
                source_of(&e.source, &e.hides),
                description,
            ]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(4);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    println!(
        "{:w0$}  {:w1$}  {:w2$}  DESCRIPTION",
        "NAME", "PATTERN", "SOURCE"
    );
    for (row, e) in rows.iter().zip(&entries) {
        println!("{:w0$}  {:w1$}  {:w2$}  {}", row[0], row[1], row[2], row[3]);
        if let Ok(s) = &e.summary
            && !s.variables.is_empty()
        {
            let vars: Vec<String> = required_first(&s.variables)
                .into_iter()
                .map(|v| {
                    if v.required() {
                        format!("{}*", v.name)
                    } else {
                        v.name.clone()
                    }
                })
                .collect();
            println!("{:w0$}  variables: {}", "", vars.join(", "));
        }
    }
    let mut order: Vec<String> = Vec::new();
    if let Some(d) = reg.project_dir() {
        order.push(format!("{} (project)", d.display()));
    }
    if let Some(d) = reg.user_dir() {
        order.push(format!("{} (user)", d.display()));
    }
    order.push("built-in".into());
    println!();
    println!("* required: pass --var NAME=VALUE. `agent-relay templates show NAME` prints one.");
    println!("Search order: {}", order.join(", "));
    ExitCode::SUCCESS
}

/// Prints `e` as the one message a user sees and returns its exit code.
fn report(e: &TemplateError) -> ExitCode {
    match e {
        TemplateError::Unknown { available, .. } => {
            eprintln!("error: {e}");
            eprintln!("  templates: {}", available.join(", "));
        }
        TemplateError::Load(le) => {
            crate::diagnostics::print_load_error(le);
        }
        TemplateError::Invalid(r) => {
            let errors: Vec<&relay_spec::Diagnostic> = r.report.errors().collect();
            crate::diagnostics::print_diagnostics(&r.loaded, &errors);
            eprintln!(
                "{}: {} error{}; not installed",
                r.loaded.origin,
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
        }
        TemplateError::ShadowsBuiltin { .. } => {
            eprintln!("error: {e}");
            eprintln!(
                "  pass --name to install it under another name, or --force to hide the built-in"
            );
        }
        TemplateError::Exists { .. } => {
            eprintln!("error: {e}");
            eprintln!("  pass --force to replace it");
        }
        TemplateError::InvalidName(_) => eprintln!("error: {e}"),
        TemplateError::NoUserDir | TemplateError::Io { .. } => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    }
    ExitCode::from(EXIT_INVALID)
}

/// For `run`/`validate FILE`: when FILE is not a file but could be a template name, the
/// template of that name (`None` leaves FILE to be read as a path). A file always wins.
pub fn load_by_name(arg: &Path) -> Option<Result<Loaded, ExitCode>> {
    let name = arg.to_str()?;
    // A directory is left to the loader too, which says it is one.
    if arg.is_file() || arg.is_dir() || !relay_templates::is_template_name(name) {
        return None;
    }
    Some(registry().load(name).map_err(|e| match &e {
        TemplateError::Unknown {
            suggestion,
            available,
            ..
        } => {
            eprint!("error: no workflow file or template named `{name}`");
            match suggestion {
                Some(s) => eprintln!(" (did you mean `{s}`?)"),
                None => eprintln!(),
            }
            eprintln!("  templates: {}", available.join(", "));
            ExitCode::from(EXIT_INVALID)
        }
        _ => report(&e),
    }))
}

/// Before a run: every variable the workflow needs must have a value. When some do not,
/// prints them and everything the workflow takes (with descriptions and defaults).
/// `typed` names the variables given with `--var`: one the workflow neither declares nor
/// uses is a warning (a mistyped name would otherwise be dropped without a word), and
/// the missing-variable error says which typed name was probably meant.
pub fn check_required_vars(
    loaded: &Loaded,
    workflow: Option<&str>,
    given: &BTreeMap<String, String>,
    typed: &[String],
) -> Result<(), ExitCode> {
    let Ok((_, wf)) = select_workflow(&loaded.file, workflow) else {
        return Ok(());
    };
    let all = variables(&loaded.file, Some(wf));
    let missing = missing_vars(wf, &loaded.file.vars_with_defaults(given));
    warn_stray_vars(&all, &wf.name, typed, &missing);
    if missing.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
    eprintln!(
        "error: {}: missing variable{} {}; nothing was run",
        loaded.origin,
        if missing.len() == 1 { "" } else { "s" },
        quoted.join(", ")
    );
    eprintln!("{} takes (pass each as --var NAME=VALUE):", loaded.origin);
    let vars = required_first(&all);
    let width = vars.iter().map(|v| v.name.len()).max().unwrap_or(0);
    for v in &vars {
        eprintln!("  {:width$}  {}", v.name, describe(v));
    }
    Err(ExitCode::from(EXIT_INVALID))
}

/// Warns about each `--var` name in `typed` that is none of `all` (the workflow's
/// declared and used variables), with the variable it was probably meant for.
pub fn warn_stray_vars(all: &[Variable], workflow: &str, typed: &[String], missing: &[String]) {
    let known: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
    let mut stray: Vec<&String> = typed
        .iter()
        .filter(|t| !known.contains(&t.as_str()))
        .collect();
    stray.sort();
    stray.dedup();
    for t in &stray {
        let hint = relay_spec::suggest::did_you_mean(t, missing.iter().map(String::as_str))
            .or_else(|| relay_spec::suggest::did_you_mean(t, known.iter().copied()))
            .map(|m| format!(" (did you mean `{m}`?)"))
            .unwrap_or_default();
        eprintln!(
            "{}",
            relay_spec::printable(&format!(
                "warning: --var `{}` is not a variable of workflow `{workflow}`{hint}; it is not used",
                relay_spec::suggest::shown(t),
            ))
        );
    }
}

/// Required variables first, each group in name order.
fn required_first(vars: &[Variable]) -> Vec<&Variable> {
    let mut v: Vec<&Variable> = vars.iter().collect();
    v.sort_by_key(|v| !v.required());
    v
}

fn describe(v: &Variable) -> String {
    let what = v.description.as_deref().unwrap_or("(no description)");
    match &v.default {
        None => format!("(required) {what}"),
        Some(d) if d.is_empty() => format!("{what} (default: empty)"),
        Some(d) => format!("{what} (default: {d})"),
    }
}
