//! The shared-state and claim commands: `state get|set|cas|delete|list|watch`, `claim`
//! and `release`. They talk to the run's socket, like `send` and `board`; the broker
//! holds the backend (so an agent needs no Redis credentials).
//!
//! Exit codes: 0 done; 1 a key is unset, a compare-and-set found another value, a
//! watch saw no change (or the key went away), a claim is held by another agent; 3 bad
//! usage (a bad key, path or duration); 4 no run is reachable or the backend failed.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use relay_messaging::protocol::{Reply, Request};
use relay_messaging::{Entry, model::is_name};
use relay_state::Claim;

use crate::error::{CliError, CliResult, Exit};
use crate::messaging::{Endpoint, me, unexpected};

/// `state` options.
#[derive(Args, Debug)]
pub struct StateArgs {
    #[command(subcommand)]
    op: StateOp,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(Subcommand, Debug)]
enum StateOp {
    /// Print the value under KEY (exit 1 when unset).
    Get {
        /// The key.
        key: String,
        /// Print the entry as JSON (value, by, tsMs, rev, expiresMs).
        #[arg(long)]
        json: bool,
    },
    /// Set KEY to VALUE (several words are joined with spaces; `-` reads stdin; after
    /// `--` a word may start with `-`).
    Set {
        /// The key.
        key: String,
        /// The value.
        #[arg(required = true, num_args = 1.., allow_negative_numbers = true)]
        value: Vec<String>,
        /// How long it lives (`500ms`, `30s`, `10m`, `2h`; a number is seconds);
        /// default: the workflow's `state.ttlMs`, else forever.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// Set KEY to NEW only if it holds OLD now (`--expect OLD`) or is unset
    /// (`--absent`), atomically; exit 1, printing what it holds, when not.
    Cas {
        /// The key.
        key: String,
        /// The value it must hold now.
        #[arg(
            long,
            value_name = "OLD",
            allow_hyphen_values = true,
            required_unless_present = "absent",
            conflicts_with = "absent"
        )]
        expect: Option<String>,
        /// Only if the key is unset.
        #[arg(long)]
        absent: bool,
        /// The new value.
        #[arg(required = true, num_args = 1.., allow_negative_numbers = true)]
        value: Vec<String>,
        /// How long the new value lives.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
    },
    /// Delete KEY (exit 1 when it was not set).
    Delete {
        /// The key.
        key: String,
    },
    /// Print every entry whose key starts with PREFIX.
    List {
        /// The prefix (default: every key).
        prefix: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Wait until KEY changes, then print its value (exit 1 when the wait runs out or
    /// the key was deleted or expired).
    Watch {
        /// The key.
        key: String,
        /// Wait for a change from this revision (0: until it is set; default: from the
        /// key as it is now). `state get --json` prints a key's revision.
        #[arg(long, value_name = "N")]
        rev: Option<u64>,
        /// Longest wait (default 60s, at most 10m).
        #[arg(long, value_name = "DURATION")]
        wait: Option<String>,
        /// Print JSON: {"key", "changed", "entry"}.
        #[arg(long)]
        json: bool,
    },
}

/// `claim` options.
#[derive(Args, Debug)]
pub struct ClaimArgs {
    /// Files, directories (everything under them) or globs (`src/**/*.rs`), relative to
    /// the current directory.
    #[arg(required = true, num_args = 1..)]
    paths: Vec<String>,
    /// Let the claims lapse after this long (`30s`, `10m`); default: until released or
    /// your step ends.
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    /// Wait up to this long for claims in the way to end (`--wait` alone: 10m).
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "10m")]
    wait: Option<String>,
    /// Claim for this agent (the run's owner only; default $AGENT_RELAY_NAME).
    #[arg(long = "as", value_name = "NAME")]
    agent: Option<String>,
    /// Print the claims as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    endpoint: Endpoint,
}

/// `release` options.
#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The paths claimed (as claimed); default: every claim you hold.
    paths: Vec<String>,
    /// Release for this agent (the run's owner only; default $AGENT_RELAY_NAME).
    #[arg(long = "as", value_name = "NAME")]
    agent: Option<String>,
    #[command(flatten)]
    endpoint: Endpoint,
}

/// Reads `500ms`, `30s`, `10m`, `2h` or a number of seconds.
fn duration(text: &str, what: &str) -> CliResult<Duration> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    match num.parse::<f64>() {
        Ok(n) if scale.is_finite() && n.is_finite() && n > 0.0 && n * scale < 1e9 => {
            Ok(Duration::from_secs_f64(n * scale))
        }
        Ok(n) if scale.is_finite() && n == 0.0 => Err(CliError::invalid(format!(
            "{what} `{text}` is zero: give a time longer than that, or leave {what} out \
             for no limit"
        ))),
        Ok(n) if scale.is_finite() && n.is_finite() && n > 0.0 => Err(CliError::invalid(format!(
            "{what} `{text}` is too long: at most 1,000,000,000 seconds (about 31 years)"
        ))),
        _ => Err(CliError::invalid(format!(
            "{what} `{text}` is not a duration (e.g. 500ms, 30s, 10m, 2h)"
        ))),
    }
}

fn ttl_ms(ttl: Option<&str>) -> CliResult<Option<u64>> {
    ttl.map(|t| duration(t, "--ttl").map(|d| (d.as_millis() as u64).max(1)))
        .transpose()
}

fn value_of(words: &[String]) -> CliResult<String> {
    if words.len() == 1 && words[0] == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError::invalid(format!("cannot read the value from stdin: {e}")))?;
        return Ok(s);
    }
    Ok(words.join(" "))
}

fn writer() -> Option<String> {
    Some(me(None)).filter(|n| is_name(n))
}

fn show(key: &str, e: &Entry) -> String {
    format!("{key} = {} (by {})", e.value.replace('\n', "\n  "), e.by)
}

/// `agent-relay state`.
pub fn state(args: StateArgs) -> CliResult {
    let ep = &args.endpoint;
    match args.op {
        StateOp::Get { key, json } => match ep.ask(&Request::StateGet { key })? {
            Reply::Value {
                key,
                entry: Some(e),
            } => {
                if json {
                    println!("{}", serde_json::json!({"key": key, "entry": e}));
                } else {
                    println!("{}", e.value);
                }
                Ok(Exit::Success)
            }
            Reply::Value { key, entry: None } => Err(CliError::new(
                Exit::Failed,
                format!("`{key}` is not set in the shared state"),
            )),
            r => Err(unexpected(&r)),
        },
        StateOp::Set { key, value, ttl } => {
            let req = Request::StateSet {
                key,
                value: value_of(&value)?,
                by: writer(),
                ttl_ms: ttl_ms(ttl.as_deref())?,
            };
            match ep.ask(&req)? {
                Reply::Written { .. } => Ok(Exit::Success),
                r => Err(unexpected(&r)),
            }
        }
        StateOp::Cas {
            key,
            expect,
            absent,
            value,
            ttl,
        } => {
            let req = Request::StateCas {
                key,
                expected: if absent { None } else { expect },
                value: value_of(&value)?,
                by: writer(),
                ttl_ms: ttl_ms(ttl.as_deref())?,
            };
            match ep.ask(&req)? {
                Reply::Written { .. } => Ok(Exit::Success),
                Reply::Mismatch { key, current } => {
                    let now = match &current {
                        Some(e) => {
                            println!("{}", e.value);
                            format!("holds {:?} (by {})", e.value, e.by)
                        }
                        None => "is not set".to_owned(),
                    };
                    Err(CliError::new(
                        Exit::Failed,
                        format!("`{key}` {now}: nothing was written"),
                    ))
                }
                r => Err(unexpected(&r)),
            }
        }
        StateOp::Delete { key } => match ep.ask(&Request::StateDelete { key, by: writer() })? {
            Reply::Deleted { existed: true, .. } => Ok(Exit::Success),
            Reply::Deleted { key, .. } => {
                Err(CliError::new(Exit::Failed, format!("`{key}` was not set")))
            }
            r => Err(unexpected(&r)),
        },
        StateOp::List { prefix, json } => match ep.ask(&Request::StateList { prefix })? {
            Reply::Board { entries } => {
                if json {
                    println!("{}", serde_json::to_string(&entries).unwrap_or_default());
                } else {
                    for (k, e) in &entries {
                        println!("{}", show(k, e));
                    }
                }
                Ok(Exit::Success)
            }
            r => Err(unexpected(&r)),
        },
        StateOp::Watch {
            key,
            rev,
            wait,
            json,
        } => {
            let wait = match wait {
                Some(w) => duration(&w, "--wait")?,
                None => Duration::from_secs(60),
            }
            .min(relay_messaging::server::MAX_WAIT);
            let req = Request::StateWatch {
                key,
                rev,
                wait_ms: wait.as_millis() as u64,
            };
            match ep.ask(&req)? {
                Reply::Watched {
                    key,
                    changed,
                    entry,
                } => {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"key": key, "changed": changed, "entry": entry})
                        );
                    } else if let Some(e) = entry.as_ref().filter(|_| changed) {
                        println!("{}", e.value);
                    }
                    match (changed, &entry) {
                        (true, Some(_)) => Ok(Exit::Success),
                        (true, None) => Err(CliError::new(
                            Exit::Failed,
                            format!("`{key}` was deleted or expired"),
                        )),
                        (false, _) => Err(CliError::new(
                            Exit::Failed,
                            format!("`{key}` did not change within {}s", wait.as_secs_f64()),
                        )),
                    }
                }
                r => Err(unexpected(&r)),
            }
        }
    }
}

/// `path` as the claim names it: relative to `cwd` (an absolute path inside it is made
/// relative), a directory as everything under it.
fn claim_path(path: &str, cwd: &Path) -> CliResult<String> {
    let outside = || {
        CliError::invalid(format!(
            "`{path}` is outside the current directory; claim paths inside it"
        ))
    };
    let p = Path::new(path);
    let rel: PathBuf = if p.is_absolute() {
        p.strip_prefix(cwd).map_err(|_| outside())?.to_path_buf()
    } else {
        p.to_path_buf()
    };
    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(outside());
    }
    let mut text = rel.to_string_lossy().into_owned();
    if text.is_empty() {
        text = ".".into();
    }
    let glob = text.contains(['*', '?', '[']);
    if !glob && cwd.join(&rel).is_dir() && !text.ends_with('/') {
        text.push('/');
    }
    if text == "./" || text == "." {
        text = "**".into();
    }
    Ok(text)
}

fn describe(c: &Claim) -> String {
    let mut s = format!("`{}` is held by {}", c.path, c.holder);
    if let Some(step) = &c.step {
        s.push_str(&format!(" (step {step})"));
    }
    if let Some(exp) = c.expires_ms {
        let left = exp.saturating_sub(relay_state::now_ms());
        s.push_str(&format!(", for at most {:.1}s more", left as f64 / 1000.0));
    }
    s
}

fn holder(explicit: Option<&str>) -> CliResult<String> {
    let name = me(explicit);
    if !is_name(&name) {
        return Err(CliError::invalid(format!("`{name}` is not a valid name")));
    }
    Ok(name)
}

/// `agent-relay claim`.
pub fn claim(args: ClaimArgs) -> CliResult {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::runtime(format!("no current directory: {e}")))?;
    let paths = args
        .paths
        .iter()
        .map(|p| claim_path(p, &cwd))
        .collect::<CliResult<Vec<_>>>()?;
    let wait = args
        .wait
        .as_deref()
        .map(|w| duration(w, "--wait"))
        .transpose()?
        .map(|d| d.min(relay_messaging::server::MAX_WAIT));
    let req = Request::Claim {
        agent: holder(args.agent.as_deref())?,
        step: std::env::var("AGENT_RELAY_STEP")
            .ok()
            .filter(|s| !s.is_empty()),
        dir: Some(cwd.display().to_string()),
        paths,
        ttl_ms: ttl_ms(args.ttl.as_deref())?,
        wait_ms: wait.map(|d| d.as_millis() as u64),
    };
    match args.endpoint.ask(&req)? {
        Reply::Claimed { claims } => {
            if args.json {
                println!("{}", serde_json::to_string(&claims).unwrap_or_default());
            } else {
                for c in &claims {
                    println!("claimed {}", c.path);
                }
            }
            Ok(Exit::Success)
        }
        Reply::Refused { held } => {
            let lines: Vec<String> = held.iter().map(describe).collect();
            Err(CliError::new(
                Exit::Failed,
                format!("not claimed: {}", lines.join("; ")),
            ))
        }
        r => Err(unexpected(&r)),
    }
}

/// `agent-relay release`.
pub fn release(args: ReleaseArgs) -> CliResult {
    let paths = if args.paths.is_empty() {
        None
    } else {
        let cwd = std::env::current_dir()
            .map_err(|e| CliError::runtime(format!("no current directory: {e}")))?;
        Some(
            args.paths
                .iter()
                .map(|p| claim_path(p, &cwd))
                .collect::<CliResult<Vec<_>>>()?,
        )
    };
    let req = Request::Release {
        agent: holder(args.agent.as_deref())?,
        paths,
    };
    match args.endpoint.ask(&req)? {
        Reply::Released { claims } => {
            for c in &claims {
                println!("released {}", c.path);
            }
            Ok(Exit::Success)
        }
        r => Err(unexpected(&r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_paths_read_as_documented() {
        assert_eq!(duration("500ms", "x").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("2", "x").unwrap(), Duration::from_secs(2));
        assert_eq!(duration("1.5m", "x").unwrap(), Duration::from_secs(90));
        let why = |t: &str| duration(t, "--ttl").unwrap_err().headline.unwrap();
        assert!(why("soon").contains("not a duration"), "{}", why("soon"));
        assert!(why("0s").contains("is zero"), "{}", why("0s"));
        assert!(why("0").contains("is zero"), "{}", why("0"));
        assert!(
            why("99999999999h").contains("too long"),
            "{}",
            why("99999999999h")
        );
        assert!(why("5y").contains("not a duration"), "{}", why("5y"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let cwd = dir.path();
        assert_eq!(claim_path("src", cwd).unwrap(), "src/");
        assert_eq!(claim_path("src/*.rs", cwd).unwrap(), "src/*.rs");
        let abs = cwd.join("src/a.rs");
        assert_eq!(claim_path(abs.to_str().unwrap(), cwd).unwrap(), "src/a.rs");
        assert!(claim_path("../x", cwd).is_err());
        assert!(claim_path("/etc/passwd", cwd).is_err());
        assert_eq!(claim_path(".", cwd).unwrap(), "**");
    }
}
