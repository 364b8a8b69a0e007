//! The tools `agent-relay mcp` offers and what each one asks of the run: its socket
//! requests (the same ones `agent-relay send`, `inbox`, `agents` and `board` make),
//! through a [`Backend`] so the tools are tested without a run. A refusal of the run
//! (an unknown recipient with its did-you-mean, a topology rule, a step that is not
//! running) comes back as a tool error with the run's own words.

use relay_messaging::model::is_name;
use relay_messaging::protocol::{ErrorKind, Reply, Request};
use relay_messaging::{MessageState, Target};
use serde_json::{Value, json};

use super::protocol::{ToolDef, ToolResult};

/// Longest wait a tool takes, in seconds (the socket's own limit).
const MAX_WAIT_SECS: f64 = 600.0;

/// How long `ask_human` waits for an answer unless told: under codex's default tool
/// timeout of 60 seconds.
const ASK_WAIT_SECS: f64 = 50.0;

/// One request to the run.
pub(crate) trait Backend {
    /// Sends `req` and reads the reply; `Err` when the run cannot be reached.
    fn request(&mut self, req: &Request) -> Result<Reply, String>;
}

/// Who the server speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Me {
    /// The agent (`AGENT_RELAY_NAME`).
    pub agent: Option<String>,
    /// The step running now (`AGENT_RELAY_STEP`).
    pub step: Option<String>,
}

impl Me {
    /// The sender's name: the agent, else the step, else `user`.
    fn sender(&self) -> String {
        self.agent
            .clone()
            .or_else(|| self.step.clone())
            .unwrap_or_else(|| "user".into())
    }
}

/// The tools, with their descriptions and argument schemas.
pub(crate) fn definitions() -> Vec<ToolDef> {
    let wait = |what: &str| json!({"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECS, "description": what});
    vec![
        ToolDef {
            name: "send",
            description: "Send a message to another agent of this agent-relay run, to a channel, or to everyone. \
                 The message is queued for the recipient: an agent in a terminal gets it typed in when it is \
                 quiet; a one-shot agent gets it with its next task or from its inbox.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "to": {"type": "string", "description": "An agent's name, `#channel` for every other member of a channel, or `*` for every other agent."},
                    "text": {"type": "string", "description": "The message."},
                },
                "required": ["to", "text"],
                "additionalProperties": false,
            }),
        },
        ToolDef {
            name: "inbox",
            description: "Read the messages other agents (or people) sent to you that you have not read yet; they \
                 count as read once returned. With wait_seconds, waits up to that long for the first one when \
                 there is none.",
            input_schema: json!({
                "type": "object",
                "properties": {"wait_seconds": wait("How long to wait for a message when there is none (default 0, at most 600).")},
                "additionalProperties": false,
            }),
        },
        ToolDef {
            name: "agents",
            description: "List the agents of this run (name, role, state: pending, running or ended; terminal or \
                 one-shot), the channels with their members, and the file claims held now.",
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        },
        ToolDef {
            name: "board_get",
            description: "Read one entry of the run's shared board (a key-value store every agent and step of \
                 the run sees).",
            input_schema: json!({
                "type": "object",
                "properties": {"key": {"type": "string", "description": "The key."}},
                "required": ["key"],
                "additionalProperties": false,
            }),
        },
        ToolDef {
            name: "board_set",
            description: "Write one entry of the run's shared board, recorded as written by you.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "key": {"type": "string", "description": "The key."},
                    "value": {"type": "string", "description": "The value."},
                },
                "required": ["key", "value"],
                "additionalProperties": false,
            }),
        },
        ToolDef {
            name: "ask_human",
            description: "Ask a person a question about your step (they answer with `agent-relay answer`). Waits up \
                 to wait_seconds (default 50) for the answer and returns it; when none comes in time, the answer \
                 reaches you later as a message (see inbox) and you may go on with other work meanwhile.",
            input_schema: json!({
                "type": "object",
                "properties": {
                    "question": {"type": "string", "description": "The question, complete enough to answer without context."},
                    "wait_seconds": wait("How long to wait for the answer (default 50, at most 600)."),
                },
                "required": ["question"],
                "additionalProperties": false,
            }),
        },
        ToolDef {
            name: "report_done",
            description: "Report that your step is finished, with its result. The result becomes the step's output \
                 (what later steps and the run's summary see). An interactive session is ended right after, as \
                 if you had printed /exit, so call this last.",
            input_schema: json!({
                "type": "object",
                "properties": {"result": {"type": "string", "description": "The step's result: what you did, found or decided."}},
                "required": ["result"],
                "additionalProperties": false,
            }),
        },
    ]
}

/// A string argument; the error names it.
fn text_arg(args: &Value, key: &str) -> Result<String, ToolResult> {
    match args.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ToolResult::error(format!("`{key}` must be a string"))),
        None => Err(ToolResult::error(format!("`{key}` is required"))),
    }
}

/// A number of seconds (absent: `default`) as milliseconds, within the socket's limit.
fn wait_arg(args: &Value, default: f64) -> Result<u64, ToolResult> {
    let secs = match args.get("wait_seconds") {
        None | Some(Value::Null) => default,
        Some(v) => match v.as_f64() {
            Some(s) if s.is_finite() && s >= 0.0 => s.min(MAX_WAIT_SECS),
            _ => {
                return Err(ToolResult::error(
                    "`wait_seconds` must be a number of seconds from 0 to 600",
                ));
            }
        },
    };
    Ok((secs * 1000.0).round() as u64)
}

/// The run's reply, or a tool error with the run's reason.
fn ask(backend: &mut dyn Backend, req: &Request) -> Result<Reply, ToolResult> {
    match backend.request(req) {
        Ok(Reply::Error { kind, message }) => Err(ToolResult::error(match kind {
            ErrorKind::UnknownRecipient => format!("unknown recipient: {message}"),
            ErrorKind::Unauthorized => format!("not allowed: {message}"),
            _ => message,
        })),
        Ok(r) => Ok(r),
        Err(why) => Err(ToolResult::error(why)),
    }
}

fn unexpected(r: &Reply) -> ToolResult {
    ToolResult::error(format!("unexpected answer from the run: {r:?}"))
}

fn need<'a>(v: &'a Option<String>, what: &str, var: &str) -> Result<&'a str, ToolResult> {
    v.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        ToolResult::error(format!(
            "this server does not know {what}: {var} is not set (agent-relay sets it for every agent of a run)"
        ))
    })
}

/// Runs tool `name` with `args` for `me`.
pub(crate) fn call(name: &str, args: &Value, me: &Me, backend: &mut dyn Backend) -> ToolResult {
    let mut run = || -> Result<ToolResult, ToolResult> {
        match name {
            "send" => send(args, me, backend),
            "inbox" => inbox(args, me, backend),
            "agents" => agents(backend),
            "board_get" => {
                let key = text_arg(args, "key")?;
                match ask(backend, &Request::BoardGet { key })? {
                    Reply::Value { entry: Some(e), .. } => Ok(ToolResult::ok(e.value)),
                    Reply::Value { key, entry: None } => Err(ToolResult::error(format!(
                        "no value for `{key}` on the board"
                    ))),
                    r => Err(unexpected(&r)),
                }
            }
            "board_set" => {
                let key = text_arg(args, "key")?;
                let value = text_arg(args, "value")?;
                let by = Some(me.sender()).filter(|n| is_name(n));
                match ask(backend, &Request::BoardSet { key, value, by })? {
                    Reply::Stored { key } => Ok(ToolResult::ok(format!("stored `{key}`"))),
                    r => Err(unexpected(&r)),
                }
            }
            "ask_human" => {
                let question = text_arg(args, "question")?;
                if question.trim().is_empty() {
                    return Err(ToolResult::error("the question is empty"));
                }
                let wait_ms = wait_arg(args, ASK_WAIT_SECS)?;
                let step = need(&me.step, "your step", "AGENT_RELAY_STEP")?.to_owned();
                let req = Request::Ask {
                    step,
                    question,
                    wait_ms: Some(wait_ms),
                };
                match ask(backend, &req)? {
                    Reply::Asked {
                        answer: Some(a), ..
                    } => Ok(ToolResult::ok(a)),
                    Reply::Asked {
                        step, answer: None, ..
                    } => Ok(ToolResult::ok(format!(
                        "No answer yet; the question for step {step} is waiting for a person. The answer \
                         will reach you as a message starting HUMAN_ANSWER (see the inbox tool)."
                    ))),
                    r => Err(unexpected(&r)),
                }
            }
            "report_done" => {
                let result = text_arg(args, "result")?;
                let step = need(&me.step, "your step", "AGENT_RELAY_STEP")?.to_owned();
                match ask(backend, &Request::Done { step, text: result })? {
                    Reply::Done { step, ended: true } => Ok(ToolResult::ok(format!(
                        "Result recorded for step {step}; this session ends now."
                    ))),
                    Reply::Done { step, ended: false } => Ok(ToolResult::ok(format!(
                        "Result recorded for step {step}; finish your turn now."
                    ))),
                    r => Err(unexpected(&r)),
                }
            }
            other => Err(ToolResult::error(format!("unknown tool `{other}`"))),
        }
    };
    run().unwrap_or_else(|e| e)
}

fn send(args: &Value, me: &Me, backend: &mut dyn Backend) -> Result<ToolResult, ToolResult> {
    let to = text_arg(args, "to")?;
    let text = text_arg(args, "text")?;
    let to = to.trim().to_owned();
    let Some(target) = Target::parse(&to) else {
        return Err(ToolResult::error(format!(
            "`{to}` is not an agent name, a #channel or *"
        )));
    };
    if text.trim().is_empty() {
        return Err(ToolResult::error("the message is empty"));
    }
    let req = Request::Send {
        from: me.sender(),
        to: target.to_string(),
        text,
    };
    let receipts = match ask(backend, &req)? {
        Reply::Sent { receipts } => receipts,
        r => return Err(unexpected(&r)),
    };
    let mut lines = Vec::new();
    let mut queued = 0;
    for r in &receipts {
        match r.state {
            MessageState::Failed => lines.push(format!(
                "message {} to {} failed: {}",
                r.id,
                r.to,
                r.reason.as_deref().unwrap_or("unknown reason")
            )),
            _ => {
                queued += 1;
                lines.push(format!("sent message {} to {}", r.id, r.to));
            }
        }
    }
    let result = if queued == 0 {
        ToolResult::error(lines.join("\n"))
    } else {
        ToolResult::ok(lines.join("\n"))
    };
    Ok(result)
}

fn inbox(args: &Value, me: &Me, backend: &mut dyn Backend) -> Result<ToolResult, ToolResult> {
    let agent = need(&me.agent, "whose inbox to read", "AGENT_RELAY_NAME")?.to_owned();
    let wait_ms = wait_arg(args, 0.0)?;
    let req = Request::Inbox {
        agent,
        wait_ms: (wait_ms > 0).then_some(wait_ms),
        max: None,
    };
    let messages = match ask(backend, &req)? {
        Reply::Messages { messages } => messages,
        r => return Err(unexpected(&r)),
    };
    if messages.is_empty() {
        return Ok(ToolResult::ok("No new messages."));
    }
    let lines: Vec<String> = messages
        .iter()
        .map(|m| {
            let via = match &m.target {
                Target::Agent(_) => String::new(),
                t => format!(" (to {t})"),
            };
            format!("[{}] from {}{via}: {}", m.id, m.from, m.text)
        })
        .collect();
    Ok(ToolResult::ok(lines.join("\n")))
}

fn agents(backend: &mut dyn Backend) -> Result<ToolResult, ToolResult> {
    let (agents, channels, claims) = match ask(backend, &Request::Agents)? {
        Reply::Agents {
            agents,
            channels,
            claims,
        } => (agents, channels, claims),
        r => return Err(unexpected(&r)),
    };
    let mut lines: Vec<String> = agents
        .iter()
        .map(|a| {
            let state = match a.state {
                relay_messaging::AgentState::Pending => "pending",
                relay_messaging::AgentState::Running => "running",
                relay_messaging::AgentState::Ended => "ended",
            };
            let mode = if a.interactive {
                "terminal"
            } else {
                "one-shot"
            };
            let role = a
                .role
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            format!("{}{role}: {state}, {mode}", a.name)
        })
        .collect();
    for (c, members) in &channels {
        lines.push(format!("#{c}: {}", members.join(", ")));
    }
    for c in &claims {
        lines.push(format!("{} claims {}", c.holder, c.path));
    }
    Ok(ToolResult::ok(lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_messaging::model::{MessageId, Receipt};

    /// Answers from a list and keeps what was asked.
    struct Script {
        asked: Vec<Request>,
        replies: Vec<Result<Reply, String>>,
    }

    impl Backend for Script {
        fn request(&mut self, req: &Request) -> Result<Reply, String> {
            self.asked.push(req.clone());
            if self.replies.is_empty() {
                return Err("no reply scripted".into());
            }
            self.replies.remove(0)
        }
    }

    fn script(replies: Vec<Result<Reply, String>>) -> Script {
        Script {
            asked: Vec::new(),
            replies,
        }
    }

    fn alice() -> Me {
        Me {
            agent: Some("alice".into()),
            step: Some("write".into()),
        }
    }

    #[test]
    fn every_tool_has_an_object_schema_and_a_description() {
        let defs = definitions();
        let names: Vec<&str> = defs.iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            [
                "send",
                "inbox",
                "agents",
                "board_get",
                "board_set",
                "ask_human",
                "report_done"
            ]
        );
        for d in &defs {
            assert_eq!(d.input_schema["type"], "object", "{}", d.name);
            assert!(d.description.len() > 40, "{}", d.name);
            for r in d.input_schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap();
                assert!(
                    d.input_schema["properties"].get(r).is_some(),
                    "{}: {r}",
                    d.name
                );
            }
        }
    }

    #[test]
    fn send_speaks_as_the_agent_and_reports_each_copy() {
        let mut b = script(vec![Ok(Reply::Sent {
            receipts: vec![
                Receipt {
                    id: MessageId(3),
                    to: "bob".into(),
                    state: MessageState::Queued,
                    reason: None,
                },
                Receipt {
                    id: MessageId(4),
                    to: "carol".into(),
                    state: MessageState::Failed,
                    reason: Some("refused by the topology rule `hub-spoke`".into()),
                },
            ],
        })]);
        let r = call(
            "send",
            &json!({"to": "#dev", "text": "hi"}),
            &alice(),
            &mut b,
        );
        assert!(!r.is_error, "{r:?}");
        assert!(r.text.contains("sent message m3 to bob"), "{}", r.text);
        assert!(
            r.text.contains("refused by the topology rule"),
            "{}",
            r.text
        );
        assert_eq!(
            b.asked,
            [Request::Send {
                from: "alice".into(),
                to: "#dev".into(),
                text: "hi".into()
            }]
        );
    }

    #[test]
    fn refusals_of_the_run_are_tool_errors_with_its_reason() {
        let mut b = script(vec![Ok(Reply::Error {
            kind: ErrorKind::UnknownRecipient,
            message: "no agent `bobb` in this run; did you mean `bob`?".into(),
        })]);
        let r = call(
            "send",
            &json!({"to": "bobb", "text": "hi"}),
            &alice(),
            &mut b,
        );
        assert!(r.is_error);
        assert!(r.text.contains("did you mean `bob`"), "{}", r.text);
        let mut b = script(vec![Ok(Reply::Sent {
            receipts: vec![Receipt {
                id: MessageId(1),
                to: "bob".into(),
                state: MessageState::Failed,
                reason: Some("`bob` has ended".into()),
            }],
        })]);
        let r = call(
            "send",
            &json!({"to": "bob", "text": "hi"}),
            &alice(),
            &mut b,
        );
        assert!(r.is_error && r.text.contains("`bob` has ended"), "{r:?}");
        let mut b = script(vec![Err("no run is reachable at /x".into())]);
        let r = call("agents", &json!({}), &alice(), &mut b);
        assert!(
            r.is_error && r.text.contains("no run is reachable"),
            "{r:?}"
        );
    }

    #[test]
    fn bad_arguments_are_named_before_the_run_is_asked() {
        let mut b = script(Vec::new());
        for (tool, args, says) in [
            ("send", json!({"text": "x"}), "`to` is required"),
            (
                "send",
                json!({"to": 3, "text": "x"}),
                "`to` must be a string",
            ),
            (
                "send",
                json!({"to": "a b", "text": "x"}),
                "not an agent name",
            ),
            ("send", json!({"to": "bob", "text": "  "}), "empty"),
            ("inbox", json!({"wait_seconds": -1}), "wait_seconds"),
            ("inbox", json!({"wait_seconds": "soon"}), "wait_seconds"),
            ("ask_human", json!({"question": ""}), "empty"),
            ("report_done", json!({}), "`result` is required"),
            ("board_set", json!({"key": "k"}), "`value` is required"),
        ] {
            let r = call(tool, &args, &alice(), &mut b);
            assert!(r.is_error && r.text.contains(says), "{tool} {args}: {r:?}");
        }
        assert!(b.asked.is_empty());
        let nobody = Me::default();
        let r = call("inbox", &json!({}), &nobody, &mut b);
        assert!(r.is_error && r.text.contains("AGENT_RELAY_NAME"), "{r:?}");
        let r = call("report_done", &json!({"result": "x"}), &nobody, &mut b);
        assert!(r.is_error && r.text.contains("AGENT_RELAY_STEP"), "{r:?}");
    }

    #[test]
    fn inbox_waits_as_asked_and_lists_messages() {
        let env = relay_messaging::model::Envelope {
            id: MessageId(9),
            from: "bob".into(),
            to: "alice".into(),
            target: Target::Channel("dev".into()),
            text: "ping".into(),
            ts_ms: 0,
        };
        let mut b = script(vec![
            Ok(Reply::Messages {
                messages: vec![env],
            }),
            Ok(Reply::Messages {
                messages: Vec::new(),
            }),
        ]);
        let r = call("inbox", &json!({"wait_seconds": 2.5}), &alice(), &mut b);
        assert_eq!(r.text, "[m9] from bob (to #dev): ping");
        let r = call("inbox", &json!({}), &alice(), &mut b);
        assert_eq!(r.text, "No new messages.");
        assert_eq!(
            b.asked,
            [
                Request::Inbox {
                    agent: "alice".into(),
                    wait_ms: Some(2500),
                    max: None
                },
                Request::Inbox {
                    agent: "alice".into(),
                    wait_ms: None,
                    max: None
                }
            ]
        );
    }

    #[test]
    fn ask_human_and_report_done_name_the_step() {
        let mut b = script(vec![
            Ok(Reply::Asked {
                step: "write".into(),
                answer: Some("8080".into()),
            }),
            Ok(Reply::Asked {
                step: "write".into(),
                answer: None,
            }),
            Ok(Reply::Done {
                step: "write".into(),
                ended: true,
            }),
        ]);
        let r = call(
            "ask_human",
            &json!({"question": "which port?"}),
            &alice(),
            &mut b,
        );
        assert_eq!(r.text, "8080");
        let r = call(
            "ask_human",
            &json!({"question": "which db?", "wait_seconds": 0}),
            &alice(),
            &mut b,
        );
        assert!(!r.is_error && r.text.contains("HUMAN_ANSWER"), "{r:?}");
        let r = call(
            "report_done",
            &json!({"result": "all done"}),
            &alice(),
            &mut b,
        );
        assert!(r.text.contains("ends now"), "{r:?}");
        assert_eq!(
            b.asked,
            [
                Request::Ask {
                    step: "write".into(),
                    question: "which port?".into(),
                    wait_ms: Some(50_000)
                },
                Request::Ask {
                    step: "write".into(),
                    question: "which db?".into(),
                    wait_ms: Some(0)
                },
                Request::Done {
                    step: "write".into(),
                    text: "all done".into()
                }
            ]
        );
    }
}
