//! Workflows written as scripts: `agent-relay run workflow.py` (or `.js`, `.mjs`, `.ts`)
//! runs the script with `python3` or `node` (TypeScript through `tsx`, or Node's own type
//! stripping from 22.6 on), with `AGENT_RELAY_EMIT_CONFIG` naming a file. The SDK's
//! `.run()` sees it and, instead of running the workflow, writes what it built there and
//! ends the script; the binary then checks and runs that workflow exactly as a relay.yaml
//! (progress, run directory, exit code, `--var`, `-w`, `--rehearse`).
//!
//! The script finds the SDK the binary bundles ([`crate::sdk_bundle`]): its directory
//! first on `PYTHONPATH` for `import agent_relay`; for `import ... from "agent-relay"` a
//! resolve hook registered through `NODE_OPTIONS=--import=...` (ES modules do not read
//! `NODE_PATH`), and `NODE_PATH` for `require`.
//!
//! The script's stdout goes to stderr, so `--json` and `--events-json` stay parseable.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{CliError, CliResult};
use crate::sdk_bundle::Bundle;

/// The environment variable that tells the SDK to hand its workflow over.
pub const EMIT_ENV: &str = "AGENT_RELAY_EMIT_CONFIG";

/// The language of a workflow script, by its file name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// `.py`.
    Python,
    /// `.js`, `.mjs`, `.cjs`.
    JavaScript,
    /// `.ts`, `.mts`, `.cts`.
    TypeScript,
}

impl Lang {
    /// The language of `path`, when it is a script.
    pub fn of(path: &Path) -> Option<Lang> {
        match path.extension()?.to_str()? {
            "py" => Some(Lang::Python),
            "js" | "mjs" | "cjs" => Some(Lang::JavaScript),
            "ts" | "mts" | "cts" => Some(Lang::TypeScript),
            _ => None,
        }
    }
}

/// A Node.js version, from `node --version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct NodeVersion(u32, u32);

impl NodeVersion {
    fn parse(text: &str) -> Option<NodeVersion> {
        let mut parts = text.trim().trim_start_matches('v').split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(NodeVersion(major, minor))
    }

    /// Node strips TypeScript's types itself from 22.6 on.
    fn strips_types(self) -> bool {
        self >= NodeVersion(22, 6)
    }

    /// From 22.7 on, a `.js` file with `import` runs as an ES module without a flag.
    fn detects_modules(self) -> bool {
        self >= NodeVersion(22, 7)
    }
}

fn node_version(node: &Path) -> Option<NodeVersion> {
    let out = Command::new(node)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    NodeVersion::parse(&String::from_utf8_lossy(&out.stdout))
}

/// An interpreter named by `var`, else `default`, found on PATH.
fn interpreter(var: &str, default: &str) -> (String, Option<PathBuf>) {
    let name = std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string());
    let found = relay_broker::process::which(&name);
    (name, found)
}

/// The program and arguments that run `script`.
fn command_for(script: &Path, lang: Lang) -> CliResult<(PathBuf, Vec<String>)> {
    let shown = script.display();
    let script_arg = script.display().to_string();
    match lang {
        Lang::Python => {
            let (name, found) = interpreter("AGENT_RELAY_PYTHON", "python3");
            let python = found.ok_or_else(|| {
                CliError::runtime(format!(
                    "cannot run {shown}: `{name}` is not on PATH; install Python 3 (or set \
                     AGENT_RELAY_PYTHON to an interpreter)"
                ))
            })?;
            Ok((python, vec![script_arg]))
        }
        Lang::JavaScript | Lang::TypeScript => {
            let (name, found) = interpreter("AGENT_RELAY_NODE", "node");
            if lang == Lang::TypeScript
                && let Some(tsx) = relay_broker::process::which("tsx")
            {
                return Ok((tsx, vec![script_arg]));
            }
            let Some(node) = found else {
                let what = match lang {
                    Lang::TypeScript => {
                        "tsx or Node.js 22.6 or later; install Node.js and `npm install -g tsx`"
                    }
                    _ => "Node.js; install it (or set AGENT_RELAY_NODE to a node program)",
                };
                return Err(CliError::runtime(format!(
                    "cannot run {shown}: `{name}` is not on PATH; it needs {what}"
                )));
            };
            let version = node_version(&node);
            let mut args = Vec::new();
            if lang == Lang::TypeScript {
                match version {
                    Some(v) if v.strips_types() => {
                        args.push("--experimental-strip-types".to_string());
                    }
                    _ => {
                        let found = version
                            .map(|NodeVersion(a, b)| format!("node is {a}.{b}"))
                            .unwrap_or_else(|| "node's version is unknown".into());
                        return Err(CliError::runtime(format!(
                            "cannot run {shown}: TypeScript needs `tsx` on PATH (`npm install -g \
                             tsx`) or Node.js 22.6 or later ({found}); or write the workflow as \
                             JavaScript (.mjs)"
                        )));
                    }
                }
            } else if script.extension().is_some_and(|e| e == "js")
                && version.is_some_and(|v| !v.detects_modules())
            {
                args.push("--experimental-detect-module".to_string());
            }
            args.push(script_arg);
            Ok((node, args))
        }
    }
}

/// `path` as a `file://` URL, with everything but unreserved characters escaped (so it
/// needs no quoting inside `NODE_OPTIONS`).
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' | b'~' => {
                url.push(*b as char)
            }
            _ => url.push_str(&format!("%{b:02X}")),
        }
    }
    url
}

/// `dir` first in the `:`-separated list the variable `var` holds.
fn prepend(var: &str, dir: &Path) -> std::ffi::OsString {
    let mut v = dir.as_os_str().to_owned();
    if let Some(old) = std::env::var_os(var).filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

/// A private directory for the hand-over file, removed when dropped.
struct HandoffDir(PathBuf);

impl HandoffDir {
    fn create() -> CliResult<HandoffDir> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "agent-relay-handoff-{}-{nanos}",
            std::process::id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| CliError::runtime(format!("cannot create {}: {e}", dir.display())))?;
        Ok(HandoffDir(dir))
    }
}

impl Drop for HandoffDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the script and returns what its SDK handed over (JSON; see
/// `source::Handoff`).
pub fn build(script: &Path, lang: Lang) -> CliResult<String> {
    if !script.is_file() {
        return Err(CliError::invalid(format!(
            "{}: no such workflow script",
            script.display()
        )));
    }
    let (program, args) = command_for(script, lang)?;
    let bundle = Bundle::install()?;
    let dir = HandoffDir::create()?;
    let handoff = dir.0.join("workflow.json");
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let mut node_options = format!("--import={}", file_url(&bundle.node_register()));
    if let Some(old) = std::env::var("NODE_OPTIONS").ok().filter(|o| !o.is_empty()) {
        node_options = format!("{node_options} {old}");
    }
    let status = Command::new(&program)
        .args(&args)
        .env(EMIT_ENV, &handoff)
        .env("AGENT_RELAY_BIN", crate::self_bin())
        .env("PYTHONPATH", prepend("PYTHONPATH", &bundle.python_dir()))
        .env("NODE_PATH", prepend("NODE_PATH", &bundle.node_modules()))
        .env("NODE_OPTIONS", node_options)
        .stdin(Stdio::null())
        .stdout(stdout)
        .status()
        .map_err(|e| {
            CliError::runtime(format!(
                "cannot run {} with {}: {e}",
                script.display(),
                program.display()
            ))
        })?;
    if !status.success() {
        let how = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        // tsx compiles a `.ts` file outside a `"type": "module"` package to CommonJS,
        // where top-level await does not compile.
        let through_tsx = program.file_name().is_some_and(|n| n == "tsx")
            && script.extension().is_some_and(|e| e == "ts");
        let hint = if through_tsx {
            "; if tsx said top-level await is not supported with the \"cjs\" output format, \
             name the file .mts or add \"type\": \"module\" to its package.json"
        } else {
            ""
        };
        return Err(CliError::invalid(format!(
            "{} {how} before handing over a workflow (its own messages are above){hint}",
            script.display()
        )));
    }
    let mut text = String::new();
    match std::fs::File::open(&handoff) {
        Ok(f) => f
            .take(4 * relay_spec::limits::MAX_FILE_BYTES as u64)
            .read_to_string(&mut text)
            .map_err(|e| {
                CliError::invalid(format!(
                    "cannot read what {} handed over: {e}",
                    script.display()
                ))
            })?,
        Err(_) => {
            return Err(CliError::invalid(format!(
                "{} ended without handing over a workflow: it must call `.run()` on the \
                 workflow it builds (or `run_yaml` / `runWorkflow`)",
                script.display()
            )));
        }
    };
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_told_by_their_extension() {
        assert_eq!(Lang::of(Path::new("w.py")), Some(Lang::Python));
        assert_eq!(Lang::of(Path::new("a/w.mjs")), Some(Lang::JavaScript));
        assert_eq!(Lang::of(Path::new("w.ts")), Some(Lang::TypeScript));
        assert_eq!(Lang::of(Path::new("relay.yaml")), None);
        assert_eq!(Lang::of(Path::new("py")), None);
    }

    #[test]
    fn node_versions_decide_type_stripping_and_module_detection() {
        let v = NodeVersion::parse("v20.20.2\n").unwrap();
        assert_eq!(v, NodeVersion(20, 20));
        assert!(!v.strips_types() && !v.detects_modules());
        assert!(NodeVersion::parse("v22.6.0").unwrap().strips_types());
        assert!(!NodeVersion::parse("v22.6.0").unwrap().detects_modules());
        assert!(NodeVersion::parse("v24.1.0").unwrap().detects_modules());
        assert_eq!(NodeVersion::parse("garbage"), None);
    }

    #[test]
    fn file_urls_escape_what_node_options_would_split_on() {
        assert_eq!(
            file_url(Path::new("/tmp/a b/r.mjs")),
            "file:///tmp/a%20b/r.mjs"
        );
    }
}
