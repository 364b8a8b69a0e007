//! One-shot mode with each CLI's structured output, token usage included, printed line by
//! line as the real CLIs do (claude `--output-format stream-json --verbose`, codex
//! `exec --json`, gemini `--output-format stream-json`, opencode `run --format json`).
//! Replies become the CLI's message events (codex: one agent message when the turn ends);
//! `[[fake:usage=IN:OUT]]` reports one model turn of that many tokens at that point (so
//! usage grows while the agent runs); a run that reported none reports one turn of 100
//! input and 10 output tokens at its end.

use std::io::Write;

use crate::argv::Cli;
use crate::script::{self, Host};
use crate::sys;

/// Tokens of the turn a run reports when its script names none.
const DEFAULT_TURN: (u64, u64) = (100, 10);

struct Structured {
    cli: Cli,
    model: String,
    replies: Vec<String>,
    turns: u32,
    input: u64,
    output: u64,
}

fn json(s: &str) -> String {
    crate::argv::json_array(&[s.to_string()])
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

impl Structured {
    fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn start(&self) {
        let id = json(&crate::conversation::id());
        match self.cli {
            Cli::Claude => self.line(&format!(
                r#"{{"type":"system","subtype":"init","session_id":{id},"model":{},"permissionMode":"bypassPermissions"}}"#,
                json(&self.model)
            )),
            Cli::Codex => self.line(&format!(r#"{{"type":"thread.started","thread_id":{id}}}"#)),
            Cli::Gemini => self.line(&format!(
                r#"{{"type":"init","session_id":{id},"model":{}}}"#,
                json(&self.model)
            )),
            _ => self.line(&format!(
                r#"{{"type":"step_start","sessionID":{id},"part":{{"type":"step-start"}}}}"#
            )),
        }
    }

    /// Ends the output the way the CLI does: its totals.
    fn finish(&mut self, code: i32) {
        // codex reports the model's reply as one agent message when the turn ends.
        if self.cli == Cli::Codex && !self.replies.is_empty() {
            self.line(&format!(
                r#"{{"type":"item.completed","item":{{"id":"item_0","type":"agent_message","text":{}}}}}"#,
                json(&self.replies.join("\n"))
            ));
        }
        if self.turns == 0 {
            self.usage(DEFAULT_TURN.0, DEFAULT_TURN.1);
        }
        let (input, output) = (self.input, self.output);
        let all = self.replies.join("\n");
        match self.cli {
            Cli::Claude => self.line(&format!(
                r#"{{"type":"result","subtype":"{}","is_error":{},"result":{},"usage":{{"input_tokens":{input},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{output}}}}}"#,
                if code == 0 { "success" } else { "error_during_execution" },
                code != 0,
                json(&all)
            )),
            Cli::Gemini => self.line(&format!(
                r#"{{"type":"result","status":"{}","stats":{{"total_tokens":{},"input_tokens":{input},"output_tokens":{output},"cached":0,"models":{{{}:{{"total_tokens":{}}}}}}}}}"#,
                if code == 0 { "success" } else { "error" },
                input + output,
                json(&self.model),
                input + output
            )),
            _ => {}
        }
    }
}

impl Host for Structured {
    fn reply(&mut self, text: &str) {
        self.replies.push(text.to_string());
        if self.cli == Cli::Codex {
            return;
        }
        let line = match self.cli {
            Cli::Claude => format!(
                r#"{{"type":"assistant","message":{{"id":"msg_text_{}","model":{},"content":[{{"type":"text","text":{}}}]}}}}"#,
                self.replies.len(),
                json(&self.model),
                json(text)
            ),
            Cli::Gemini => format!(
                r#"{{"type":"message","role":"assistant","content":{},"delta":true}}"#,
                json(&format!("{text}\n"))
            ),
            _ => format!(
                r#"{{"type":"text","part":{{"type":"text","text":{}}}}}"#,
                json(text)
            ),
        };
        self.line(&line);
    }

    fn usage(&mut self, input: u64, output: u64) {
        self.turns += 1;
        self.input += input;
        self.output += output;
        let line = match self.cli {
            Cli::Claude => format!(
                r#"{{"type":"assistant","message":{{"id":"msg_turn_{}","model":{},"content":[],"usage":{{"input_tokens":{input},"output_tokens":{output},"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}}}}"#,
                self.turns,
                json(&self.model)
            ),
            Cli::Codex => format!(
                r#"{{"type":"turn.completed","usage":{{"input_tokens":{input},"cached_input_tokens":0,"output_tokens":{output},"reasoning_output_tokens":0}}}}"#
            ),
            // Gemini reports only at its end.
            Cli::Gemini => return,
            _ => format!(
                r#"{{"type":"step_finish","part":{{"type":"step-finish","tokens":{{"total":{},"input":{input},"output":{output},"reasoning":0,"cache":{{"write":0,"read":0}}}},"cost":0}}}}"#,
                input + output
            ),
        };
        self.line(&line);
    }

    fn stderr(&mut self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    fn sleep(&mut self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn exit(&mut self, code: i32) -> ! {
        self.finish(code);
        let _ = std::io::stdout().flush();
        script::log_lifecycle("end");
        std::process::exit(code)
    }

    fn crash(&mut self) -> ! {
        let _ = std::io::stdout().flush();
        sys::disable_core_dumps();
        std::process::abort()
    }

    fn ignore_term(&mut self) {
        sys::ignore_term_signals();
    }
}

/// The model a CLI names when none is asked for.
fn default_model(cli: Cli) -> &'static str {
    match cli {
        Cli::Claude => "claude-sonnet-4-5",
        Cli::Codex => "gpt-5",
        Cli::Gemini => "gemini-2.5-pro",
        _ => "fake-model",
    }
}

pub(crate) fn run(cli: Cli, task: &str, model: Option<String>) -> ! {
    let markers = match script::parse(task) {
        Ok(m) => m,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "{msg}");
            std::process::exit(2);
        }
    };
    let mut host = Structured {
        cli,
        model: model.unwrap_or_else(|| default_model(cli).to_string()),
        replies: Vec::new(),
        turns: 0,
        input: 0,
        output: 0,
    };
    script::log_lifecycle("start");
    host.start();
    script::run(&markers, task, &mut host);
    host.reply(&format!("fake-{} done", cli.name()));
    host.exit(0)
}
