//! The few operating-system calls std does not offer: terminal raw mode, signal
//! dispositions, `poll(2)` and the core-dump limit.
// The workspace denies `unsafe_code`; these calls have no safe std equivalent, so this one
// module is allowed to make them. Each block only passes valid pointers to local values.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// A terminal switched to raw mode, with the settings to put back.
pub(crate) struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Turns off echo, canonical mode, signal keys and output processing on `fd`, the way
    /// TUI libraries (crossterm, Ink) do, so the program echoes and redraws by itself.
    pub(crate) fn enable(fd: RawFd) -> io::Result<RawMode> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios obtained above.
        unsafe { libc::cfmakeraw(&mut raw) };
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawMode { fd, saved })
    }

    /// Puts the saved settings back; errors are ignored because the terminal may be gone.
    pub(crate) fn restore(&self) {
        // SAFETY: `saved` came from tcgetattr.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

static SIGNAL_PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_exit_signal(_sig: libc::c_int) {
    let fd = SIGNAL_PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Routes SIGTERM and SIGHUP to a pipe so the main loop can restore the terminal and exit
/// cleanly, as a real TUI does. Returns the read end, which becomes readable on a signal.
pub(crate) fn route_exit_signals_to_pipe() -> io::Result<RawFd> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    SIGNAL_PIPE_WRITE.store(fds[1], Ordering::Relaxed);
    for sig in [libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: sigaction is plain data; the handler only calls write(2). No SA_RESTART,
        // so a blocked poll(2) returns at once.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_exit_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = 0;
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(fds[0])
}

/// Ignores SIGTERM and SIGHUP from now on (inherited by children spawned later).
pub(crate) fn ignore_term_signals() {
    for sig in [libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: SIG_IGN is a valid disposition for these signals.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

/// Waits until one of `fds` is readable (or hung up) or `timeout_ms` passes (negative:
/// forever). Returns which descriptors are ready; all false on timeout or interruption.
pub(crate) fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(err);
    }
    Ok(pfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect())
}

/// A `crash` marker must not litter the working directory with core files.
pub(crate) fn disable_core_dumps() {
    let limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) };
}
