//! The messaging commands agents (and people) use during a run: `send`, `inbox`,
//! `agents`, `board`, which talk to the run's socket, and `messages`, which reads a run's
//! `messages.jsonl`.
//!
//! Exit codes: 0 done; 1 the message failed for every recipient (refused, recipient
//! ended) or a board key has no value; 3 bad usage or an unknown recipient; 4 no run is
//! reachable.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, Subcommand};
use relay_messaging::client::{Client, ClientError};
use relay_messaging::model::is_name;
use relay_messaging::persist::{MESSAGES_FILE, read_log};
use relay_messaging::protocol::{ErrorKind, Reply, Request};
use relay_messaging::{AgentState, MessageState, SOCKET_ENV, Target, socket_path};
use relay_spec::printable;

use crate::cwd::workdir;
use crate::error::{CliError, CliResult, Exit};

/// Which run to talk to.
#[derive(Args, Debug)]
pub(crate) struct Endpoint {
    /// The run's socket (default: $AGENT_RELAY_SOCKET, which every agent and step of a
    /// run has).
    #[arg(long, value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
    /// A live run in this directory instead: its id, a unique prefix, or `last`.
    #[arg(long, value_name = "RUN_ID", global = true)]
    run: Option<String>,
}

/// `send` options.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to", "channel", "all"])))]
pub struct SendArgs {
    /// To one agent.
    #[arg(long, value_name = "NAME")]
    to: Option<String>,
    /// To every other member of a channel.
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,
    /// To every other agent of the run.
    #[arg(long)]
    all: bool,
    /// Who sends (default: $AGENT_RELAY_NAME, else the step, else `user`).
    #[arg(long, value_name = "NAME")]
    from: Option<String>,
    /// Print the receipts as JSON.
    #[arg(long)]
    json: bool,
    /// The text (several words are joined with spaces; `-` reads it from stdin).
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
    text: Vec<String>,
    #[command(flatten)]
    endpoint: Endpoint,
}

/// `inbox` options.
#[derive(Args, Debug)]
pub struct InboxArgs {
    /// Wait up to this many seconds for a message when there is none.
    #[arg(long, value_name = "SECONDS")]
    wait: Option<f64>,
    /// Whose inbox (default: $AGENT_RELAY_NAME).
    #[arg(long = "as", value_name = "NAME")]
    agent: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    endpoint: Endpoint,
}

/// `agents` options.
#[derive(Args, Debug)]
pub struct AgentsArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    endpoint: Endpoint,
}

/// `messages` options.
#[derive(Args, Debug)]
pub struct MessagesArgs {
    /// Run id, a unique prefix of one, or `last`.
    run_id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `board` options.
#[derive(Args, Debug)]
pub struct BoardArgs {
    #[command(subcommand)]
    op: BoardOp,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(Subcommand, Debug)]
enum BoardOp {
    /// Print the value under KEY (exit 1 when there is none).
    Get {
        /// The key.
        key: String,
    },
    /// Set KEY to VALUE (several words are joined with spaces).
    Set {
        /// The key.
        key: String,
        /// The value.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        value: Vec<String>,
    },
    /// Print every entry.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl Endpoint {
    /// The socket to use (`--run`, `--socket`, else `$AGENT_RELAY_SOCKET`) and the run
    /// directory, where the run's owner token is kept, when known.
    fn path(&self) -> CliResult<(PathBuf, Option<PathBuf>)> {
        if let Some(id) = &self.run {
            let wd = workdir()?;
            let dir = relay_engine::runs::find_run(&wd, id)?;
            let run_id = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok((socket_path(&dir, &run_id), Some(dir)));
        }
        if let Some(p) = &self.socket {
            return Ok((p.clone(), p.parent().map(Path::to_path_buf)));
        }
        let run_dir = std::env::var_os("AGENT_RELAY_RUN_DIR").map(PathBuf::from);
        match std::env::var_os(SOCKET_ENV) {
            Some(p) if !p.is_empty() => Ok((PathBuf::from(p), run_dir)),
            _ => Err(CliError::runtime(format!(
                "no run to talk to: {SOCKET_ENV} is not set (every agent and step of a run has it; \
                 from elsewhere pass --run RUN_ID or --socket PATH)"
            ))),
        }
    }

    /// The run of the agent or step this runs in ($AGENT_RELAY_SOCKET).
    pub(crate) fn from_env() -> Endpoint {
        Endpoint {
            socket: None,
            run: None,
        }
    }

    /// The live run `run` (an id, a unique prefix, or `last`) of this directory.
    pub(crate) fn for_run(run: String) -> Endpoint {
        Endpoint {
            socket: None,
            run: Some(run),
        }
    }

    /// One request to the run; errors become messages and exit codes.
    pub(crate) fn ask(&self, req: &Request) -> CliResult<Reply> {
        let (path, run_dir) = self.path()?;
        let token = relay_messaging::access::client_token(run_dir.as_deref());
        let reply = Client::connect(&path)
            .map(|c| c.with_token(token))
            .and_then(|mut c| c.request(req))
            .map_err(|e| match e {
                ClientError::Unreachable { .. } => {
                    match self.run.as_ref().zip(run_dir.as_deref()) {
                        Some((id, dir)) => not_live(id, dir, &e),
                        None => CliError::runtime(format!("{e} (is the run still going?)")),
                    }
                }
                e => CliError::runtime(e),
            })?;
        match reply {
            Reply::Error { kind, message } => Err(CliError::new(
                match kind {
                    ErrorKind::UnknownRecipient
                    | ErrorKind::UnknownAgent
                    | ErrorKind::BadRequest
                    | ErrorKind::Unauthorized => Exit::Invalid,
                    ErrorKind::Failed => Exit::Runtime,
                },
                message,
            )),
            r => Ok(r),
        }
    }
}

/// Why the run `id` (in `dir`) named on the command line did not answer: it finished,
/// its coordinator is gone, or (still running) its socket failed.
fn not_live(id: &str, dir: &Path, e: &ClientError) -> CliError {
    use relay_engine::runs::Standing;
    let status = relay_engine::runs::run_info(dir).status;
    let shown = relay_spec::suggest::shown(id);
    match status {
        Standing::Running => CliError::runtime(format!("{e} (is the run still going?)")),
        Standing::Interrupted | Standing::NeedsHuman => CliError::invalid(format!(
            "run `{shown}` is not running ({}): no coordinator is there to ask; \
             `agent-relay resume {shown}` continues it",
            status.as_str()
        )),
        Standing::Completed | Standing::Failed | Standing::Cancelled => CliError::invalid(format!(
            "run `{shown}` already finished ({}); it takes no more requests",
            status.as_str()
        )),
    }
}

pub(crate) fn unexpected(r: &Reply) -> CliError {
    CliError::runtime(format!("unexpected answer from the run: {r:?}"))
}

/// Who this process speaks for: the agent, else the deterministic step, else `user`.
pub(crate) fn me(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_owned)
        .or_else(|| std::env::var("AGENT_RELAY_NAME").ok())
        .or_else(|| std::env::var("AGENT_RELAY_STEP").ok())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "user".to_owned())
}

fn text_of(words: &[String]) -> CliResult<String> {
    if words.len() == 1 && words[0] == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::invalid(format!("cannot read the text from stdin: {e}")))?;
        return Ok(s);
    }
    Ok(words.join(" "))
}

/// `agent-relay send`.
pub fn send(args: SendArgs) -> CliResult {
    let target = match (&args.to, &args.channel, args.all) {
        (Some(n), _, _) => Target::Agent(n.clone()),
        (_, Some(c), _) => Target::Channel(c.trim_start_matches('#').to_owned()),
        _ => Target::Broadcast,
    };
    if let Target::Agent(n) | Target::Channel(n) = &target
        && !is_name(n)
    {
        return Err(CliError::invalid(format!(
            "`{n}` is not a valid name (letters, digits, `-`, `_`, `.`)"
        )));
    }
    let from = me(args.from.as_deref());
    if !is_name(&from) {
        return Err(CliError::invalid(format!(
            "`{from}` is not a valid sender name"
        )));
    }
    let text = text_of(&args.text)?;
    let req = Request::Send {
        from,
        to: target.to_string(),
        text,
    };
    let receipts = match args.endpoint.ask(&req)? {
        Reply::Sent { receipts } => receipts,
        r => return Err(unexpected(&r)),
    };
    if args.json {
        println!("{}", serde_json::to_string(&receipts).unwrap_or_default());
    }
    let mut queued = 0;
    for r in &receipts {
        match r.state {
            MessageState::Failed => eprintln!(
                "message {} to {} failed: {}",
                r.id,
                r.to,
                r.reason.as_deref().unwrap_or("unknown reason")
            ),
            _ => {
                queued += 1;
                if !args.json {
                    println!("sent {} to {}", r.id, r.to);
                }
            }
        }
    }
    // Every copy failed: the reasons are printed above.
    if queued == 0 {
        Err(CliError::reported(Exit::Failed))
    } else {
        Ok(Exit::Success)
    }
}

/// `agent-relay inbox`.
pub fn inbox(args: InboxArgs) -> CliResult {
    let agent = args
        .agent
        .clone()
        .or_else(|| std::env::var("AGENT_RELAY_NAME").ok())
        .filter(|a| !a.is_empty());
    let Some(agent) = agent else {
        return Err(CliError::invalid(
            "whose inbox? AGENT_RELAY_NAME is not set (pass --as NAME)",
        ));
    };
    let wait_ms = match args.wait {
        Some(s) if s.is_finite() && s >= 0.0 => {
            Some(Duration::from_secs_f64(s.min(600.0)).as_millis() as u64)
        }
        Some(_) => return Err(CliError::invalid("--wait takes a number of seconds")),
        None => None,
    };
    let req = Request::Inbox {
        agent,
        wait_ms,
        max: None,
    };
    let messages = match args.endpoint.ask(&req)? {
        Reply::Messages { messages } => messages,
        r => return Err(unexpected(&r)),
    };
    if args.json {
        println!("{}", serde_json::to_string(&messages).unwrap_or_default());
        return Ok(Exit::Success);
    }
    for m in &messages {
        let via = match &m.target {
            Target::Agent(_) => String::new(),
            t => format!(" to {t}"),
        };
        println!(
            "[{}] from {}{via}: {}",
            m.id,
            m.from,
            printable(&m.text).replace('\n', "\n  ")
        );
    }
    Ok(Exit::Success)
}

/// `agent-relay agents`.
pub fn agents(args: AgentsArgs) -> CliResult {
    let (agents, channels, claims) = match args.endpoint.ask(&Request::Agents)? {
        Reply::Agents {
            agents,
            channels,
            claims,
        } => (agents, channels, claims),
        r => return Err(unexpected(&r)),
    };
    if args.json {
        let v = serde_json::json!({"agents": agents, "channels": channels, "claims": claims});
        println!("{v}");
        return Ok(Exit::Success);
    }
    let me = std::env::var("AGENT_RELAY_NAME").unwrap_or_default();
    let width = agents
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    for a in &agents {
        let state = match a.state {
            AgentState::Pending => "pending",
            AgentState::Running => "running",
            AgentState::Ended => "ended",
        };
        let mode = if a.interactive {
            "terminal"
        } else {
            "one-shot"
        };
        let chans: Vec<String> = a.channels.iter().map(|c| format!("#{c}")).collect();
        let held: Vec<&str> = claims
            .iter()
            .filter(|c| c.holder == a.name)
            .map(|c| c.path.as_str())
            .collect();
        println!(
            "{:width$}  {state:7}  {mode:8}  {}{}{}{}",
            a.name,
            a.role
                .as_deref()
                .map(|r| format!("{r}  "))
                .unwrap_or_default(),
            chans.join(" "),
            if held.is_empty() {
                String::new()
            } else {
                format!("  claims {}", held.join(" "))
            },
            if a.name == me { "  (you)" } else { "" },
        );
    }
    // Claims of holders that are not agents of the run (the user, a step).
    for c in claims
        .iter()
        .filter(|c| !agents.iter().any(|a| a.name == c.holder))
    {
        println!("{}  claims {}", c.holder, c.path);
    }
    Ok(Exit::Success)
}

/// `agent-relay board`.
pub fn board(args: BoardArgs) -> CliResult {
    match args.op {
        BoardOp::Get { key } => match args.endpoint.ask(&Request::BoardGet { key })? {
            Reply::Value { entry: Some(e), .. } => {
                println!("{}", e.value);
                Ok(Exit::Success)
            }
            Reply::Value { key, entry: None } => Err(CliError::new(
                Exit::Failed,
                format!("no value for `{key}` on the board"),
            )),
            r => Err(unexpected(&r)),
        },
        BoardOp::Set { key, value } => {
            let req = Request::BoardSet {
                key,
                value: value.join(" "),
                by: Some(me(None)).filter(|n| is_name(n)),
            };
            match args.endpoint.ask(&req)? {
                Reply::Stored { .. } => Ok(Exit::Success),
                r => Err(unexpected(&r)),
            }
        }
        BoardOp::List { json } => match args.endpoint.ask(&Request::BoardList)? {
            Reply::Board { entries } => {
                if json {
                    println!("{}", serde_json::to_string(&entries).unwrap_or_default());
                } else {
                    for (k, e) in &entries {
                        println!(
                            "{} = {} (by {})",
                            printable(k),
                            printable(&e.value).replace('\n', "\n  "),
                            e.by
                        );
                    }
                }
                Ok(Exit::Success)
            }
            r => Err(unexpected(&r)),
        },
    }
}

/// `agent-relay messages RUN_ID`.
pub fn messages(args: MessagesArgs) -> CliResult {
    let wd = workdir()?;
    let dir = relay_engine::runs::find_run(&wd, &args.run_id)?;
    let path = dir.join(MESSAGES_FILE);
    let log = read_log(&path)
        .map_err(|e| CliError::runtime(format!("cannot read {}: {e}", path.display())))?;
    for (line, why) in &log.bad_lines {
        eprintln!("warning: {MESSAGES_FILE} line {line} is unreadable and was skipped ({why})");
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&log.messages).unwrap_or_default()
        );
        return Ok(Exit::Success);
    }
    if log.messages.is_empty() {
        eprintln!("no messages in this run");
    }
    for m in &log.messages {
        let at = relay_engine::rfc3339(UNIX_EPOCH + Duration::from_millis(m.sent_ms));
        let via = match &m.target {
            Some(t @ (Target::Channel(_) | Target::Broadcast)) => format!(" ({t})"),
            _ => String::new(),
        };
        let mut text: String = printable(&m.text).replace('\n', " ⏎ ");
        if text.chars().count() > 60 {
            text = text.chars().take(59).collect::<String>() + "…";
        }
        println!(
            "{:>5}  {}  {:9}  {} -> {}{via}  {text}",
            m.id.to_string(),
            at.get(11..19).unwrap_or(&at),
            m.state.as_str(),
            m.from,
            m.to,
        );
        if let Some(r) = &m.reason {
            println!("       reason: {}", printable(r));
        }
    }
    Ok(Exit::Success)
}

/// `answer` options.
#[derive(Args, Debug)]
pub struct AnswerArgs {
    /// The run: its id, a unique prefix, or `last`.
    pub run_id: String,
    /// The step whose agent asked.
    pub step: String,
    /// The answer (several words are joined with spaces; `-` reads it from stdin).
    #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
    pub text: Vec<String>,
}

/// `agent-relay answer RUN_ID STEP TEXT`: the step's agent gets the answer.
pub fn answer(args: AnswerArgs) -> CliResult {
    let endpoint = Endpoint {
        socket: None,
        run: Some(args.run_id.clone()),
    };
    let text = text_of(&args.text)?;
    match endpoint.ask(&Request::Answer {
        step: args.step,
        text,
    })? {
        Reply::Answered { step } => {
            eprintln!("answered: step `{step}` goes on with it");
            Ok(Exit::Success)
        }
        r => Err(unexpected(&r)),
    }
}

/// `agent-relay unpark RUN_ID`: the run's steps parked on a rate limit start again now.
pub fn unpark(run_id: String) -> CliResult {
    let endpoint = Endpoint {
        socket: None,
        run: Some(run_id),
    };
    match endpoint.ask(&Request::Unpark)? {
        Reply::Unparked { steps } => {
            eprintln!("unparked: {} start again now", steps.join(", "));
            Ok(Exit::Success)
        }
        r => Err(unexpected(&r)),
    }
}

/// The questions of the run in `dir` that wait for an answer: (step, question).
fn open_questions(dir: &Path) -> Vec<(String, String)> {
    use relay_engine::events::EventKind;
    waiting(dir, |kind, open| match kind {
        EventKind::QuestionAsked { step, question } => {
            open.retain(|(s, _)| *s != step);
            open.push((step, question));
        }
        kind => {
            if let Some(step) = kind.closes_question() {
                open.retain(|(s, _)| s != step);
            }
        }
    })
}

/// What waits for a person in the run in `dir`, folded from its events by `apply` (which
/// adds and removes entries by step); nothing once the run has ended.
pub(crate) fn waiting<T>(
    dir: &Path,
    mut apply: impl FnMut(relay_engine::events::EventKind, &mut Vec<(String, T)>),
) -> Vec<(String, T)> {
    use relay_engine::events::EventKind;
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    let mut open: Vec<(String, T)> = Vec::new();
    for e in text
        .lines()
        .filter_map(|l| serde_json::from_str::<relay_engine::events::Event>(l).ok())
    {
        match e.kind {
            EventKind::RunCompleted { .. }
            | EventKind::RunFailed { .. }
            | EventKind::RunCancelled { .. }
            | EventKind::RunNeedsHuman { .. } => open.clear(),
            kind => apply(kind, &mut open),
        }
    }
    open
}

/// The run `run_id` names, or every live run of this directory: (run id, directory).
pub(crate) fn runs_named(run_id: Option<&str>) -> CliResult<Vec<(String, PathBuf)>> {
    let wd = workdir()?;
    let dirs: Vec<PathBuf> = match run_id {
        Some(id) => vec![relay_engine::runs::find_run(&wd, id)?],
        None => relay_engine::runs::list_runs(&wd)
            .into_iter()
            .filter(|r| r.status == relay_engine::runs::Standing::Running)
            .map(|r| r.dir)
            .collect(),
    };
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let run = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (run, dir)
        })
        .collect())
}

/// `agent-relay questions [RUN_ID]`: the questions agents asked that wait for an
/// answer, in one run or in every live run of this directory.
pub fn questions(run_id: Option<String>, json: bool) -> CliResult {
    let mut all = Vec::new();
    for (run, dir) in runs_named(run_id.as_deref())? {
        for (step, question) in open_questions(&dir) {
            all.push(serde_json::json!({"runId": run, "step": step, "question": question}));
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(all));
        return Ok(Exit::Success);
    }
    if all.is_empty() {
        eprintln!("no questions wait for an answer");
    }
    for q in &all {
        println!(
            "{}  {}  {}\n  answer with: agent-relay answer {} {} \"...\"",
            q["runId"].as_str().unwrap_or(""),
            q["step"].as_str().unwrap_or(""),
            printable(q["question"].as_str().unwrap_or("")),
            q["runId"].as_str().unwrap_or(""),
            q["step"].as_str().unwrap_or("")
        );
    }
    Ok(Exit::Success)
}
