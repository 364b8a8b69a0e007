//! Reading a relay.yaml file into typed form. Every failure names file:line:column, says
//! what was expected, and suggests the closest known field for a misspelt one.

use serde::de::IgnoredAny;

use crate::custom_steps::CustomSteps;
use crate::diagnostic::Diagnostic;
pub use crate::diagnostic::Pos;
use crate::limits::{MAX_FILE_BYTES, yaml_options};
pub use crate::load_error::{LoadError, snippet_at};
use crate::load_error::{syntax_error, too_large};
pub use crate::source_map::{AgentField, PreflightField, SourceMap, StepField};
pub use crate::suggest::did_you_mean;
use crate::types::RelayFile;

/// A loaded workflow file together with its source text and where its names stand.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed file.
    pub file: RelayFile,
    /// The text it was parsed from.
    pub source: String,
    /// The name the file is reported under.
    pub origin: String,
    /// Where names and references stand in the source, for validation messages.
    pub map: SourceMap,
    /// What loading found that is not a syntax error: custom steps that could not be
    /// expanded. `validate` reports these with its own findings.
    pub diagnostics: Vec<Diagnostic>,
    /// Whether its sub-workflow steps (`workflow:`) were read from their files: set when
    /// it is loaded from a file. A step still naming a workflow file then belongs to a
    /// workflow of an included file that does not run (or was reported).
    pub subworkflows_read: bool,
}

impl Loaded {
    /// Whether a step of the file names a custom step (`use:`).
    pub fn uses_custom_steps(&self) -> bool {
        self.file
            .workflows
            .iter()
            .any(|w| w.steps.iter().any(|s| s.use_.is_some()))
    }

    /// Expands the custom steps still unexpanded from `steps`, replacing what earlier
    /// expansions reported.
    pub fn expand_custom_steps(&mut self, steps: &CustomSteps) {
        self.diagnostics = crate::custom_steps::expand(&mut self.file, steps, &self.map);
    }
}

/// Whether `source` holds no YAML content at all: only blank lines, comments and
/// document markers.
fn is_blank(source: &str) -> bool {
    source.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// Parses workflow `source`, reporting errors under the name `origin`. Custom steps
/// (`use:`) are left unexpanded and reported; [`Loaded::expand_custom_steps`] fills them
/// in from a steps file ([`load_file`] finds the one next to the file).
pub fn parse(source: &str, origin: &str) -> Result<Loaded, LoadError> {
    if source.len() > MAX_FILE_BYTES {
        return Err(too_large(origin));
    }
    let empty = || LoadError::Syntax {
        origin: origin.to_string(),
        pos: Pos { line: 1, column: 1 },
        message: "the file is empty: a workflow needs `name`, `agents` and `workflows`".into(),
        snippet: String::new(),
    };
    if is_blank(source) {
        return Err(empty());
    }
    let file: RelayFile =
        serde_saphyr::from_str_with_options(source, yaml_options()).map_err(|e| {
            // A document that is only `~` or `null` is as empty as no document.
            let null =
                serde_saphyr::from_str_with_options::<Option<IgnoredAny>>(source, yaml_options())
                    .is_ok_and(|v| v.is_none());
            if null {
                empty()
            } else {
                syntax_error(&e, source, origin)
            }
        })?;
    // The second pass only records positions; it cannot fail where the first succeeded,
    // but an empty map only costs locations in messages, never correctness.
    let map = serde_saphyr::from_str_with_options::<SourceMap>(source, yaml_options())
        .unwrap_or_default();
    let mut loaded = Loaded {
        file,
        source: source.to_string(),
        origin: origin.to_string(),
        map,
        diagnostics: Vec::new(),
        subworkflows_read: false,
    };
    crate::groups::flatten(&mut loaded.file, &mut loaded.map);
    if loaded.uses_custom_steps() {
        // No file to look next to: every `use` is reported until steps are given.
        loaded.expand_custom_steps(&CustomSteps::default());
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> (Pos, String) {
        match parse(src, "w.yaml") {
            Err(LoadError::Syntax { pos, message, .. }) => (pos, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn unknown_field_names_position_and_closest_field() {
        let (pos, msg) = err(
            "name: x\nworkflows:\n  - name: w\n    steps:\n      - name: a\n        dependOn: [b]\n",
        );
        assert_eq!(pos, Pos { line: 6, column: 9 });
        assert!(msg.contains("unknown field `dependOn`"), "{msg}");
        assert!(msg.contains("did you mean `dependsOn`?"), "{msg}");
    }

    #[test]
    fn wrong_type_names_position() {
        let (pos, msg) = err("name: x\nswarm:\n  maxConcurrency: lots\n");
        assert_eq!(pos.line, 3);
        assert!(msg.contains("u32") || msg.contains("integer"), "{msg}");
    }

    #[test]
    fn unknown_cli_lists_the_known_ones() {
        let (pos, msg) = err("name: x\nagents:\n  - name: a\n    cli: claud\n");
        assert_eq!(pos.line, 4);
        assert!(
            msg.contains("`claud`") && msg.contains("did you mean `claude`?"),
            "{msg}"
        );
        assert!(msg.contains("codex"), "{msg}");
    }

    #[test]
    fn yaml_syntax_error_has_a_snippet() {
        let e = parse("name: x\nagents: [\n", "w.yaml").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("w.yaml:"), "{text}");
        assert!(e.snippet().is_some());
    }

    #[test]
    fn missing_name_is_reported() {
        let (_, msg) = err("agents: []\n");
        assert!(msg.contains("missing field `name`"), "{msg}");
    }

    #[test]
    fn an_empty_file_says_what_a_workflow_needs() {
        for src in ["", "\n  \n", "# only a comment\n", "---\n", "~\n", "null\n"] {
            let (pos, msg) = err(src);
            assert_eq!(pos, Pos { line: 1, column: 1 }, "{src:?}");
            assert_eq!(
                msg, "the file is empty: a workflow needs `name`, `agents` and `workflows`",
                "{src:?}"
            );
        }
    }

    #[test]
    fn a_huge_unknown_key_is_reported_briefly_without_a_suggestion() {
        let key = "k".repeat(40_000);
        // An explicit key (`? KEY`), since YAML bounds implicit keys at 1024 characters.
        let (pos, msg) = err(&format!("name: x\n? {key}\n: 1\n"));
        assert_eq!(pos.line, 2);
        assert!(msg.starts_with("unknown field `kkkk"), "{msg}");
        assert!(
            msg.contains("(40000 bytes)") && !msg.contains("did you mean"),
            "{msg}"
        );
        assert!(msg.len() < 400, "{} bytes", msg.len());
    }

    #[test]
    fn files_over_the_size_limit_are_refused_before_parsing() {
        let big = format!("name: x\ndescription: {}\n", "d".repeat(MAX_FILE_BYTES));
        let (_, msg) = err(&big);
        assert!(msg.contains("larger than 16 MiB"), "{msg}");
    }

    #[test]
    fn aliases_cannot_multiply_a_small_file_past_the_budget() {
        // 10 000 names, repeated by alias in 310 steps: 3.1 million strings from 60 KB.
        let names: Vec<String> = (0..10_000).map(|i| format!("p{i}")).collect();
        let mut src = format!(
            "name: x\nagents: [{{name: a, cli: claude}}]\nworkflows:\n  - name: w\n    steps:\n      - {{name: s0, agent: a, task: t, participants: &p [{}]}}\n",
            names.join(", ")
        );
        for i in 1..310 {
            src.push_str(&format!(
                "      - {{name: s{i}, agent: a, task: t, participants: *p}}\n"
            ));
        }
        let e = parse(&src, "w.yaml").unwrap_err().to_string();
        assert!(e.contains("budget") || e.contains("limit"), "{e}");
        assert!(!e.contains("Nodes {") && !e.contains("Breach"), "{e}");
        // The same file with a few aliases is fine.
        let small: String = src.lines().take(12).map(|l| format!("{l}\n")).collect();
        assert!(parse(&small, "w.yaml").is_ok());
    }

    #[test]
    fn nested_aliases_past_the_budget_are_told_in_words_at_one_position() {
        let mut src = String::from(
            "name: x\nagents: [{name: a, cli: claude}]\nworkflows:\n  - name: w\n    steps:\n      - name: s\n        type: deterministic\n        command: echo\n        items:\n",
        );
        src.push_str(&format!("          - &a0 [{}]\n", ["lol"; 10].join(", ")));
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            src.push_str(&format!(
                "          - &a{i} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        let (pos, msg) = err(&src);
        assert_eq!(
            msg,
            "too many alias expansions (more than 1,000,000): the file expands to more than \
             this tool reads"
        );
        assert!(pos.line >= 10, "{pos:?}");
    }
}
