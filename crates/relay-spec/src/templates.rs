//! Workflow templates picked by name. Six are compiled into the binary; users and projects
//! add their own as `NAME.yaml` files. A name is looked up in this order, first match wins:
//!
//! 1. the project's `.agent-relay/templates/` (relative to the working directory),
//! 2. the user's template directory: `$AGENT_RELAY_CONFIG_DIR/templates`, else
//!    `$XDG_CONFIG_HOME/agent-relay/templates`, else `~/.config/agent-relay/templates`,
//! 3. the built-ins.
//!
//! A file found earlier hides a template of the same name found later. Installing is
//! stricter: it refuses to create a user template that would hide a built-in unless forced,
//! so a built-in is never replaced by accident.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::load::{LoadError, Loaded, did_you_mean, load_file, parse};
use crate::template::{Ref, references};
use crate::types::{Pattern, RelayFile, WorkflowDef};
use crate::validate::{Report, step_texts, validate};

/// A template compiled into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// The name users pick it by.
    pub name: &'static str,
    /// Its relay.yaml text.
    pub source: &'static str,
}

/// The built-in templates, in name order.
pub const BUILTINS: [Builtin; 6] = [
    Builtin {
        name: "bug-fix",
        source: include_str!("../../../templates/bug-fix.yaml"),
    },
    Builtin {
        name: "code-review",
        source: include_str!("../../../templates/code-review.yaml"),
    },
    Builtin {
        name: "documentation",
        source: include_str!("../../../templates/documentation.yaml"),
    },
    Builtin {
        name: "feature-dev",
        source: include_str!("../../../templates/feature-dev.yaml"),
    },
    Builtin {
        name: "refactor",
        source: include_str!("../../../templates/refactor.yaml"),
    },
    Builtin {
        name: "security-audit",
        source: include_str!("../../../templates/security-audit.yaml"),
    },
];

/// The built-in template called `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Where a template was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file in the project's template directory.
    Project(PathBuf),
    /// A file in the user's template directory.
    User(PathBuf),
    /// Compiled into the binary.
    Builtin,
}

impl Source {
    /// `project`, `user` or `built-in`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Project(_) => "project",
            Source::User(_) => "user",
            Source::Builtin => "built-in",
        }
    }

    /// The template's file, unless it is built in.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::Project(p) | Source::User(p) => Some(p),
            Source::Builtin => None,
        }
    }
}

/// Why a template could not be found, read or installed.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// No template has this name.
    #[error("no template named `{name}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    Unknown {
        /// The name asked for.
        name: String,
        /// The closest known name, if it looks like a typo of one.
        suggestion: Option<String>,
        /// Every known name.
        available: Vec<String>,
    },
    /// The name could not be a template's.
    #[error(
        "`{0}` is not a template name: use letters, digits, `-`, `_` and `.`, starting with a letter or digit, without a .yaml ending"
    )]
    InvalidName(String),
    /// The template's text is not a workflow.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The file parses but does not validate.
    #[error("{} is not a valid workflow", .0.loaded.origin)]
    Invalid(Box<Rejected>),
    /// Installing would hide a built-in template.
    #[error("`{name}` is a built-in template; a user template of that name would hide it")]
    ShadowsBuiltin {
        /// The name.
        name: String,
    },
    /// Installing would replace an existing user template.
    #[error("a user template `{name}` already exists at {}", path.display())]
    Exists {
        /// The name.
        name: String,
        /// The existing file.
        path: PathBuf,
    },
    /// There is nowhere to install user templates.
    #[error("no user template directory: set AGENT_RELAY_CONFIG_DIR, XDG_CONFIG_HOME or HOME")]
    NoUserDir,
    /// A template directory or file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// `read`, `write`, ...
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A workflow refused by validation, with every finding.
#[derive(Debug)]
pub struct Rejected {
    /// The workflow as loaded.
    pub loaded: Loaded,
    /// What validation found.
    pub report: Report,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TemplateError {
    let path = path.to_path_buf();
    move |source| TemplateError::Io {
        action,
        path,
        source,
    }
}

/// Whether `name` can name a template: a plain word (`code-review`, `my_flow.v2`), not a
/// path and not a file name ending in `.yaml`/`.yml`.
pub fn is_template_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !lower.ends_with(".yaml")
        && !lower.ends_with(".yml")
}

/// The project's template directory under `cwd`.
pub fn project_dir(cwd: &Path) -> PathBuf {
    cwd.join(".agent-relay").join("templates")
}

/// The user's template directory, read from the environment through `var`.
pub fn user_dir(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = set("AGENT_RELAY_CONFIG_DIR") {
        return Some(d.join("templates"));
    }
    // The XDG spec says a relative XDG_CONFIG_HOME is to be ignored.
    if let Some(d) = set("XDG_CONFIG_HOME").filter(|d| d.is_absolute()) {
        return Some(d.join("agent-relay").join("templates"));
    }
    set("HOME").map(|h| h.join(".config").join("agent-relay").join("templates"))
}

/// What `list` tells about a template.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name.
    pub name: String,
    /// Where the template that wins is.
    pub source: Source,
    /// Templates of the same name it hides, in search order.
    pub hides: Vec<Source>,
    /// Its pattern, description and variables, or why it could not be read.
    pub summary: Result<Summary, String>,
}

/// The parts of a template a user chooses by.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `swarm.pattern`.
    pub pattern: Option<Pattern>,
    /// The file's description.
    pub description: Option<String>,
    /// The variables its first workflow uses or the file declares.
    pub variables: Vec<Variable>,
}

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
    for step in wf.map(|w| w.steps.as_slice()).unwrap_or_default() {
        for (_, text) in step_texts(step) {
            for r in references(text) {
                if let Ref::Var(v) = r {
                    names.insert(v);
                }
            }
        }
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

impl Summary {
    fn of(file: &RelayFile) -> Summary {
        Summary {
            pattern: file.swarm.as_ref().and_then(|s| s.pattern),
            description: file.description.clone(),
            variables: variables(file, file.workflows.first()),
        }
    }
}

/// What `install` did.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The template's name.
    pub name: String,
    /// The file written.
    pub path: PathBuf,
    /// Whether an existing user template was replaced.
    pub replaced: bool,
    /// Whether it hides a built-in template of the same name.
    pub hides_builtin: bool,
}

/// The template directories to search, in order, before the built-ins.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    project: Option<PathBuf>,
    user: Option<PathBuf>,
}

impl Registry {
    /// A registry over these directories (either may be absent).
    pub fn new(project: Option<PathBuf>, user: Option<PathBuf>) -> Self {
        Registry { project, user }
    }

    /// The project directory under `cwd` and the user directory from the environment.
    pub fn from_env(cwd: Option<&Path>) -> Self {
        Registry::new(cwd.map(project_dir), user_dir(|k| std::env::var_os(k)))
    }

    /// The project template directory.
    pub fn project_dir(&self) -> Option<&Path> {
        self.project.as_deref()
    }

    /// The user template directory.
    pub fn user_dir(&self) -> Option<&Path> {
        self.user.as_deref()
    }

    fn dirs(&self) -> impl Iterator<Item = (&Path, fn(PathBuf) -> Source)> {
        let project = self
            .project
            .as_deref()
            .map(|d| (d, Source::Project as fn(PathBuf) -> Source));
        let user = self
            .user
            .as_deref()
            .map(|d| (d, Source::User as fn(PathBuf) -> Source));
        project.into_iter().chain(user)
    }

    /// Every place a template called `name` is found, in search order.
    fn sources(&self, name: &str) -> Vec<Source> {
        let mut found = Vec::new();
        for (dir, make) in self.dirs() {
            if let Some(p) = template_file(dir, name) {
                found.push(make(p));
            }
        }
        if builtin(name).is_some() {
            found.push(Source::Builtin);
        }
        found
    }

    /// Where the template `name` comes from.
    pub fn find(&self, name: &str) -> Result<Source, TemplateError> {
        if !is_template_name(name) {
            return Err(TemplateError::InvalidName(name.to_string()));
        }
        self.sources(name).into_iter().next().ok_or_else(|| {
            let available = self.names();
            TemplateError::Unknown {
                name: name.to_string(),
                suggestion: did_you_mean(name, available.iter().map(String::as_str))
                    .map(str::to_string),
                available,
            }
        })
    }

    /// The text of the template `name` and where it comes from.
    pub fn source(&self, name: &str) -> Result<(Source, String), TemplateError> {
        let source = self.find(name)?;
        let text = match &source {
            Source::Builtin => builtin(name)
                .map(|b| b.source.to_string())
                .unwrap_or_default(),
            Source::Project(p) | Source::User(p) => {
                std::fs::read_to_string(p).map_err(io("read", p))?
            }
        };
        Ok((source, text))
    }

    /// Loads the template `name`. Built-ins are reported as `template:NAME`, files under
    /// their path, so every message points at text the user can open.
    pub fn load(&self, name: &str) -> Result<Loaded, TemplateError> {
        let (source, text) = self.source(name)?;
        let origin = match &source {
            Source::Builtin => format!("template:{name}"),
            Source::Project(p) | Source::User(p) => p.display().to_string(),
        };
        Ok(parse(&text, &origin)?)
    }

    /// Every template name, in name order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = BUILTINS.iter().map(|b| b.name.to_string()).collect();
        for (dir, _) in self.dirs() {
            names.extend(names_in(dir));
        }
        names.sort();
        names.dedup();
        names
    }

    /// Every template, in name order, with where it comes from and what it hides. A file
    /// that does not parse is listed with the reason instead of failing the whole list.
    pub fn list(&self) -> Vec<Entry> {
        self.names()
            .into_iter()
            .filter_map(|name| {
                let mut sources = self.sources(&name).into_iter();
                let source = sources.next()?;
                let summary = self
                    .load(&name)
                    .map(|l| Summary::of(&l.file))
                    .map_err(|e| e.to_string());
                Some(Entry {
                    name,
                    source,
                    hides: sources.collect(),
                    summary,
                })
            })
            .collect()
    }

    /// Validates the workflow `file` and copies it into the user template directory as
    /// `NAME.yaml` (`name`, else the file's stem). Hiding a built-in or replacing an
    /// existing user template needs `force`.
    pub fn install(
        &self,
        file: &Path,
        name: Option<&str>,
        force: bool,
    ) -> Result<Installed, TemplateError> {
        let name = match name {
            Some(n) => n.to_string(),
            None => stem_name(file),
        };
        if !is_template_name(&name) {
            return Err(TemplateError::InvalidName(name));
        }
        let loaded = load_file(file)?;
        let report = validate(&loaded, None);
        if report.has_errors() {
            return Err(TemplateError::Invalid(Box::new(Rejected {
                loaded,
                report,
            })));
        }
        let dir = self.user.as_deref().ok_or(TemplateError::NoUserDir)?;
        let hides_builtin = builtin(&name).is_some();
        if hides_builtin && !force {
            return Err(TemplateError::ShadowsBuiltin { name });
        }
        let existing = template_file(dir, &name);
        let replaced = existing.is_some();
        if let Some(path) = existing.clone().filter(|_| !force) {
            return Err(TemplateError::Exists { name, path });
        }
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let path = dir.join(format!("{name}.yaml"));
        // Write beside the target, then rename, so a reader never sees half a template.
        let tmp = dir.join(format!(".{name}.yaml.tmp"));
        std::fs::write(&tmp, &loaded.source).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("write", &path))?;
        // A `.yml` of the same name would otherwise linger as a hidden second copy.
        if let Some(old) = existing.filter(|p| *p != path) {
            std::fs::remove_file(&old).map_err(io("remove", &old))?;
        }
        Ok(Installed {
            name,
            path,
            replaced,
            hides_builtin,
        })
    }
}

/// `dir/NAME.yaml`, else `dir/NAME.yml`, if one is a file.
fn template_file(dir: &Path, name: &str) -> Option<PathBuf> {
    ["yaml", "yml"]
        .iter()
        .map(|ext| dir.join(format!("{name}.{ext}")))
        .find(|p| p.is_file())
}

/// Template names of the `.yaml`/`.yml` files in `dir` (none if it does not exist).
fn names_in(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let p = e.path();
            let ext = p.extension()?.to_str()?;
            if ext != "yaml" && ext != "yml" {
                return None;
            }
            let stem = p.file_stem()?.to_str()?.to_string();
            is_template_name(&stem).then_some(stem)
        })
        .collect()
}

fn stem_name(file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for ext in [".yaml", ".yml"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
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
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }

        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
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
}
