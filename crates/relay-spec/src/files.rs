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
    let mut loaded = parse(&source, &path.display().to_string())?;
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
    fn an_endless_file_is_read_only_up_to_the_limit() {
        match load_file(Path::new("/dev/zero")) {
            Err(LoadError::Syntax { message, .. }) => {
                assert!(message.contains("larger than 16 MiB"), "{message}")
            }
            other => panic!("expected the size error, got {other:?}"),
        }
    }
}
