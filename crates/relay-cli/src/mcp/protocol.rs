//! The MCP protocol as a pure state machine: one JSON-RPC 2.0 line in, what to answer
//! out. It knows `initialize` (with protocol version negotiation), the `initialized`
//! notification, `ping`, `tools/list` and `tools/call`; running a tool is the caller's
//! (a call comes out as [`Handled::Call`], its result goes back in through
//! [`Protocol::tool_result`]). No I/O here.

use serde_json::{Value, json};

/// Protocol versions this server speaks (what it uses is the same in all of them); a
/// client asking for another gets [`DEFAULT_VERSION`].
pub(crate) const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The version answered to a client asking for one this server does not know.
pub(crate) const DEFAULT_VERSION: &str = "2025-06-18";

/// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// One tool: its name, what it does, and the JSON Schema of its arguments.
#[derive(Debug, Clone)]
pub(crate) struct ToolDef {
    /// The name clients call it by.
    pub name: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// The JSON Schema of its arguments.
    pub input_schema: Value,
}

/// What a tool call came to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolResult {
    /// The text for the model.
    pub text: String,
    /// The tool failed (MCP `isError`): the text says why.
    pub is_error: bool,
}

impl ToolResult {
    /// A successful result.
    pub(crate) fn ok(text: impl Into<String>) -> ToolResult {
        ToolResult {
            text: text.into(),
            is_error: false,
        }
    }

    /// A failed call, with the reason.
    pub(crate) fn error(text: impl Into<String>) -> ToolResult {
        ToolResult {
            text: text.into(),
            is_error: true,
        }
    }
}

/// What to do with one incoming line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Handled {
    /// Write this response line.
    Reply(Value),
    /// Run the tool `name` with `arguments`, then answer request `id` with
    /// [`Protocol::tool_result`].
    Call {
        /// The request's id.
        id: Value,
        /// The tool.
        name: String,
        /// Its arguments (an object).
        arguments: Value,
    },
    /// Nothing to answer (a notification).
    Nothing,
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `initialize`.
    New,
    /// `initialize` answered; waiting for `notifications/initialized`.
    Initializing,
    /// Ready.
    Ready,
}

/// The server side of one MCP session.
#[derive(Debug)]
pub(crate) struct Protocol {
    phase: Phase,
    version: &'static str,
    name: &'static str,
    server_version: &'static str,
    instructions: String,
    tools: Vec<ToolDef>,
}

fn response(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn error(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

impl Protocol {
    /// A session of a server called `name` (version `server_version`) offering `tools`,
    /// with `instructions` for the client.
    pub(crate) fn new(
        name: &'static str,
        server_version: &'static str,
        instructions: String,
        tools: Vec<ToolDef>,
    ) -> Protocol {
        Protocol {
            phase: Phase::New,
            version: DEFAULT_VERSION,
            name,
            server_version,
            instructions,
            tools,
        }
    }

    /// The protocol version agreed on.
    #[cfg(test)]
    pub(crate) fn version(&self) -> &'static str {
        self.version
    }

    /// Takes one line from the client.
    pub(crate) fn handle(&mut self, line: &str) -> Handled {
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return Handled::Reply(error(
                    Value::Null,
                    PARSE_ERROR,
                    format!("parse error: {e}"),
                ));
            }
        };
        // A batch (JSON-RPC 2.0 allows them; MCP 2025-06-18 does not).
        if msg.is_array() {
            return Handled::Reply(error(
                Value::Null,
                INVALID_REQUEST,
                "batches are not supported",
            ));
        }
        let Some(obj) = msg.as_object() else {
            return Handled::Reply(error(
                Value::Null,
                INVALID_REQUEST,
                "not a JSON-RPC message",
            ));
        };
        let id = obj.get("id").cloned();
        let Some(method) = obj.get("method").and_then(Value::as_str) else {
            // A response to something we never asked, or garbage: answer requests only.
            return match id {
                Some(_) if obj.contains_key("result") || obj.contains_key("error") => {
                    Handled::Nothing
                }
                Some(id) => Handled::Reply(error(id, INVALID_REQUEST, "no method")),
                None => Handled::Nothing,
            };
        };
        let params = obj.get("params").cloned().unwrap_or(Value::Null);
        let Some(id) = id else {
            self.notification(method);
            return Handled::Nothing;
        };
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Handled::Reply(error(id, INVALID_REQUEST, "jsonrpc must be \"2.0\""));
        }
        match method {
            "initialize" => Handled::Reply(self.initialize(id, &params)),
            "ping" => Handled::Reply(response(id, json!({}))),
            _ if self.phase == Phase::New => Handled::Reply(error(
                id,
                INVALID_REQUEST,
                "the session is not initialized: send `initialize` first",
            )),
            "tools/list" => Handled::Reply(response(
                id,
                json!({"tools": self.tools.iter().map(|t| json!({
                    "name": t.name,
                    "description": t.description,
                    "inputSchema": t.input_schema,
                })).collect::<Vec<_>>()}),
            )),
            "tools/call" => self.call(id, &params),
            other => Handled::Reply(error(
                id,
                METHOD_NOT_FOUND,
                format!("method `{other}` is not supported"),
            )),
        }
    }

    fn notification(&mut self, method: &str) {
        if method == "notifications/initialized" && self.phase == Phase::Initializing {
            self.phase = Phase::Ready;
        }
        // Others (cancelled, progress, roots changed) need nothing from this server.
    }

    fn initialize(&mut self, id: Value, params: &Value) -> Value {
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        self.version = asked
            .and_then(|a| VERSIONS.iter().find(|v| **v == a).copied())
            .unwrap_or(DEFAULT_VERSION);
        if self.phase == Phase::New {
            self.phase = Phase::Initializing;
        }
        response(
            id,
            json!({
                "protocolVersion": self.version,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": {"name": self.name, "version": self.server_version},
                "instructions": self.instructions,
            }),
        )
    }

    fn call(&mut self, id: Value, params: &Value) -> Handled {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return Handled::Reply(error(id, INVALID_PARAMS, "tools/call needs a tool `name`"));
        };
        if !self.tools.iter().any(|t| t.name == name) {
            let known: Vec<&str> = self.tools.iter().map(|t| t.name).collect();
            let hint = relay_spec::load::did_you_mean(name, known.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Handled::Reply(error(
                id,
                INVALID_PARAMS,
                format!("unknown tool `{name}`{hint} (tools: {})", known.join(", ")),
            ));
        }
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(a @ Value::Object(_)) => a.clone(),
            Some(_) => {
                return Handled::Reply(error(id, INVALID_PARAMS, "`arguments` must be an object"));
            }
        };
        Handled::Call {
            id,
            name: name.to_owned(),
            arguments,
        }
    }

    /// The response to tool call `id` that came to `result`.
    pub(crate) fn tool_result(&self, id: Value, result: ToolResult) -> Value {
        // Text only, no `structuredContent`: claude hands the structured form to the
        // model instead of the text when both are there.
        let out = json!({
            "content": [{"type": "text", "text": result.text}],
            "isError": result.is_error,
        });
        response(id, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Protocol {
        Protocol::new(
            "agent-relay",
            "1.0",
            "talk to the run".into(),
            vec![ToolDef {
                name: "send",
                description: "send a message",
                input_schema: json!({"type": "object"}),
            }],
        )
    }

    fn reply(h: Handled) -> Value {
        match h {
            Handled::Reply(v) => v,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn initialize_negotiates_the_version_and_then_tools_are_listed() {
        let mut p = server();
        let early = reply(p.handle(r#"{"jsonrpc":"2.0","id":0,"method":"tools/list"}"#));
        assert_eq!(early["error"]["code"], INVALID_REQUEST);
        let init = reply(p.handle(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#,
        ));
        assert_eq!(init["id"], 1);
        assert_eq!(init["result"]["protocolVersion"], "2025-03-26");
        assert_eq!(init["result"]["serverInfo"]["name"], "agent-relay");
        assert_eq!(
            init["result"]["capabilities"]["tools"]["listChanged"],
            false
        );
        assert_eq!(init["result"]["instructions"], "talk to the run");
        assert_eq!(
            p.handle(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Handled::Nothing
        );
        assert_eq!(p.phase, Phase::Ready);
        let list = reply(p.handle(r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#));
        assert_eq!(list["id"], "a");
        assert_eq!(list["result"]["tools"][0]["name"], "send");
        assert_eq!(list["result"]["tools"][0]["inputSchema"]["type"], "object");
        let ping = reply(p.handle(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#));
        assert_eq!(ping["result"], json!({}));
    }

    #[test]
    fn an_unknown_version_gets_the_default() {
        let mut p = server();
        let init = reply(p.handle(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1999-01-01"}}"#,
        ));
        assert_eq!(init["result"]["protocolVersion"], DEFAULT_VERSION);
        assert_eq!(p.version(), DEFAULT_VERSION);
    }

    #[test]
    fn calls_come_out_for_the_caller_to_run_and_results_go_back() {
        let mut p = server();
        reply(p.handle(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#));
        let h = p.handle(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"send","arguments":{"to":"bob","text":"hi"}}}"#,
        );
        let Handled::Call {
            id,
            name,
            arguments,
        } = h
        else {
            panic!("{h:?}")
        };
        assert_eq!((id.clone(), name.as_str()), (json!(7), "send"));
        assert_eq!(arguments["to"], "bob");
        let ok = p.tool_result(id, ToolResult::ok("sent"));
        assert_eq!(ok["result"]["content"][0]["text"], "sent");
        assert_eq!(ok["result"]["isError"], false);
        assert!(ok["result"].get("structuredContent").is_none(), "{ok}");
        let failed = p.tool_result(json!(8), ToolResult::error("no agent `bobb`"));
        assert_eq!(failed["result"]["isError"], true);
        assert_eq!(failed["result"]["content"][0]["text"], "no agent `bobb`");
        // No arguments at all is an empty object.
        let h =
            p.handle(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"send"}}"#);
        assert!(matches!(h, Handled::Call { arguments, .. } if arguments == json!({})));
    }

    #[test]
    fn bad_input_gets_json_rpc_errors_and_never_a_panic() {
        let mut p = server();
        reply(p.handle(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#));
        let cases = [
            ("{not json", PARSE_ERROR),
            ("[1,2]", INVALID_REQUEST),
            ("42", INVALID_REQUEST),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"resources/list"}"#,
                METHOD_NOT_FOUND,
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"sned"}}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"send","arguments":[1]}}"#,
                INVALID_PARAMS,
            ),
            (r#"{"id":3,"method":"ping"}"#, INVALID_REQUEST),
        ];
        for (line, code) in cases {
            let r = reply(p.handle(line));
            assert_eq!(r["error"]["code"], code, "{line}: {r}");
        }
        let r = reply(
            p.handle(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"sned"}}"#),
        );
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("did you mean `send`"),
            "{r}"
        );
        // Notifications and responses get no answer.
        assert_eq!(
            p.handle(
                r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#
            ),
            Handled::Nothing
        );
        assert_eq!(
            p.handle(r#"{"jsonrpc":"2.0","id":5,"result":{}}"#),
            Handled::Nothing
        );
    }
}
