//! Every workflow shipped in examples/, patterns/ and templates/ validates against the
//! JSON Schema and with `agent-relay validate`, and runs green under `--rehearse`.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use support::{World, stderr};

fn shipped_workflows() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["examples", "patterns", "templates"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml")) {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// Variables the shipped workflows take, given so they can run unattended.
const VARS: [&str; 4] = [
    "--var",
    "feature=a /health endpoint",
    "--var",
    "task=add a /health endpoint",
];

#[test]
fn shipped_workflows_match_the_schema() {
    let schema: serde_json::Value = relay_spec::json_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let files = shipped_workflows();
    assert!(!files.is_empty(), "no shipped workflows found");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
}

#[test]
fn schema_rejects_what_the_loader_rejects() {
    let schema = relay_spec::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let bad = serde_json::json!({"name": "x", "agents": [{"name": "a", "cli": "nope"}]});
    assert!(!validator.is_valid(&bad));
    let typo = serde_json::json!({"name": "x", "workflow": []});
    assert!(
        !validator.is_valid(&typo),
        "unknown top-level fields are refused"
    );
}

#[test]
fn shipped_workflows_validate_and_rehearse_green() {
    for f in shipped_workflows() {
        let w = World::new();
        // A real git repository so deterministic git steps have something to read.
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(w.path())
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .output()
                .expect("git")
        };
        git(&["init", "-q", "-b", "main"]);
        w.write("README.md", "hello\n");
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "init"]);
        let path = f.to_str().unwrap();
        let o = w.run(&[&["validate", path][..], &VARS].concat());
        assert_eq!(o.status.code(), Some(0), "{path}: {}", stderr(&o));
        let o = w.run(&[&["run", path, "--rehearse"][..], &VARS].concat());
        assert_eq!(
            o.status.code(),
            Some(0),
            "{path} under --rehearse: {}",
            stderr(&o)
        );
    }
}
