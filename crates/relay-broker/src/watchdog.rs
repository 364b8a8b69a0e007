//! A run's watchdog, so agents die with their coordinator: a small process in a group of
//! its own, holding the read end of a pipe whose write end only the coordinator has. When
//! the coordinator ends normally it writes `done` first; when it dies any other way
//! (`kill -9`, an abort) the pipe closes with nothing written, and the watchdog ends every
//! process group that carries the run's id. Nothing polls: the end of the pipe is the
//! signal, at once.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::procscan::end_groups_with_envs;

/// The environment variable every process of a run carries.
pub const RUN_ID_ENV: &str = "AGENT_RELAY_RUN_ID";

/// The environment variable naming the coordinator (its pid) that started a process: a
/// run resumed by another coordinator has the same id, and its agents are not the dead
/// one's to end.
pub const COORDINATOR_ENV: &str = "AGENT_RELAY_COORDINATOR";

/// What the coordinator writes before it closes the pipe on a normal end.
const DONE: &[u8] = b"done\n";

/// The coordinator's side of a watchdog.
#[derive(Debug)]
pub struct Watchdog {
    pipe: Option<std::fs::File>,
}

impl Watchdog {
    /// Starts `program watchdog --run-id RUN_ID --coordinator PID --grace-ms N` watching
    /// this process.
    pub fn start(program: &Path, run_id: &str, grace: Duration) -> std::io::Result<Watchdog> {
        // Close-on-exec: an agent that inherited the write end would keep the pipe open
        // and the watchdog blind.
        let (read, write): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg("watchdog")
            .arg("--run-id")
            .arg(run_id)
            .arg("--coordinator")
            .arg(std::process::id().to_string())
            .arg("--grace-ms")
            .arg(grace.as_millis().to_string())
            .env_remove(RUN_ID_ENV)
            .env_remove(COORDINATOR_ENV)
            .stdin(Stdio::from(read))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: Ctrl+C to the terminal's group must not reach it.
            .process_group(0)
            .kill_on_drop(false);
        // The child is not waited for here; tokio reaps it when it exits.
        cmd.spawn()?;
        Ok(Watchdog {
            pipe: Some(std::fs::File::from(write)),
        })
    }

    /// The coordinator ends normally: the watchdog leaves everything as it is and exits.
    pub fn disarm(mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(DONE);
        }
    }
}

/// The watchdog's side: waits until the coordinator's pipe (`input`) closes; unless the
/// coordinator said `done`, ends every process group that coordinator (`coordinator`,
/// its pid) started for run `run_id` (TERM, `grace`, KILL). Returns whether it had to.
pub async fn watch(
    mut input: impl Read + Send + 'static,
    run_id: &str,
    coordinator: u32,
    grace: Duration,
) -> bool {
    let said = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        let _ = input.read_to_end(&mut buf);
        buf
    })
    .await
    .unwrap_or_default();
    if said == DONE {
        return false;
    }
    let pid = coordinator.to_string();
    end_groups_with_envs(&[(RUN_ID_ENV, run_id), (COORDINATOR_ENV, &pid)], grace).await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_pipe_ends_the_run_but_done_does_not() {
        let tag = format!("watch-{}", std::process::id());
        let mut agent = tokio::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .env(RUN_ID_ENV, &tag)
            .env(COORDINATOR_ENV, "4242")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = agent.id().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !crate::procscan::groups_with_env(RUN_ID_ENV, &tag).contains(&pgid) {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!watch(DONE, &tag, 4242, Duration::from_millis(200)).await);
        assert!(crate::group::group_alive(pgid), "done leaves agents alone");
        watch(&b""[..], &tag, 999_999, Duration::from_millis(200)).await;
        assert!(
            crate::group::group_alive(pgid),
            "another coordinator's agents are left alone"
        );
        assert!(watch(&b""[..], &tag, 4242, Duration::from_millis(200)).await);
        agent.wait().await.unwrap();
        assert!(!crate::group::group_alive(pgid));
    }
}
