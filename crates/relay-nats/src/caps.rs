//! What an attempt needs and what a worker offers. An attempt needs an agent CLI (or a
//! shell, for deterministic steps) and the labels of its agent's placement; a worker
//! offers the CLIs installed on its PATH, a shell unless told not to, and its labels.
//! Each distinct need is one work queue, named from a hash of the need, so every worker
//! able to meet it pulls from the same queue.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an attempt needs of the worker that runs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Need {
    /// The program of the agent CLI (`claude`); `None` for a shell command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli: Option<String>,
    /// Labels the worker must carry, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Need {
    /// The canonical text of the need (keys sorted): the queue's description.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The name of the need's queue: `q-` and a stable hash of its canonical text.
    pub fn queue(&self) -> String {
        format!("q-{:016x}", fnv1a(self.canonical().as_bytes()))
    }

    /// Reads a queue's description back; `None` when it is not one of ours.
    pub fn from_canonical(text: &str) -> Option<Need> {
        serde_json::from_str(text).ok()
    }

    /// How a person reads it: `claude` / `shell`, with the labels.
    pub fn describe(&self) -> String {
        let mut s = self.cli.clone().unwrap_or_else(|| "shell".into());
        for (k, v) in &self.labels {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }
}

/// FNV-1a, 64 bits: stable across processes and versions, unlike the std hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What a worker can run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Agent CLI programs found on its PATH.
    pub clis: Vec<String>,
    /// Whether it runs shell commands (deterministic steps).
    pub shell: bool,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl Offer {
    /// The agent CLIs of the per-CLI table installed here, and `labels`.
    pub fn detect(labels: BTreeMap<String, String>, shell: bool) -> Offer {
        let mut clis: Vec<String> = relay_spec::Cli::ALL
            .iter()
            .map(|c| relay_broker::cli_table::profile(*c).program.to_string())
            .filter(|p| relay_broker::process::which(p).is_some())
            .collect();
        clis.sort();
        clis.dedup();
        Offer {
            clis,
            shell,
            labels,
        }
    }

    /// Whether this worker can run what `need` asks for.
    pub fn meets(&self, need: &Need) -> bool {
        self.lacks(need).is_empty()
    }

    /// Its labels as `key=value,key=value` (empty when it has none).
    pub fn labels_text(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.join(",")
    }

    /// What this worker lacks of `need`, as a person reads it (`no claude`, `gpu=no`,
    /// `no gpu label`); empty when it [`meets`](Offer::meets) it.
    pub fn lacks(&self, need: &Need) -> Vec<String> {
        let mut out = Vec::new();
        match &need.cli {
            Some(cli) if !self.clis.iter().any(|c| c == cli) => out.push(format!("no {cli}")),
            None if !self.shell => out.push("no shell".into()),
            _ => {}
        }
        for (k, v) in &need.labels {
            match self.labels.get(k) {
                Some(have) if have == v => {}
                Some(have) => out.push(format!("{k}={have}")),
                None => out.push(format!("no {k} label")),
            }
        }
        out
    }
}

/// Parses `key=value` (a label).
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("`{text}` is not a label (write KEY=VALUE)")),
    }
}

/// Parses `AGENT:KEY=VALUE` (an agent's placement label).
pub fn parse_placement(text: &str) -> Result<(String, String, String), String> {
    let Some((agent, label)) = text.split_once(':') else {
        return Err(format!(
            "`{text}` is not a placement (write AGENT:KEY=VALUE)"
        ));
    };
    if agent.trim().is_empty() {
        return Err(format!("`{text}` names no agent (write AGENT:KEY=VALUE)"));
    }
    let (k, v) = parse_label(label)?;
    Ok((agent.trim().to_owned(), k, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn one_need_one_queue_whatever_the_label_order() {
        let a = Need {
            cli: Some("claude".into()),
            labels: labels(&[("gpu", "yes"), ("zone", "a")]),
        };
        let b = Need {
            cli: Some("claude".into()),
            labels: labels(&[("zone", "a"), ("gpu", "yes")]),
        };
        assert_eq!(a.queue(), b.queue());
        assert_ne!(
            a.queue(),
            Need {
                cli: Some("codex".into()),
                ..a.clone()
            }
            .queue()
        );
        assert_eq!(Need::from_canonical(&a.canonical()), Some(a));
    }

    #[test]
    fn a_worker_meets_a_need_with_the_cli_and_every_label() {
        let w = Offer {
            clis: vec!["claude".into()],
            shell: false,
            labels: labels(&[("gpu", "yes"), ("zone", "a")]),
        };
        let need = |cli: Option<&str>, l: &[(&str, &str)]| Need {
            cli: cli.map(str::to_owned),
            labels: labels(l),
        };
        assert!(w.meets(&need(Some("claude"), &[])));
        assert!(w.meets(&need(Some("claude"), &[("gpu", "yes")])));
        assert!(!w.meets(&need(Some("claude"), &[("gpu", "no")])));
        assert!(!w.meets(&need(Some("codex"), &[])));
        assert!(!w.meets(&need(None, &[])), "no shell offered");
        // What it lacks, in words.
        assert_eq!(
            w.lacks(&need(Some("codex"), &[("gpu", "no"), ("rack", "1")])),
            ["no codex", "gpu=yes", "no rack label"]
        );
        assert_eq!(w.lacks(&need(None, &[])), ["no shell"]);
        assert!(w.lacks(&need(Some("claude"), &[("gpu", "yes")])).is_empty());
    }

    #[test]
    fn labels_and_placements_parse() {
        assert_eq!(parse_label("gpu=yes"), Ok(("gpu".into(), "yes".into())));
        assert!(parse_label("gpu").is_err());
        assert!(parse_label("=x").is_err());
        assert_eq!(
            parse_placement("writer:zone=a"),
            Ok(("writer".into(), "zone".into(), "a".into()))
        );
        assert!(parse_placement("zone=a").is_err());
    }
}
