//! Finding processes by an environment variable they carry. Every agent of a run carries
//! `AGENT_RELAY_RUN_ID`, so after a coordinator was killed the processes it left behind
//! (agents, their shells, grandchildren) can be found and their groups ended.

use std::collections::BTreeSet;

/// Process groups of live processes (other than this one) whose environment holds
/// `key=value`.
pub fn groups_with_env(key: &str, value: &str) -> BTreeSet<u32> {
    groups_with_envs(&[(key, value)])
}

/// Process groups of live processes (other than this one) whose environment holds every
/// one of `pairs`.
pub fn groups_with_envs(pairs: &[(&str, &str)]) -> BTreeSet<u32> {
    let needles: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let me = std::process::id();
    let mut groups = BTreeSet::new();
    for pid in crate::procfs::pids() {
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let all = needles
            .iter()
            .all(|n| env.split(|b| *b == 0).any(|kv| kv == n.as_bytes()));
        if !all {
            continue;
        }
        if let Some(s) = crate::procfs::stat(pid).filter(|s| s.is_live()) {
            groups.insert(s.pgrp);
        }
    }
    groups
}

/// Ends every process group holding a process with `key=value` in its environment:
/// TERM, up to `grace` for them to go, then KILL. Returns the groups it found.
pub async fn end_groups_with_env(key: &str, value: &str, grace: std::time::Duration) -> Vec<u32> {
    end_groups_with_envs(&[(key, value)], grace).await
}

/// Ends every process group holding a process with all of `pairs` in its environment,
/// as [`end_groups_with_env`] does.
pub async fn end_groups_with_envs(pairs: &[(&str, &str)], grace: std::time::Duration) -> Vec<u32> {
    let own = nix::unistd::getpgrp().as_raw() as u32;
    // Reading /proc is file I/O: off the runtime's threads.
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let found = tokio::task::spawn_blocking(move || {
        let pairs: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        groups_with_envs(&pairs)
    })
    .await
    .unwrap_or_default();
    let groups: Vec<u32> = found.into_iter().filter(|g| *g != own).collect();
    for g in &groups {
        crate::group::signal_group(*g, nix::sys::signal::Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + grace;
    while groups.iter().any(|g| crate::group::group_alive(*g))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for g in &groups {
        crate::group::signal_group(*g, nix::sys::signal::Signal::SIGKILL);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_and_ends_tagged_groups() {
        let tag = format!("scan-{}", std::process::id());
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .env("RELAY_SCAN_TEST", &tag)
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !groups_with_env("RELAY_SCAN_TEST", &tag).contains(&pgid) {
            assert!(
                std::time::Instant::now() < deadline,
                "tagged group not found"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let ended = end_groups_with_env(
            "RELAY_SCAN_TEST",
            &tag,
            std::time::Duration::from_millis(200),
        )
        .await;
        assert_eq!(ended, [pgid]);
        child.wait().await.unwrap();
        assert!(groups_with_env("RELAY_SCAN_TEST", &tag).is_empty());
    }
}
