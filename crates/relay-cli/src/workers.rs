//! Workers on other machines: `agent-relay worker` (take step attempts from a NATS
//! server and run them here), `agent-relay workers` (list them), and the `--nats` options
//! of `run` (dispatch a run's attempts to them).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use relay_nats::{NatsUrl, RunDispatch, Timing, WorkerOptions};
use tokio_util::sync::CancellationToken;

use crate::error::{CliError, CliResult, Exit};

/// How a run reaches its workers (`run --nats URL`).
#[derive(Args, Debug, Default, Clone)]
pub struct NatsArgs {
    /// Dispatch agent steps to workers through this NATS server (JetStream). Credentials
    /// may be in the URL (`nats://user:pass@host:4222`, `nats://token@host`); they are
    /// never printed.
    #[arg(long, value_name = "URL", env = relay_nats::NATS_ENV, hide_env_values = true)]
    pub nats: Option<String>,
    /// Labels the worker of an agent must carry (repeatable).
    #[arg(long = "place", value_name = "AGENT:KEY=VALUE")]
    pub place: Vec<String>,
    /// Run deterministic steps on workers offering a shell too, not on this machine.
    #[arg(long)]
    pub commands_on_workers: bool,
}

impl NatsArgs {
    /// The options as given by `AGENT_RELAY_NATS` alone (for `resume`).
    pub fn from_env() -> NatsArgs {
        NatsArgs {
            nats: std::env::var(relay_nats::NATS_ENV)
                .ok()
                .filter(|v| !v.trim().is_empty()),
            ..NatsArgs::default()
        }
    }

    /// `None` when the run stays on this machine. The server is `--nats` (or
    /// `AGENT_RELAY_NATS`), else the file's `swarm.workers`; placements are the file's
    /// `agents[].placement.labels`, each `--place` adding to or replacing one.
    pub fn resolve(&self, file: &relay_spec::RelayFile) -> CliResult<Option<RunDispatch>> {
        let from_file = file.swarm.as_ref().and_then(|s| s.workers.as_deref());
        let Some(url) = self.nats.as_deref().or(from_file) else {
            if !self.place.is_empty() || self.commands_on_workers {
                return Err(CliError::invalid(
                    "--place and --commands-on-workers need workers: give --nats URL, \
                     AGENT_RELAY_NATS or swarm.workers",
                ));
            }
            let placed: Vec<&str> = file
                .agents
                .iter()
                .filter(|a| a.placement.as_ref().is_some_and(|p| !p.labels.is_empty()))
                .map(|a| a.name.as_str())
                .collect();
            if !placed.is_empty() {
                eprintln!(
                    "warning: placement of {} has no effect: this run dispatches to no workers \
                     (give --nats URL, AGENT_RELAY_NATS or swarm.workers)",
                    placed.join(", ")
                );
            }
            return Ok(None);
        };
        let url = NatsUrl::parse(url).map_err(CliError::from)?;
        refuse_worktrees(file)?;
        let mut placement: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for a in &file.agents {
            if let Some(p) = &a.placement
                && !p.labels.is_empty()
            {
                placement.insert(a.name.clone(), p.labels.clone());
            }
        }
        for p in &self.place {
            let (agent, k, v) = relay_nats::caps::parse_placement(p).map_err(CliError::invalid)?;
            if !file.agents.iter().any(|a| a.name == agent) {
                return Err(CliError::invalid(format!(
                    "--place {p}: the workflow has no agent `{agent}`"
                )));
            }
            placement.entry(agent).or_default().insert(k, v);
        }
        Ok(Some(RunDispatch {
            url,
            placement,
            commands_on_workers: self.commands_on_workers,
            timing: Timing::from_env(),
        }))
    }
}

/// Agents with git worktrees of their own cannot run on workers: a worktree is made,
/// committed and merged on the coordinator's disk, while the agent would work in the
/// worker's copy of the project, so its changes would never reach the run's branch.
fn refuse_worktrees(file: &relay_spec::RelayFile) -> CliResult<()> {
    let agents: Vec<&str> = file.worktree_agents().map(|a| a.name.as_str()).collect();
    if agents.is_empty() {
        return Ok(());
    }
    Err(CliError::invalid(format!(
        "{} {} in a git worktree of {} own (swarm.worktrees: per-agent, or worktree: true), \
         which workers over NATS do not support: the worktree, its commits and merges are on \
         this machine while the agent would run on another. Run without --nats \
         (AGENT_RELAY_NATS, swarm.workers), or give {} `worktree: false`",
        if agents.len() == 1 { "agent" } else { "agents" },
        agents
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ")
            + if agents.len() == 1 { " works" } else { " work" },
        if agents.len() == 1 { "its" } else { "their" },
        if agents.len() == 1 { "it" } else { "them" },
    )))
}

/// `worker` options.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The NATS server (JetStream enabled) coordinators dispatch through.
    #[arg(long, value_name = "URL", env = relay_nats::NATS_ENV, hide_env_values = true)]
    pub nats: String,
    /// This worker's name, unique among the workers (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Attempts run at once.
    #[arg(long, default_value_t = 2)]
    pub capacity: u32,
    /// A label placements can ask for (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// The working directory the coordinator's project maps to (default: this one).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Take no deterministic steps (shell commands), only agents.
    #[arg(long)]
    pub no_shell: bool,
}

/// `agent-relay worker`.
pub fn worker(args: WorkerArgs) -> CliResult {
    let url = NatsUrl::parse(&args.nats).map_err(CliError::from)?;
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let (k, v) = relay_nats::caps::parse_label(l).map_err(CliError::invalid)?;
        labels.insert(k, v);
    }
    let dir = match args.dir {
        Some(d) => d,
        None => crate::execute::workdir()?,
    };
    let dir = dir
        .canonicalize()
        .map_err(|e| CliError::invalid(format!("--dir {}: {e}", dir.display())))?;
    let name = args.name.unwrap_or_else(relay_nats::worker::default_name);
    if let Some(why) = relay_nats::worker::bad_name(&name) {
        return Err(CliError::invalid(format!("--name {name:?} {why}")));
    }
    if args.capacity == 0 {
        return Err(CliError::invalid("--capacity must be at least 1"));
    }
    let opts = WorkerOptions {
        name,
        capacity: args.capacity,
        labels,
        shell: !args.no_shell,
        workdir: dir,
        self_bin: crate::self_bin(),
        kill_grace: relay_engine::Settings::from_env().kill_grace,
        timing: Timing::from_env(),
    };
    let rt = crate::execute::runtime()?;
    rt.block_on(async move {
        let stop = CancellationToken::new();
        for kind in [
            tokio::signal::unix::SignalKind::interrupt(),
            tokio::signal::unix::SignalKind::terminate(),
            tokio::signal::unix::SignalKind::hangup(),
        ] {
            let stop = stop.clone();
            if let Ok(mut s) = tokio::signal::unix::signal(kind) {
                tokio::spawn(async move {
                    if s.recv().await.is_some() {
                        stop.cancel();
                    }
                });
            }
        }
        let (name, capacity) = (opts.name.clone(), opts.capacity);
        relay_nats::serve(&url, opts, stop, |offer| {
            let clis = if offer.clis.is_empty() {
                "no agent CLI".to_owned()
            } else {
                offer.clis.join(", ")
            };
            let labels = offer.labels_text();
            eprintln!(
                "worker `{name}` taking attempts from {url} (capacity {capacity}; {clis}{}{})",
                if offer.shell { "; shell" } else { "" },
                if labels.is_empty() {
                    String::new()
                } else {
                    format!("; labels {labels}")
                }
            );
        })
        .await
        .map_err(CliError::from)?;
        Ok(Exit::Success)
    })
}

/// `workers` options.
#[derive(Args, Debug)]
pub struct WorkersArgs {
    /// The NATS server the workers take attempts from.
    #[arg(long, value_name = "URL", env = relay_nats::NATS_ENV, hide_env_values = true)]
    pub nats: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for answers, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub wait_ms: u64,
}

/// `agent-relay workers`.
pub fn workers(args: WorkersArgs) -> CliResult {
    let url = NatsUrl::parse(&args.nats).map_err(CliError::from)?;
    let rt = crate::execute::runtime()?;
    rt.block_on(async move {
        let client = url
            .connect("agent-relay workers")
            .await
            .map_err(CliError::from)?;
        let list = relay_nats::status::list(&client, Duration::from_millis(args.wait_ms)).await;
        if args.json {
            println!("{}", serde_json::to_string(&list).unwrap_or_default());
            return Ok(Exit::Success);
        }
        if list.is_empty() {
            println!("no workers answered");
            return Ok(Exit::Success);
        }
        for w in &list {
            let labels = w.offer.labels_text();
            println!(
                "{}  {}/{} free  host {} pid {}  clis: {}{}  labels: {}",
                w.name,
                w.free,
                w.capacity,
                w.host,
                w.pid,
                if w.offer.clis.is_empty() {
                    "-".to_string()
                } else {
                    w.offer.clis.join(",")
                },
                if w.offer.shell { " +shell" } else { "" },
                if labels.is_empty() {
                    "-".to_string()
                } else {
                    labels
                },
            );
            for r in &w.running {
                println!(
                    "    {} step {} (attempt {}, token {}, running {} ms, lease {} ms left)",
                    r.run, r.step, r.attempt, r.token, r.age_ms, r.lease_left_ms
                );
            }
        }
        Ok(Exit::Success)
    })
}
