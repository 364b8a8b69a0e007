//! The built-in templates and the template registry, through the real binary: every
//! built-in runs green under `--rehearse` on a real git repository, `code-review` with the
//! fake agent standing in for every CLI writes a report naming the changed file, and
//! `templates list/show/install` and `run NAME` behave as documented.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{World, stderr, stdout, step, summary};

/// Names and patterns of the built-ins, as the spec lists them.
const BUILTINS: [(&str, &str); 6] = [
    ("bug-fix", "hub-spoke"),
    ("code-review", "fan-out"),
    ("documentation", "handoff"),
    ("feature-dev", "hub-spoke"),
    ("refactor", "hierarchical"),
    ("security-audit", "pipeline"),
];

/// The user template directory every test uses instead of the real one.
fn config_dir(w: &World) -> PathBuf {
    w.path().join("config")
}

/// `agent-relay ARGS` in the world, with a private user template directory.
fn relay(w: &World, args: &[&str]) -> Output {
    w.cmd()
        .env("AGENT_RELAY_CONFIG_DIR", config_dir(w))
        .args(args)
        .output()
        .expect("run agent-relay")
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
}

/// A repository with one commit on `main` and a `feature` branch (checked out) that adds
/// `src/widget.py`. The fake CLIs live in `bin/`, which stays out of the change.
fn repo_with_a_change() -> World {
    let w = World::new();
    w.write(".gitignore", "bin/\nagents.log\nstate/\nconfig/\n");
    w.write("README.md", "# widgets\n");
    git(w.path(), &["init", "-q", "-b", "main"]);
    git(w.path(), &["add", "."]);
    git(w.path(), &["commit", "-q", "-m", "init"]);
    git(w.path(), &["checkout", "-q", "-b", "feature"]);
    std::fs::create_dir_all(w.path().join("src")).expect("mkdir src");
    w.write("src/widget.py", "def widget(size):\n    return size * 2\n");
    git(w.path(), &["add", "."]);
    git(w.path(), &["commit", "-q", "-m", "Add widget"]);
    w
}

const TASK: &str = "task=Add a --dry-run flag";

#[test]
fn every_builtin_validates_and_rehearses_green_on_a_real_change() {
    let w = repo_with_a_change();
    for (name, _) in BUILTINS {
        let o = relay(&w, &["validate", name, "--var", TASK]);
        assert_eq!(o.status.code(), Some(0), "validate {name}: {}", stderr(&o));
        assert!(
            stdout(&o).contains(&format!("template:{name}: valid")),
            "{}",
            stdout(&o)
        );
        let o = relay(&w, &["run", name, "--rehearse", "--json", "--var", TASK]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "run {name} --rehearse: {}",
            stderr(&o)
        );
        assert_eq!(summary(&o)["status"], "completed", "{name}");
    }
    // The rehearsal reviewers name no file, so the report flags the one they missed.
    let report = w.read(".agent-relay/reports/code-review.md");
    assert!(
        report.contains("## Changed files no reviewer mentioned\n\n- src/widget.py"),
        "{report}"
    );
    for name in ["feature-dev", "bug-fix", "refactor", "security-audit"] {
        let report = w.path().join(format!(".agent-relay/reports/{name}.md"));
        assert!(report.is_file(), "{name} wrote no report");
    }
    assert!(
        w.path().join("docs/guide.md").is_file(),
        "documentation wrote no doc_file"
    );
}

#[test]
fn code_review_with_fake_agents_reports_on_the_changed_file() {
    let w = repo_with_a_change();
    // The fake acts only on markers; echoing its task shows what each agent was given.
    let o = relay(
        &w,
        &[
            "run",
            "code-review",
            "--json",
            "--var",
            "base=main",
            "--var",
            "extra_instructions=[[fake:echo-task]]",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["status"], "completed");
    assert_eq!(
        step(&s, "changed-files")["output"].as_str().map(str::trim),
        Some("src/widget.py")
    );
    // The changed-file list reached the consolidator through its task...
    let consolidated = step(&s, "consolidate")["output"].as_str().unwrap();
    assert!(consolidated.contains("src/widget.py"), "{consolidated}");
    assert!(
        consolidated.contains("+    return size * 2"),
        "the diff reached a reviewer"
    );
    // ...and the report it produced covers it, so nothing had to be flagged.
    let report = w.read(".agent-relay/reports/code-review.md");
    assert!(report.contains("src/widget.py"), "{report}");
    assert!(!report.contains("no reviewer mentioned"), "{report}");
    // Every reviewer ran as a real (fake) CLI process, not the rehearsal agent.
    let log = w.agent_log();
    for agent_step in [
        "review-correctness",
        "review-security",
        "review-maintainability",
        "consolidate",
    ] {
        assert!(log.contains(&format!("start {agent_step} ")), "{log}");
    }
    assert!(w.leftovers().is_empty());
}

#[test]
fn code_review_flags_a_changed_file_the_review_never_mentions() {
    let w = repo_with_a_change();
    let o = relay(
        &w,
        &[
            "run",
            "code-review",
            "--var",
            "extra_instructions=[[fake:say=Verdict: APPROVE]] [[fake:say=REVIEW_DONE]]",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = w.read(".agent-relay/reports/code-review.md");
    assert!(report.starts_with("Verdict: APPROVE"), "{report}");
    assert!(
        report.contains("## Changed files no reviewer mentioned\n\n- src/widget.py"),
        "{report}"
    );
}

#[test]
fn missing_required_variable_lists_what_the_template_takes() {
    let w = repo_with_a_change();
    let o = relay(&w, &["run", "feature-dev", "--rehearse"]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(
        err.contains("template:feature-dev: missing variable `task`"),
        "{err}"
    );
    assert!(err.contains("(required) The feature to build"), "{err}");
    assert!(
        err.contains("test_command") && err.contains("(default: auto)"),
        "{err}"
    );
    assert!(!w.has_run_dir(), "nothing was run");
}

#[test]
fn a_file_named_like_a_template_wins() {
    let w = repo_with_a_change();
    w.write(
        "code-review",
        "name: local\nworkflows:\n  - name: w\n    steps:\n      - name: s\n        type: deterministic\n        command: echo FROM_THE_FILE\n",
    );
    let o = relay(&w, &["run", "code-review", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        step(&summary(&o), "s")["output"].as_str().map(str::trim),
        Some("FROM_THE_FILE")
    );
    let o = relay(&w, &["validate", "code-review"]);
    assert!(
        stdout(&o).starts_with("code-review: valid"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn unknown_names_suggest_the_closest_template() {
    let w = World::new();
    let o = relay(&w, &["run", "code-reveiw"]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(
        err.contains("no workflow file or template named `code-reveiw`"),
        "{err}"
    );
    assert!(err.contains("did you mean `code-review`?"), "{err}");
    let o = relay(&w, &["templates", "show", "feature-dve"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("did you mean `feature-dev`?"),
        "{}",
        stderr(&o)
    );
    // A path is still read as a path.
    let o = relay(&w, &["run", "missing.yaml"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("cannot read missing.yaml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn templates_list_and_show() {
    let w = World::new();
    let o = relay(&w, &["templates", "list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for (name, pattern) in BUILTINS {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{out}"));
        assert!(
            line.contains(pattern) && line.contains("built-in"),
            "{line}"
        );
    }
    assert!(
        out.contains("variables: task*,"),
        "required variables are marked:\n{out}"
    );
    assert!(
        out.contains(&config_dir(&w).join("templates").display().to_string()),
        "{out}"
    );

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/code-review.yaml");
    let o = relay(&w, &["templates", "show", "code-review"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), std::fs::read_to_string(shipped).unwrap());
}

#[test]
fn templates_install_validates_and_respects_builtins() {
    let w = World::new();
    let flow = "name: greet\ndescription: Says hello\nvariables:\n  who: {description: whom to greet, default: world}\nagents:\n  - name: a\n    cli: claude\n    interactive: false\nworkflows:\n  - name: w\n    steps:\n      - name: hello\n        agent: a\n        task: greet {{who}}\n        verification: {type: output_contains, value: HELLO}\n";
    w.write("greet.yaml", flow);
    let o = relay(&w, &["templates", "install", "greet.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let installed = config_dir(&w).join("templates/greet.yaml");
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), flow);
    let o = relay(&w, &["run", "greet", "--rehearse", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let list = stdout(&relay(&w, &["templates", "list"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("greet ") && l.contains("user")),
        "{list}"
    );

    // Installing the same name again needs --force.
    let o = relay(&w, &["templates", "install", "greet.yaml"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));

    // An invalid workflow is refused with its problems, and nothing is written.
    w.write("broken.yaml", &flow.replace("agent: a", "agent: b"));
    let o = relay(&w, &["templates", "install", "broken.yaml"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("unknown agent `b`"), "{}", stderr(&o));
    assert!(!config_dir(&w).join("templates/broken.yaml").exists());

    // A user template may hide a built-in only when forced.
    let o = relay(
        &w,
        &[
            "templates",
            "install",
            "greet.yaml",
            "--name",
            "code-review",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("built-in"), "{}", stderr(&o));
    let o = relay(
        &w,
        &[
            "templates",
            "install",
            "greet.yaml",
            "--name",
            "code-review",
            "--force",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let list = stdout(&relay(&w, &["templates", "list"]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("code-review ") && l.contains("user (hides built-in)")),
        "{list}"
    );

    // The project's own template comes before the user's.
    std::fs::create_dir_all(w.path().join(".agent-relay/templates")).unwrap();
    w.write(
        ".agent-relay/templates/greet.yaml",
        &flow.replace("Says hello", "Project greeting"),
    );
    let list = stdout(&relay(&w, &["templates", "list"]));
    let line = list.lines().find(|l| l.starts_with("greet ")).unwrap();
    assert!(
        line.contains("project (hides user)") && line.contains("Project greeting"),
        "{list}"
    );
}
