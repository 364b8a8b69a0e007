//! From intents to Landlock rules. An intent says "this path and everything under it has
//! these rights, unless a more specific intent says otherwise"; Landlock only adds rights
//! (a rule on a directory grants them to everything beneath it, and nothing can take them
//! back lower down). So a directory that holds something with fewer rights is split: it
//! keeps only the rights that are safe for everything beneath it, and each of its entries
//! gets a rule of its own (recursing towards the lesser paths).
//!
//! Consequences, documented for users: a directory on the way to a denied or read-only
//! path accepts no new entries (it cannot be given the right to create files without that
//! right reaching the protected path); its existing entries keep their rights; names in a
//! denied directory can still be listed. Symbolic links get no rule of their own (what
//! they point to has the rights of where it lives).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use landlock::{AccessFs, BitFlags};

/// Rights on files and directories.
pub(super) type Rights = BitFlags<AccessFs>;

/// Most rules one agent may get (each is an open descriptor while the ruleset is built).
const MAX_RULES: usize = 200_000;

/// Reading files and listing directories.
pub(super) fn read() -> Rights {
    AccessFs::ReadFile | AccessFs::ReadDir
}

/// Every kind of change.
pub(super) fn write() -> Rights {
    AccessFs::WriteFile
        | AccessFs::RemoveDir
        | AccessFs::RemoveFile
        | AccessFs::MakeChar
        | AccessFs::MakeDir
        | AccessFs::MakeReg
        | AccessFs::MakeSock
        | AccessFs::MakeFifo
        | AccessFs::MakeBlock
        | AccessFs::MakeSym
        | AccessFs::Refer
        | AccessFs::Truncate
}

/// Rights that mean something on a regular file (the rest apply to directories).
pub(super) fn file_rights() -> Rights {
    AccessFs::Execute
        | AccessFs::WriteFile
        | AccessFs::ReadFile
        | AccessFs::Truncate
        | AccessFs::IoctlDev
}

/// Creating entries in a directory.
fn making() -> Rights {
    AccessFs::MakeChar
        | AccessFs::MakeDir
        | AccessFs::MakeReg
        | AccessFs::MakeSock
        | AccessFs::MakeFifo
        | AccessFs::MakeBlock
        | AccessFs::MakeSym
}

/// The rights a rule above `path` (holding `rights`) may carry without giving `path` more.
fn allowed_above(rights: Rights, is_dir: bool) -> Rights {
    if is_dir {
        // Listing stays: a denied directory's names are visible, its contents are not.
        rights | AccessFs::ReadDir
    } else {
        // Rights on directories do not reach a file's contents, except removing (and so
        // replacing or moving away) its entry.
        let mut a = rights | (!file_rights());
        if !rights.contains(AccessFs::WriteFile) {
            a.remove(AccessFs::RemoveFile);
        }
        a
    }
}

fn is_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// The rules that give every path the rights of its most specific intent. Intents are
/// canonical paths that exist; a later intent for the same path replaces an earlier one.
pub(super) fn compile(intents: &[(PathBuf, Rights)]) -> Result<Vec<(PathBuf, Rights)>, String> {
    let map: BTreeMap<PathBuf, Rights> = intents.iter().cloned().collect();
    let mut out = Vec::new();
    // Roots: intents with no intent above them.
    let roots: Vec<PathBuf> = map
        .keys()
        .filter(|p| !p.ancestors().skip(1).any(|a| map.contains_key(a)))
        .cloned()
        .collect();
    for r in roots {
        let rights = map[&r];
        emit(&r, rights, &map, &mut out)?;
    }
    Ok(out)
}

/// Intents strictly beneath `d`.
fn below<'a>(
    d: &'a Path,
    map: &'a BTreeMap<PathBuf, Rights>,
) -> impl Iterator<Item = (&'a PathBuf, &'a Rights)> {
    map.range::<Path, _>((Bound::Excluded(d), Bound::Unbounded))
        .take_while(move |(p, _)| p.starts_with(d))
}

fn push(out: &mut Vec<(PathBuf, Rights)>, path: &Path, rights: Rights) -> Result<(), String> {
    let rights = if is_dir(path) {
        rights
    } else {
        rights & file_rights()
    };
    if rights.is_empty() {
        return Ok(());
    }
    if out.len() >= MAX_RULES {
        return Err(format!(
            "more than {MAX_RULES} rules would be needed (near {})",
            path.display()
        ));
    }
    out.push((path.to_path_buf(), rights));
    Ok(())
}

/// Rules for the tree at `d`, whose intent (own or inherited) is `rights`.
fn emit(
    d: &Path,
    rights: Rights,
    map: &BTreeMap<PathBuf, Rights>,
    out: &mut Vec<(PathBuf, Rights)>,
) -> Result<(), String> {
    let mut partial = rights;
    let mut any_below = false;
    for (p, r) in below(d, map) {
        any_below = true;
        partial &= allowed_above(*r, is_dir(p));
    }
    if !any_below {
        return push(out, d, rights);
    }
    if !partial.contains(AccessFs::WriteFile) {
        // Whatever would be made here could not be written.
        partial &= !(making() | AccessFs::Refer);
    }
    if partial == rights {
        push(out, d, rights)?;
        // Only the nearest intents below: theirs cover what lies under them.
        let nearest: Vec<(PathBuf, Rights)> = below(d, map)
            .filter(|(p, _)| {
                !p.ancestors()
                    .skip(1)
                    .take_while(|a| *a != d)
                    .any(|a| map.contains_key(a))
            })
            .map(|(p, r)| (p.clone(), *r))
            .collect();
        for (p, r) in nearest {
            emit(&p, r, map, out)?;
        }
        return Ok(());
    }
    push(out, d, partial)?;
    let entries = std::fs::read_dir(d).map_err(|e| format!("cannot list {}: {e}", d.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", d.display()))?;
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let own = map.get(&path).copied();
        let holds = meta.is_dir() && below(&path, map).next().is_some();
        match (own, holds) {
            (Some(r), _) => emit(&path, r, map, out)?,
            (None, true) => emit(&path, rights, map, out)?,
            (None, false) => push(out, &path, rights)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rights a path ends up with: the union of every rule on it or above it.
    fn effective(rules: &[(PathBuf, Rights)], p: &Path) -> Rights {
        rules
            .iter()
            .filter(|(r, _)| p.starts_with(r))
            .fold(Rights::empty(), |acc, (_, r)| acc | *r)
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in ["p/src", "p/secret", "p/docs", "other"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        for f in [
            "p/.env",
            "p/README",
            "p/src/a.rs",
            "p/secret/key",
            "p/docs/x.md",
        ] {
            std::fs::write(t.path().join(f), "x").unwrap();
        }
        t
    }

    #[test]
    fn a_denied_file_and_directory_lose_every_right_and_the_rest_keeps_its_own() {
        let t = tree();
        let root = t.path().canonicalize().unwrap();
        let p = root.join("p");
        let rw = read() | write();
        let intents = vec![
            (root.clone(), read()),
            (p.clone(), rw),
            (p.join(".env"), Rights::empty()),
            (p.join("secret"), Rights::empty()),
        ];
        let rules = compile(&intents).unwrap();
        assert_eq!(
            effective(&rules, &p.join(".env")) & file_rights(),
            Rights::empty()
        );
        assert!(!effective(&rules, &p.join("secret/key")).contains(AccessFs::ReadFile));
        assert_eq!(
            effective(&rules, &p.join("src/a.rs")) & file_rights(),
            rw & file_rights()
        );
        assert_eq!(effective(&rules, &p.join("src")), rw);
        assert_eq!(
            effective(&rules, &p.join("README")) & file_rights(),
            rw & file_rights()
        );
        assert_eq!(effective(&rules, &root.join("other")), read());
        // The project directory itself can still be listed, but takes no new entries.
        let top = effective(&rules, &p);
        assert!(top.contains(AccessFs::ReadDir));
        assert!(!top.contains(AccessFs::MakeReg) && !top.contains(AccessFs::RemoveFile));
    }

    #[test]
    fn a_more_generous_path_inside_a_read_only_tree_needs_no_split() {
        let t = tree();
        let root = t.path().canonicalize().unwrap();
        let p = root.join("p");
        let rw = read() | write();
        let rules = compile(&[(p.clone(), read()), (p.join("docs"), rw)]).unwrap();
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(
            effective(&rules, &p.join("docs/x.md")) & file_rights(),
            rw & file_rights()
        );
        assert_eq!(
            effective(&rules, &p.join("src/a.rs")) & file_rights(),
            read() & file_rights()
        );
    }

    #[test]
    fn symlinks_get_no_rule_of_their_own() {
        let t = tree();
        let root = t.path().canonicalize().unwrap();
        let p = root.join("p");
        std::os::unix::fs::symlink(root.join("other"), p.join("link")).unwrap();
        let rules = compile(&[
            (p.clone(), read() | write()),
            (p.join(".env"), Rights::empty()),
        ])
        .unwrap();
        assert!(rules.iter().all(|(r, _)| r != &p.join("link")), "{rules:?}");
    }
}
