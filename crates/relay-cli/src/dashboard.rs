//! `agent-relay serve` and `run --dashboard`: the web dashboard (crate
//! `relay-dashboard`) on 127.0.0.1, its URL with the access token printed for the user.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use relay_dashboard::{Config, Listening, Token};

use crate::error::{CliError, CliResult, Exit};

/// `serve` options.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (default: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Open the dashboard in the default browser.
    #[arg(long)]
    pub open: bool,
}

/// The shortest time between two looks of a live page (`AGENT_RELAY_DASHBOARD_INTERVAL_MS`,
/// default 250): a burst of writes to a run's files is one look.
fn interval() -> Duration {
    let ms = std::env::var("AGENT_RELAY_DASHBOARD_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .unwrap_or(250);
    Duration::from_millis(ms.min(60_000))
}

/// Binds the dashboard for the runs of the working directory.
pub async fn bind(port: u16, workdir: PathBuf) -> CliResult<Listening> {
    let settings = relay_engine::Settings::from_env();
    let token = match std::env::var("AGENT_RELAY_DASHBOARD_TOKEN") {
        Ok(v) if !v.is_empty() => Token::from_value(&v).ok_or_else(|| {
            CliError::invalid("AGENT_RELAY_DASHBOARD_TOKEN must be at least 16 letters and digits")
        })?,
        _ => Token::generate()
            .map_err(|e| CliError::runtime(format!("cannot make an access token: {e}")))?,
    };
    let config = Config {
        workdir,
        token,
        kill_grace: settings.kill_grace,
        pty_size: settings.pty_size,
        interval: interval(),
        user: crate::steer::user(None),
    };
    Listening::bind(port, config)
        .await
        .map_err(CliError::runtime)
}

/// Opens `url` in the desktop's browser, if there is a desktop.
fn open_browser(url: &str) {
    let tried = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if tried.is_err() {
        eprintln!("cannot open a browser here (no xdg-open); open the URL above yourself");
    }
}

/// `agent-relay serve`: serves the runs of `workdir` until Ctrl+C or TERM.
pub fn serve(args: ServeArgs, rt: tokio::runtime::Runtime, workdir: PathBuf) -> CliResult {
    rt.block_on(async {
        let listening = bind(args.port, workdir.clone()).await?;
        let url = listening.url("/");
        println!("{url}");
        eprintln!(
            "dashboard of the runs in {} (Ctrl+C stops it)",
            workdir.display()
        );
        if args.open {
            open_browser(&url);
        }
        let stop = async {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(mut i), Ok(mut t)) => {
                    tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} }
                }
                _ => std::future::pending().await,
            }
        };
        listening.serve(stop).await.map_err(CliError::runtime)?;
        Ok(Exit::Success)
    })
}
