//! Reading `/proc`: process state, group and start time, and listing processes. Zombies
//! must be told apart from live processes because some container init processes never
//! reap orphans, so a killed grandchild can linger as a zombie in its group for ever.

use std::fs;

/// Fields of `/proc/<pid>/stat` this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Run state (`R`, `S`, `Z`, ...).
    pub state: char,
    /// Process group.
    pub pgrp: u32,
    /// Start time in clock ticks since boot.
    pub start: u64,
}

impl Stat {
    /// Whether the process is running or could run (not a zombie or dead).
    pub fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// Parses the text of `/proc/<pid>/stat`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    // The command name in parentheses may itself hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): pgrp is field 5, starttime field 22.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// The stat of `pid`, if it exists.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every pid in `/proc`.
pub fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether any live (non-zombie) process is in group `pgid`.
pub fn group_has_live_members(pgid: u32) -> bool {
    pids()
        .into_iter()
        .any(|pid| stat(pid).is_some_and(|s| s.pgrp == pgid && s.is_live()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_parsed_past_odd_command_names() {
        let stat = "4242 (a (b) c) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 3 4 20 0 1 0 987654 0";
        let s = parse_stat(stat).unwrap();
        assert_eq!((s.state, s.pgrp, s.start), ('S', 4240, 987654));
        assert!(s.is_live());
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn our_own_group_is_alive_and_a_free_one_is_not() {
        let me = u32::try_from(nix::unistd::getpgrp().as_raw()).unwrap_or(0);
        assert!(group_has_live_members(me));
        assert!(!group_has_live_members(u32::MAX - 7));
        assert!(stat(std::process::id()).is_some_and(|s| s.start > 0));
    }
}
