//! `docs/format.md`, the reference of the relay.yaml format, held to the binary and the
//! types: every ```yaml block in it is a whole file that `agent-relay validate` accepts,
//! or, when its first line is `# invalid: WHY`, one it refuses (exit 3); a block whose
//! first line is `# file: PATH` is a file the others use (`.relay/steps.yaml`), written
//! beside them first. And every key and every named value of the format's schema is
//! mentioned in the reference's text, so the reference grows with the format.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Component, Path};

use support::{agent_relay, stderr};

/// What a YAML block of the reference is.
#[derive(Debug, PartialEq)]
enum Kind {
    /// A workflow file that validates.
    Valid,
    /// A workflow file that must not validate, and why.
    Invalid(String),
    /// A file the other blocks use, at this path.
    Support(String),
}

#[derive(Debug)]
struct Block {
    /// The line of its opening fence in the reference.
    line: usize,
    kind: Kind,
    text: String,
}

fn reference() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/format.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Whether `line` opens or closes a fenced block.
fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// The ```yaml blocks of `doc`, in order.
fn yaml_blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    // The open fence: its line, whether it is YAML, and the lines so far.
    let mut open: Option<(usize, bool, Vec<&str>)> = None;
    for (i, line) in doc.lines().enumerate() {
        match &mut open {
            None if is_fence(line) => {
                let yaml = line.trim() == "```yaml";
                open = Some((i + 1, yaml, Vec::new()));
            }
            None => {}
            Some((start, yaml, lines)) if line.trim() == "```" => {
                if *yaml {
                    let first = lines.first().copied().unwrap_or_default();
                    let kind = if let Some(why) = first.strip_prefix("# invalid:") {
                        assert!(
                            !why.trim().is_empty(),
                            "docs/format.md:{start}: `# invalid:` says why"
                        );
                        Kind::Invalid(why.trim().to_owned())
                    } else if let Some(path) = first.strip_prefix("# file:") {
                        Kind::Support(path.trim().to_owned())
                    } else {
                        Kind::Valid
                    };
                    out.push(Block {
                        line: *start,
                        kind,
                        text: lines.join("\n") + "\n",
                    });
                }
                open = None;
            }
            Some((_, _, lines)) => lines.push(line),
        }
    }
    if let Some((start, ..)) = open {
        panic!("docs/format.md:{start}: a fenced block is never closed");
    }
    out
}

#[test]
fn every_yaml_example_of_the_reference_validates() {
    let doc = reference();
    let blocks = yaml_blocks(&doc);
    // Validation starts no agent: a scratch directory and the binary are all it needs.
    let dir = tempfile::tempdir().unwrap();
    for b in &blocks {
        if let Kind::Support(path) = &b.kind {
            let rel = Path::new(path);
            assert!(
                !path.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_))),
                "docs/format.md:{}: `# file:` names a relative path inside the example's directory, not `{path}`",
                b.line
            );
            let to = dir.path().join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(&to, &b.text).unwrap();
        }
    }
    let mut problems = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for b in &blocks {
        let expected = match &b.kind {
            Kind::Support(_) => continue,
            Kind::Valid => {
                valid += 1;
                0
            }
            Kind::Invalid(_) => {
                invalid += 1;
                3
            }
        };
        let file = dir.path().join(format!("example-{}.yaml", b.line));
        std::fs::write(&file, &b.text).unwrap();
        let o = std::process::Command::new(agent_relay())
            .current_dir(dir.path())
            .arg("validate")
            .arg(&file)
            .output()
            .unwrap();
        if o.status.code() != Some(expected) {
            problems.push(format!(
                "docs/format.md:{} ({:?}): `validate` exited {:?}, not {expected}:\n{}",
                b.line,
                b.kind,
                o.status.code(),
                stderr(&o)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // The reference shows whole files, and how a mistake is refused.
    assert!(valid >= 5, "only {valid} examples that validate");
    assert!(invalid >= 1, "no example of a refused file");
}

/// The words inside the inline code spans of `doc`'s text (fenced blocks left out):
/// `constraints.maxTokens` gives `constraints` and `maxTokens`; a span opened with two
/// backticks may hold single ones, and all of its words count.
fn code_words(doc: &str) -> BTreeSet<String> {
    let mut prose = Vec::new();
    let mut fenced = false;
    for line in doc.lines() {
        if fenced {
            // As in `yaml_blocks`: only a bare fence closes a block.
            fenced = line.trim() != "```";
        } else if is_fence(line) {
            fenced = true;
        } else {
            prose.push(line);
        }
    }
    let text: Vec<char> = prose.join("\n").chars().collect();
    let run = |at: usize| text[at..].iter().take_while(|c| **c == '`').count();
    let mut words = BTreeSet::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] != '`' {
            i += 1;
            continue;
        }
        let n = run(i);
        let start = i + n;
        // The span ends at the next run of exactly as many backticks.
        let mut j = start;
        let mut end = None;
        while j < text.len() {
            if text[j] == '`' {
                let m = run(j);
                if m == n {
                    end = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        let Some(end) = end else {
            i = start;
            continue;
        };
        let span: String = text[start..end].iter().collect();
        words.extend(
            span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .filter(|w| !w.is_empty())
                .map(str::to_owned),
        );
        i = end + n;
    }
    words
}

/// Every property name and every named value (`enum`, `const`) in `schema`.
fn schema_names(schema: &serde_json::Value, out: &mut BTreeSet<String>) {
    match schema {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            if let Some(serde_json::Value::Array(values)) = map.get("enum") {
                out.extend(values.iter().filter_map(|v| v.as_str().map(str::to_owned)));
            }
            if let Some(serde_json::Value::String(c)) = map.get("const") {
                out.insert(c.clone());
            }
            for v in map.values() {
                schema_names(v, out);
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                schema_names(v, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_key_and_value_of_the_format_is_in_the_reference() {
    let mut names = BTreeSet::new();
    schema_names(&relay_spec::json_schema(), &mut names);
    schema_names(&relay_spec::custom_steps_schema(), &mut names);
    // The walk finds the format's keys: a sample that must be among them.
    for known in [
        "permission_profiles",
        "waitFor",
        "onExhaustion",
        "review-loop",
        "params",
    ] {
        assert!(names.contains(known), "the schema walk missed `{known}`");
    }
    let words = code_words(&reference());
    let missing: Vec<&String> = names.iter().filter(|n| !words.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "docs/format.md does not mention these keys or values of the format (in `code`): {missing:?}"
    );
}

#[test]
fn blocks_and_code_spans_are_read_as_written() {
    let doc = "text `a.b` and ``x `y` z``\n```yaml\n# invalid: because\nname: t\n```\n```sh\n```yaml\n```\n```yaml\n# file: .relay/steps.yaml\nsteps: {}\n```\n";
    let blocks = yaml_blocks(doc);
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert_eq!(blocks[0].kind, Kind::Invalid("because".into()));
    assert_eq!(blocks[0].line, 2);
    assert_eq!(blocks[1].kind, Kind::Support(".relay/steps.yaml".into()));
    let words = code_words(doc);
    for w in ["a", "b", "x", "y", "z"] {
        assert!(words.contains(w), "{w}: {words:?}");
    }
    assert!(!words.contains("name"), "fenced blocks are not text");
}
