//! Steps renamed under a parent step (a sub-workflow's steps, a group's nested steps):
//! `steps.X.` references to the renamed steps, and every text of a step that may hold
//! such a reference or a `{{...}}`.

use std::collections::BTreeSet;

use crate::types::{Items, Scalar, SkipIf, Step};

/// `text` with its `steps.X.` references to the steps `names` renamed to
/// `steps.PARENT/X.`.
pub(crate) fn rename_refs(text: &str, parent: &str, names: &BTreeSet<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("steps.") {
        let boundary = rest[..i]
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        out.push_str(&rest[..i]);
        let after = &rest[i + "steps.".len()..];
        let hit = boundary
            .then(|| {
                names
                    .iter()
                    .filter(|n| {
                        after.starts_with(n.as_str()) && after[n.len()..].starts_with(['.', '['])
                    })
                    .max_by_key(|n| n.len())
            })
            .flatten();
        match hit {
            Some(n) => {
                out.push_str(&format!("steps.{parent}/{n}"));
                rest = &after[n.len()..];
            }
            None => {
                out.push_str("steps.");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Applies `f` to every text of `step` that may hold `{{...}}` or a condition.
pub(crate) fn map_texts(step: &mut Step, f: &impl Fn(&str) -> String) {
    let each = |o: &mut Option<String>| {
        if let Some(t) = o {
            *t = f(t);
        }
    };
    each(&mut step.task);
    each(&mut step.command);
    each(&mut step.cwd);
    each(&mut step.compensate);
    each(&mut step.branch);
    each(&mut step.path);
    each(&mut step.if_);
    each(&mut step.until);
    each(&mut step.break_if);
    if let Some(v) = &mut step.verification
        && let Some(Scalar::Text(t)) = &mut v.value
    {
        *t = f(t);
    }
    if let Some(SkipIf::Text(t) | SkipIf::Command { sh: t }) = &mut step.skip_if {
        *t = f(t);
    }
    let items = |i: &mut Items| match i {
        Items::Text(t) => *t = f(t),
        Items::List(l) => {
            for s in l {
                if let Scalar::Text(t) = s {
                    *t = f(t);
                }
            }
        }
    };
    if let Some(i) = &mut step.items {
        items(i);
    }
    if let Some(i) = step.loop_.as_mut().and_then(|l| l.over.as_mut()) {
        items(i);
    }
    for v in step.params.values_mut() {
        if let Scalar::Text(t) = v {
            *t = f(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_to_the_sub_workflows_steps_are_renamed_and_others_kept() {
        let names: BTreeSet<String> = ["build".into(), "build-docs".into()].into();
        assert_eq!(
            rename_refs(
                "{{steps.build.output}} {{ steps.build-docs.output }} steps.build.status == 'completed' {{steps.other.output}} mysteps.build.x",
                "ci",
                &names
            ),
            "{{steps.ci/build.output}} {{ steps.ci/build-docs.output }} steps.ci/build.status == 'completed' {{steps.other.output}} mysteps.build.x"
        );
    }
}
