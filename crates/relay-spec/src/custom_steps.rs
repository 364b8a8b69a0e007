//! Custom steps: reusable step definitions in `.relay/steps.yaml`, used by a workflow
//! step with `use: NAME` and parameters given as further keys of that step.
//!
//! ```yaml
//! # .relay/steps.yaml
//! steps:
//!   run-check:
//!     type: deterministic
//!     params: [{name: check, required: true}, {name: args, default: ""}]
//!     command: make {{check}} ARGS="{{args}}"
//! # in the workflow
//!   - {name: lint, use: run-check, check: lint, dependsOn: [build]}
//! ```
//!
//! Expanding a use fills the step from the definition, with `{{param}}` replaced by the
//! parameter's value (as written, not shell-quoted: the values come from the workflow's
//! author, like the rest of the command) and every other `{{...}}` left for the run. The
//! using step keeps its own `dependsOn`, `timeoutMs`, `retries`, `verification` and
//! `description` when it sets them.
//!
//! The definitions are looked up next to the workflow file: `.relay/steps.yaml` in its
//! directory, else in the nearest parent directory that has one (the project's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostic::Diagnostic;
use crate::load_error::{LoadError, read_bounded, syntax_error};
use crate::source_map::{SourceMap, StepField};
use crate::suggest::{did_you_mean, shown};
use crate::template::substitute;
use crate::types::{RelayFile, Scalar, Step, StepType};

/// Where custom steps are defined, relative to a directory.
pub const STEPS_FILE: &str = ".relay/steps.yaml";

/// The contents of a `.relay/steps.yaml` file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomStepsFile {
    /// The definitions, by the name `use` refers to.
    pub steps: BTreeMap<String, CustomStepDef>,
}

/// One reusable step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomStepDef {
    /// The parameters a use may (or must) give.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<CustomParam>,
    /// `deterministic` (default) or `worktree`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub step_type: Option<CustomStepType>,
    /// The shell command (deterministic steps); `{{param}}` is filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The branch (worktree steps); `{{param}}` is filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Where a new branch starts (worktree steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_branch: Option<String>,
    /// Where the worktree goes (worktree steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Whether to create a missing branch (worktree steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_branch: Option<bool>,
    /// Whether a non-zero exit fails the step (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on_error: Option<bool>,
    /// Whether stdout becomes the step output (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_output: Option<bool>,
    /// Bound on each attempt, in milliseconds, unless the using step sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// What the step does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The kinds of step a custom step can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CustomStepType {
    /// A shell command.
    Deterministic,
    /// A git worktree.
    Worktree,
}

/// A parameter of a custom step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomParam {
    /// Its name, as a key of the using step and as `{{name}}` in the definition.
    pub name: String,
    /// Whether a use must give it (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// The value when a use gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Scalar>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The custom steps a workflow can use, and where they came from.
#[derive(Debug, Clone, Default)]
pub struct CustomSteps {
    /// The definitions, by name.
    pub defs: BTreeMap<String, CustomStepDef>,
    /// The file they were read from; `None` when no file was found or given.
    pub origin: Option<PathBuf>,
    /// The directories searched for a steps file, nearest first.
    pub searched: Vec<PathBuf>,
}

impl CustomSteps {
    /// Parses the text of a steps file, reporting errors under `origin`.
    pub fn parse(source: &str, origin: &Path) -> Result<CustomSteps, LoadError> {
        let name = origin.display().to_string();
        let file: CustomStepsFile =
            serde_saphyr::from_str_with_options(source, crate::limits::yaml_options())
                .map_err(|e| syntax_error(&e, source, &name))?;
        Ok(CustomSteps {
            defs: file.steps,
            origin: Some(origin.to_path_buf()),
            searched: Vec::new(),
        })
    }

    /// The steps file for the workflow at `workflow`: `.relay/steps.yaml` in its directory
    /// or the nearest parent directory that has one. No file is not an error: a workflow
    /// without `use` needs none.
    pub fn find_for(workflow: &Path) -> Result<CustomSteps, LoadError> {
        let start = match workflow.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut searched = Vec::new();
        for dir in start.ancestors() {
            searched.push(dir.to_path_buf());
            let candidate = dir.join(STEPS_FILE);
            if candidate.is_file() {
                let source = read_bounded(&candidate)?;
                let mut steps = CustomSteps::parse(&source, &candidate)?;
                steps.searched = searched;
                return Ok(steps);
            }
        }
        Ok(CustomSteps {
            searched,
            ..CustomSteps::default()
        })
    }
}

/// Fills every step of `file` that has `use` from its definition in `steps`. Returns the
/// problems found (an unknown custom step, a missing or unknown parameter), with
/// positions from `map`; a step with a problem is left unexpanded.
pub fn expand(file: &mut RelayFile, steps: &CustomSteps, map: &SourceMap) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (w, wf) in file.workflows.iter_mut().enumerate() {
        for (s, step) in wf.steps.iter_mut().enumerate() {
            let Some(name) = step.use_.clone().filter(|_| !step.expanded) else {
                continue;
            };
            let pos = map.step(w, s, StepField::Use);
            match steps.defs.get(&name) {
                None => out.push(Diagnostic::error(
                    pos,
                    unknown_message(&step.name, &name, steps),
                )),
                Some(def) => match expand_one(step, &name, def) {
                    Ok(()) => step.expanded = true,
                    Err(messages) => {
                        out.extend(messages.into_iter().map(|m| Diagnostic::error(pos, m)))
                    }
                },
            }
        }
    }
    out
}

fn unknown_message(step: &str, name: &str, steps: &CustomSteps) -> String {
    let mut msg = format!("step `{step}` uses unknown custom step `{}`", shown(name));
    if let Some(best) = did_you_mean(name, steps.defs.keys().map(String::as_str)) {
        msg.push_str(&format!(" (did you mean `{best}`?)"));
    }
    match &steps.origin {
        Some(origin) => {
            let names: Vec<&str> = steps.defs.keys().map(String::as_str).collect();
            msg.push_str(&format!(
                "; {} defines: {}",
                origin.display(),
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            ));
        }
        None if steps.searched.is_empty() => {
            msg.push_str(&format!("; no {STEPS_FILE} was loaded"));
        }
        None => msg.push_str(&format!(
            "; no {STEPS_FILE} in {} or any directory above it",
            steps.searched[0].display()
        )),
    }
    msg
}

/// The using step's own value for a parameter that shares its name with a field of a
/// step (`branch: main` given to a custom step that takes `branch`).
fn field_value(step: &Step, param: &str) -> Option<String> {
    match param {
        "branch" => step.branch.clone(),
        "baseBranch" => step.base_branch.clone(),
        "path" => step.path.clone(),
        "command" => step.command.clone(),
        "cwd" => step.cwd.clone(),
        "workdir" => step.workdir.clone(),
        "agent" => step.agent.clone(),
        "task" => step.task.clone(),
        _ => None,
    }
}

fn expand_one(step: &mut Step, name: &str, def: &CustomStepDef) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for key in step.use_args.keys() {
        if !def.params.iter().any(|p| &p.name == key) {
            let mut msg = format!(
                "step `{}` gives `{}`, which custom step `{name}` does not take",
                step.name,
                shown(key)
            );
            if let Some(best) = did_you_mean(key, def.params.iter().map(|p| p.name.as_str())) {
                msg.push_str(&format!(" (did you mean `{best}`?)"));
            }
            if def.params.is_empty() {
                msg.push_str("; it takes no parameters");
            }
            problems.push(msg);
        }
    }
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for p in &def.params {
        let given = step
            .use_args
            .get(&p.name)
            .map(Scalar::as_text)
            .or_else(|| field_value(step, &p.name));
        match given.or_else(|| p.default.as_ref().map(Scalar::as_text)) {
            Some(v) => {
                values.insert(p.name.clone(), v);
            }
            None if p.required.unwrap_or(false) => problems.push(format!(
                "step `{}` uses custom step `{name}` without its required parameter `{}`{}",
                step.name,
                p.name,
                p.description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )),
            // An optional parameter without a value reads as empty text.
            None => {
                values.insert(p.name.clone(), String::new());
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let fill = |t: &Option<String>| t.as_deref().map(|t| substitute(t, &values));
    step.step_type = Some(match def.step_type {
        Some(CustomStepType::Worktree) => StepType::Worktree,
        Some(CustomStepType::Deterministic) | None => StepType::Deterministic,
    });
    step.command = fill(&def.command).or(step.command.take());
    step.branch = fill(&def.branch).or(step.branch.take());
    step.base_branch = fill(&def.base_branch).or(step.base_branch.take());
    step.path = fill(&def.path).or(step.path.take());
    step.create_branch = step.create_branch.or(def.create_branch);
    step.fail_on_error = step.fail_on_error.or(def.fail_on_error);
    step.capture_output = step.capture_output.or(def.capture_output);
    step.timeout_ms = step.timeout_ms.or(def.timeout_ms);
    if step.description.is_none() {
        step.description = def.description.clone();
    }
    Ok(())
}
