//! What a workflow reaches outside itself: named directories (`paths`), and integrations
//! with external services (the relayfile file system, event subscriptions).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A directory outside the working directory, named so agents and steps can use it as
/// their `workdir`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathDef {
    /// The name `workdir` refers to it by.
    pub name: String,
    /// The directory, relative to the run's working directory; `$VAR`s are expanded.
    pub path: String,
    /// Its part in the workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether a run refuses to start when it does not exist (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

impl PathDef {
    /// Whether a run needs the directory to exist (default true).
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(true)
    }
}

/// External services the workflow uses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Integrations {
    /// Settings of the relayfile integration, passed to it as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relayfile: Option<BTreeMap<String, serde_json::Value>>,
    /// Named event subscriptions agents can refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<Subscription>,
}

/// Events from a provider (file changes, tickets, messages) that an agent is told about
/// or a `waitFor` step waits for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subscription {
    /// The name agents' `subscriptions` refer to it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the events come from (`relayfile`, `github`, `linear`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// One path or glob the events are about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Several paths or globs (instead of `path`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// One kind of event (`created`, `modified`, `issue.created`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Several kinds of event (instead of `event`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Conditions an event's fields must meet, passed to the provider as written.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matches: Option<serde_json::Value>,
    /// What the subscription is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Subscription {
    /// `path` and `paths` together.
    pub fn all_paths(&self) -> Vec<&str> {
        self.path
            .iter()
            .chain(&self.paths)
            .map(String::as_str)
            .collect()
    }

    /// `event` and `events` together.
    pub fn all_events(&self) -> Vec<&str> {
        self.event
            .iter()
            .chain(&self.events)
            .map(String::as_str)
            .collect()
    }
}
