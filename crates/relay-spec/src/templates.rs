//! What a user of a workflow template needs to know about it that the file itself says:
//! the variables it takes, with their descriptions and defaults. The catalogue of
//! templates (built-ins, search order, installing) lives in the `relay-templates` crate;
//! this part is pure and shared by everything that lists or runs templates.

use std::collections::BTreeSet;

use crate::types::{RelayFile, WorkflowDef};
use crate::validate::required_vars;

/// A variable as a user of a template needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The name, as in `--var NAME=VALUE`.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Its default; `None` means it must be given.
    pub default: Option<String>,
}

impl Variable {
    /// Whether a value must be given.
    pub fn required(&self) -> bool {
        self.default.is_none()
    }
}

/// The variables `wf` uses and `file` declares, in name order, with their descriptions
/// and defaults.
pub fn variables(file: &RelayFile, wf: Option<&WorkflowDef>) -> Vec<Variable> {
    let mut names: BTreeSet<String> = file.variables.keys().cloned().collect();
    if let Some(wf) = wf {
        names.extend(required_vars(wf));
    }
    names
        .into_iter()
        .map(|name| {
            let decl = file.variables.get(&name);
            Variable {
                description: decl.and_then(|d| d.description.clone()),
                default: decl.and_then(|d| d.default.as_ref().map(|s| s.as_text())),
                name,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_and_used_variables_with_their_defaults() {
        let l = crate::parse(
            "name: t\nvariables:\n  base: {description: compare with, default: main}\n  unused: {description: declared only}\nagents: [{name: a, cli: claude}]\nworkflows:\n  - name: w\n    steps:\n      - {name: s, agent: a, task: 'on {{base}} do {{task}}'}\n      - {name: m, agent: a, task: 'x {{item}}', items: [1, 2]}\n",
            "t.yaml",
        )
        .expect("parses");
        let vars = variables(&l.file, l.file.workflows.first());
        let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        // `item` is the map step's own, not the user's.
        assert_eq!(names, ["base", "task", "unused"]);
        assert_eq!(vars[0].default.as_deref(), Some("main"));
        assert!(!vars[0].required());
        assert!(vars[1].required() && vars[1].description.is_none());
        assert_eq!(vars[2].description.as_deref(), Some("declared only"));
    }
}
