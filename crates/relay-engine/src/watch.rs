//! `watch` and `subscriptions` on local files: an agent that watches path globs (or
//! subscribes with no provider, or `provider: local`) is told of each file created,
//! updated or deleted there by an `INTEGRATION_EVENT:` message from `agent-relay`, over
//! the run's broker, while one of its steps runs. Subscriptions of hosted providers
//! cannot work offline and are reported as such (`capabilities.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use relay_messaging::{Router, Target};
use relay_spec::{NameOr, RelayFile, Subscription};

use crate::poll::{FileEvent, Seen, changes, snapshot};

/// How often the watched globs are read.
const POLL: Duration = Duration::from_millis(250);

/// What one agent watches on local files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalWatch {
    /// The agent told of the events.
    pub agent: String,
    /// The subscription's name, when it has one.
    pub name: Option<String>,
    /// Path globs, relative ones from the run's directory.
    pub globs: Vec<String>,
    /// Kinds of event wanted (`created`, `updated`, `deleted`); empty: every kind.
    pub events: Vec<String>,
}

/// Whether `sub` is about local files (no provider, or `local`).
pub fn is_local(sub: &Subscription) -> bool {
    sub.provider.as_deref().is_none_or(|p| p == "local")
}

/// Every subscription of `agent` as written or named, resolved against
/// `integrations.subscriptions`: (agent, the subscription). A `watch` entry written as a
/// string is a path glob.
pub fn subscriptions_of(file: &RelayFile) -> Vec<(String, Subscription)> {
    let named: HashMap<&str, &Subscription> = file
        .integrations
        .iter()
        .flat_map(|i| i.subscriptions.iter())
        .filter_map(|s| Some((s.name.as_deref()?, s)))
        .collect();
    let mut out = Vec::new();
    for a in &file.agents {
        for w in &a.watch {
            let sub = match w {
                NameOr::Name(glob) => Subscription {
                    path: Some(glob.clone()),
                    ..Subscription::default()
                },
                NameOr::Value(s) => s.clone(),
            };
            out.push((a.name.clone(), sub));
        }
        for s in &a.subscriptions {
            let sub = match s {
                NameOr::Name(n) => match named.get(n.as_str()) {
                    Some(s) => (*s).clone(),
                    // Validation names an unknown subscription.
                    None => continue,
                },
                NameOr::Value(s) => s.clone(),
            };
            out.push((a.name.clone(), sub));
        }
    }
    out
}

/// The local file watches of `file`'s agents.
pub fn local_watches(file: &RelayFile) -> Vec<LocalWatch> {
    subscriptions_of(file)
        .into_iter()
        .filter(|(_, s)| is_local(s))
        .map(|(agent, s)| LocalWatch {
            agent,
            name: s.name.clone(),
            globs: s.path.iter().chain(s.paths.iter()).cloned().collect(),
            events: s.event.iter().chain(s.events.iter()).cloned().collect(),
        })
        .filter(|w| !w.globs.is_empty())
        .collect()
}

/// The message an agent gets for `event`: `INTEGRATION_EVENT: ` and the event as JSON
/// (provider, event, path relative to `cwd` where it is under it, and the subscription's
/// name when it has one).
pub fn event_text(event: &FileEvent, cwd: &Path, name: Option<&str>) -> String {
    let path = Path::new(&event.path);
    let shown = path.strip_prefix(cwd).unwrap_or(path).display().to_string();
    let mut v = serde_json::json!({
        "provider": "local",
        "event": event.event,
        "path": shown,
    });
    if let Some(n) = name {
        v["subscription"] = n.into();
    }
    format!("INTEGRATION_EVENT: {v}")
}

/// Watches `watches` from `cwd` until aborted, telling each agent with a step running
/// (`running`: steps running per agent) of the events it watches, as `from`.
pub(crate) async fn run(
    from: &'static str,
    cwd: PathBuf,
    watches: Vec<LocalWatch>,
    router: Router,
    running: Arc<Mutex<HashMap<String, usize>>>,
) {
    let read = |globs: Vec<String>| {
        let cwd = cwd.clone();
        tokio::task::spawn_blocking(move || snapshot(&cwd, &globs))
    };
    let mut seen: Vec<Seen> = Vec::with_capacity(watches.len());
    for w in &watches {
        seen.push(read(w.globs.clone()).await.unwrap_or_default());
    }
    loop {
        tokio::time::sleep(POLL).await;
        for (w, before) in watches.iter().zip(seen.iter_mut()) {
            let after = read(w.globs.clone()).await.unwrap_or_default();
            let found = changes(before, &after, &w.events);
            *before = after;
            let live = running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&w.agent)
                .is_some_and(|n| *n > 0);
            if !live {
                continue;
            }
            for e in &found {
                let text = event_text(e, &cwd, w.name.as_deref());
                let to = Target::Agent(w.agent.clone());
                if let Err(err) = router.send(from, &to, &text).await {
                    tracing::info!(agent = w.agent, "integration event not sent: {err}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(yaml: &str) -> RelayFile {
        relay_spec::parse(yaml, "t.yaml").expect("parses").file
    }

    #[test]
    fn watches_resolve_globs_named_and_inline_subscriptions() {
        let f = file(
            "name: t\nintegrations:\n  subscriptions:\n    - {name: reports, paths: ['out/*.md'], event: created}\n    - {name: issues, provider: linear, event: issue.created}\nagents:\n  - {name: a, cli: claude, watch: ['src/**/*.rs'], subscriptions: [reports, issues]}\n  - {name: b, cli: codex, subscriptions: [{provider: local, path: done.txt, events: [created, deleted]}]}\n",
        );
        assert_eq!(
            local_watches(&f),
            [
                LocalWatch {
                    agent: "a".into(),
                    name: None,
                    globs: vec!["src/**/*.rs".into()],
                    events: vec![],
                },
                LocalWatch {
                    agent: "a".into(),
                    name: Some("reports".into()),
                    globs: vec!["out/*.md".into()],
                    events: vec!["created".into()],
                },
                LocalWatch {
                    agent: "b".into(),
                    name: None,
                    globs: vec!["done.txt".into()],
                    events: vec!["created".into(), "deleted".into()],
                },
            ]
        );
        let hosted: Vec<_> = subscriptions_of(&f)
            .into_iter()
            .filter(|(_, s)| !is_local(s))
            .map(|(a, s)| (a, s.provider))
            .collect();
        assert_eq!(hosted, [("a".to_string(), Some("linear".to_string()))]);
    }

    #[test]
    fn the_event_message_names_the_path_from_the_run_directory() {
        let e = FileEvent {
            event: "created",
            path: "/w/out/r.md".into(),
        };
        let text = event_text(&e, Path::new("/w"), Some("reports"));
        let json: serde_json::Value =
            serde_json::from_str(text.strip_prefix("INTEGRATION_EVENT: ").unwrap()).unwrap();
        assert_eq!(json["path"], "out/r.md");
        assert_eq!(json["event"], "created");
        assert_eq!(json["subscription"], "reports");
    }
}
