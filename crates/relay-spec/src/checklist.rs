//! Checklists (`verification: {type: checklist}`, an extension): the items an agent must
//! mark done before its step counts as complete, written inline as `items` or kept in a
//! file named by `value` (relative to the workflow file), read when the file is loaded.
//!
//! A checklist file is a YAML list; each entry is `{id, title}`, or a string `ID: title`
//! (or just `ID`).

use std::path::Path;

use serde::Deserialize;

use crate::diagnostic::Diagnostic;
use crate::limits::yaml_options;
use crate::load::Loaded;
use crate::load_error::read_bounded;
use crate::source_map::StepField;
use crate::types::{ChecklistItem, VerificationType};

#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Item(ChecklistItem),
    Text(String),
}

/// The items of a checklist file's text.
pub fn parse_items(text: &str) -> Result<Vec<ChecklistItem>, String> {
    let entries: Vec<Entry> =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| e.to_string())?;
    Ok(entries
        .into_iter()
        .map(|e| match e {
            Entry::Item(i) => i,
            Entry::Text(t) => match t.split_once(':') {
                Some((id, title)) => ChecklistItem {
                    id: id.trim().to_owned(),
                    title: title.trim().to_owned(),
                },
                None => ChecklistItem {
                    id: t.trim().to_owned(),
                    title: String::new(),
                },
            },
        })
        .collect())
}

/// Fills in the items of every checklist given as a file (`value`), relative to `dir`;
/// a file that cannot be read or parsed is reported at its step.
pub fn load_files(loaded: &mut Loaded, dir: &Path) {
    let mut found = Vec::new();
    for (w, wf) in loaded.file.workflows.iter_mut().enumerate() {
        for (s, step) in wf.steps.iter_mut().enumerate() {
            let Some(v) = step.verification.as_mut() else {
                continue;
            };
            if v.kind != VerificationType::Checklist || !v.items.is_empty() {
                continue;
            }
            let Some(name) = v.value.as_ref().map(|x| x.as_text()) else {
                continue;
            };
            let path = dir.join(&name);
            let read = read_bounded(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| parse_items(&t));
            match read {
                Ok(items) => v.items = items,
                Err(why) => found.push((
                    w,
                    s,
                    format!(
                        "step `{}`: checklist file `{}` cannot be used: {why}",
                        step.name,
                        path.display()
                    ),
                )),
            }
        }
    }
    for (w, s, msg) in found {
        let pos = loaded.map.step(w, s, StepField::VerificationValue);
        loaded.diagnostics.push(Diagnostic::error(pos, msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_mappings_or_id_title_strings() {
        let items =
            parse_items("- {id: tests, title: Tests pass}\n- 'docs: README updated'\n- lint\n")
                .expect("parses");
        let ids: Vec<(&str, &str)> = items
            .iter()
            .map(|i| (i.id.as_str(), i.title.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("tests", "Tests pass"),
                ("docs", "README updated"),
                ("lint", "")
            ]
        );
        assert!(parse_items("{not: a list}").is_err());
    }
}
