//! The registry over real directories: search order, shadowing, listing, installing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use relay_spec::Pattern;
use relay_spec::validate::validate;
use relay_templates::*;

use std::sync::atomic::{AtomicU32, Ordering};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "relay-templates-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch directory");
        Scratch(p)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("directory");
        std::fs::write(&p, text).expect("written");
        p
    }

    fn registry(&self) -> Registry {
        Registry::new(Some(self.0.join("project")), Some(self.0.join("user")))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn workflow(name: &str, description: &str) -> String {
    format!(
        "name: {name}\ndescription: {description}\nvariables:\n  who: {{description: whom to greet}}\nagents:\n  - name: a\n    cli: claude\n    interactive: false\nworkflows:\n  - name: w\n    steps:\n      - name: s\n        agent: a\n        task: hello {{{{who}}}}\n"
    )
}

#[test]
fn every_builtin_is_a_valid_workflow_named_after_itself() {
    let expected = [
        ("bug-fix", Pattern::HubSpoke),
        ("code-review", Pattern::FanOut),
        ("documentation", Pattern::Handoff),
        ("feature-dev", Pattern::HubSpoke),
        ("refactor", Pattern::Hierarchical),
        ("security-audit", Pattern::Pipeline),
    ];
    assert_eq!(BUILTINS.map(|b| b.name), expected.map(|(n, _)| n));
    for (name, pattern) in expected {
        let loaded = Registry::default().load(name).unwrap();
        assert_eq!(loaded.origin, format!("template:{name}"));
        let report = validate(&loaded, None);
        assert!(!report.has_errors(), "{name}: {:?}", report.diagnostics);
        assert!(
            report.warnings().next().is_none(),
            "{name}: {:?}",
            report.diagnostics
        );
        let file = &loaded.file;
        assert_eq!(file.name, name);
        let swarm = file.swarm.as_ref().expect("swarm");
        assert_eq!(swarm.pattern, Some(pattern), "{name}");
        let nudge = swarm.idle_nudge.as_ref().expect("idleNudge");
        assert_eq!(
            (
                nudge.nudge_after_ms,
                nudge.escalate_after_ms,
                nudge.max_nudges
            ),
            (Some(120_000), Some(120_000), Some(1)),
            "{name}"
        );
        // Messaging does not exist yet; a channel would only produce a warning.
        assert!(swarm.channel.is_none() && file.agents.iter().all(|a| a.channels.is_empty()));
        // Every variable a step uses is declared with a description.
        for v in variables(file, file.workflows.first()) {
            assert!(
                file.variables.contains_key(&v.name),
                "{name}: `{}` undeclared",
                v.name
            );
            assert!(v.description.is_some(), "{name}: `{}` undescribed", v.name);
        }
    }
}

#[test]
fn project_beats_user_beats_builtin() {
    let s = Scratch::new();
    let reg = s.registry();
    assert_eq!(reg.find("code-review").unwrap(), Source::Builtin);
    let user = s.write("user/code-review.yaml", &workflow("mine", "user copy"));
    assert_eq!(reg.find("code-review").unwrap(), Source::User(user.clone()));
    let project = s.write("project/code-review.yml", &workflow("ours", "project copy"));
    assert_eq!(
        reg.find("code-review").unwrap(),
        Source::Project(project.clone())
    );
    let loaded = reg.load("code-review").unwrap();
    assert_eq!(loaded.file.name, "ours");
    assert_eq!(loaded.origin, project.display().to_string());

    let entry = reg
        .list()
        .into_iter()
        .find(|e| e.name == "code-review")
        .unwrap();
    assert_eq!(entry.source, Source::Project(project));
    assert_eq!(entry.hides, [Source::User(user), Source::Builtin]);
    assert_eq!(
        entry.summary.unwrap().description.as_deref(),
        Some("project copy")
    );
}

#[test]
fn list_has_builtins_and_own_templates_and_survives_a_broken_file() {
    let s = Scratch::new();
    s.write("user/greet.yaml", &workflow("greet", "says hello"));
    s.write("project/broken.yaml", "name: [unclosed\n");
    s.write("project/notes.txt", "not a template");
    let list = s.registry().list();
    let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "broken",
            "bug-fix",
            "code-review",
            "documentation",
            "feature-dev",
            "greet",
            "refactor",
            "security-audit"
        ]
    );
    let greet = list.iter().find(|e| e.name == "greet").unwrap();
    let summary = greet.summary.as_ref().unwrap();
    assert_eq!(
        summary.variables,
        [Variable {
            name: "who".into(),
            description: Some("whom to greet".into()),
            default: None
        }]
    );
    assert!(summary.variables[0].required());
    let broken = list.iter().find(|e| e.name == "broken").unwrap();
    assert!(broken.summary.as_ref().unwrap_err().contains("broken.yaml"));
}

#[test]
fn unknown_names_suggest_the_closest_and_paths_are_not_names() {
    let reg = Registry::default();
    match reg.find("code-reveiw") {
        Err(e @ TemplateError::Unknown { .. }) => {
            assert!(e.to_string().contains("did you mean `code-review`?"), "{e}");
            let TemplateError::Unknown { available, .. } = e else {
                unreachable!()
            };
            assert!(available.contains(&"feature-dev".to_string()));
        }
        other => panic!("expected Unknown, got {other:?}"),
    }
    for bad in [
        "",
        "a/b",
        "../x",
        ".hidden",
        "-x",
        "flow.yaml",
        "flow.YML",
        "a b",
    ] {
        assert!(!is_template_name(bad), "{bad}");
        assert!(
            matches!(reg.find(bad), Err(TemplateError::InvalidName(_))),
            "{bad}"
        );
    }
    for good in ["code-review", "my_flow.v2", "A1"] {
        assert!(is_template_name(good), "{good}");
    }
}

#[test]
fn user_dir_follows_the_environment_precedence() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    };
    let all: &'static [(&str, &str)] = &[
        ("AGENT_RELAY_CONFIG_DIR", "/cfg"),
        ("XDG_CONFIG_HOME", "/xdg"),
        ("HOME", "/home/u"),
    ];
    assert_eq!(user_dir(env(all)), Some(PathBuf::from("/cfg/templates")));
    assert_eq!(
        user_dir(env(&[
            ("AGENT_RELAY_CONFIG_DIR", ""),
            ("XDG_CONFIG_HOME", "/xdg"),
            ("HOME", "/h")
        ])),
        Some(PathBuf::from("/xdg/agent-relay/templates"))
    );
    assert_eq!(
        user_dir(env(&[("XDG_CONFIG_HOME", "relative"), ("HOME", "/h")])),
        Some(PathBuf::from("/h/.config/agent-relay/templates"))
    );
    assert_eq!(user_dir(env(&[])), None);
    assert_eq!(
        project_dir(Path::new("/repo")),
        PathBuf::from("/repo/.agent-relay/templates")
    );
}

#[test]
fn install_validates_then_copies() {
    let s = Scratch::new();
    let reg = s.registry();
    let bad = s.write("bad.yaml", "name: x\nagents: []\nworkflows:\n  - name: w\n    steps:\n      - name: s\n        agent: ghost\n        task: go\n");
    match reg.install(&bad, None, false) {
        Err(TemplateError::Invalid(r)) => {
            assert!(
                r.report
                    .errors()
                    .any(|d| d.message.contains("unknown agent `ghost`"))
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(!s.0.join("user/bad.yaml").exists(), "nothing is installed");
    let unparsable = s.write("worse.yaml", "name: x\nbogus: 1\n");
    assert!(matches!(
        reg.install(&unparsable, None, false),
        Err(TemplateError::Load(_))
    ));

    let good = s.write("greet.yml", &workflow("greet", "hello"));
    let done = reg.install(&good, None, false).unwrap();
    assert_eq!(done.name, "greet");
    assert_eq!(done.path, s.0.join("user/greet.yaml"));
    assert!(!done.replaced && !done.hides_builtin);
    assert_eq!(
        std::fs::read_to_string(&done.path).unwrap(),
        workflow("greet", "hello")
    );
    assert_eq!(reg.load("greet").unwrap().file.name, "greet");

    // A second install of the same name needs force, and then replaces it.
    assert!(matches!(
        reg.install(&good, None, false),
        Err(TemplateError::Exists { .. })
    ));
    let again = reg.install(&good, None, true).unwrap();
    assert!(again.replaced);

    let named = reg.install(&good, Some("hello-world"), false).unwrap();
    assert_eq!(named.path, s.0.join("user/hello-world.yaml"));
    assert!(matches!(
        reg.install(&good, Some("../escape"), false),
        Err(TemplateError::InvalidName(_))
    ));
}

#[test]
fn install_over_a_builtin_needs_force() {
    let s = Scratch::new();
    let reg = s.registry();
    let mine = s.write("code-review.yaml", &workflow("my-review", "mine"));
    assert!(matches!(
        reg.install(&mine, None, false),
        Err(TemplateError::ShadowsBuiltin { .. })
    ));
    assert_eq!(reg.find("code-review").unwrap(), Source::Builtin);
    let done = reg.install(&mine, None, true).unwrap();
    assert!(done.hides_builtin);
    assert_eq!(reg.load("code-review").unwrap().file.name, "my-review");
}

#[test]
fn install_without_a_user_dir_says_so() {
    let s = Scratch::new();
    let reg = Registry::new(None, None);
    let good = s.write("greet.yaml", &workflow("greet", "hello"));
    assert!(matches!(
        reg.install(&good, None, false),
        Err(TemplateError::NoUserDir)
    ));
}

#[test]
fn a_template_file_uses_the_custom_steps_next_to_it() {
    let s = Scratch::new();
    s.write(
        "project/.relay/steps.yaml",
        "steps:\n  hello:\n    params: [{name: who, required: true}]\n    command: echo hello {{who}}\n",
    );
    s.write(
        "project/greet.yaml",
        "name: greet\nworkflows:\n  - name: w\n    steps:\n      - {name: s, use: hello, who: world}\n",
    );
    let loaded = s.registry().load("greet").unwrap();
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(
        loaded.file.workflows[0].steps[0].command.as_deref(),
        Some("echo hello world")
    );
    assert!(!validate(&loaded, None).has_errors());
}
