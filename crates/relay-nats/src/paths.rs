//! Where a worker puts what the coordinator names by its own paths. The project root on
//! the coordinator becomes the worker's working directory; the run directory becomes a
//! mirror of it under the worker's `.agent-relay/remote/`; anything else stays as it is.
//! Environment values that are such paths are moved the same way. Pure.

use std::path::{Path, PathBuf};

use relay_broker::sandbox::Sandbox;

use crate::wire::Places;

/// The worker's places for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMap {
    from_root: PathBuf,
    from_run: PathBuf,
    to_root: PathBuf,
    to_run: PathBuf,
}

/// Where a worker keeps the mirrors of runs' directories, under its working directory.
pub const MIRROR_DIR: &str = ".agent-relay/remote";

impl PathMap {
    /// The map for a run the coordinator keeps at `places`, on a worker working in
    /// `workdir`.
    pub fn new(places: &Places, workdir: &Path, run: &str) -> PathMap {
        PathMap {
            from_root: places.root.clone(),
            from_run: places.run_dir.clone(),
            to_root: workdir.to_path_buf(),
            to_run: workdir.join(MIRROR_DIR).join(crate::names::token(run)),
        }
    }

    /// The worker's mirror of the run directory.
    pub fn run_dir(&self) -> &Path {
        &self.to_run
    }

    /// `p` on this worker. The run directory is looked at first: it usually lies inside
    /// the project.
    pub fn path(&self, p: &Path) -> PathBuf {
        let under = |base: &Path, rest: &Path| {
            if rest.as_os_str().is_empty() {
                base.to_path_buf()
            } else {
                base.join(rest)
            }
        };
        if let Ok(rest) = p.strip_prefix(&self.from_run) {
            return under(&self.to_run, rest);
        }
        if let Ok(rest) = p.strip_prefix(&self.from_root) {
            return under(&self.to_root, rest);
        }
        p.to_path_buf()
    }

    /// An environment value: moved when it is a path under the run or the project.
    pub fn value(&self, v: &str) -> String {
        let p = Path::new(v);
        if p.is_absolute() && (p.starts_with(&self.from_run) || p.starts_with(&self.from_root)) {
            self.path(p).display().to_string()
        } else {
            v.to_owned()
        }
    }

    /// An agent's sandbox with the coordinator's paths in it (the project root, extra
    /// directories, readable and writable paths, absolute globs) moved to this worker's.
    pub fn sandbox(&self, mut s: Sandbox) -> Sandbox {
        let all = |xs: &mut Vec<String>| {
            for x in xs.iter_mut() {
                *x = self.value(x);
            }
        };
        all(&mut s.readable);
        all(&mut s.writable);
        if let Some(f) = s.files.as_mut() {
            f.root = self.path(&f.root);
            all(&mut f.extra);
            all(&mut f.read);
            all(&mut f.write);
            all(&mut f.deny);
        }
        s
    }
}

/// The value of `key` in an attempt's environment (the last one set wins).
pub(crate) fn env_of<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_paths_land_in_the_workers_places() {
        let places = Places {
            root: "/home/c/proj".into(),
            run_dir: "/home/c/proj/.agent-relay/runs/r1".into(),
        };
        let m = PathMap::new(&places, Path::new("/srv/w"), "r1");
        assert_eq!(
            m.path(Path::new("/home/c/proj/src")),
            Path::new("/srv/w/src")
        );
        assert_eq!(
            m.path(Path::new(
                "/home/c/proj/.agent-relay/runs/r1/steps/a/stderr.log"
            )),
            Path::new("/srv/w/.agent-relay/remote/r1/steps/a/stderr.log")
        );
        assert_eq!(m.path(Path::new("/tmp/x")), Path::new("/tmp/x"));
        assert_eq!(m.value("/home/c/proj"), "/srv/w");
        assert_eq!(m.value("hello /home/c/proj"), "hello /home/c/proj");
        // A sibling that merely shares a prefix of the name is not inside the project.
        assert_eq!(m.value("/home/c/project2"), "/home/c/project2");
    }

    #[test]
    fn an_agents_sandbox_names_the_workers_paths() {
        let places = Places {
            root: "/home/c/proj".into(),
            run_dir: "/home/c/proj/.agent-relay/runs/r1".into(),
        };
        let m = PathMap::new(&places, Path::new("/srv/w"), "r1");
        let s: Sandbox = serde_json::from_value(serde_json::json!({
            "owner": "agent dev",
            "files": {
                "root": "/home/c/proj",
                "project": "read",
                "write": ["src/**", "/home/c/proj/docs/**"],
                "extra": ["/home/c/proj/../shared", "/opt/data"],
                "dotfiles": true
            },
            "readable": ["/home/c/proj/.agent-relay/runs/r1/steps/a"],
            "writable": ["~/.claude"]
        }))
        .unwrap();
        let s = m.sandbox(s);
        let f = s.files.as_ref().unwrap();
        assert_eq!(f.root, Path::new("/srv/w"));
        assert_eq!(f.write, ["src/**", "/srv/w/docs/**"]);
        assert_eq!(f.extra[1], "/opt/data");
        assert_eq!(s.readable, ["/srv/w/.agent-relay/remote/r1/steps/a"]);
        assert_eq!(s.writable, ["~/.claude"]);
    }
}
