//! From an agent's effective permissions (presets, profiles and its own rules merged by
//! `relay_spec::permissions`) to a [`Sandbox`]: what Landlock will enforce, the rules it
//! cannot express (an `exec` entry with arguments, a network rule naming a host), and
//! how each rule is enforced, in words, for `validate --explain`, the run's events and
//! the refusal when a rule cannot be enforced. Pure: no I/O.

use std::path::Path;

use relay_spec::Access;
use relay_spec::permissions::{EffectivePermissions, Network};

use super::probe;
use super::{FileRules, ProjectAccess, Sandbox};

/// A rule and why it cannot be enforced as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule, as written (`exec: cargo test`).
    pub rule: String,
    /// Why, and what is enforced instead.
    pub why: String,
}

/// What enforcing an agent's permissions comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What the kernel is asked to enforce; `None` when nothing is restricted.
    pub sandbox: Option<Sandbox>,
    /// Rules Landlock cannot express: enforced more loosely (or not at all) than written.
    pub inexpressible: Vec<Finding>,
    /// Remarks on how rules are enforced (per port, not per host; UDP untouched).
    pub notes: Vec<String>,
}

/// Inputs that are not in the permissions themselves.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The agent's name, for its own dotfiles; `None` for a deterministic step.
    pub agent: Option<&'a str>,
    /// The working directory (relative globs start here).
    pub root: &'a Path,
    /// `additionalPaths`.
    pub extra: &'a [String],
    /// The CLI's state directories and files that must stay writable.
    pub writable: &'a [&'a str],
    /// Paths that stay readable (the step's directory).
    pub readable: Vec<String>,
    /// Start the agent even when a rule cannot be enforced.
    pub allow_unenforced: bool,
}

impl<'a> Context<'a> {
    /// A context for the working directory `root`, with nothing else set.
    pub fn new(root: &'a Path) -> Self {
        Context {
            agent: None,
            root,
            extra: &[],
            writable: &[],
            readable: Vec::new(),
            allow_unenforced: false,
        }
    }
}

fn without_everything(globs: &[String]) -> Vec<String> {
    globs
        .iter()
        .filter(|g| g.as_str() != "**")
        .cloned()
        .collect()
}

/// The port of a `host:port` entry, when it names one.
fn port_of(entry: &str) -> Option<(String, u16)> {
    let (host, port) = entry.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    Some((host.to_string(), port))
}

/// Plans the enforcement of `perms` for `owner` (`agent reviewer`, `step build`).
pub fn plan(owner: &str, perms: &EffectivePermissions, cx: &Context<'_>) -> Plan {
    let mut inexpressible = Vec::new();
    let mut notes = Vec::new();
    let project = match perms.access {
        Access::Restricted => ProjectAccess::None,
        Access::Readonly => ProjectAccess::Read,
        Access::Readwrite | Access::Full => ProjectAccess::Write,
    };
    let read = if project == ProjectAccess::None {
        without_everything(&perms.read)
    } else {
        Vec::new()
    };
    let write = if project == ProjectAccess::Write {
        Vec::new()
    } else {
        without_everything(&perms.write)
    };
    let files_matter = project != ProjectAccess::Write || !perms.deny.is_empty() || perms.inherit;
    let files = files_matter.then(|| FileRules {
        root: cx.root.to_path_buf(),
        project,
        read,
        write,
        deny: perms.deny.clone(),
        extra: cx.extra.to_vec(),
        dotfiles: perms.inherit,
        agent: cx.agent.map(str::to_owned),
    });

    let exec = perms.exec.as_ref().map(|entries| {
        let mut programs = Vec::new();
        for e in entries {
            let mut words = e.split_whitespace();
            let Some(program) = words.next() else {
                continue;
            };
            if words.next().is_some() {
                inexpressible.push(Finding {
                    rule: format!("exec: {e}"),
                    why: format!(
                        "Landlock allows programs, not their arguments: `{program}` may run with any arguments"
                    ),
                });
            }
            if !programs.iter().any(|p| p == program) {
                programs.push(program.to_string());
            }
        }
        programs
    });

    let tcp_connect = match &perms.network {
        Network::Any => None,
        Network::None => Some(Vec::new()),
        Network::Rules { allow, deny } => {
            let mut ports: Vec<u16> = Vec::new();
            for a in allow {
                match port_of(a) {
                    Some((host, port)) => {
                        if host != "*" && !host.is_empty() {
                            notes.push(format!(
                                "network.allow `{a}`: Landlock allows TCP by port, so port {port} is open to every host"
                            ));
                        }
                        if !ports.contains(&port) {
                            ports.push(port);
                        }
                    }
                    None => inexpressible.push(Finding {
                        rule: format!("network.allow: {a}"),
                        why: "names no port, and Landlock allows TCP connections by port (write host:port); it is refused".into(),
                    }),
                }
            }
            let deny_all = deny.iter().any(|d| d == "*" || d == "*:*");
            if allow.is_empty() && !deny_all {
                if !deny.is_empty() {
                    inexpressible.push(Finding {
                        rule: format!("network.deny: {}", deny.join(", ")),
                        why: "Landlock cannot refuse single hosts while allowing the rest: the network is not restricted".into(),
                    });
                }
                None
            } else {
                for d in deny.iter().filter(|d| *d != "*" && *d != "*:*") {
                    if port_of(d).is_some_and(|(_, p)| ports.contains(&p)) {
                        inexpressible.push(Finding {
                            rule: format!("network.deny: {d}"),
                            why: "its port is allowed for other hosts, and Landlock cannot tell hosts apart: it is not refused".into(),
                        });
                    }
                }
                ports.sort_unstable();
                Some(ports)
            }
        }
    };
    if tcp_connect.is_some() {
        notes.push(
            "network: Landlock restricts TCP connections; UDP (DNS lookups) and local sockets are not restricted".into(),
        );
    }
    let sandbox = (files.is_some() || exec.is_some() || tcp_connect.is_some()).then(|| Sandbox {
        owner: owner.to_string(),
        files,
        exec,
        tcp_connect,
        writable: cx.writable.iter().map(|s| s.to_string()).collect(),
        readable: cx.readable.clone(),
        allow_unenforced: cx.allow_unenforced,
    });
    Plan {
        sandbox,
        inexpressible,
        notes,
    }
}

/// Whether the file rules of `sandbox` restrict anything before the project's dotfiles
/// are looked at: a project that may be written, with no denials, is restricted only by
/// its dotfiles.
fn files_need(files: &FileRules) -> bool {
    files.project != ProjectAccess::Write || !files.deny.is_empty() || has_dotfiles(files)
}

fn has_dotfiles(files: &FileRules) -> bool {
    if !files.dotfiles {
        return false;
    }
    let (ignore, readonly) = super::resolve::dotfiles(&files.root, files.agent.as_deref());
    ignore.iter().chain(readonly.iter()).any(|f| f.is_file())
}

fn file_rule_name(files: &FileRules) -> String {
    match files.project {
        ProjectAccess::None => "access: restricted".into(),
        ProjectAccess::Read => "access: readonly".into(),
        ProjectAccess::Write if !files.deny.is_empty() => {
            format!("files.deny: {}", files.deny.join(", "))
        }
        ProjectAccess::Write => ".agentignore / .agentreadonly".into(),
    }
}

/// The rules of `sandbox` that Landlock ABI `abi` cannot enforce: (rule, why).
pub fn missing_features(sandbox: &Sandbox, abi: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let need = |rule: String, min: u32, out: &mut Vec<(String, String)>| {
        if abi < min {
            out.push((
                rule,
                format!(
                    "it needs Landlock ABI {min} ({}), and this kernel has {}",
                    probe::feature_of(min),
                    probe::describe(abi)
                ),
            ));
        }
    };
    if let Some(files) = sandbox.files.as_ref().filter(|f| files_need(f)) {
        // Without ABI 3 a file could still be truncated: no write restriction holds.
        need(file_rule_name(files), 3, &mut out);
    }
    if sandbox.exec.is_some() {
        need("exec".into(), 1, &mut out);
    }
    if let Some(ports) = &sandbox.tcp_connect {
        let rule = if ports.is_empty() {
            "network: false".to_string()
        } else {
            "network.allow".to_string()
        };
        need(rule, 4, &mut out);
    }
    out
}

fn list(v: &[String]) -> String {
    v.join(", ")
}

/// The rules of `sandbox` in words, one line each.
pub fn describe(sandbox: &Sandbox) -> Vec<String> {
    let mut out = Vec::new();
    match &sandbox.files {
        None => out.push("files: not restricted".into()),
        Some(f) => {
            let project = match f.project {
                ProjectAccess::None => "nothing in the project but what files.read/write grant",
                ProjectAccess::Read => "the project read-only",
                ProjectAccess::Write => "the project readable and writable",
            };
            out.push(format!("files: {project} ({})", f.root.display()));
            if f.project != ProjectAccess::Write {
                out.push(
                    "files: elsewhere read-only, except the CLI's state directories, the temp directories and /dev".into(),
                );
            }
            if !f.read.is_empty() {
                out.push(format!("files.read: {}", list(&f.read)));
            }
            if !f.write.is_empty() {
                out.push(format!("files.write: {}", list(&f.write)));
            }
            if !f.deny.is_empty() {
                out.push(format!(
                    "files.deny (unreadable, unwritable): {}",
                    list(&f.deny)
                ));
            }
            if !f.extra.is_empty() {
                out.push(format!("additionalPaths: {}", list(&f.extra)));
            }
            if f.dotfiles {
                let mut names = vec![".agentignore".to_string(), ".agentreadonly".to_string()];
                if let Some(a) = &f.agent {
                    names.push(format!(".{a}.agentignore"));
                    names.push(format!(".{a}.agentreadonly"));
                }
                out.push(format!("dotfiles honoured: {}", list(&names)));
            }
        }
    }
    match &sandbox.exec {
        None => out.push("exec: any program".into()),
        Some(p) if p.is_empty() => {
            out.push("exec: only the agent's own program (and agent-relay)".into())
        }
        Some(p) => out.push(format!(
            "exec: only {} (and the agent's own program, agent-relay)",
            list(p)
        )),
    }
    match &sandbox.tcp_connect {
        None => out.push("network: any".into()),
        Some(p) if p.is_empty() => out.push("network: no TCP connections".into()),
        Some(p) => out.push(format!(
            "network: TCP connections only to port{} {}",
            if p.len() == 1 { "" } else { "s" },
            p.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    out
}

/// How `plan` is enforced on a kernel with Landlock ABI `abi`, one line per rule: what
/// `validate --explain` prints and a rehearsal shows.
pub fn explain(plan: &Plan, abi: u32) -> Vec<String> {
    let mut out = Vec::new();
    match &plan.sandbox {
        None => out
            .push("no restriction (readwrite, no dotfiles apply, any program, any network)".into()),
        Some(s) => {
            for line in describe(s) {
                out.push(line);
            }
            let missing = missing_features(s, abi);
            if missing.is_empty() {
                out.push(format!("enforced by the kernel ({})", probe::describe(abi)));
            }
            for (rule, why) in missing {
                out.push(format!("NOT ENFORCED `{rule}`: {why}"));
            }
        }
    }
    for f in &plan.inexpressible {
        out.push(format!("NOT ENFORCED AS WRITTEN `{}`: {}", f.rule, f.why));
    }
    out.extend(plan.notes.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(yaml_agent: &str) -> EffectivePermissions {
        let loaded = relay_spec::parse(
            &format!("name: t\nagents:\n  - {yaml_agent}\nworkflows: []\n"),
            "t.yaml",
        )
        .expect("parses");
        let f = loaded.file;
        relay_spec::permissions::effective_permissions(&f, &f.agents[0]).expect("permissions")
    }

    fn plan_of(yaml_agent: &str) -> Plan {
        let root = Path::new("/w");
        plan(
            "agent a",
            &perms(yaml_agent),
            &Context {
                agent: Some("a"),
                ..Context::new(root)
            },
        )
    }

    #[test]
    fn the_default_restricts_only_through_dotfiles() {
        let p = plan_of("{name: a, cli: claude}");
        let s = p.sandbox.expect("dotfiles may apply");
        let f = s.files.expect("file rules");
        assert_eq!(f.project, ProjectAccess::Write);
        assert!(f.dotfiles && f.deny.is_empty());
        assert_eq!((s.exec, s.tcp_connect), (None, None));
        let full = plan_of("{name: a, cli: claude, permissions: full}");
        assert_eq!(full.sandbox, None, "full without inherit restricts nothing");
    }

    #[test]
    fn readonly_and_restricted_keep_their_globs() {
        let ro = plan_of(
            "{name: a, cli: claude, permissions: {access: readonly, files: {write: [out/**], deny: [.env]}}}",
        );
        let f = ro.sandbox.unwrap().files.unwrap();
        assert_eq!(f.project, ProjectAccess::Read);
        assert_eq!(
            (f.write, f.deny),
            (vec!["out/**".to_string()], vec![".env".to_string()])
        );
        let rs = plan_of(
            "{name: a, cli: claude, permissions: {access: restricted, files: {read: [docs/**], write: [src/**]}}}",
        );
        let f = rs.sandbox.unwrap().files.unwrap();
        assert_eq!(f.project, ProjectAccess::None);
        assert_eq!(f.read, ["docs/**", "src/**"]);
    }

    #[test]
    fn exec_arguments_and_hosts_are_reported_as_not_expressible() {
        let p = plan_of(
            "{name: a, cli: claude, permissions: {exec: [cargo test, git], network: {allow: ['api.example.com:443', 'nohost']}}}",
        );
        let s = p.sandbox.unwrap();
        assert_eq!(s.exec.unwrap(), ["cargo", "git"]);
        assert_eq!(s.tcp_connect.unwrap(), [443]);
        let rules: Vec<&str> = p.inexpressible.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["exec: cargo test", "network.allow: nohost"]);
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("port 443 is open to every host"))
        );
    }

    #[test]
    fn network_false_allows_no_port_and_a_deny_list_alone_cannot_be_expressed() {
        let p = plan_of("{name: a, cli: claude, permissions: {network: false, inherit: false}}");
        assert_eq!(p.sandbox.unwrap().tcp_connect, Some(vec![]));
        let p = plan_of(
            "{name: a, cli: claude, permissions: {network: {deny: ['evil.example:443']}, inherit: false}}",
        );
        assert_eq!(p.sandbox, None);
        assert_eq!(p.inexpressible.len(), 1);
    }

    #[test]
    fn an_old_kernel_cannot_enforce_what_needs_a_newer_abi() {
        let s = plan_of(
            "{name: a, cli: claude, permissions: {access: readonly, network: false, exec: [git]}}",
        )
        .sandbox
        .unwrap();
        assert!(missing_features(&s, 7).is_empty());
        let at3: Vec<String> = missing_features(&s, 3)
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(at3, ["network: false"]);
        let at0 = missing_features(&s, 0);
        assert_eq!(at0.len(), 3);
        assert!(at0[0].1.contains("this kernel has no Landlock"), "{at0:?}");
    }
}
