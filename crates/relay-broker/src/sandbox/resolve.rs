//! A [`Sandbox`] resolved against the files of this machine, when the agent starts: globs
//! expanded, `.agentignore` / `.agentreadonly` read, `~/` expanded, programs found on
//! PATH (with their interpreters and the dynamic loader). The result is a list of path
//! intents (most specific wins; `compile` turns them into Landlock's additive rules),
//! grants added on top (programs that may be executed), the rights handled, and ports.
//!
//! Around the project, a restricted agent can read the rest of the machine (so its CLI
//! works) and write only its CLI's state directories, the temp directories and `/dev`;
//! an agent that may write the project may write elsewhere too. Denials and read-only
//! entries (from `files.deny` and the dotfiles) cap everything beneath them, whatever
//! grants it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use landlock::AccessFs;

use super::compile::{Rights, read, write};
use super::{ProjectAccess, Sandbox};

/// Most paths one glob may match.
const MAX_MATCHES: usize = 100_000;

/// What `compile` and `apply` need.
#[derive(Debug, Default)]
pub(super) struct Resolved {
    /// Path intents: (canonical path, rights); a later one for the same path wins.
    pub intents: Vec<(PathBuf, Rights)>,
    /// Rights added on top of the intents (programs that may run).
    pub additive: Vec<(PathBuf, Rights)>,
    /// The filesystem rights the ruleset handles (the rest stay unrestricted).
    pub handled_fs: Rights,
    /// Ports TCP connections may go to; `None` leaves TCP alone.
    pub tcp_connect: Option<Vec<u16>>,
}

impl Resolved {
    /// Whether nothing is restricted.
    pub fn is_empty(&self) -> bool {
        self.handled_fs.is_empty() && self.tcp_connect.is_none()
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// `pattern` as an absolute path: `~/` from the home directory, relative from `root`.
fn absolute(root: &Path, pattern: &str) -> PathBuf {
    if let Some(rest) = pattern.strip_prefix("~/") {
        return home().unwrap_or_else(|| PathBuf::from("/")).join(rest);
    }
    if pattern == "~" {
        return home().unwrap_or_else(|| PathBuf::from("/"));
    }
    root.join(pattern)
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The existing paths `pattern` names, canonical.
pub(super) fn expand(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let pattern = pattern.trim_end_matches('/');
    if pattern.is_empty() || pattern == "**" || pattern == "." {
        return Ok(root.canonicalize().into_iter().collect());
    }
    let literal = pattern
        .strip_suffix("/**")
        .filter(|p| !has_glob(p))
        .or((!has_glob(pattern)).then_some(pattern));
    if let Some(lit) = literal {
        return Ok(absolute(root, lit).canonicalize().into_iter().collect());
    }
    let full = absolute(root, pattern);
    let text = full.to_string_lossy().into_owned();
    let paths = glob::glob(&text).map_err(|e| format!("bad glob `{pattern}`: {e}"))?;
    let mut out = Vec::new();
    for p in paths.flatten() {
        if out.len() >= MAX_MATCHES {
            return Err(format!(
                "glob `{pattern}` matches more than {MAX_MATCHES} paths"
            ));
        }
        if let Ok(c) = p.canonicalize() {
            out.push(c);
        }
    }
    Ok(out)
}

/// Patterns of a dotfile (`.agentignore` syntax: one per line, `#` comments; a name
/// without `/` matches at any depth, a leading `/` anchors at the project). Negations
/// (`!pattern`) are skipped, which keeps more protected, never less.
pub(super) fn dotfile_patterns(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .map(|l| {
            let l = l.trim_end_matches('/');
            if let Some(anchored) = l.strip_prefix('/') {
                anchored.to_string()
            } else if l.contains('/') {
                l.to_string()
            } else {
                format!("**/{l}")
            }
        })
        .collect()
}

/// The dotfiles that apply to an agent in `root`, existing or not.
pub(super) fn dotfiles(root: &Path, agent: Option<&str>) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut ignore = vec![root.join(".agentignore")];
    let mut readonly = vec![root.join(".agentreadonly")];
    if let Some(a) = agent {
        ignore.push(root.join(format!(".{a}.agentignore")));
        readonly.push(root.join(format!(".{a}.agentreadonly")));
    }
    (ignore, readonly)
}

fn patterns_of(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| dotfile_patterns(&t))
        .collect()
}

/// The interpreter chain of a script (`#!/usr/bin/env node` → env, node), up to depth 4.
fn interpreters(program: &Path, path_var: &str, out: &mut Vec<PathBuf>, depth: u8) {
    if depth > 4 {
        return;
    }
    let Ok(mut f) = std::fs::File::open(program) else {
        return;
    };
    let mut head = [0u8; 256];
    let n = std::io::Read::read(&mut f, &mut head).unwrap_or(0);
    let Some(line) = head[..n].strip_prefix(b"#!") else {
        return;
    };
    let line = String::from_utf8_lossy(line);
    let line = line.lines().next().unwrap_or_default();
    let mut words = line.split_whitespace();
    let Some(interp) = words.next() else {
        return;
    };
    let interp = PathBuf::from(interp);
    if let Ok(c) = interp.canonicalize() {
        out.push(c.clone());
        interpreters(&c, path_var, out, depth + 1);
    }
    if interp.file_name().is_some_and(|n| n == "env")
        && let Some(next) = words.find(|w| !w.starts_with('-'))
        && let Some(found) = find_on(path_var, next)
    {
        out.push(found.clone());
        interpreters(&found, path_var, out, depth + 1);
    }
}

fn find_on(path_var: &str, program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return PathBuf::from(program).canonicalize().ok();
    }
    std::env::split_paths(path_var)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}

/// The dynamic loaders an ELF program may name (the kernel executes them too).
fn loaders() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pattern in [
        "/lib*/ld-linux*.so*",
        "/lib/*/ld-linux*.so*",
        "/lib*/ld-musl*.so*",
    ] {
        if let Ok(paths) = glob::glob(pattern) {
            out.extend(paths.flatten().filter_map(|p| p.canonicalize().ok()));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The system's temp directories, which stay writable.
fn temp_dirs(env: &[(String, String)]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = vec!["/tmp".into(), "/var/tmp".into(), "/dev/shm".into()];
    out.push(std::env::temp_dir());
    if let Some((_, t)) = env.iter().find(|(k, _)| k == "TMPDIR") {
        out.push(PathBuf::from(t));
    }
    out
}

fn env_of(env: &[(String, String)], key: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(key).ok())
}

/// Resolves `sandbox` for a child that executes `program` with extra environment `env`.
pub(super) fn resolve(
    sandbox: &Sandbox,
    program: &Path,
    env: &[(String, String)],
    abi: u32,
) -> Result<Resolved, String> {
    let mut r = Resolved::default();
    let refer = if abi >= 2 {
        Rights::from(AccessFs::Refer)
    } else {
        Rights::empty()
    };
    let rw = read() | write();
    let mut files_restricted = false;
    if let Some(files) = &sandbox.files {
        let root = files
            .root
            .canonicalize()
            .map_err(|e| format!("working directory {}: {e}", files.root.display()))?;
        let base = match files.project {
            ProjectAccess::None => Rights::empty(),
            ProjectAccess::Read => read(),
            ProjectAccess::Write => rw,
        };
        let mut caps: Vec<(PathBuf, Rights)> = Vec::new();
        let mut intents: Vec<(PathBuf, Rights)> = Vec::new();
        let world = if files.project == ProjectAccess::Write {
            rw
        } else {
            read()
        };
        intents.push((PathBuf::from("/"), world));
        for t in temp_dirs(env) {
            if let Ok(c) = t.canonicalize() {
                intents.push((c, rw));
            }
        }
        if let Ok(dev) = PathBuf::from("/dev").canonicalize() {
            intents.push((dev, rw));
        }
        for w in &sandbox.writable {
            let is_dir = w.ends_with('/');
            let p = absolute(&root, w.trim_end_matches('/'));
            if is_dir && !p.exists() {
                // The CLI would create it on first use; make it so it can be granted.
                let _ = std::fs::create_dir_all(&p);
            }
            if let Ok(c) = p.canonicalize() {
                intents.push((c, rw));
            }
        }
        intents.push((root.clone(), base));
        for extra in &files.extra {
            for p in expand(&root, extra)? {
                intents.push((p, base));
            }
        }
        for g in &files.read {
            for p in expand(&root, g)? {
                intents.push((p, read()));
            }
        }
        for g in &files.write {
            for p in expand(&root, g)? {
                intents.push((p, rw));
            }
        }
        let mut restricting = files.project != ProjectAccess::Write;
        for g in &files.deny {
            for p in expand(&root, g)? {
                caps.push((p, Rights::empty()));
            }
        }
        if files.dotfiles {
            let (ignore, readonly) = dotfiles(&root, files.agent.as_deref());
            let present: Vec<PathBuf> = ignore
                .iter()
                .chain(readonly.iter())
                .filter(|f| f.is_file())
                .cloned()
                .collect();
            for g in patterns_of(&ignore) {
                for p in expand(&root, &g)? {
                    caps.push((p, Rights::empty()));
                }
            }
            for g in patterns_of(&readonly) {
                for p in expand(&root, &g)? {
                    caps.push((p, read()));
                }
            }
            // The rules themselves are not the agent's to change.
            for f in present {
                if let Ok(c) = f.canonicalize() {
                    caps.push((c, read()));
                }
            }
        }
        restricting |= !caps.is_empty();
        for d in &sandbox.readable {
            if let Ok(c) = absolute(&root, d).canonicalize() {
                intents.push((c, read()));
            }
        }
        if restricting {
            files_restricted = true;
            r.intents = apply_caps(intents, &caps);
        }
    }
    let exec_restricted = sandbox.exec.is_some();
    if files_restricted {
        r.handled_fs = (rw | read()) & supported(abi);
    } else if exec_restricted {
        r.handled_fs = refer;
        // Moving files between directories stays possible.
        if !refer.is_empty() {
            r.intents.push((PathBuf::from("/"), refer));
        }
    }
    if let Some(programs) = &sandbox.exec {
        r.handled_fs |= AccessFs::Execute;
        let path_var = env_of(env, "PATH").unwrap_or_default();
        let mut allowed: Vec<PathBuf> = Vec::new();
        let add = |p: PathBuf, allowed: &mut Vec<PathBuf>| {
            interpreters(&p, &path_var, allowed, 0);
            allowed.push(p);
        };
        if let Ok(p) = program.canonicalize() {
            add(p, &mut allowed);
        }
        if let Some(bin) = env_of(env, "AGENT_RELAY_BIN")
            && let Ok(p) = PathBuf::from(bin).canonicalize()
        {
            add(p, &mut allowed);
        }
        for name in programs {
            if let Some(p) = find_on(&path_var, name) {
                add(p, &mut allowed);
            }
        }
        allowed.extend(loaders());
        allowed.sort();
        allowed.dedup();
        let grant = AccessFs::Execute | AccessFs::ReadFile;
        r.additive = allowed.into_iter().map(|p| (p, grant)).collect();
    }
    r.tcp_connect = sandbox.tcp_connect.clone();
    Ok(r)
}

/// Every filesystem right `abi` knows (device ioctls never restricted here).
pub(super) fn supported(abi: u32) -> Rights {
    <AccessFs as landlock::Access>::from_all(landlock::ABI::from(abi as i32)) & !AccessFs::IoctlDev
}

/// The intents with every cap applied: a capped path gets at most the cap of what it
/// would have had, and so does every intent beneath it (deny wins over any grant).
fn apply_caps(
    intents: Vec<(PathBuf, Rights)>,
    caps: &[(PathBuf, Rights)],
) -> Vec<(PathBuf, Rights)> {
    let mut map: BTreeMap<PathBuf, Rights> = BTreeMap::new();
    for (p, r) in intents {
        map.insert(p, r);
    }
    let rights_at = |map: &BTreeMap<PathBuf, Rights>, p: &Path| -> Rights {
        p.ancestors()
            .find_map(|a| map.get(a).copied())
            .unwrap_or_else(Rights::empty)
    };
    for (p, cap) in caps {
        let current = rights_at(&map, p);
        map.insert(p.clone(), current & *cap);
        let beneath: Vec<PathBuf> = map
            .keys()
            .filter(|k| k.starts_with(p) && *k != p)
            .cloned()
            .collect();
        for k in beneath {
            if let Some(r) = map.get_mut(&k) {
                *r &= *cap;
            }
        }
    }
    map.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotfile_lines_become_globs() {
        let pats = dotfile_patterns("# secrets\n.env\n/build/\nconfig/*.key\n!keep.env\n\n");
        assert_eq!(pats, ["**/.env", "build", "config/*.key"]);
    }

    #[test]
    fn globs_expand_to_existing_paths_and_literals_stay_literal() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::write(root.join("src/a.rs"), "").unwrap();
        std::fs::write(root.join("src/deep/b.rs"), "").unwrap();
        std::fs::write(root.join("c.md"), "").unwrap();
        assert_eq!(expand(&root, "**").unwrap(), std::slice::from_ref(&root));
        assert_eq!(expand(&root, "src/**").unwrap(), [root.join("src")]);
        let mut rs = expand(&root, "**/*.rs").unwrap();
        rs.sort();
        assert_eq!(rs, [root.join("src/a.rs"), root.join("src/deep/b.rs")]);
        assert!(expand(&root, "nothing-here").unwrap().is_empty());
    }

    #[test]
    fn caps_reach_everything_beneath_them() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let rw = read() | write();
        let out = apply_caps(
            vec![(root.clone(), read()), (root.join("a/b"), rw)],
            &[(root.join("a"), read())],
        );
        let get = |p: &Path| out.iter().find(|(k, _)| k == p).map(|(_, r)| *r);
        assert_eq!(get(&root.join("a")), Some(read()));
        assert_eq!(
            get(&root.join("a/b")),
            Some(read()),
            "a write glob under a read-only entry stays read-only"
        );
    }
}
