//! What tokens cost: a per-model price table in US dollars per million tokens, built in
//! and extended (or overridden) by the user's files, the project's first:
//! `.agent-relay/prices.yaml` in the working directory, then
//! `$AGENT_RELAY_CONFIG_DIR/prices.yaml` (else `$XDG_CONFIG_HOME/agent-relay/`, else
//! `~/.config/agent-relay/`). A model is priced by the longest entry its name starts with
//! (`claude-sonnet-4` prices `claude-sonnet-4-5-20250929`); an unknown model has no cost
//! (its tokens still count).
//!
//! ```yaml
//! models:
//!   my-model: {input: 1.0, output: 4.0, cacheRead: 0.1, cacheWrite: 1.25}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use relay_broker::usage::Usage;
use serde::{Deserialize, Serialize};

/// Dollars per million tokens of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Price {
    /// Input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Input tokens read from a cache (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Input tokens written to a cache (default: the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

impl Price {
    /// What `usage` costs at this price, in dollars.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let m = 1_000_000.0;
        (usage.input as f64 * self.input
            + usage.output as f64 * self.output
            + usage.cache_read as f64 * self.cache_read.unwrap_or(self.input)
            + usage.cache_write as f64 * self.cache_write.unwrap_or(self.input))
            / m
    }
}

/// The shape of a prices file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricesFile {
    /// Prices by model name (or the start of one).
    #[serde(default)]
    pub models: BTreeMap<String, Price>,
}

/// Where an entry came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Built into agent-relay.
    Builtin,
    /// A user's or project's file.
    File(PathBuf),
}

/// The price table in effect.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: BTreeMap<String, (Price, Source)>,
}

/// Built-in list prices (USD per million tokens) of common models.
const BUILTIN: &[(&str, f64, f64, f64, f64)] = &[
    ("claude-opus-4", 15.0, 75.0, 1.5, 18.75),
    ("claude-sonnet-4", 3.0, 15.0, 0.3, 3.75),
    ("claude-haiku-4", 1.0, 5.0, 0.1, 1.25),
    ("claude-3-5-haiku", 0.8, 4.0, 0.08, 1.0),
    ("gpt-5", 1.25, 10.0, 0.125, 1.25),
    ("gpt-5-mini", 0.25, 2.0, 0.025, 0.25),
    ("gpt-5-nano", 0.05, 0.4, 0.005, 0.05),
    ("gpt-4.1", 2.0, 8.0, 0.5, 2.0),
    ("o3", 2.0, 8.0, 0.5, 2.0),
    ("o4-mini", 1.1, 4.4, 0.275, 1.1),
    ("gemini-2.5-pro", 1.25, 10.0, 0.31, 1.25),
    ("gemini-2.5-flash", 0.3, 2.5, 0.075, 0.3),
    ("gemini-2.5-flash-lite", 0.1, 0.4, 0.025, 0.1),
];

/// Why a prices file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    /// It could not be read or written.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// It is not a prices file.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The project's prices file under `workdir`.
pub fn project_file(workdir: &Path) -> PathBuf {
    workdir.join(".agent-relay").join("prices.yaml")
}

/// The user's prices file, from the environment.
pub fn user_file() -> Option<PathBuf> {
    let set = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = set("AGENT_RELAY_CONFIG_DIR") {
        return Some(d.join("prices.yaml"));
    }
    if let Some(d) = set("XDG_CONFIG_HOME").filter(|d| d.is_absolute()) {
        return Some(d.join("agent-relay").join("prices.yaml"));
    }
    set("HOME").map(|h| h.join(".config").join("agent-relay").join("prices.yaml"))
}

/// Reads a prices file; a missing one is empty.
pub fn read_file(path: &Path) -> Result<PricesFile, PricesError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // No such file, or a path through something that is not a directory: no prices.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(PricesFile::default());
        }
        Err(e) => {
            return Err(PricesError::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(PricesFile::default());
    }
    serde_saphyr::from_str(&text).map_err(|e| PricesError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl PriceTable {
    /// The built-in prices only.
    pub fn builtin() -> PriceTable {
        let mut t = PriceTable::default();
        for &(model, input, output, cache_read, cache_write) in BUILTIN {
            t.entries.insert(
                model.to_string(),
                (
                    Price {
                        input,
                        output,
                        cache_read: Some(cache_read),
                        cache_write: Some(cache_write),
                    },
                    Source::Builtin,
                ),
            );
        }
        t
    }

    /// The built-in prices, then the user's file, then the project's (in `workdir`).
    pub fn load(workdir: &Path) -> Result<PriceTable, PricesError> {
        let mut t = PriceTable::builtin();
        let files = user_file()
            .into_iter()
            .chain(std::iter::once(project_file(workdir)));
        for f in files {
            for (model, price) in read_file(&f)?.models {
                t.entries.insert(model, (price, Source::File(f.clone())));
            }
        }
        Ok(t)
    }

    /// The price of `model`: the longest entry it starts with.
    pub fn price(&self, model: &str) -> Option<&Price> {
        let model = model.split('[').next().unwrap_or(model).trim();
        let model = model.rsplit('/').next().unwrap_or(model);
        self.entries
            .iter()
            .filter(|(k, _)| model.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, (p, _))| p)
    }

    /// What `usage` of `model` costs, when the model has a price.
    pub fn cost(&self, model: Option<&str>, usage: &Usage) -> Option<f64> {
        model.and_then(|m| self.price(m)).map(|p| p.cost(usage))
    }

    /// Every entry: (model, price, where it came from).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Price, &Source)> {
        self.entries.iter().map(|(k, (p, s))| (k.as_str(), p, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_matching_entry_prices_a_model() {
        let t = PriceTable::builtin();
        let u = Usage {
            input: 1_000_000,
            output: 1_000_000,
            cache_read: 0,
            cache_write: 0,
        };
        assert_eq!(t.cost(Some("claude-sonnet-4-5-20250929"), &u), Some(18.0));
        assert_eq!(t.cost(Some("gpt-5-mini"), &u), Some(2.25));
        assert_eq!(t.cost(Some("openai/gpt-5"), &u), Some(11.25));
        assert_eq!(t.cost(Some("claude-opus-4-8[1m]"), &u), Some(90.0));
        assert_eq!(t.cost(Some("mystery"), &u), None);
        assert_eq!(t.cost(None, &u), None);
    }

    #[test]
    fn the_project_file_extends_and_overrides() {
        let t = tempfile::tempdir().unwrap();
        let f = project_file(t.path());
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(
            &f,
            "models:\n  mock-model: {input: 2, output: 4}\n  gpt-5: {input: 0, output: 0}\n",
        )
        .unwrap();
        let table = PriceTable::load(t.path()).unwrap();
        let u = Usage {
            input: 500_000,
            output: 250_000,
            cache_read: 0,
            cache_write: 0,
        };
        assert_eq!(table.cost(Some("mock-model"), &u), Some(2.0));
        assert_eq!(table.cost(Some("gpt-5"), &u), Some(0.0));
        std::fs::write(&f, "models:\n  x: {inptu: 1, output: 2}\n").unwrap();
        let e = PriceTable::load(t.path()).unwrap_err();
        assert!(e.to_string().contains("prices.yaml"), "{e}");
    }
}
