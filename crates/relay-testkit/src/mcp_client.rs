//! A small blocking MCP client over stdio, for tests and for the fake agent, which
//! starts the MCP servers it was given the way each real CLI does (see
//! [`server_of_invocation`]) and calls their tools on `[[fake:mcp=TOOL {json}]]`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

/// An MCP server to start: its command line, and the environment it gets when the CLI
/// gives it only some variables (codex), else `None` (all of the CLI's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCommand {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Only these variables of the environment (plus `PATH` and `HOME`), when set.
    pub only_env: Option<Vec<String>>,
    /// Variables whose names look like secrets are dropped from the environment (gemini
    /// 0.61 does so for its MCP servers: `TOKEN`, `SECRET`, `KEY`, ...), and these set
    /// from the server's settings.
    pub redacted: Option<Vec<(String, String)>>,
}

/// The name patterns gemini 0.61 keeps from its MCP servers' environment.
const SECRET_NAMES: [&str; 10] = [
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "KEY",
    "AUTH",
    "CREDENTIAL",
    "CREDS",
    "PRIVATE",
    "CERT",
];

/// A running MCP server and the session with it.
pub struct McpClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    /// What `initialize` answered.
    pub initialized: Value,
}

/// What a tool call came to.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// `isError`.
    pub is_error: bool,
    /// The text content, joined.
    pub text: String,
    /// The whole `result`.
    pub raw: Value,
}

fn bad(why: impl Into<String>) -> std::io::Error {
    std::io::Error::other(why.into())
}

impl McpClient {
    /// Starts `server` and initializes the session (protocol `version`).
    pub fn start(server: &ServerCommand, version: &str) -> std::io::Result<McpClient> {
        let Some((program, args)) = server.argv.split_first() else {
            return Err(bad("the MCP server has no command"));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(given) = &server.redacted {
            for (name, _) in std::env::vars_os() {
                let upper = name.to_string_lossy().to_uppercase();
                if !upper.starts_with("GEMINI_CLI_")
                    && upper != "PATH"
                    && upper != "HOME"
                    && SECRET_NAMES.iter().any(|p| upper.contains(p))
                {
                    cmd.env_remove(&name);
                }
            }
            cmd.envs(given.iter().cloned());
        }
        if let Some(keep) = &server.only_env {
            cmd.env_clear();
            for name in keep.iter().map(String::as_str).chain(["PATH", "HOME"]) {
                if let Some(v) = std::env::var_os(name) {
                    cmd.env(name, v);
                }
            }
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| bad("no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| bad("no stdout"))?);
        let mut c = McpClient {
            child,
            stdin,
            stdout,
            next_id: 1,
            initialized: Value::Null,
        };
        c.initialized = c.request(
            "initialize",
            json!({"protocolVersion": version, "capabilities": {},
                   "clientInfo": {"name": "relay-testkit", "version": "0"}}),
        )?;
        c.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(c)
    }

    fn send(&mut self, v: &Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(v).map_err(bad_json)?;
        line.push(b'\n');
        self.stdin.write_all(&line)?;
        self.stdin.flush()
    }

    /// Writes one raw line and reads the response line (for protocol tests).
    pub fn raw(&mut self, line: &str) -> std::io::Result<Value> {
        self.stdin.write_all(line.as_bytes())?;
        self.stdin.write_all(b"\n")?;
        self.stdin.flush()?;
        self.read()
    }

    fn read(&mut self) -> std::io::Result<Value> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(bad("the MCP server closed its output"));
        }
        serde_json::from_str(&line).map_err(bad_json)
    }

    /// One request; its `result`, or its error as an I/O error.
    pub fn request(&mut self, method: &str, params: Value) -> std::io::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        loop {
            let v = self.read()?;
            if v.get("id") != Some(&json!(id)) {
                // A notification or a request of the server's: nothing this client needs.
                continue;
            }
            if let Some(e) = v.get("error") {
                return Err(bad(format!("{method}: {e}")));
            }
            return Ok(v.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    /// The names of the server's tools.
    pub fn tool_names(&mut self) -> std::io::Result<Vec<String>> {
        let r = self.request("tools/list", json!({}))?;
        Ok(r["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// Calls tool `name` with `arguments`.
    pub fn call(&mut self, name: &str, arguments: Value) -> std::io::Result<CallResult> {
        let r = self.request("tools/call", json!({"name": name, "arguments": arguments}))?;
        let text: Vec<&str> = r["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["text"].as_str())
            .collect();
        Ok(CallResult {
            is_error: r["isError"].as_bool().unwrap_or(false),
            text: text.join("\n"),
            raw: r,
        })
    }
}

impl Drop for McpClient {
    fn drop(&mut self) {
        // Closing stdin ends a well-behaved server; one that lingers is killed.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bad_json(e: serde_json::Error) -> std::io::Error {
    bad(e.to_string())
}

/// The MCP server named `name` that an invocation of `cli` (`claude`, `codex`, `gemini`,
/// `opencode`, `goose`) with `args` and the environment `env` was given, found the way
/// that CLI finds it: claude `--mcp-config` (a file or JSON), codex `-c
/// mcp_servers.NAME.{command,args,env_vars}=...`, gemini the settings file in
/// `GEMINI_CLI_SYSTEM_SETTINGS_PATH`, opencode `OPENCODE_CONFIG_CONTENT`, goose
/// `--with-extension`.
pub fn server_of_invocation(
    cli: &str,
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<ServerCommand>, String> {
    let value_of = |flag: &str| -> Vec<&str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    };
    let from_json = |v: &Value, what: &str| -> Result<ServerCommand, String> {
        let command = v["command"]
            .as_str()
            .ok_or_else(|| format!("{what}: no command"))?;
        let mut argv = vec![command.to_owned()];
        for a in v["args"].as_array().into_iter().flatten() {
            argv.push(
                a.as_str()
                    .ok_or_else(|| format!("{what}: args must be strings"))?
                    .to_owned(),
            );
        }
        Ok(ServerCommand {
            argv,
            only_env: None,
            redacted: None,
        })
    };
    let parse = |text: &str, what: &str| -> Result<Value, String> {
        serde_json::from_str(text).map_err(|e| format!("{what}: {e}"))
    };
    match cli {
        "claude" => {
            for config in value_of("--mcp-config") {
                let text = if config.trim_start().starts_with('{') {
                    config.to_owned()
                } else {
                    std::fs::read_to_string(config)
                        .map_err(|e| format!("--mcp-config {config}: {e}"))?
                };
                let v = parse(&text, "--mcp-config")?;
                if let Some(s) = v["mcpServers"].get(name) {
                    if s["type"].as_str().is_some_and(|t| t != "stdio") {
                        return Err(format!("--mcp-config: server {name} is not stdio"));
                    }
                    return from_json(s, "--mcp-config").map(Some);
                }
            }
            Ok(None)
        }
        "codex" => {
            let prefix = format!("mcp_servers.{name}.");
            let mut command = None;
            let mut cargs = Vec::new();
            let mut only = Vec::new();
            for o in value_of("-c").into_iter().chain(value_of("--config")) {
                let Some((key, value)) = o.split_once('=') else {
                    return Err(format!("-c {o}: expected key=value"));
                };
                let Some(field) = key.strip_prefix(&prefix) else {
                    continue;
                };
                // The values agent-relay writes are JSON, which TOML reads the same way.
                let v = parse(value, &format!("-c {key}"))?;
                match field {
                    "command" => command = v.as_str().map(str::to_owned),
                    "args" => {
                        cargs = serde_json::from_value::<Vec<String>>(v)
                            .map_err(|e| format!("-c {key}: {e}"))?
                    }
                    "env_vars" => {
                        only = serde_json::from_value::<Vec<String>>(v)
                            .map_err(|e| format!("-c {key}: {e}"))?
                    }
                    other => return Err(format!("-c {key}: codex has no MCP setting {other}")),
                }
            }
            let Some(command) = command else {
                return Ok(None);
            };
            let mut argv = vec![command];
            argv.extend(cargs);
            // Codex gives MCP servers a few variables of its own, plus those named.
            Ok(Some(ServerCommand {
                argv,
                only_env: Some(only),
                redacted: None,
            }))
        }
        "gemini" => {
            let Some(path) = env("GEMINI_CLI_SYSTEM_SETTINGS_PATH") else {
                return Ok(None);
            };
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
            let v = parse(&text, &path)?;
            let Some(s) = v["mcpServers"].get(name) else {
                return Ok(None);
            };
            let mut server = from_json(s, &path)?;
            // Only the values the settings give (no `$VAR` expansion: gemini expands
            // from the redacted environment, where a token is not).
            let given = s["env"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect();
            server.redacted = Some(given);
            Ok(Some(server))
        }
        "opencode" => {
            let Some(text) = env("OPENCODE_CONFIG_CONTENT") else {
                return Ok(None);
            };
            let v = parse(&text, "OPENCODE_CONFIG_CONTENT")?;
            let Some(s) = v["mcp"].get(name) else {
                return Ok(None);
            };
            if s["type"] != "local" || s["enabled"] == false {
                return Err(format!(
                    "OPENCODE_CONFIG_CONTENT: {name} is not an enabled local server"
                ));
            }
            let argv: Vec<String> = serde_json::from_value(s["command"].clone())
                .map_err(|e| format!("OPENCODE_CONFIG_CONTENT: command: {e}"))?;
            Ok(Some(ServerCommand {
                argv,
                only_env: None,
                redacted: None,
            }))
        }
        "goose" => Ok(value_of("--with-extension")
            .first()
            .map(|line| ServerCommand {
                argv: line
                    .split_whitespace()
                    .map(|w| w.trim_matches('\'').to_owned())
                    .collect(),
                only_env: None,
                redacted: None,
            })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn servers_are_found_the_way_each_cli_finds_them() {
        let none = |_: &str| None;
        let claude = s(&[
            "--mcp-config",
            r#"{"mcpServers":{"agent-relay":{"type":"stdio","command":"/b/ar","args":["mcp"]}}}"#,
            "-p",
        ]);
        assert_eq!(
            server_of_invocation("claude", &claude, &none, "agent-relay")
                .unwrap()
                .unwrap()
                .argv,
            ["/b/ar", "mcp"]
        );
        let codex = s(&[
            "exec",
            "-c",
            r#"mcp_servers.agent-relay.command="/b/ar""#,
            "-c",
            r#"mcp_servers.agent-relay.args=["mcp"]"#,
            "-c",
            r#"mcp_servers.agent-relay.env_vars=["A"]"#,
            "-",
        ]);
        let c = server_of_invocation("codex", &codex, &none, "agent-relay")
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.argv, c.only_env),
            (s(&["/b/ar", "mcp"]), Some(s(&["A"])))
        );
        let oc = |k: &str| {
            (k == "OPENCODE_CONFIG_CONTENT").then(|| r#"{"mcp":{"agent-relay":{"type":"local","command":["/b/ar","mcp"],"enabled":true}}}"#.to_string())
        };
        assert_eq!(
            server_of_invocation("opencode", &[], &oc, "agent-relay")
                .unwrap()
                .unwrap()
                .argv,
            ["/b/ar", "mcp"]
        );
        assert_eq!(
            server_of_invocation("claude", &s(&["-p"]), &none, "agent-relay"),
            Ok(None)
        );
        assert!(
            server_of_invocation(
                "codex",
                &s(&["-c", "mcp_servers.agent-relay.cmd=\"x\""]),
                &none,
                "agent-relay"
            )
            .is_err()
        );
    }
}
