//! Checks a loaded workflow file beyond its shape: names that must be unique or must
//! exist, dependency cycles, step-output references that are not upstream, missing
//! variables. Every problem is collected (not just the first) with its position.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::graph::{StepGraph, StepIdx};
use crate::load::{Loaded, Pos, StepField, did_you_mean};
use crate::template::{Ref, references};
use crate::types::{RelayFile, Step, StepType, VerificationType, WorkflowDef};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The workflow cannot run.
    Error,
    /// The workflow runs, but something in it has no effect or looks wrong.
    Warning,
}

/// One finding, with the position it is about when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where in the file.
    pub pos: Option<Pos>,
    /// What is wrong, naming the thing.
    pub message: String,
}

impl Diagnostic {
    /// An error at `pos`.
    pub fn error(pos: Option<Pos>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            pos,
            message: message.into(),
        }
    }

    /// A warning at `pos`.
    pub fn warning(pos: Option<Pos>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            pos,
            message: message.into(),
        }
    }

    /// `origin:line:col: error: message`.
    pub fn render(&self, origin: &str) -> String {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.pos {
            Some(p) => format!("{origin}:{}:{}: {sev}: {}", p.line, p.column, self.message),
            None => format!("{origin}: {sev}: {}", self.message),
        }
    }
}

/// Everything validation found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Findings in file order (errors and warnings).
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    fn sort(&mut self) {
        self.diagnostics
            .sort_by_key(|d| (d.pos.unwrap_or(Pos { line: 0, column: 0 }), d.severity));
    }
}

/// Picks the workflow to run: `name` if given, else the first one.
pub fn select_workflow<'a>(
    file: &'a RelayFile,
    name: Option<&str>,
) -> Result<(usize, &'a WorkflowDef), String> {
    match name {
        None => file
            .workflows
            .first()
            .map(|w| (0, w))
            .ok_or_else(|| "the file defines no workflows".to_string()),
        Some(n) => file
            .workflows
            .iter()
            .enumerate()
            .find(|(_, w)| w.name == n)
            .ok_or_else(|| {
                let mut msg = format!("unknown workflow `{n}`");
                if let Some(best) = did_you_mean(n, file.workflows.iter().map(|w| w.name.as_str()))
                {
                    msg.push_str(&format!(" (did you mean `{best}`?)"));
                }
                let names: Vec<&str> = file.workflows.iter().map(|w| w.name.as_str()).collect();
                if !names.is_empty() {
                    msg.push_str(&format!("; the file defines: {}", names.join(", ")));
                }
                msg
            }),
    }
}

/// Validates the whole file; with `workflow`, also that it names an existing workflow.
pub fn validate(loaded: &Loaded, workflow: Option<&str>) -> Report {
    let file = &loaded.file;
    let map = &loaded.map;
    let mut report = Report::default();

    let mut agent_names: HashMap<&str, usize> = HashMap::new();
    for (i, a) in file.agents.iter().enumerate() {
        if a.name.trim().is_empty() {
            report.push(Diagnostic::error(map.agent(i), "agent name is empty"));
        } else if agent_names.insert(a.name.as_str(), i).is_some() {
            report.push(Diagnostic::error(
                map.agent(i),
                format!("duplicate agent name `{}`", a.name),
            ));
        }
    }

    if file.workflows.is_empty() {
        report.push(Diagnostic::error(
            None,
            "the file defines no workflows (add `workflows:` with at least one workflow and steps)",
        ));
    }
    let mut wf_names = BTreeSet::new();
    for (w, wf) in file.workflows.iter().enumerate() {
        if !wf_names.insert(wf.name.as_str()) {
            report.push(Diagnostic::error(
                map.workflow(w),
                format!("duplicate workflow name `{}`", wf.name),
            ));
        }
        validate_workflow(loaded, w, wf, &agent_names, &mut report);
    }

    if let Some(c) = &file.coordination {
        let all_steps: BTreeSet<&str> = file
            .workflows
            .iter()
            .flat_map(|w| w.steps.iter().map(|s| s.name.as_str()))
            .collect();
        for b in &c.barriers {
            for s in &b.wait_for {
                if !all_steps.contains(s.as_str()) {
                    report.push(Diagnostic::error(
                        None,
                        format!("barrier `{}` waits for unknown step `{s}`", b.name),
                    ));
                }
            }
        }
        if let Some(t) = c.voting_threshold
            && !(0.0..=1.0).contains(&t)
        {
            report.push(Diagnostic::error(
                None,
                format!("coordination.votingThreshold must be between 0 and 1, not {t}"),
            ));
        }
    }

    if let Some(n) = workflow
        && !file.workflows.is_empty()
        && let Err(msg) = select_workflow(file, Some(n))
    {
        report.push(Diagnostic::error(None, msg));
    }
    report.sort();
    report
}

fn validate_workflow(
    loaded: &Loaded,
    w: usize,
    wf: &WorkflowDef,
    agents: &HashMap<&str, usize>,
    report: &mut Report,
) {
    let map = &loaded.map;
    if wf.steps.is_empty() {
        report.push(Diagnostic::error(
            map.workflow(w),
            format!("workflow `{}` has no steps", wf.name),
        ));
        return;
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (s, step) in wf.steps.iter().enumerate() {
        if step.name.trim().is_empty() {
            report.push(Diagnostic::error(
                map.step(w, s, StepField::Name),
                "step name is empty",
            ));
        } else if index.insert(step.name.as_str(), s).is_some() {
            report.push(Diagnostic::error(
                map.step(w, s, StepField::Name),
                format!(
                    "duplicate step name `{}` in workflow `{}`",
                    step.name, wf.name
                ),
            ));
        }
    }
    let step_names: Vec<&str> = wf.steps.iter().map(|s| s.name.as_str()).collect();

    let barriers: Vec<&str> = loaded
        .file
        .coordination
        .iter()
        .flat_map(|c| c.barriers.iter().map(|b| b.name.as_str()))
        .collect();
    for (s, step) in wf.steps.iter().enumerate() {
        validate_step_kind(loaded, w, s, step, agents, report);
        for (d, dep) in step.depends_on.iter().enumerate() {
            if !index.contains_key(dep.as_str()) && !barriers.contains(&dep.as_str()) {
                let mut msg = format!("step `{}` depends on unknown step `{dep}`", step.name);
                if let Some(best) = did_you_mean(dep, step_names.iter().copied()) {
                    msg.push_str(&format!(" (did you mean `{best}`?)"));
                }
                report.push(Diagnostic::error(
                    map.step(w, s, StepField::DependsOn(d)),
                    msg,
                ));
            }
        }
        if let Some(v) = &step.verification {
            let value = v.value.as_ref().map(|v| v.as_text());
            match (v.kind, value) {
                (_, None) => report.push(Diagnostic::error(
                    map.step(w, s, StepField::VerificationType),
                    format!(
                        "step `{}`: verification `{}` needs a `value`",
                        step.name,
                        verification_name(v.kind)
                    ),
                )),
                (VerificationType::ExitCode, Some(val)) if val.trim().parse::<i32>().is_err() => {
                    report.push(Diagnostic::error(
                        map.step(w, s, StepField::VerificationType),
                        format!(
                            "step `{}`: exit_code verification value `{val}` is not an integer",
                            step.name
                        ),
                    ))
                }
                _ => {}
            }
        }
    }

    let graph = StepGraph::for_workflow(&loaded.file, wf);
    if let Some(cycle) = graph.cycle() {
        let first = cycle[0].get();
        let names: Vec<&str> = cycle
            .iter()
            .map(|i| wf.steps[i.get()].name.as_str())
            .collect();
        report.push(Diagnostic::error(
            map.step(w, first, StepField::Name),
            format!(
                "dependency cycle in workflow `{}`: {} -> {}",
                wf.name,
                names.join(" -> "),
                names[0]
            ),
        ));
        return;
    }

    // `{{steps.X.output}}` must name a step this one (transitively) depends on. Every
    // reference is collected first so the graph answers them in one pass.
    let mut uses: Vec<(usize, StepField, String, usize)> = Vec::new();
    for (s, step) in wf.steps.iter().enumerate() {
        for (field, text) in step_texts(step) {
            for r in references(text) {
                if let Ref::StepOutput(x) = r {
                    match index.get(x.as_str()) {
                        None => report.push(Diagnostic::error(
                            map.step(w, s, field),
                            format!(
                                "step `{}` uses {{{{steps.{x}.output}}}} but there is no step `{x}`",
                                step.name
                            ),
                        )),
                        Some(&xi) => uses.push((s, field, x, xi)),
                    }
                }
            }
        }
    }
    let queries: Vec<(StepIdx, StepIdx)> = uses
        .iter()
        .map(|&(s, _, _, xi)| (StepIdx(s), StepIdx(xi)))
        .collect();
    for ((s, field, x, _), ok) in uses.into_iter().zip(graph.upstream_all(&queries)) {
        if !ok {
            report.push(Diagnostic::error(
                map.step(w, s, field),
                format!(
                    "step `{}` uses {{{{steps.{x}.output}}}} but does not depend on `{x}` (add it to dependsOn)",
                    wf.steps[s].name
                ),
            ));
        }
    }
}

fn verification_name(k: VerificationType) -> &'static str {
    match k {
        VerificationType::OutputContains => "output_contains",
        VerificationType::ExitCode => "exit_code",
        VerificationType::FileExists => "file_exists",
        VerificationType::Custom => "custom",
    }
}

fn validate_step_kind(
    loaded: &Loaded,
    w: usize,
    s: usize,
    step: &Step,
    agents: &HashMap<&str, usize>,
    report: &mut Report,
) {
    let map = &loaded.map;
    let name = &step.name;
    match step.kind() {
        StepType::Agent => {
            match &step.agent {
                None => report.push(Diagnostic::error(
                    map.step(w, s, StepField::Name),
                    format!("step `{name}` has no `agent` (or set `type: deterministic` with a `command`)"),
                )),
                Some(a) if !agents.contains_key(a.as_str()) => {
                    let mut msg = format!("step `{name}` uses unknown agent `{a}`");
                    if let Some(best) = did_you_mean(a, agents.keys().copied()) {
                        msg.push_str(&format!(" (did you mean `{best}`?)"));
                    }
                    report.push(Diagnostic::error(map.step(w, s, StepField::Agent), msg));
                }
                Some(_) => {}
            }
            if step.task.as_deref().is_none_or(|t| t.trim().is_empty()) {
                report.push(Diagnostic::error(
                    map.step(w, s, StepField::Name),
                    format!("step `{name}` has no `task`"),
                ));
            }
            for (field, set) in [
                ("command", step.command.is_some()),
                ("captureOutput", step.capture_output.is_some()),
                ("failOnError", step.fail_on_error.is_some()),
            ] {
                if set {
                    report.push(Diagnostic::warning(
                        map.step(w, s, StepField::Name),
                        format!("step `{name}`: `{field}` has no effect on an agent step"),
                    ));
                }
            }
        }
        StepType::Deterministic => {
            if step.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                report.push(Diagnostic::error(
                    map.step(w, s, StepField::Name),
                    format!("deterministic step `{name}` has no `command`"),
                ));
            }
            for (field, set) in [
                ("agent", step.agent.is_some()),
                ("task", step.task.is_some()),
            ] {
                if set {
                    report.push(Diagnostic::warning(
                        map.step(w, s, StepField::Name),
                        format!("step `{name}`: `{field}` has no effect on a deterministic step"),
                    ));
                }
            }
        }
    }
}

/// The texts of a step that may hold references, with the field each came from.
pub fn step_texts(step: &Step) -> Vec<(StepField, &str)> {
    let mut v = Vec::new();
    if let Some(t) = &step.task {
        v.push((StepField::Task, t.as_str()));
    }
    if let Some(c) = &step.command {
        v.push((StepField::Command, c.as_str()));
    }
    if let Some(c) = &step.cwd {
        v.push((StepField::Name, c.as_str()));
    }
    if let Some(Some(crate::types::Scalar::Text(t))) = step.verification.as_ref().map(|v| &v.value)
    {
        v.push((StepField::VerificationType, t.as_str()));
    }
    v
}

/// Each step's dependencies as indices: its `dependsOn` (a barrier standing for the steps
/// it waits for) plus those its pattern implies. Unknown names are left out.
pub fn effective_deps(file: &RelayFile, wf: &WorkflowDef) -> Vec<Vec<usize>> {
    let graph = StepGraph::for_workflow(file, wf);
    (0..graph.len())
        .map(|i| {
            graph
                .waits_for(StepIdx(i))
                .iter()
                .map(|d| d.get())
                .collect()
        })
        .collect()
}

/// The user variables the workflow's steps refer to, in name order.
pub fn required_vars(wf: &WorkflowDef) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    for s in &wf.steps {
        // A map step provides `{{item}}` and `{{itemIndex}}` itself.
        let provided: &[&str] = if s.items.is_some() {
            &["item", "itemIndex"]
        } else {
            &[]
        };
        let mut texts: Vec<&str> = step_texts(s).into_iter().map(|(_, t)| t).collect();
        if let Some(crate::types::Items::Text(t)) = &s.items {
            texts.push(t);
        }
        for r in texts.into_iter().flat_map(references) {
            if let Ref::Var(v) = r
                && !provided.contains(&v.as_str())
            {
                vars.insert(v);
            }
        }
    }
    vars
}

/// The variables `wf` needs that `vars` does not provide.
pub fn missing_vars(wf: &WorkflowDef, vars: &BTreeMap<String, String>) -> Vec<String> {
    required_vars(wf)
        .into_iter()
        .filter(|v| !vars.contains_key(v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::parse;

    const AGENTS: &str =
        "name: t\nagents:\n  - name: dev\n    cli: claude\n    interactive: false\n";

    fn report(workflows: &str) -> Report {
        let src = format!("{AGENTS}workflows:\n{workflows}");
        let loaded = parse(&src, "w.yaml").unwrap();
        validate(&loaded, None)
    }

    fn errors(workflows: &str) -> Vec<String> {
        report(workflows)
            .errors()
            .map(|d| d.message.clone())
            .collect()
    }

    #[test]
    fn a_clean_file_has_no_findings() {
        let r = report(
            "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: go\n      - name: b\n        agent: dev\n        task: 'use {{steps.a.output}}'\n        dependsOn: [a]\n",
        );
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    }

    #[test]
    fn duplicate_steps_and_unknown_agent_are_all_reported() {
        let e = errors(
            "  - name: w\n    steps:\n      - name: a\n        agent: dve\n        task: go\n      - name: a\n        agent: dev\n        task: go\n",
        );
        assert!(
            e.iter()
                .any(|m| m.contains("unknown agent `dve`") && m.contains("`dev`")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|m| m.contains("duplicate step name `a`")),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_dependency_is_named() {
        let e = errors(
            "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: go\n        dependsOn: [nope]\n",
        );
        assert!(e.iter().any(|m| m.contains("unknown step `nope`")), "{e:?}");
    }

    #[test]
    fn cycle_names_its_steps() {
        let e = errors(
            "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: go\n        dependsOn: [c]\n      - name: b\n        agent: dev\n        task: go\n        dependsOn: [a]\n      - name: c\n        agent: dev\n        task: go\n        dependsOn: [b]\n",
        );
        let m = e
            .iter()
            .find(|m| m.contains("cycle"))
            .expect("a cycle error");
        for s in ["a", "b", "c"] {
            assert!(m.contains(&format!("{s} ->")) || m.ends_with(s), "{m}");
        }
    }

    #[test]
    fn step_output_of_a_non_upstream_step_is_an_error() {
        let e = errors(
            "  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: go\n      - name: b\n        agent: dev\n        task: 'x {{steps.a.output}}'\n",
        );
        assert!(
            e.iter().any(|m| m.contains("does not depend on `a`")),
            "{e:?}"
        );
    }

    #[test]
    fn empty_workflow_and_missing_file_workflows() {
        assert!(
            errors("  - name: w\n    steps: []\n")
                .iter()
                .any(|m| m.contains("has no steps"))
        );
        let loaded = parse(AGENTS, "w.yaml").unwrap();
        assert!(
            validate(&loaded, None)
                .errors()
                .any(|d| d.message.contains("no workflows"))
        );
    }

    #[test]
    fn unknown_workflow_for_selection() {
        let src = format!(
            "{AGENTS}workflows:\n  - name: build\n    steps:\n      - name: a\n        agent: dev\n        task: go\n"
        );
        let loaded = parse(&src, "w.yaml").unwrap();
        let r = validate(&loaded, Some("buidl"));
        assert!(r.errors().any(
            |d| d.message.contains("unknown workflow `buidl`") && d.message.contains("`build`")
        ));
    }

    #[test]
    fn deterministic_step_needs_a_command_and_exit_code_needs_an_integer() {
        let e = errors(
            "  - name: w\n    steps:\n      - name: a\n        type: deterministic\n      - name: b\n        agent: dev\n        task: go\n        verification: {type: exit_code, value: zero}\n",
        );
        assert!(e.iter().any(|m| m.contains("has no `command`")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("not an integer")), "{e:?}");
    }

    #[test]
    fn positions_point_at_the_offending_text() {
        let r = report(
            "  - name: w\n    steps:\n      - name: a\n        agent: ghost\n        task: go\n",
        );
        let d = r.errors().next().unwrap();
        assert_eq!(d.pos.map(|p| p.line), Some(10));
        assert!(d.render("w.yaml").starts_with("w.yaml:10:"));
    }

    #[test]
    fn required_and_missing_vars() {
        let src = format!(
            "{AGENTS}workflows:\n  - name: w\n    steps:\n      - name: a\n        agent: dev\n        task: '{{{{task}}}} on {{{{base}}}}'\n"
        );
        let loaded = parse(&src, "w.yaml").unwrap();
        let wf = &loaded.file.workflows[0];
        assert_eq!(
            required_vars(wf).into_iter().collect::<Vec<_>>(),
            ["base", "task"]
        );
        let vars = BTreeMap::from([("task".to_string(), "x".to_string())]);
        assert_eq!(missing_vars(wf, &vars), ["base"]);
    }
}
