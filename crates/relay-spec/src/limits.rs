//! Bounds on what a workflow file may hold, so that no input, however large or odd, can
//! make loading or validation take unbounded time or memory. Each bound is far above
//! what a real workflow needs; crossing one is an error that names the bound.

/// Largest workflow file read, in bytes (16 MiB).
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Most steps one workflow may have.
pub const MAX_STEPS: usize = 100_000;

/// Largest `task`, `command` (of a step, a check or a preflight) or `compensate` text,
/// in bytes (1 MiB).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;

/// Longest step, agent, workflow, barrier or path name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Deepest nesting of YAML collections; relay.yaml needs about eight.
pub const MAX_DEPTH: usize = 64;

/// Most YAML nodes (scalars, sequences, mappings) in one file, aliases expanded: room for
/// [`MAX_STEPS`] steps of a dozen fields each, and a bound on what aliases can multiply.
pub const MAX_NODES: usize = 3_000_000;

/// The parser's budget for a workflow file: generous enough for [`MAX_STEPS`] steps in a
/// [`MAX_FILE_BYTES`] file, tight enough that aliases cannot multiply it into billions of
/// nodes or gigabytes of text.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_events = MAX_NODES.saturating_mul(2);
    budget.max_total_scalar_bytes = MAX_FILE_BYTES.saturating_mul(2);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}
