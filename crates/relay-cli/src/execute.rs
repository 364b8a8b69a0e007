//! Executing a run on this machine: the working directory, the async runtime, the
//! launcher, signals (Ctrl+C, TERM and HUP cancel), the progress view and the summary,
//! and the exit code the outcome means.

pub use crate::cwd::workdir;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use relay_broker::AnyLauncher;
use relay_engine::{Checked, RunRequest, Settings};
use tokio_util::sync::CancellationToken;

use crate::error::{CliError, CliResult, Exit};
use crate::progress;

/// How the outcome of a run is shown.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON summary on stdout.
    pub json: bool,
    /// Only the final summary on stderr.
    pub quiet: bool,
    /// Every event as a JSON line on stdout (`--events-json`).
    pub events_json: bool,
}

/// A run to execute.
pub struct Job {
    /// The workflow file, validated, and which workflow.
    pub checked: Checked,
    /// Variables.
    pub vars: BTreeMap<String, String>,
    /// Rehearsal agents.
    pub rehearse: bool,
    /// Start agents whose permissions cannot all be enforced.
    pub allow_unenforced: bool,
    /// What it takes over from an earlier run.
    pub resume: Option<relay_engine::ResumeFrom>,
    /// Where runs are kept.
    pub workdir: PathBuf,
    /// Serve the dashboard on this port (0: any free one) while the run goes.
    pub dashboard: Option<u16>,
    /// Attempts go to workers through this NATS server; `None`: all run here.
    pub nats: Option<relay_nats::RunDispatch>,
}

/// The single-threaded async runtime the commands run on (agents' terminals are read by
/// threads of their own, so one thread is enough for the coordinator).
pub fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::runtime(format!("cannot start the async runtime: {e}")))
}

/// The launcher agents run through: `AGENT_RELAY_LAUNCHER` picks another than the local
/// one (`roundtrip`: every value through JSON, as a launcher on another machine sees it).
fn launcher() -> CliResult<AnyLauncher> {
    let name = std::env::var("AGENT_RELAY_LAUNCHER").unwrap_or_default();
    AnyLauncher::named(&name).ok_or_else(|| {
        CliError::invalid(format!(
            "AGENT_RELAY_LAUNCHER=`{name}` names no launcher (local, roundtrip)"
        ))
    })
}

/// Runs `job` on the local machine and turns the outcome into output and an exit code.
pub fn execute(job: Job, out: Output) -> CliResult {
    let rt = runtime()?;
    let launcher = Arc::new(launcher()?);
    rt.block_on(async move {
        let cancel = CancellationToken::new();
        spawn_signal_handlers(cancel.clone());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // A person at the terminal decides approvals there (not when the output is JSON).
        let rx = crate::prompt::tee(rx, !out.json && !out.events_json);
        let (rx, events_writer) = if out.events_json {
            let (rx, w) = crate::events_out::tee(rx);
            (rx, Some(w))
        } else {
            (rx, None)
        };
        let (rx, dashboard) = match job.dashboard {
            Some(port) => {
                let (rx, stop, stopped) = start_dashboard(port, job.workdir.clone(), rx).await?;
                (rx, Some((stop, stopped)))
            }
            None => (rx, None),
        };
        let view = progress::spawn(rx, progress::Mode::pick(out.quiet));
        let req = RunRequest {
            checked: job.checked,
            vars: job.vars,
            workdir: job.workdir.clone(),
            self_bin: crate::self_bin(),
            rehearse: job.rehearse,
            allow_unenforced: job.allow_unenforced,
            settings: Settings::from_env(),
            observer: Some(tx),
            cancel,
            resume: job.resume,
        };
        let result = match &job.nats {
            None => relay_engine::run(launcher, req).await,
            Some(n) => match n.connect(job.workdir.clone()).await {
                Ok(l) => relay_engine::run(Arc::new(l), req).await,
                Err(e) => {
                    drop(req);
                    let _ = view.await;
                    return Err(e.into());
                }
            },
        };
        let _ = view.await;
        if let Some(w) = events_writer {
            w.finish().await;
        }
        if let Some((stop, stopped)) = dashboard {
            stop.cancel();
            // Open pages get the run's end before the dashboard goes; a page that does
            // not let go does not hold the exit up for long.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), stopped).await;
        }
        let summary = result?;
        progress::print_summary(&summary);
        if out.json {
            match serde_json::to_string(&summary) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: cannot encode the summary: {e}"),
            }
        }
        Ok(Exit::of_run(&summary))
    })
}

/// Starts the dashboard and prints its URL; once the run has an id, prints its page's URL
/// too. The dashboard gets a thread and a runtime of its own (`dashboard`, its blocking
/// looks too): a watching page never holds up the run's loop, and what it costs can be
/// told apart. It stops with the token returned (the receiver says when it has), or with
/// the process.
async fn start_dashboard(
    port: u16,
    workdir: PathBuf,
    mut events: tokio::sync::mpsc::UnboundedReceiver<relay_engine::events::Event>,
) -> CliResult<(
    tokio::sync::mpsc::UnboundedReceiver<relay_engine::events::Event>,
    CancellationToken,
    tokio::sync::oneshot::Receiver<()>,
)> {
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("dashboard")
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(CliError::runtime(format!(
                        "cannot start the dashboard's runtime: {e}"
                    ))));
                    return;
                }
            };
            rt.block_on(async move {
                match crate::dashboard::bind(port, workdir).await {
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                    Ok(listening) => {
                        let _ = ready_tx.send(Ok((listening.addr(), listening.token().clone())));
                        if let Err(e) = listening.serve(shutdown.cancelled_owned()).await {
                            eprintln!("warning: {e}");
                        }
                        let _ = stopped_tx.send(());
                    }
                }
            });
        })
        .map_err(|e| CliError::runtime(format!("cannot start the dashboard's thread: {e}")))?;
    let (addr, token) = ready_rx
        .await
        .map_err(|_| CliError::runtime("the dashboard stopped before it listened"))??;
    eprintln!("dashboard: {}", relay_dashboard::url(addr, &token, "/"));
    let page_of = move |id: &str| relay_dashboard::url(addr, &token, &format!("/runs/{id}"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if let relay_engine::events::EventKind::RunStarted { run_id, .. } = &e.kind {
                eprintln!("dashboard of this run: {}", page_of(run_id));
            }
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    Ok((rx, stop, stopped_rx))
}

/// Ctrl+C, TERM and HUP cancel the run; the engine ends every agent group before exiting.
/// A file-size limit (the nearest thing to a full disk) must fail writes with an error the
/// engine reports, not kill the coordinator, so SIGXFSZ gets a handler too.
fn spawn_signal_handlers(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    if let Ok(mut xfsz) = signal(SignalKind::from_raw(libc::SIGXFSZ)) {
        tokio::spawn(async move { while xfsz.recv().await.is_some() {} });
    }
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        let cancel = cancel.clone();
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move {
                if s.recv().await.is_some() {
                    cancel.cancel();
                }
            });
        }
    }
}
