//! The Python and JavaScript SDKs, compiled into the binary (`include_str!` of
//! `sdk/python` and `sdk/typescript`) and written out once to a cache directory, so a
//! workflow script finds `agent_relay` / `agent-relay` on any machine the binary runs on,
//! a fresh clone under `cargo run` included, and always the version matching the binary.
//!
//! The directory is `$XDG_CACHE_HOME/agent-relay/sdk/<hash>` (else `~/.cache/...`, else
//! the temporary directory), named by a hash of the files: a new binary with other SDK
//! files writes a new directory and never mixes versions. It is written under a temporary
//! name and renamed into place, so concurrent runs never see half of it.

use std::path::{Path, PathBuf};

use crate::error::{CliError, CliResult};

/// The bundled files: path in the cache directory, contents.
const FILES: &[(&str, &str)] = &[
    (
        "python/agent_relay/__init__.py",
        include_str!("../../../sdk/python/agent_relay/__init__.py"),
    ),
    (
        "python/agent_relay/_yaml.py",
        include_str!("../../../sdk/python/agent_relay/_yaml.py"),
    ),
    (
        "python/agent_relay/_run.py",
        include_str!("../../../sdk/python/agent_relay/_run.py"),
    ),
    (
        "node/node_modules/agent-relay/package.json",
        include_str!("../../../sdk/typescript/package.json"),
    ),
    (
        "node/node_modules/agent-relay/index.js",
        include_str!("../../../sdk/typescript/index.js"),
    ),
    (
        "node/node_modules/agent-relay/yaml.js",
        include_str!("../../../sdk/typescript/yaml.js"),
    ),
    (
        "node/node_modules/agent-relay/index.d.ts",
        include_str!("../../../sdk/typescript/index.d.ts"),
    ),
    ("node/register.mjs", REGISTER),
    ("node/hooks.mjs", HOOKS),
];

/// Registers [`HOOKS`] (loaded with `--import`).
const REGISTER: &str = r#"import { register } from "node:module";
register("./hooks.mjs", import.meta.url);
"#;

/// Resolves the bare name `agent-relay` to the bundled package; everything else as usual.
const HOOKS: &str = r#"const target = new URL("./node_modules/agent-relay/index.js", import.meta.url).href;
export async function resolve(specifier, context, next) {
  if (specifier === "agent-relay") return { url: target, shortCircuit: true };
  return next(specifier, context);
}
"#;

/// The SDKs written out, and where.
pub struct Bundle {
    root: PathBuf,
}

/// FNV-1a over the files and the version: the cache directory's name.
fn digest() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(env!("CARGO_PKG_VERSION").as_bytes());
    for (path, text) in FILES {
        eat(path.as_bytes());
        eat(&[0]);
        eat(text.as_bytes());
        eat(&[0]);
    }
    format!("{h:016x}")
}

fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        });
    match base {
        Some(b) => b.join("agent-relay").join("sdk"),
        None => std::env::temp_dir().join(format!("agent-relay-sdk-{}", uid())),
    }
}

/// The user's id, for a per-user directory under the shared temporary directory.
fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// Marks a complete directory.
const COMPLETE: &str = ".complete";

impl Bundle {
    /// The SDKs in the cache directory, written there first when missing.
    pub fn install() -> CliResult<Bundle> {
        Self::install_in(&cache_root())
    }

    fn install_in(root: &Path) -> CliResult<Bundle> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = root.join(digest());
        if dir.join(COMPLETE).is_file() {
            return Ok(Bundle { root: dir });
        }
        let fail = |what: &Path, e: std::io::Error| {
            CliError::runtime(format!(
                "cannot write the bundled SDK to {}: {e}",
                what.display()
            ))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| fail(root, e))?;
        let tmp = root.join(format!(".tmp-{}-{}", digest(), std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        for (path, text) in FILES {
            let p = tmp.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
            }
            std::fs::write(&p, text).map_err(|e| fail(&p, e))?;
        }
        std::fs::write(tmp.join(COMPLETE), b"").map_err(|e| fail(&tmp, e))?;
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another run put it in place first.
            if !dir.join(COMPLETE).is_file() {
                return Err(fail(&dir, e));
            }
        }
        Ok(Bundle { root: dir })
    }

    /// The directory put on `PYTHONPATH` (it holds the `agent_relay` package).
    pub fn python_dir(&self) -> PathBuf {
        self.root.join("python")
    }

    /// The directory put on `NODE_PATH` (it holds `agent-relay/`).
    pub fn node_modules(&self) -> PathBuf {
        self.root.join("node/node_modules")
    }

    /// The module `--import` loads to resolve `agent-relay` to the bundle.
    pub fn node_register(&self) -> PathBuf {
        self.root.join("node/register.mjs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_is_written_once_and_reused() {
        let root = std::env::temp_dir().join(format!("relay-sdk-bundle-{}", std::process::id()));
        let a = Bundle::install_in(&root).unwrap();
        assert!(a.python_dir().join("agent_relay/__init__.py").is_file());
        assert!(a.node_modules().join("agent-relay/index.js").is_file());
        assert!(a.node_register().is_file());
        let b = Bundle::install_in(&root).unwrap();
        assert_eq!(a.root, b.root);
        let entries = std::fs::read_dir(&root).unwrap().count();
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(entries, 1, "no temporary directory left behind");
    }
}
