//! Finding processes by an environment tag, to prove none were left behind.

use std::fs;
use std::time::{Duration, Instant};

/// Live processes (not zombies) whose environment contains `key=value`.
///
/// Reads `/proc/<pid>/environ`, so it sees only processes this user may inspect, and the
/// environment each process started with. The calling process itself is never listed,
/// so a test may set the tag on itself. A process caught in the middle of `execve` has
/// no environment yet and is missed, so check for leftovers after the spawner is done.
pub fn processes_with_env(key: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{key}={value}").into_bytes();
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == wanted))
        })
        .filter(|&pid| is_alive(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// Waits until no live process carries `key=value`, up to `timeout`; returns the ones
/// still there (empty on success). Killed processes take a moment to disappear.
pub fn wait_for_no_processes_with_env(key: &str, value: &str, timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = processes_with_env(key, value);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True unless the process is gone or a zombie (state `Z`, or `X` for dead).
fn is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name in parentheses may itself contain spaces and parentheses.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn finds_a_tagged_child_until_it_is_reaped() {
        let tag = format!("procs-test-{}", std::process::id());
        let mut child = Command::new("sleep")
            .arg("30")
            .env("RELAY_TESTKIT_TAG", &tag)
            .spawn()
            .unwrap();
        let pid = child.id();
        // Right after spawn the kernel may still be building the new environment block.
        let deadline = Instant::now() + Duration::from_secs(10);
        while processes_with_env("RELAY_TESTKIT_TAG", &tag).is_empty() && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(processes_with_env("RELAY_TESTKIT_TAG", &tag), [pid]);
        assert!(processes_with_env("RELAY_TESTKIT_TAG", "other").is_empty());
        child.kill().unwrap();
        // Killed but not yet waited for: a zombie, which does not count.
        assert!(
            wait_for_no_processes_with_env("RELAY_TESTKIT_TAG", &tag, Duration::from_secs(10))
                .is_empty()
        );
        child.wait().unwrap();
    }
}
