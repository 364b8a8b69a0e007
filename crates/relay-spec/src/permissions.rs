//! What an agent may do, all rules applied: its `permissions` (a preset, a profile, or
//! rules of its own on top of a profile) merged into one [`EffectivePermissions`], for
//! `validate --explain` and for whatever enforces them.
//!
//! The presets, as file rules (globs relative to the working directory):
//!
//! | preset | reads | writes | ignore files (`.agentignore`, `.agentreadonly`) |
//! |---|---|---|---|
//! | `readwrite` (the default) | `**` | `**` | apply |
//! | `readonly` | `**` | nothing | apply |
//! | `restricted` | only `files.read` and `files.write` | only `files.write` | apply |
//! | `full` | `**` | `**` | do not apply, unless `inherit: true` |
//!
//! Merging, later over earlier: the preset; the profile's rules; the agent's own rules.
//! `access`, `inherit`, `network` and `exec` are replaced by the later one that sets
//! them; `files.read`, `files.write`, `files.deny` and `scopes` add up. A glob in `deny`
//! is refused whatever grants it, and a glob that may be written may also be read.
//! Without `network` any host may be reached; without `exec` any command may run.

use crate::suggest::did_you_mean;
use crate::types::{Access, Agent, AgentPermissions, BoolOr, NameOr, PermissionProfile, RelayFile};

/// Everything an agent may read, write, reach and run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePermissions {
    /// The access preset in effect.
    pub access: Access,
    /// Whether the workspace's ignore files apply too.
    pub inherit: bool,
    /// Globs the agent may read (writes included).
    pub read: Vec<String>,
    /// Globs the agent may write.
    pub write: Vec<String>,
    /// Globs the agent may neither read nor write, whatever else grants them.
    pub deny: Vec<String>,
    /// Which hosts the agent may reach.
    pub network: Network,
    /// Command prefixes the agent may run; `None` is any command.
    pub exec: Option<Vec<String>>,
    /// Raw authorisation scopes.
    pub scopes: Vec<String>,
    /// Where the rules came from, in the order applied (`preset readwrite`, `profile
    /// builder`, `agent dev`).
    pub sources: Vec<String>,
}

/// Which hosts an agent may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// Any host.
    Any,
    /// None.
    None,
    /// The hosts `allow` lists; of the rest, none that `deny` lists.
    Rules {
        /// Hosts allowed.
        allow: Vec<String>,
        /// Hosts refused unless allowed.
        deny: Vec<String>,
    },
}

/// Why an agent's permissions cannot be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    /// `permissions: NAME` names neither a preset nor a profile.
    #[error(
        "agent `{agent}`: permissions `{name}` is neither an access preset (readonly, readwrite, restricted, full) nor a permission profile{}",
        suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
    )]
    UnknownName {
        /// The agent.
        agent: String,
        /// The name given.
        name: String,
        /// The closest preset or profile, if it looks like a typo of one.
        suggestion: Option<String>,
    },
    /// `permissions.profile` names no profile.
    #[error(
        "agent `{agent}`: no permission profile `{name}`{}",
        suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
    )]
    UnknownProfile {
        /// The agent.
        agent: String,
        /// The name given.
        name: String,
        /// The closest profile, if it looks like a typo of one.
        suggestion: Option<String>,
    },
}

/// One layer of rules: a profile's, or an agent's own.
struct Layer<'a> {
    label: String,
    access: Option<Access>,
    inherit: Option<bool>,
    read: &'a [String],
    write: &'a [String],
    deny: &'a [String],
    network: Option<&'a BoolOr<crate::types::NetworkRules>>,
    exec: Option<&'a Vec<String>>,
    scopes: &'a [String],
}

impl<'a> Layer<'a> {
    fn of_profile(name: &str, p: &'a PermissionProfile) -> Layer<'a> {
        let files = p.files.as_ref();
        Layer {
            label: format!("profile {name}"),
            access: p.access,
            inherit: p.inherit,
            read: files.map(|f| f.read.as_slice()).unwrap_or_default(),
            write: files.map(|f| f.write.as_slice()).unwrap_or_default(),
            deny: files.map(|f| f.deny.as_slice()).unwrap_or_default(),
            network: p.network.as_ref(),
            exec: p.exec.as_ref(),
            scopes: &p.scopes,
        }
    }

    fn of_agent(kind: &str, agent: &str, p: &'a AgentPermissions) -> Layer<'a> {
        let files = p.files.as_ref();
        Layer {
            label: format!("{kind} {agent}"),
            access: p.access,
            inherit: p.inherit,
            read: files.map(|f| f.read.as_slice()).unwrap_or_default(),
            write: files.map(|f| f.write.as_slice()).unwrap_or_default(),
            deny: files.map(|f| f.deny.as_slice()).unwrap_or_default(),
            network: p.network.as_ref(),
            exec: p.exec.as_ref(),
            scopes: &p.scopes,
        }
    }
}

fn profile<'a>(
    file: &'a RelayFile,
    owner: &str,
    name: &str,
) -> Result<&'a PermissionProfile, PermissionError> {
    file.permission_profiles
        .get(name)
        .ok_or_else(|| PermissionError::UnknownProfile {
            agent: owner.to_string(),
            name: name.to_string(),
            suggestion: did_you_mean(name, file.permission_profiles.keys().map(String::as_str))
                .map(str::to_string),
        })
}

/// The permissions `agent` of `file` ends up with (see the module docs for the rules).
pub fn effective_permissions(
    file: &RelayFile,
    agent: &Agent,
) -> Result<EffectivePermissions, PermissionError> {
    rules_of(file, &agent.name, "agent", agent.permissions.as_ref())
}

/// The permissions a deterministic step's command runs with (our extension), when the
/// step sets any; written and merged as an agent's are.
pub fn step_permissions(
    file: &RelayFile,
    step: &crate::types::Step,
) -> Option<Result<EffectivePermissions, PermissionError>> {
    step.permissions
        .as_ref()
        .map(|p| rules_of(file, &step.name, "step", Some(p)))
}

fn rules_of(
    file: &RelayFile,
    owner: &str,
    kind: &str,
    permissions: Option<&NameOr<AgentPermissions>>,
) -> Result<EffectivePermissions, PermissionError> {
    let mut layers: Vec<Layer<'_>> = Vec::new();
    let mut preset: Option<Access> = None;
    match permissions {
        None => {}
        Some(NameOr::Name(name)) => match Access::from_name(name) {
            Some(a) => preset = Some(a),
            None if file.permission_profiles.contains_key(name) => {
                layers.push(Layer::of_profile(name, profile(file, owner, name)?));
            }
            None => {
                let known = Access::ALL
                    .iter()
                    .map(|a| a.as_str())
                    .chain(file.permission_profiles.keys().map(String::as_str));
                return Err(PermissionError::UnknownName {
                    agent: owner.to_string(),
                    name: name.clone(),
                    suggestion: did_you_mean(name, known).map(str::to_string),
                });
            }
        },
        Some(NameOr::Value(own)) => {
            if let Some(p) = &own.profile {
                layers.push(Layer::of_profile(p, profile(file, owner, p)?));
            }
            layers.push(Layer::of_agent(kind, owner, own));
        }
    }

    let access = layers
        .iter()
        .rev()
        .find_map(|l| l.access)
        .or(preset)
        .unwrap_or(Access::Readwrite);
    let inherit = layers
        .iter()
        .rev()
        .find_map(|l| l.inherit)
        .unwrap_or(access != Access::Full);
    let everything = || vec!["**".to_string()];
    let (mut read, mut write) = match access {
        Access::Readwrite | Access::Full => (everything(), everything()),
        Access::Readonly => (everything(), Vec::new()),
        Access::Restricted => (Vec::new(), Vec::new()),
    };
    let mut deny: Vec<String> = Vec::new();
    let mut scopes: Vec<String> = Vec::new();
    for l in &layers {
        read.extend(l.read.iter().cloned());
        write.extend(l.write.iter().cloned());
        deny.extend(l.deny.iter().cloned());
        scopes.extend(l.scopes.iter().cloned());
    }
    // What may be written may be read.
    read.extend(write.iter().cloned());
    let network = match layers.iter().rev().find_map(|l| l.network) {
        None | Some(BoolOr::Bool(true)) => Network::Any,
        Some(BoolOr::Bool(false)) => Network::None,
        Some(BoolOr::Value(rules)) => Network::Rules {
            allow: rules.allow.clone(),
            deny: rules.deny.clone(),
        },
    };
    let exec = layers.iter().rev().find_map(|l| l.exec.cloned());
    let mut sources = vec![format!("preset {}", access.as_str())];
    sources.extend(layers.iter().map(|l| l.label.clone()));
    Ok(EffectivePermissions {
        access,
        inherit,
        read: unique(read),
        write: unique(write),
        deny: unique(deny),
        network,
        exec,
        scopes: unique(scopes),
        sources,
    })
}

/// `v` without repeats, first occurrences kept in order.
fn unique(v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.into_iter().filter(|x| seen.insert(x.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(agents_and_profiles: &str) -> RelayFile {
        crate::parse(
            &format!("name: t\n{agents_and_profiles}workflows: []\n"),
            "t.yaml",
        )
        .expect("parses")
        .file
    }

    fn of(f: &RelayFile, agent: &str) -> Result<EffectivePermissions, PermissionError> {
        effective_permissions(f, f.agent(agent).expect("agent"))
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn no_permissions_is_readwrite_everything() {
        let f = file("agents: [{name: a, cli: claude}]\n");
        let p = of(&f, "a").unwrap();
        assert_eq!(p.access, Access::Readwrite);
        assert!(p.inherit);
        assert_eq!((p.read, p.write), (s(&["**"]), s(&["**"])));
        assert_eq!((p.network, p.exec), (Network::Any, None));
        assert_eq!(p.sources, ["preset readwrite"]);
    }

    #[test]
    fn each_preset_expands_to_its_rules() {
        let f = file(
            "agents:\n  - {name: ro, cli: claude, permissions: readonly}\n  - {name: rs, cli: claude, permissions: restricted}\n  - {name: fu, cli: claude, permissions: full}\n",
        );
        let ro = of(&f, "ro").unwrap();
        assert_eq!((ro.read, ro.write, ro.inherit), (s(&["**"]), s(&[]), true));
        let rs = of(&f, "rs").unwrap();
        assert!(rs.read.is_empty() && rs.write.is_empty());
        let fu = of(&f, "fu").unwrap();
        assert_eq!((fu.write, fu.inherit), (s(&["**"]), false));
    }

    #[test]
    fn a_profile_and_the_agent_rules_merge_in_order() {
        let f = file(
            "permission_profiles:\n  builder:\n    access: restricted\n    files: {read: [docs/**], write: [src/**], deny: [.env]}\n    network: {allow: ['crates.io:443'], deny: ['*']}\n    exec: [cargo test]\n    scopes: [s1]\nagents:\n  - name: dev\n    cli: claude\n    permissions:\n      profile: builder\n      files: {write: [tests/**], deny: [secrets/**]}\n      exec: [cargo test, git diff]\n      scopes: [s1, s2]\n  - {name: named, cli: claude, permissions: builder}\n",
        );
        let p = of(&f, "dev").unwrap();
        assert_eq!(p.access, Access::Restricted);
        assert_eq!(p.write, s(&["src/**", "tests/**"]));
        // Written globs are readable too, after the explicit reads.
        assert_eq!(p.read, s(&["docs/**", "src/**", "tests/**"]));
        assert_eq!(p.deny, s(&[".env", "secrets/**"]));
        assert_eq!(
            p.exec,
            Some(s(&["cargo test", "git diff"])),
            "the agent's replaces"
        );
        assert_eq!(p.scopes, s(&["s1", "s2"]));
        assert_eq!(
            p.network,
            Network::Rules {
                allow: s(&["crates.io:443"]),
                deny: s(&["*"])
            }
        );
        assert_eq!(
            p.sources,
            ["preset restricted", "profile builder", "agent dev"]
        );
        // Named directly, a profile is the whole set.
        let n = of(&f, "named").unwrap();
        assert_eq!(n.write, s(&["src/**"]));
        assert_eq!(n.sources, ["preset restricted", "profile builder"]);
    }

    #[test]
    fn later_layers_replace_access_inherit_and_network() {
        let f = file(
            "permission_profiles:\n  ro: {access: readonly, network: false, inherit: false}\nagents:\n  - name: a\n    cli: claude\n    permissions: {profile: ro, access: readwrite, network: true}\n",
        );
        let p = of(&f, "a").unwrap();
        assert_eq!(p.access, Access::Readwrite);
        assert_eq!(p.network, Network::Any);
        assert!(
            !p.inherit,
            "the profile's inherit stays when the agent sets none"
        );
        let f = file(
            "permission_profiles:\n  offline: {network: false}\nagents: [{name: a, cli: claude, permissions: offline}]\n",
        );
        assert_eq!(of(&f, "a").unwrap().network, Network::None);
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let f = file(
            "permission_profiles:\n  builder: {}\nagents:\n  - {name: a, cli: claude, permissions: readonyl}\n  - {name: b, cli: claude, permissions: {profile: biulder}}\n",
        );
        let e = of(&f, "a").unwrap_err();
        assert!(e.to_string().contains("did you mean `readonly`?"), "{e}");
        let e = of(&f, "b").unwrap_err();
        assert!(matches!(&e, PermissionError::UnknownProfile { name, .. } if name == "biulder"));
        assert!(e.to_string().contains("did you mean `builder`?"), "{e}");
    }
}
