//! Groups of nested steps (an extension): a step with `steps: [...]` runs its nested steps
//! together, once or once per iteration of its loop (`loop`, `until`, `breakIf` on the
//! group). When the file is loaded, the nested steps are moved out to stand right after
//! their group in the workflow's list of steps:
//!
//! - nested step `X` of group `G` becomes step `G/X`, marked as a member of `G`; its
//!   `dependsOn` entries and `steps.X.` references to its siblings are renamed alike;
//! - the group keeps its `steps` as written (what makes it a group) and runs nothing of
//!   its own: the run places its members, iteration by iteration.
//!
//! In the step graph a member with no `dependsOn` waits for what its group waits for, and
//! the group waits for its members, so steps after the group see them upstream. Only one
//! level nests; validation reports a group inside a group.

use std::collections::BTreeSet;

use crate::rename::{map_texts, rename_refs};
use crate::source_map::SourceMap;
use crate::types::{RelayFile, Step, WorkflowDef};

/// Moves every group's nested steps out, renamed under the group, and their positions
/// in `map` alike.
pub(crate) fn flatten(file: &mut RelayFile, map: &mut SourceMap) {
    for w in 0..file.workflows.len() {
        let wf = &mut file.workflows[w];
        if !wf.steps.iter().any(Step::is_group) {
            continue;
        }
        let steps = std::mem::take(&mut wf.steps);
        for step in steps {
            let members = step.is_group().then(|| members_of(&step));
            let group = step.name.clone();
            wf.steps.push(step);
            wf.steps.extend(members.into_iter().flatten().map(|mut m| {
                m.group = Some(group.clone());
                m
            }));
        }
        map.flatten_groups(w);
    }
}

/// The nested steps of `group`, renamed `GROUP/X`.
fn members_of(group: &Step) -> Vec<Step> {
    let parent = &group.name;
    let names: BTreeSet<String> = group.steps.iter().map(|s| s.name.clone()).collect();
    let rename = |text: &str| rename_refs(text, parent, &names);
    group
        .steps
        .iter()
        .map(|s| {
            let mut m = s.clone();
            m.name = format!("{parent}/{}", s.name);
            for d in &mut m.depends_on {
                if names.contains(d.as_str()) {
                    *d = format!("{parent}/{d}");
                }
            }
            map_texts(&mut m, &rename);
            m
        })
        .collect()
}

/// The members of group `g` of `wf`, by index, in the order written.
pub fn members(wf: &WorkflowDef, g: usize) -> Vec<usize> {
    let Some(name) = wf.steps.get(g).map(|s| s.name.as_str()) else {
        return Vec::new();
    };
    wf.steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.group.as_deref() == Some(name))
        .map(|(i, _)| i)
        .collect()
}

/// The index of group `g`'s member named `short` (as written inside the group).
pub fn member_named(wf: &WorkflowDef, g: usize, short: &str) -> Option<usize> {
    let full = format!("{}/{short}", wf.steps.get(g)?.name);
    members(wf, g)
        .into_iter()
        .find(|&m| wf.steps[m].name == full)
}

/// The member whose output is group `g`'s output and what its `until` and `breakIf`
/// judge: `resultFrom`, else the last one written that no other member depends on.
pub fn judged(wf: &WorkflowDef, g: usize) -> Option<usize> {
    let group = wf.steps.get(g)?;
    if let Some(r) = &group.result_from {
        return member_named(wf, g, r);
    }
    let members = members(wf, g);
    let depended: BTreeSet<&str> = members
        .iter()
        .flat_map(|&m| wf.steps[m].depends_on.iter().map(String::as_str))
        .collect();
    members
        .iter()
        .rev()
        .copied()
        .find(|&m| !depended.contains(wf.steps[m].name.as_str()))
}

/// The step whose loop step `s` runs in: its group when it is a member, else itself.
pub fn loop_owner(wf: &WorkflowDef, s: usize) -> &Step {
    let step = &wf.steps[s];
    step.group
        .as_deref()
        .and_then(|g| wf.steps.iter().find(|x| x.name == g && x.is_group()))
        .unwrap_or(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "name: x\nagents: [{name: dev, cli: claude}]\nworkflows:\n  - name: w\n    steps:\n      - name: plan\n        agent: dev\n        task: plan\n      - name: fix-and-test\n        dependsOn: [plan]\n        until: PASS\n        steps:\n          - name: fix\n            agent: dev\n            task: \"fix {{steps.test.output}}\"\n          - name: test\n            agent: dev\n            dependsOn: [fix]\n            task: test\n      - name: ship\n        agent: dev\n        dependsOn: [fix-and-test]\n        task: ship\n";

    #[test]
    fn nested_steps_stand_after_their_group_renamed_and_marked() {
        let l = crate::parse(SRC, "w.yaml").unwrap();
        let wf = &l.file.workflows[0];
        let names: Vec<&str> = wf.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "plan",
                "fix-and-test",
                "fix-and-test/fix",
                "fix-and-test/test",
                "ship"
            ]
        );
        let test = &wf.steps[3];
        assert_eq!(test.group.as_deref(), Some("fix-and-test"));
        assert_eq!(test.depends_on, ["fix-and-test/fix"]);
        assert_eq!(
            wf.steps[2].task.as_deref(),
            Some("fix {{steps.fix-and-test/test.output}}")
        );
        assert_eq!(members(wf, 1), [2, 3]);
        assert_eq!(judged(wf, 1), Some(3));
        assert_eq!(loop_owner(wf, 2).name, "fix-and-test");
        // The source map moved alike: the member's position is its own line.
        use crate::load::StepField;
        assert_eq!(l.map.step(0, 3, StepField::Name).map(|p| p.line), Some(16));
        assert_eq!(l.map.step(0, 4, StepField::Name).map(|p| p.line), Some(20));
    }
}
