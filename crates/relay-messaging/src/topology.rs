//! Who may message whom in a run: the topology a swarm pattern implies, described once
//! (its rule, for people) and checked once (`check`, whose refusal reason goes into the
//! refused message's record).

use std::collections::{BTreeMap, BTreeSet};

/// Who may send a message to whom.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Topology {
    /// Anyone to anyone (dag, mesh, most patterns).
    #[default]
    All,
    /// Spokes talk to the hubs only; hubs talk to anyone (hub-spoke).
    Hub(BTreeSet<String>),
    /// Each agent talks to its manager and its direct reports (hierarchical).
    Tree(BTreeMap<String, Option<String>>),
    /// Each agent talks to the agents next to it in the chain (handoff).
    Chain(Vec<String>),
}

impl Topology {
    /// The rule in words.
    pub fn rule(&self) -> &'static str {
        match self {
            Topology::All => "everyone may message everyone",
            Topology::Hub(_) => "hub-spoke: spokes message only the hub",
            Topology::Tree(_) => {
                "hierarchical: agents message only their manager and direct reports"
            }
            Topology::Chain(_) => "handoff: agents message only their neighbours in the chain",
        }
    }

    /// `Ok` when `from` may message `to`; otherwise why not, naming both.
    pub fn check(&self, from: &str, to: &str) -> Result<(), String> {
        match self {
            Topology::All => Ok(()),
            Topology::Hub(hubs) => {
                if hubs.contains(from) || hubs.contains(to) {
                    Ok(())
                } else {
                    Err(format!(
                        "`{from}` may message only the hub ({}), not `{to}`",
                        hubs.iter().cloned().collect::<Vec<_>>().join(", ")
                    ))
                }
            }
            Topology::Tree(boss) => {
                let is_boss = |a: &str, b: &str| boss.get(a).and_then(|x| x.as_deref()) == Some(b);
                if is_boss(from, to) || is_boss(to, from) {
                    Ok(())
                } else {
                    Err(format!(
                        "`{from}` may message only its manager and direct reports, not `{to}`"
                    ))
                }
            }
            Topology::Chain(order) => {
                let pos = |a: &str| order.iter().position(|x| x == a);
                match (pos(from), pos(to)) {
                    (Some(f), Some(t)) if t == f + 1 || f == t + 1 => Ok(()),
                    _ => Err(format!(
                        "`{from}` may message only the agents next to it in the chain, not `{to}`"
                    )),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topologies_allow_and_refuse() {
        assert!(Topology::All.check("a", "b").is_ok());
        let hub = Topology::Hub(BTreeSet::from(["lead".to_string()]));
        assert!(hub.check("w1", "lead").is_ok());
        assert!(hub.check("lead", "w2").is_ok());
        assert!(hub.check("w1", "w2").unwrap_err().contains("only the hub"));
        let tree = Topology::Tree(BTreeMap::from([
            ("ceo".to_string(), None),
            ("vp".to_string(), Some("ceo".to_string())),
            ("dev".to_string(), Some("vp".to_string())),
        ]));
        assert!(tree.check("dev", "vp").is_ok());
        assert!(tree.check("ceo", "vp").is_ok());
        assert!(tree.check("dev", "ceo").is_err());
        let chain = Topology::Chain(vec!["a".into(), "b".into(), "c".into()]);
        assert!(chain.check("a", "b").is_ok());
        assert!(chain.check("a", "c").is_err());
    }
}
