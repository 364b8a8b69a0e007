//! Ending a whole process group: every agent and shell step runs as the leader of its own
//! group, so that its helpers, shells and grandchildren end with it. Signalling only the
//! leader (what `Child::kill` does) would leave those behind as orphans.

use std::time::Duration;

use nix::errno::Errno;
pub use nix::sys::signal::Signal;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;

/// Sends `signal` to the single process `pid` (not its group). A gone process is fine.
pub fn signal_process(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid)
        && raw > 1
    {
        let _ = kill(Pid::from_raw(raw), signal);
    }
}

/// Sends `signal` to every process in group `pgid`. A group that is already gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    if raw <= 1 {
        // Never signal our own group (0) or init's (1) by mistake.
        return;
    }
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::debug!(pgid, %e, "killpg failed"),
    }
}

/// Whether any live process is still in group `pgid`. Zombies do not count: one whose
/// parent died waits for init to reap it, and some container inits never do.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    // The cheap check first; the /proc scan only when something (maybe a zombie) is left.
    raw > 1
        && killpg(Pid::from_raw(raw), None).is_ok()
        && crate::procfs::group_has_live_members(pgid)
}

/// How a group is asked to end: the signals sent first (`HUP`, `TERM`), then `KILL` after
/// `grace` if anything is left.
#[derive(Debug, Clone)]
pub struct EndPolicy {
    /// Signals sent in order before the grace period.
    pub polite: Vec<Signal>,
    /// How long the group gets to exit before `KILL`.
    pub grace: Duration,
}

impl Default for EndPolicy {
    fn default() -> Self {
        EndPolicy {
            polite: vec![Signal::SIGTERM],
            grace: Duration::from_millis(1500),
        }
    }
}

impl EndPolicy {
    /// TERM, then KILL after `grace`.
    pub fn terminate(grace: Duration) -> Self {
        EndPolicy {
            polite: vec![Signal::SIGTERM],
            grace,
        }
    }

    /// The policy for terminal sessions: hang-up first (some CLIs survive it), then TERM.
    pub fn for_session(grace: Duration) -> Self {
        EndPolicy {
            polite: vec![Signal::SIGHUP, Signal::SIGTERM],
            grace,
        }
    }
}

/// Ends the group led by `child`: polite signals, up to `grace` for the leader to exit,
/// then `KILL` to the whole group (stragglers that ignored the polite signals or were
/// left behind by the leader). Returns the leader's exit status.
pub async fn end_child_group(
    child: &mut tokio::process::Child,
    pgid: u32,
    policy: &EndPolicy,
) -> Option<std::process::ExitStatus> {
    for sig in &policy.polite {
        signal_group(pgid, *sig);
    }
    let status = match tokio::time::timeout(policy.grace, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => None,
    };
    signal_group(pgid, Signal::SIGKILL);
    let status = match status {
        Some(s) => Some(s),
        None => child.wait().await.ok(),
    };
    wait_gone(pgid, Duration::from_secs(1)).await;
    status
}

/// After a leader exited on its own, makes sure nothing it started lives on in its group:
/// TERM, a short grace while any member remains, then KILL.
pub async fn reap_leftovers(pgid: u32, grace: Duration) {
    if !group_alive(pgid) {
        return;
    }
    signal_group(pgid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal_group(pgid, Signal::SIGKILL);
    wait_gone(pgid, Duration::from_secs(1)).await;
}

/// Waits (bounded) until nothing live is left in group `pgid`: a KILL is delivered
/// asynchronously, so a process can look alive for a moment after it was sent.
pub async fn wait_gone(pgid: u32, at_most: Duration) {
    let deadline = tokio::time::Instant::now() + at_most;
    while group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
