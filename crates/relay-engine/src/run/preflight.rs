//! What must hold before any step starts: the named directories of `paths` (with `$VAR`s
//! expanded, relative to the run's working directory; a missing `required` one stops the
//! run), and the workflow's `preflight` checks (`sh -c`, bounded in time; `failIf` and
//! `successIf` read the output; without either, the exit code decides). Nothing of the
//! run exists yet when they fail. A resumed run skips the checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_broker::Launcher;
use relay_broker::process::{ProcessEnd, ProcessSpec};
use relay_spec::{OutputCondition, PreflightCheck, RelayFile, WorkflowDef};
use tokio_util::sync::CancellationToken;

/// Longest a preflight check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the run could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    /// A `paths` entry uses a variable that is not set.
    #[error("path `{name}` ({path}) uses ${var}, which is not set")]
    UnsetVar {
        /// The entry.
        name: String,
        /// As written.
        path: String,
        /// The variable.
        var: String,
    },
    /// A required directory does not exist.
    #[error("path `{name}` is required but {} does not exist", dir.display())]
    Missing {
        /// The entry.
        name: String,
        /// Where it was looked for.
        dir: PathBuf,
    },
    /// A check failed.
    #[error("preflight check `{check}` failed: {reason}")]
    Failed {
        /// The check (its description, else its command).
        check: String,
        /// Why.
        reason: String,
        /// What it printed.
        output: String,
    },
}

/// `$NAME` and `${NAME}` in `text` replaced from `env`; the first unset one is the error.
pub fn expand_vars(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(&env(name).ok_or_else(|| name.to_string())?);
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The directories of `file.paths`, expanded and resolved against `workdir`, checked.
pub fn resolve_paths(
    file: &RelayFile,
    workdir: &Path,
) -> Result<BTreeMap<String, PathBuf>, PreflightError> {
    let mut out = BTreeMap::new();
    for p in &file.paths {
        let expanded = expand_vars(&p.path, |v| std::env::var(v).ok()).map_err(|var| {
            PreflightError::UnsetVar {
                name: p.name.clone(),
                path: p.path.clone(),
                var,
            }
        })?;
        let dir = workdir.join(expanded);
        if p.is_required() && !dir.is_dir() {
            return Err(PreflightError::Missing {
                name: p.name.clone(),
                dir,
            });
        }
        out.insert(p.name.clone(), dir);
    }
    Ok(out)
}

/// Whether `output` meets `cond`. The output is trimmed first: a command's last line
/// break is not part of what it says (`^main$` matches `main\n`).
fn holds(cond: OutputCondition<'_>, output: &str) -> bool {
    let output = output.trim();
    match cond {
        OutputCondition::Empty => output.is_empty(),
        OutputCondition::NonEmpty => !output.is_empty(),
        // Validation compiled every pattern; one that does not compile never holds.
        OutputCondition::Matches(p) => regex::Regex::new(p).is_ok_and(|re| re.is_match(output)),
    }
}

/// Why a check with this exit code and output fails, if it does.
pub fn judge(check: &PreflightCheck, exit_code: Option<i32>, output: &str) -> Option<String> {
    let conditions = check.fail_if.is_some() || check.success_if.is_some();
    if let Some(cond) = check.fail_condition()
        && holds(cond, output)
    {
        return Some(format!("its output is {}", describe(cond)));
    }
    if let Some(cond) = check.success_condition()
        && !holds(cond, output)
    {
        return Some(format!("its output is not {}", describe(cond)));
    }
    match exit_code {
        _ if conditions => None,
        Some(0) => None,
        Some(c) => Some(format!("exit code {c}")),
        None => Some("it was killed".into()),
    }
}

fn describe(cond: OutputCondition<'_>) -> String {
    match cond {
        OutputCondition::Empty => "empty".into(),
        OutputCondition::NonEmpty => "non-empty".into(),
        OutputCondition::Matches(p) => format!("matching `{p}`"),
    }
}

/// Runs `wf`'s preflight checks in `workdir` through `launcher`, in order; the first
/// that fails is the error.
pub async fn run_checks<L: Launcher>(
    launcher: &L,
    wf: &WorkflowDef,
    workdir: &Path,
    kill_grace: Duration,
    cancel: &CancellationToken,
) -> Result<(), PreflightError> {
    for check in &wf.preflight {
        let name = check
            .description
            .clone()
            .unwrap_or_else(|| check.command.clone());
        let spec = ProcessSpec {
            program: "sh".into(),
            args: vec!["-c".into(), check.command.clone()],
            cwd: workdir.to_path_buf(),
            env: Vec::new(),
            timeout: Some(CHECK_TIMEOUT),
            stderr_path: None,
            kill_grace,
            sandbox: None,
            usage: None,
            max_tokens: None,
            stdin: None,
        };
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let out = launcher
            .run_process(spec, cancel.clone(), tx)
            .await
            .map_err(|e| PreflightError::Failed {
                check: name.clone(),
                reason: e.to_string(),
                output: String::new(),
            })?;
        let reason = match out.end {
            ProcessEnd::TimedOut => {
                Some(format!("it took longer than {} s", CHECK_TIMEOUT.as_secs()))
            }
            ProcessEnd::Cancelled => Some("cancelled".into()),
            // No token limit is set on a check.
            ProcessEnd::TokenLimit => Some("stopped at a token limit".into()),
            ProcessEnd::Exited => judge(check, out.exit_code, &out.stdout),
        };
        if let Some(reason) = reason {
            return Err(PreflightError::Failed {
                check: name,
                reason,
                output: out.stdout,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(fail_if: Option<&str>, success_if: Option<&str>) -> PreflightCheck {
        PreflightCheck {
            command: "x".into(),
            fail_if: fail_if.map(str::to_owned),
            success_if: success_if.map(str::to_owned),
            description: None,
        }
    }

    #[test]
    fn variables_expand_and_an_unset_one_is_named() {
        let env = |v: &str| (v == "HOME").then(|| "/home/me".to_string());
        assert_eq!(expand_vars("$HOME/src", env).unwrap(), "/home/me/src");
        assert_eq!(expand_vars("${HOME}x", env).unwrap(), "/home/mex");
        assert_eq!(expand_vars("a$ b", env).unwrap(), "a$ b");
        assert_eq!(expand_vars("$NOPE/x", env).unwrap_err(), "NOPE");
    }

    #[test]
    fn conditions_read_the_output_and_the_exit_code_decides_without_them() {
        assert_eq!(judge(&check(None, None), Some(0), "anything"), None);
        assert!(
            judge(&check(None, None), Some(2), "")
                .unwrap()
                .contains("exit code 2")
        );
        let dirty = check(Some("non-empty"), None);
        assert!(judge(&dirty, Some(0), " M src/x.rs\n").is_some());
        assert_eq!(judge(&dirty, Some(0), "\n"), None);
        let branch = check(None, Some("^(main|develop)$"));
        assert_eq!(
            judge(&branch, Some(0), "main\n"),
            None,
            "the last line break is not output"
        );
        let version = check(None, Some("^v1\\."));
        assert_eq!(judge(&version, Some(1), "v1.4"), None, "conditions decide");
        assert!(
            judge(&version, Some(0), "v2.0")
                .unwrap()
                .contains("not matching")
        );
    }

    #[test]
    fn a_required_path_must_exist() {
        let file = relay_spec::parse(
            "name: t\npaths:\n  - {name: src, path: there}\n  - {name: opt, path: maybe, required: false}\nagents: []\nworkflows: []\n",
            "t.yaml",
        )
        .unwrap()
        .file;
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            resolve_paths(&file, dir.path()),
            Err(PreflightError::Missing { name, .. }) if name == "src"
        ));
        std::fs::create_dir(dir.path().join("there")).unwrap();
        let paths = resolve_paths(&file, dir.path()).unwrap();
        assert_eq!(paths["src"], dir.path().join("there"));
        assert_eq!(paths["opt"], dir.path().join("maybe"));
    }
}
