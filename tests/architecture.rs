//! The shape of the code, checked: dependencies between the workspace's crates point one
//! way (spec ← state ← messaging ← broker ← engine ← cli, testkit for tests only), and
//! inside every crate no modules depend on each other in a cycle, at any level of
//! nesting. Reads the sources; a `use` of `crate::a` from inside module `b` is an edge `b → a`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `relay-*` crates a crate's `[dependencies]` names.
fn crate_deps(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in manifest.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_deps = l == "[dependencies]";
            continue;
        }
        if in_deps
            && let Some(name) = l.split([' ', '=']).next()
            && name.starts_with("relay-")
        {
            out.push(name.to_string());
        }
    }
    out
}

#[test]
fn crates_depend_on_each_other_one_way() {
    let order = [
        "relay-spec",
        "relay-templates",
        "relay-state",
        "relay-messaging",
        "relay-broker",
        "relay-engine",
        "relay-nats",
        "relay-dashboard",
        "relay-cli",
    ];
    let rank = |c: &str| order.iter().position(|x| *x == c);
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        for dep in crate_deps(&manifest) {
            assert_ne!(
                dep, "relay-testkit",
                "{name} depends on the test kit outside [dev-dependencies]"
            );
            if name == "relay-testkit" {
                continue;
            }
            let (Some(me), Some(them)) = (rank(&name), rank(&dep)) else {
                panic!("{name} -> {dep}: a crate missing from the documented order");
            };
            assert!(
                them < me,
                "{name} depends on {dep}, which comes after it in {order:?}"
            );
        }
    }
}

/// Every `.rs` file under `src`, with the module path it defines.
fn modules(src: &Path) -> Vec<(Vec<String>, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "bin") {
                    stack.push(p);
                }
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap();
            let mut path: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if matches!(
                path.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                path.pop();
            }
            out.push((path, p));
        }
    }
    out
}

/// The modules `text` (the file of module `me`) refers to, as absolute module paths.
fn references(me: &[String], is_mod_file: bool, text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // Test modules and code after `#[cfg(test)]` may use anything.
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + 7..];
        let seg: Vec<String> = rest
            .split("::")
            .take(2)
            .map(|s| {
                s.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            })
            .take_while(|s: &String| {
                !s.is_empty() && s.chars().next().is_some_and(char::is_lowercase)
            })
            .collect();
        if !seg.is_empty() {
            out.push(seg);
        }
    }
    // `super::x` from a file: its parent module's child `x`.
    // For `a/b.rs` (module a::b) `super` is `a`; for `a/mod.rs` (module a) it is the root.
    let _ = is_mod_file;
    let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
    for (i, _) in text.match_indices("super::") {
        if i >= 2 && &text[i - 2..i] == "::" {
            continue;
        }
        let name: String = text[i + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && name.chars().next().is_some_and(char::is_lowercase) {
            let mut p = parent.clone();
            p.push(name);
            out.push(p);
        }
    }
    out
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = path.iter().position(|p| p == n).unwrap_or(0);
                let mut c = path[at..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_cycles_inside_any_crate() {
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let mods = modules(&src);
        // Edges between siblings: for module paths a and b, the first segments where
        // they differ, under their common parent.
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (me, file) in &mods {
            let text = std::fs::read_to_string(file).unwrap();
            let is_mod = file
                .file_name()
                .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
            for target in references(me, is_mod, &text) {
                let common = me.iter().zip(&target).take_while(|(a, b)| a == b).count();
                if common >= me.len() || common >= target.len() {
                    continue; // a module using its own descendants or ancestors
                }
                let from = me[..=common].join("::");
                let to = target[..=common].join("::");
                edges.entry(from).or_default().insert(to);
            }
        }
        if let Some(cycle) = find_cycle(&edges) {
            panic!("module cycle in {}: {}", src.display(), cycle.join(" -> "));
        }
    }
}
