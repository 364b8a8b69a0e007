//! Agents and processes: the per-CLI argv table, spawning agents as subprocesses or PTY
//! sessions, each in its own process group, ending whole groups.

pub mod cli_table;
pub mod group;
mod launcher;
pub mod process;
pub mod procfs;
pub mod procscan;
pub mod ratelimit;
pub mod sandbox;
pub mod session;
pub mod usage;
pub mod watchdog;

pub use launcher::{AnyLauncher, Launcher, LocalLauncher, RoundTrip};
