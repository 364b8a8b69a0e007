//! Permission rules as written: reusable profiles and an agent's own `permissions`. What
//! they add up to for one agent is worked out by `effective_permissions`, in the crate's
//! `permissions` module.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::either::BoolOr;

/// The access presets. Each expands to file rules (the crate's `permissions` module
/// lists exactly which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read every file that is not ignored; write none.
    Readonly,
    /// Read and write every file that is not ignored (the default).
    Readwrite,
    /// Read and write only the files listed in `files`.
    Restricted,
    /// Read and write everything, ignored files included.
    Full,
}

impl Access {
    /// Every preset.
    pub const ALL: [Access; 4] = [
        Access::Readonly,
        Access::Readwrite,
        Access::Restricted,
        Access::Full,
    ];

    /// The name as written in relay.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Readonly => "readonly",
            Access::Readwrite => "readwrite",
            Access::Restricted => "restricted",
            Access::Full => "full",
        }
    }

    /// The preset called `name`.
    pub fn from_name(name: &str) -> Option<Access> {
        Access::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// A reusable set of permission rules, named in `permission_profiles`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionProfile {
    /// What the profile is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Why the profile exists or what it protects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The access preset the rules start from (default `readwrite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// Whether the workspace's ignore files (`.agentignore`, `.agentreadonly`) also
    /// apply (default true; `full` defaults to false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit: Option<bool>,
    /// File globs granted or denied on top of the preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilePermissions>,
    /// Raw authorisation scopes added as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Network access: `true` (any), `false` (none), or hosts allowed and denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<BoolOr<NetworkRules>>,
    /// Command prefixes the agent may run; absent means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
}

/// An agent's own permission rules, optionally on top of a profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentPermissions {
    /// The `permission_profiles` entry these rules start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// What these permissions are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Why they are needed or deliberately narrow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The access preset (overrides the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// Whether the workspace's ignore files also apply (overrides the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit: Option<bool>,
    /// File globs granted or denied, added to the profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilePermissions>,
    /// Raw authorisation scopes, added to the profile's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Network access (overrides the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<BoolOr<NetworkRules>>,
    /// Command prefixes the agent may run (overrides the profile's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
}

/// File globs an agent may read or write, and globs it may never touch (deny wins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilePermissions {
    /// Globs the agent may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<String>,
    /// Globs the agent may write (and read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write: Vec<String>,
    /// Globs the agent may neither read nor write, whatever else grants them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// Hosts an agent may and may not connect to (`host:port`, `*` for any).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkRules {
    /// Hosts allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Hosts denied, unless allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}
