//! The search over project, user and built-in templates; listing and installing.

use std::path::{Path, PathBuf};

use relay_spec::custom_steps::CustomSteps;
use relay_spec::load::{Loaded, did_you_mean, parse};
use relay_spec::load_file;
use relay_spec::templates::{Variable, variables};
use relay_spec::validate::validate;
use relay_spec::{Pattern, RelayFile};

use crate::builtin::{BUILTINS, builtin};
use crate::error::{Rejected, TemplateError, io};
use crate::names::{is_template_name, project_dir, user_dir};

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
    /// their path, so every message points at text the user can open. A template file's
    /// custom steps (`use:`) come from the `.relay/steps.yaml` nearest to it.
    pub fn load(&self, name: &str) -> Result<Loaded, TemplateError> {
        let (source, text) = self.source(name)?;
        match &source {
            Source::Builtin => Ok(parse(&text, &format!("template:{name}"))?),
            Source::Project(p) | Source::User(p) => {
                let mut loaded = parse(&text, &p.display().to_string())?;
                if loaded.uses_custom_steps() {
                    loaded.expand_custom_steps(&CustomSteps::find_for(p)?);
                }
                Ok(loaded)
            }
        }
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
