//! Token usage as each CLI reports it in its structured one-shot output, read line by line
//! while the CLI runs (so an agent can be stopped at its `maxTokens`), and the reply text
//! taken out of that output (what the step's output would have been as plain text).
//!
//! | CLI | flags | where the numbers are | how exact |
//! |---|---|---|---|
//! | claude | `--output-format stream-json --verbose` | `usage` of each `assistant` message (per message id), replaced by the final `result`'s totals | the CLI's own API counts |
//! | codex | `exec --json` | `usage` of each `turn.completed` event, added up | per turn, as the API reported |
//! | gemini | `--output-format stream-json` | `stats` of the final `result` event | only at the end |
//! | opencode | `run --format json` | `tokens` of each `step_finish` part, added up | per step |
//!
//! A line that is not JSON is kept as text, so a CLI that also prints plain warnings
//! loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The structured output shapes of the CLIs that report usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsageFormat {
    /// `claude --output-format stream-json --verbose`.
    ClaudeStream,
    /// `codex exec --json`.
    CodexJson,
    /// `gemini --output-format stream-json`.
    GeminiStream,
    /// `opencode run --format json`.
    OpencodeJson,
}

/// Tokens used, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Input tokens not read from a cache.
    pub input: u64,
    /// Output tokens (reasoning included).
    pub output: u64,
    /// Input tokens read from the provider's cache.
    #[serde(default)]
    pub cache_read: u64,
    /// Input tokens written to the provider's cache.
    #[serde(default)]
    pub cache_write: u64,
}

impl Usage {
    /// Every token, of every kind: what budgets count.
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.output)
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }

    /// `self` plus `other`.
    pub fn plus(&self, other: &Usage) -> Usage {
        Usage {
            input: self.input.saturating_add(other.input),
            output: self.output.saturating_add(other.output),
            cache_read: self.cache_read.saturating_add(other.cache_read),
            cache_write: self.cache_write.saturating_add(other.cache_write),
        }
    }

    /// Whether nothing was counted.
    pub fn is_zero(&self) -> bool {
        self.total() == 0
    }
}

/// Whether `s` can be a CLI's session id, and so an argument of a later run: short,
/// and only letters, digits, `-` and `_` (UUIDs, `ses_...`).
pub fn session_id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn n(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Reads one CLI's structured output as it arrives.
#[derive(Debug, Clone)]
pub struct Meter {
    format: UsageFormat,
    partial: Vec<u8>,
    text: String,
    /// Usage so far, by message id (claude), or one running sum.
    by_message: Vec<(String, Usage)>,
    sum: Usage,
    /// The final totals, when the CLI printed them (claude's `result`).
    final_usage: Option<Usage>,
    final_text: Option<String>,
    model: Option<String>,
    session: Option<String>,
}

impl Meter {
    /// A meter for `format`.
    pub fn new(format: UsageFormat) -> Meter {
        Meter {
            format,
            partial: Vec::new(),
            text: String::new(),
            by_message: Vec::new(),
            sum: Usage::default(),
            final_usage: None,
            final_text: None,
            model: None,
            session: None,
        }
    }

    /// Takes more output.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            self.line(&line);
        }
    }

    /// Usage so far.
    pub fn usage(&self) -> Usage {
        if let Some(u) = self.final_usage {
            return u;
        }
        self.by_message
            .iter()
            .fold(self.sum, |acc, (_, u)| acc.plus(u))
    }

    /// The model the CLI said it used, if it said.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The conversation the CLI reported (claude's and gemini's `session_id`, codex's
    /// `thread_id`, opencode's `sessionID`): what a later step resumes.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Ends the output: the reply text, the usage and the model.
    pub fn finish(mut self) -> (String, Usage, Option<String>) {
        if !self.partial.is_empty() {
            let rest = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
            self.line(&rest);
        }
        let usage = self.usage();
        let text = match self.final_text.take() {
            Some(t) => t,
            None => self.text,
        };
        (text, usage, self.model)
    }

    fn plain(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn line(&mut self, line: &str) {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(trimmed) else {
            return self.plain(line);
        };
        if !v.is_object() {
            return self.plain(line);
        }
        let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
        if self.session.is_none() {
            let id = match self.format {
                UsageFormat::ClaudeStream | UsageFormat::GeminiStream => v.get("session_id"),
                UsageFormat::CodexJson => v.get("thread_id"),
                UsageFormat::OpencodeJson => v.get("sessionID"),
            };
            self.session = id
                .and_then(Value::as_str)
                .filter(|s| session_id_ok(s))
                .map(str::to_string);
        }
        match self.format {
            UsageFormat::ClaudeStream => self.claude(kind, &v),
            UsageFormat::CodexJson => self.codex(kind, &v),
            UsageFormat::GeminiStream => self.gemini(kind, &v),
            UsageFormat::OpencodeJson => self.opencode(kind, &v),
        }
    }

    fn claude_usage(u: &Value) -> Usage {
        Usage {
            input: n(u, "input_tokens"),
            output: n(u, "output_tokens"),
            cache_read: n(u, "cache_read_input_tokens"),
            cache_write: n(u, "cache_creation_input_tokens"),
        }
    }

    fn claude(&mut self, kind: &str, v: &Value) {
        match kind {
            "system" => {
                if let Some(m) = v.get("model").and_then(Value::as_str) {
                    self.model.get_or_insert_with(|| m.to_string());
                }
            }
            "assistant" => {
                let Some(msg) = v.get("message") else {
                    return;
                };
                if let Some(m) = msg.get("model").and_then(Value::as_str) {
                    self.model = Some(m.to_string());
                }
                for block in msg
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = block.get("text").and_then(Value::as_str) {
                        self.text.push_str(t);
                        self.text.push('\n');
                    }
                }
                if let Some(u) = msg.get("usage") {
                    let id = msg
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let usage = Self::claude_usage(u);
                    match self.by_message.iter_mut().find(|(i, _)| *i == id) {
                        Some((_, old)) => *old = usage,
                        None => self.by_message.push((id, usage)),
                    }
                }
            }
            "result" => {
                if let Some(u) = v.get("usage") {
                    self.final_usage = Some(Self::claude_usage(u));
                }
                if let Some(t) = v.get("result").and_then(Value::as_str) {
                    self.final_text = Some(format!("{t}\n"));
                }
            }
            _ => {}
        }
    }

    fn codex(&mut self, kind: &str, v: &Value) {
        match kind {
            "item.completed" => {
                let item = v.get("item").unwrap_or(&Value::Null);
                if item.get("type").and_then(Value::as_str) == Some("agent_message")
                    && let Some(t) = item.get("text").and_then(Value::as_str)
                {
                    // `codex exec` prints its last message as its answer.
                    self.final_text = Some(format!("{t}\n"));
                }
            }
            "turn.completed" => {
                let u = v.get("usage").unwrap_or(&Value::Null);
                let cached = n(u, "cached_input_tokens");
                self.sum = self.sum.plus(&Usage {
                    input: n(u, "input_tokens").saturating_sub(cached),
                    output: n(u, "output_tokens"),
                    cache_read: cached,
                    cache_write: n(u, "cache_write_input_tokens"),
                });
            }
            "turn.failed" | "error" => {
                let msg = v
                    .pointer("/error/message")
                    .or_else(|| v.get("message"))
                    .and_then(Value::as_str);
                if let Some(m) = msg {
                    self.plain(m);
                }
            }
            _ => {}
        }
    }

    fn gemini(&mut self, kind: &str, v: &Value) {
        match kind {
            "init" => {
                if let Some(m) = v.get("model").and_then(Value::as_str) {
                    self.model = Some(m.to_string());
                }
            }
            "message" if v.get("role").and_then(Value::as_str) == Some("assistant") => {
                if let Some(t) = v.get("content").and_then(Value::as_str) {
                    self.text.push_str(t);
                }
            }
            "result" => {
                let stats = v.get("stats").unwrap_or(&Value::Null);
                let cached = n(stats, "cached");
                self.final_usage = Some(Usage {
                    input: n(stats, "input_tokens").saturating_sub(cached),
                    output: n(stats, "output_tokens"),
                    cache_read: cached,
                    cache_write: 0,
                });
                // The model that did the most work is the one priced.
                if let Some(models) = stats.get("models").and_then(Value::as_object) {
                    let top = models
                        .iter()
                        .max_by_key(|(_, m)| n(m, "total_tokens"))
                        .map(|(k, _)| k.clone());
                    if top.is_some() {
                        self.model = top;
                    }
                }
                if !self.text.ends_with('\n') && !self.text.is_empty() {
                    self.text.push('\n');
                }
                if v.get("status").and_then(Value::as_str) == Some("error")
                    && let Some(m) = v.pointer("/error/message").and_then(Value::as_str)
                {
                    self.plain(m);
                }
            }
            _ => {}
        }
    }

    fn opencode(&mut self, kind: &str, v: &Value) {
        let part = v.get("part").unwrap_or(&Value::Null);
        match kind {
            "text" => {
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    self.text.push_str(t);
                    self.text.push('\n');
                }
            }
            "step_finish" => {
                let t = part.get("tokens").unwrap_or(&Value::Null);
                let cache = t.get("cache").unwrap_or(&Value::Null);
                self.sum = self.sum.plus(&Usage {
                    input: n(t, "input"),
                    output: n(t, "output").saturating_add(n(t, "reasoning")),
                    cache_read: n(cache, "read"),
                    cache_write: n(cache, "write"),
                });
            }
            "error" => {
                let msg = v
                    .pointer("/error/data/message")
                    .or_else(|| v.pointer("/error/message"))
                    .and_then(Value::as_str);
                if let Some(m) = msg {
                    self.plain(m);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(format: UsageFormat, text: &str) -> (String, Usage, Option<String>) {
        let mut m = Meter::new(format);
        // Fed in awkward pieces, as a pipe delivers it.
        for chunk in text.as_bytes().chunks(7) {
            m.feed(chunk);
        }
        m.finish()
    }

    // Lines as the real CLIs printed them against the mock model (trimmed).
    #[test]
    fn claude_stream_json() {
        let out = concat!(
            r#"{"type":"system","subtype":"init","model":"claude-opus-4-8[1m]"}"#,
            "\n",
            r#"{"type":"assistant","message":{"id":"m1","model":"claude-opus-4-8","content":[{"type":"text","text":"hello there"}],"usage":{"input_tokens":10,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}"#,
            "\n",
            r#"{"type":"result","subtype":"success","result":"hello there","usage":{"input_tokens":10,"cache_creation_input_tokens":3,"cache_read_input_tokens":4,"output_tokens":2}}"#,
            "\n",
        );
        let (text, usage, model) = read(UsageFormat::ClaudeStream, out);
        assert_eq!(text, "hello there\n");
        assert_eq!(
            usage,
            Usage {
                input: 10,
                output: 2,
                cache_read: 4,
                cache_write: 3
            }
        );
        assert_eq!(model.as_deref(), Some("claude-opus-4-8"));
    }

    // The first line naming a conversation, as claude 2.1.197, codex 0.171.0, gemini
    // 0.61.0 and opencode 1.18.33 printed it against the mock model.
    #[test]
    fn each_cli_names_the_conversation_a_later_step_resumes() {
        let cases = [
            (
                UsageFormat::ClaudeStream,
                r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"3381d7eb-7d35-4075-ae42-8ced8b9e00e0","tools":[]}"#,
                "3381d7eb-7d35-4075-ae42-8ced8b9e00e0",
            ),
            (
                UsageFormat::CodexJson,
                r#"{"type":"thread.started","thread_id":"01a235b3-395c-7c43-8f18-35a5853ed2e5"}"#,
                "01a235b3-395c-7c43-8f18-35a5853ed2e5",
            ),
            (
                UsageFormat::GeminiStream,
                r#"{"type":"init","timestamp":"2026-12-02T07:41:22.757Z","session_id":"05b3ba0c-994c-458c-8451-dd26880a26f8","model":"auto"}"#,
                "05b3ba0c-994c-458c-8451-dd26880a26f8",
            ),
            (
                UsageFormat::OpencodeJson,
                r#"{"type":"step_start","timestamp":1796197321622,"sessionID":"ses_dca4c1391ffedJ474Ie4F6bMu9","part":{"type":"step-start"}}"#,
                "ses_dca4c1391ffedJ474Ie4F6bMu9",
            ),
        ];
        for (format, line, id) in cases {
            let mut m = Meter::new(format);
            m.feed(line.as_bytes());
            m.feed(b"\n");
            // A later line naming another id does not replace the first.
            m.feed(br#"{"type":"result","session_id":"other","thread_id":"other","sessionID":"other"}"#);
            m.feed(b"\n");
            assert_eq!(m.session(), Some(id), "{format:?}");
        }
        // What could not be an argument is not taken.
        let mut m = Meter::new(UsageFormat::ClaudeStream);
        m.feed(br#"{"type":"system","session_id":"--dangerous; rm -rf /"}"#);
        m.feed(b"\n");
        assert_eq!(m.session(), None);
        assert!(!session_id_ok(""));
    }

    #[test]
    fn claude_usage_grows_while_it_runs() {
        let mut m = Meter::new(UsageFormat::ClaudeStream);
        m.feed(br#"{"type":"assistant","message":{"id":"a","usage":{"input_tokens":100,"output_tokens":5}}}"#);
        m.feed(b"\n");
        m.feed(br#"{"type":"assistant","message":{"id":"a","usage":{"input_tokens":100,"output_tokens":9}}}"#);
        m.feed(b"\n");
        assert_eq!(m.usage().total(), 109, "the same message counts once");
        m.feed(br#"{"type":"assistant","message":{"id":"b","usage":{"input_tokens":50,"output_tokens":1}}}"#);
        m.feed(b"\n");
        assert_eq!(m.usage().total(), 160);
    }

    #[test]
    fn codex_json() {
        let out = concat!(
            r#"{"type":"thread.started","thread_id":"t"}"#,
            "\n",
            r#"{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata not found"}}"#,
            "\n",
            r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"hello codex"}}"#,
            "\n",
            r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":4,"cache_write_input_tokens":0,"output_tokens":2,"reasoning_output_tokens":0}}"#,
            "\n",
        );
        let (text, usage, _) = read(UsageFormat::CodexJson, out);
        assert_eq!(text, "hello codex\n");
        assert_eq!(
            usage,
            Usage {
                input: 6,
                output: 2,
                cache_read: 4,
                cache_write: 0
            }
        );
    }

    #[test]
    fn gemini_stream_json() {
        let out = concat!(
            r#"{"type":"init","session_id":"s","model":"auto"}"#,
            "\n",
            r#"{"type":"message","role":"user","content":"REPLY: hello gemini"}"#,
            "\n",
            r#"{"type":"message","role":"assistant","content":"hello ","delta":true}"#,
            "\n",
            r#"{"type":"message","role":"assistant","content":"gemini","delta":true}"#,
            "\n",
            r#"{"type":"result","status":"success","stats":{"total_tokens":36,"input_tokens":20,"output_tokens":16,"cached":0,"models":{"gemini-3.5-flash-lite":{"total_tokens":23},"gemini-3.8-flash":{"total_tokens":13}}}}"#,
            "\n",
        );
        let (text, usage, model) = read(UsageFormat::GeminiStream, out);
        assert_eq!(text, "hello gemini\n");
        assert_eq!(usage.total(), 36);
        assert_eq!(model.as_deref(), Some("gemini-3.5-flash-lite"));
    }

    #[test]
    fn opencode_json_and_plain_lines_kept() {
        let out = concat!(
            "a warning the CLI printed\n",
            r#"{"type":"step_start","part":{"type":"step-start"}}"#,
            "\n",
            r#"{"type":"text","part":{"type":"text","text":"hello opencode"}}"#,
            "\n",
            r#"{"type":"step_finish","part":{"type":"step-finish","tokens":{"total":13,"input":10,"output":3,"reasoning":1,"cache":{"write":0,"read":2}},"cost":0}}"#,
            "\n",
        );
        let (text, usage, _) = read(UsageFormat::OpencodeJson, out);
        assert_eq!(text, "a warning the CLI printed\nhello opencode\n");
        assert_eq!(
            usage,
            Usage {
                input: 10,
                output: 4,
                cache_read: 2,
                cache_write: 0
            }
        );
    }
}
