//! How problems in workflow files are shown: every diagnostic with its position and the
//! offending line, load errors, and the count that ends a refused file.

use relay_spec::{Diagnostic, LoadError, Loaded, Report};

use crate::error::{CliError, Exit};

/// The lines that show `diags`: each rendered with its position, then the offending line.
pub(crate) fn diagnostic_lines(loaded: &Loaded, diags: &[&Diagnostic]) -> Vec<String> {
    let mut lines = Vec::new();
    for d in diags {
        lines.push(d.render(&loaded.origin));
        if let Some(pos) = d.pos {
            let snippet = relay_spec::load::snippet_at(&loaded.source, pos);
            if !snippet.is_empty() {
                lines.push(snippet);
            }
        }
    }
    lines
}

/// Prints `diags` (warnings shown beside a run or a validation that goes on).
pub(crate) fn print_diagnostics(loaded: &Loaded, diags: &[&Diagnostic]) {
    for line in diagnostic_lines(loaded, diags) {
        eprintln!("{line}");
    }
}

/// The lines that show why a workflow could not be read, with the offending line.
pub(crate) fn load_error_lines(e: &LoadError) -> Vec<String> {
    match e {
        LoadError::Syntax { .. } => {
            let mut lines = vec![e.to_string().replacen(": ", ": error: ", 1)];
            lines.extend(e.snippet().map(str::to_owned));
            lines
        }
        _ => vec![format!("error: {e}")],
    }
}

/// Prints why a workflow could not be read.
pub(crate) fn print_load_error(e: &LoadError) {
    for line in load_error_lines(e) {
        eprintln!("{line}");
    }
}

/// The exit a printed exit code stands for.
pub(crate) fn exit_of(code: std::process::ExitCode) -> Exit {
    if code == std::process::ExitCode::from(Exit::Runtime.code()) {
        Exit::Runtime
    } else {
        Exit::Invalid
    }
}

/// Why a workflow with errors cannot run: every error with its position, and a count.
pub(crate) fn invalid(loaded: &Loaded, report: &Report, what: &str) -> CliError {
    let errors: Vec<&Diagnostic> = report.errors().collect();
    let mut lines = diagnostic_lines(loaded, &errors);
    let warnings = report.warnings().count();
    lines.push(format!(
        "{}: {} error{}{}; {what}",
        loaded.origin,
        errors.len(),
        plural(errors.len()),
        if warnings > 0 {
            format!(", {warnings} warning{}", plural(warnings))
        } else {
            String::new()
        }
    ));
    CliError::lines(Exit::Invalid, lines)
}

/// `s` when `n` is not one.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
