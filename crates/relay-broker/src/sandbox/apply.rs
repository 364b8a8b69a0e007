//! The kernel side: probing the Landlock ABI, building the ruleset before fork, and the
//! restriction itself, which runs in the child between fork and exec (or in the thread a
//! terminal session is forked from) and so makes only async-signal-safe system calls.
// The workspace denies `unsafe_code`; the probe and the restriction are raw system calls
// with no safe equivalent (the `landlock` crate's own restriction allocates, which a
// forked child of a multi-threaded process must not do). Each block passes only plain
// integers and a null pointer.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use landlock::{
    AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr,
};

use super::compile::Rights;
use super::resolve::Resolved;

const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// The kernel's Landlock ABI; 0 without Landlock.
pub(super) fn kernel_abi() -> u32 {
    // SAFETY: asking for the version passes no attribute (null, size 0); nothing is
    // written or kept.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(v).unwrap_or(0)
}

/// A ruleset built on this machine, ready for a child to restrict itself with, and the
/// private temp directory the child gets (removed when this is dropped: keep it for as
/// long as the child runs).
#[derive(Debug)]
pub struct Prepared {
    fd: OwnedFd,
    /// Rules on paths and ports it holds.
    pub rules: usize,
    tmp: Option<PrivateTmp>,
}

/// A temp directory of one sandboxed child (`TMPDIR`), so it can make temp files even
/// when the system's temp directory is on the way to a protected project.
#[derive(Debug)]
pub(super) struct PrivateTmp(std::path::PathBuf);

impl PrivateTmp {
    /// A new private directory under the system's temp directory. A name already taken
    /// (left by a killed coordinator whose pid this process reuses, or made by anyone
    /// else) is never reused: the next number is tried.
    pub(super) fn create() -> std::io::Result<PrivateTmp> {
        use std::os::unix::fs::DirBuilderExt;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut last = None;
        for _ in 0..64 {
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("agent-relay-tmp-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(PrivateTmp(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free temp directory name")))
    }

    /// Its path.
    pub(super) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Prepared {
    /// The ruleset's descriptor, for [`restrict_current_thread`] in the child. It is
    /// close-on-exec: the agent never holds it.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Environment the child needs on top of its own (`TMPDIR`).
    pub fn env(&self) -> Vec<(String, String)> {
        self.tmp
            .iter()
            .map(|t| ("TMPDIR".to_string(), t.path().display().to_string()))
            .collect()
    }
}

/// Builds the ruleset for `resolved` with `rules`, handling only what `abi` supports.
pub(super) fn build(
    resolved: &Resolved,
    rules: &[(std::path::PathBuf, Rights)],
    abi: u32,
    tmp: Option<PrivateTmp>,
) -> Result<Prepared, String> {
    let mut p = build_ruleset(resolved, rules, abi)?.ok_or("the kernel gave no ruleset")?;
    p.tmp = tmp;
    Ok(p)
}

fn build_ruleset(
    resolved: &Resolved,
    rules: &[(std::path::PathBuf, Rights)],
    abi: u32,
) -> Result<Option<Prepared>, String> {
    let err = |e: landlock::RulesetError| e.to_string();
    let supported = super::resolve::supported(abi);
    let handled = resolved.handled_fs & supported;
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    if !handled.is_empty() {
        ruleset = ruleset.handle_access(handled).map_err(err)?;
    }
    let ports = resolved.tcp_connect.as_ref().filter(|_| abi >= 4);
    if ports.is_some() {
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp).map_err(err)?;
    }
    let mut created = ruleset.create().map_err(err)?;
    let mut count = 0;
    let all: Vec<&(std::path::PathBuf, Rights)> =
        rules.iter().chain(resolved.additive.iter()).collect();
    for (path, rights) in all {
        let r = *rights & handled;
        if r.is_empty() {
            continue;
        }
        // A path that vanished since it was resolved simply gets no rule.
        let Ok(fd) = PathFd::new(path) else {
            continue;
        };
        created = created
            .add_rule(PathBeneath::new(fd, r))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        count += 1;
    }
    for port in ports.into_iter().flatten() {
        created = created
            .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
            .map_err(err)?;
        count += 1;
    }
    let fd: Option<OwnedFd> = created.into();
    Ok(fd.map(|fd| Prepared {
        fd,
        rules: count,
        tmp: None,
    }))
}

/// Restricts the calling thread (and what it forks and executes afterwards) with the
/// ruleset `fd`: `no_new_privs`, then `landlock_restrict_self`. Only two system calls,
/// no allocation: safe between fork and exec.
pub(crate) fn restrict_current_thread(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments; it changes only this thread's credentials.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a Landlock ruleset descriptor kept open by the parent's `Prepared`;
    // flags 0.
    if unsafe { libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `cmd`'s child restrict itself with `prepared` between fork and exec.
pub(crate) fn confine(cmd: &mut tokio::process::Command, prepared: &Prepared) {
    let fd = prepared.raw_fd();
    // SAFETY: the closure runs in the forked child before exec and makes only the two
    // async-signal-safe system calls of `restrict_current_thread`; `prepared` (and so the
    // descriptor) outlives the spawn in the parent.
    unsafe {
        cmd.pre_exec(move || restrict_current_thread(fd));
    }
}

/// Runs `spawn` on a thread of its own that first restricted itself with `prepared`, so
/// that what `spawn` forks inherits the restriction (for spawners whose `pre_exec` is their
/// own, like the terminal's). The thread ends with `spawn`; the rest of the process is
/// never restricted.
pub(crate) fn spawn_confined<T: Send>(
    prepared: &Prepared,
    spawn: impl FnOnce() -> T + Send,
) -> std::io::Result<T> {
    let fd = prepared.raw_fd();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("sandboxed-spawn".into())
            .spawn_scoped(s, move || {
                restrict_current_thread(fd)?;
                Ok(spawn())
            })?
            .join()
            .map_err(|_| std::io::Error::other("the spawning thread panicked"))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_directory_name_left_behind_is_never_reused() {
        // What a coordinator killed with this pid would have left: the first names.
        let pid = std::process::id();
        let left: Vec<std::path::PathBuf> = (0..16)
            .map(|n| std::env::temp_dir().join(format!("agent-relay-tmp-{pid}-{n}")))
            .collect();
        for d in &left {
            let _ = std::fs::create_dir(d);
        }
        let tmp = PrivateTmp::create().expect("a free name");
        assert!(!left.iter().any(|d| d == tmp.path()), "{:?}", tmp.path());
        assert!(tmp.path().is_dir());
        for d in &left {
            let _ = std::fs::remove_dir(d);
        }
    }
}
