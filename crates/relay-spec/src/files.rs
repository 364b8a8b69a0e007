//! Loading a workflow from a file: parsing it ([`crate::load`]), then what is read from
//! next to it: custom steps (`use:`, from the nearest `.relay/steps.yaml`), checklist
//! files, and sub-workflows (`workflow:`).

use std::path::Path;

use crate::custom_steps::CustomSteps;
use crate::load::{LoadError, Loaded, parse};
use crate::load_error::read_bounded;

/// Reads and parses the workflow file at `path`, and expands what it takes from files
/// next to it: its custom steps (`use:`) from the nearest `.relay/steps.yaml` (see
/// [`crate::custom_steps`]), its checklist files and its sub-workflows.
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    let source = read_bounded(path)?;
    load_source(&source, &path.display().to_string(), path)
}

/// Parses `source`, a workflow that was not read from a file (standard input, what a
/// script built), reported under `origin`, and reads what it takes from other files as a
/// file at `at` would: custom steps, checklist files and sub-workflows are looked for
/// from `at`'s directory (a name in the current directory makes them relative to it).
pub fn load_source(source: &str, origin: &str, at: &Path) -> Result<Loaded, LoadError> {
    let path = at;
    let mut loaded = parse(source, origin)?;
    if loaded.uses_custom_steps() {
        let steps = CustomSteps::find_for(path)?;
        loaded.expand_custom_steps(&steps);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::checklist::load_files(&mut loaded, dir);
    crate::subworkflows::expand_loaded(&mut loaded, path);
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_takes_its_custom_steps_from_the_directory_it_stands_for() {
        let dir = std::env::temp_dir().join(format!("relay-spec-source-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".relay")).unwrap();
        std::fs::write(
            dir.join(".relay/steps.yaml"),
            "steps:\n  hello:\n    type: deterministic\n    command: echo hello\n",
        )
        .unwrap();
        let source = "name: t\nagents: []\nworkflows:\n  - name: main\n    steps:\n      - name: a\n        use: hello\n";
        let loaded = load_source(source, "<stdin>", &dir.join("<stdin>")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(loaded.origin, "<stdin>");
        let step = &loaded.file.workflows[0].steps[0];
        assert_eq!(
            step.command.as_deref(),
            Some("echo hello"),
            "{:?}",
            loaded.diagnostics
        );
    }

    #[test]
    fn an_endless_file_is_read_only_up_to_the_limit() {
        match load_file(Path::new("/dev/zero")) {
            Err(LoadError::Syntax { message, .. }) => {
                assert!(message.contains("larger than 16 MiB"), "{message}")
            }
            other => panic!("expected the size error, got {other:?}"),
        }
    }
}
