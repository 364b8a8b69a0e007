//! File claims: an agent says which paths (or globs) it is working on, and no other live
//! agent gets an overlapping claim until it is released, expires with its TTL, or the
//! holder's step ends. What was held, by whom and when is kept, so the end of each step
//! can be checked for files changed under another agent's claim.
//!
//! The book is synchronous, behind a mutex held only for its own operations; waiting for
//! a claim is a loop over `try` and a [`tokio::sync::Notify`] that every release wakes.
//! Expiry is lazy: each operation first ends what has expired, with the expiry time as
//! its end; a waiter sleeps no longer than the earliest expiry in its way.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::changes::Changed;
use crate::glob::{Glob, GlobError, normalize};
use crate::{Observers, now_ms};
use serde::{Deserialize, Serialize};

/// Most paths one request may claim.
pub const MAX_PATHS: usize = 256;

/// Most claims held at once in a run.
pub const MAX_ACTIVE: usize = 10_000;

/// Ended claims kept for the conflict check.
const HISTORY: usize = 10_000;

/// Leeway around times compared with file modification times, whose clock is coarser.
pub const SLACK_MS: u64 = 50;

/// How a claim ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimEnd {
    /// Its holder released it.
    Released,
    /// Its TTL ran out.
    Expired,
    /// The holder's step ended.
    StepEnded,
    /// The run ended.
    RunEnded,
}

impl ClaimEnd {
    /// The word in events.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimEnd::Released => "released",
            ClaimEnd::Expired => "expired",
            ClaimEnd::StepEnded => "step-ended",
            ClaimEnd::RunEnded => "run-ended",
        }
    }
}

/// One claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    /// The path or glob, relative to the holder's directory.
    pub path: String,
    /// Who holds it.
    pub holder: String,
    /// The holder's step (its label), when it claimed from inside one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The directory the holder claimed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// When it was granted, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// When it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// When it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// How it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<ClaimEnd>,
}

/// A claim request refused: the claims in its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Every claim of another holder that overlaps a path asked for.
    pub held: Vec<Claim>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .held
            .iter()
            .map(|c| format!("`{}` is held by {}", c.path, c.holder))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// Why a claim request was not granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// A path is not acceptable.
    #[error(transparent)]
    Path(#[from] GlobError),
    /// Nothing to claim, or too much.
    #[error("claim 1 to {MAX_PATHS} paths at a time")]
    Count,
    /// The run holds as many claims as it keeps.
    #[error("the run already holds {MAX_ACTIVE} claims")]
    Full,
    /// Another live agent holds an overlapping claim.
    #[error("{0}")]
    Held(Refusal),
}

/// A change of the book, for the run's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRecord {
    /// Claims granted to one holder in one request.
    Granted(Vec<Claim>),
    /// Claims that ended, with how (in the claims).
    Ended(Vec<Claim>),
}

/// A changed file another agent held a claim on while it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// The file, relative to the step's directory.
    pub path: String,
    /// The claim it changed under.
    pub claim: Claim,
    /// Whether the holder claimed from another directory, so the change cannot be its
    /// own. In one shared directory a change may be the holder's, and is reported, but
    /// never fails a step.
    pub certain: bool,
}

#[derive(Debug, Default)]
struct Book {
    active: Vec<(Claim, Glob)>,
    history: VecDeque<(Claim, Glob)>,
}

impl Book {
    fn end(&mut self, idx: Vec<usize>, how: ClaimEnd, at: impl Fn(&Claim) -> u64) -> Vec<Claim> {
        let mut ended = Vec::new();
        for i in idx.into_iter().rev() {
            let (mut c, g) = self.active.remove(i);
            c.ended_ms = Some(at(&c));
            c.end = Some(how);
            ended.push(c.clone());
            if self.history.len() >= HISTORY {
                self.history.pop_front();
            }
            self.history.push_back((c, g));
        }
        ended.reverse();
        ended
    }

    fn expire(&mut self, now: u64) -> Vec<Claim> {
        let idx: Vec<usize> = (0..self.active.len())
            .filter(|&i| self.active[i].0.expires_ms.is_some_and(|e| e <= now))
            .collect();
        self.end(idx, ClaimEnd::Expired, |c| c.expires_ms.unwrap_or(now))
    }
}

/// The claims of one run.
#[derive(Debug, Default)]
pub struct Claims {
    book: Mutex<Book>,
    released: tokio::sync::Notify,
    observers: Observers<ClaimRecord>,
}

/// One claim request.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    /// Who claims.
    pub holder: &'a str,
    /// From which of its steps.
    pub step: Option<&'a str>,
    /// From which directory.
    pub dir: Option<&'a Path>,
    /// The paths or globs.
    pub paths: &'a [String],
    /// How long the claims last at most.
    pub ttl: Option<Duration>,
}

impl Claims {
    /// An empty book.
    pub fn new() -> Claims {
        Claims::default()
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Who is told of every change of the book, before the call that made it returns.
    pub fn observers(&self) -> &Observers<ClaimRecord> {
        &self.observers
    }

    fn emit(&self, rec: ClaimRecord) {
        let empty = match &rec {
            ClaimRecord::Granted(c) | ClaimRecord::Ended(c) => c.is_empty(),
        };
        if empty {
            return;
        }
        if matches!(rec, ClaimRecord::Ended(_)) {
            self.released.notify_waiters();
        }
        self.observers.emit(&rec);
    }

    fn expire_now(&self, book: &mut Book, now: u64) -> Vec<Claim> {
        book.expire(now)
    }

    /// Grants every path of `ask` or none: refused when another holder's live claim
    /// overlaps one of them. A path the holder already holds is renewed.
    pub fn try_claim(&self, ask: &Ask<'_>) -> Result<Vec<Claim>, ClaimError> {
        if ask.paths.is_empty() || ask.paths.len() > MAX_PATHS {
            return Err(ClaimError::Count);
        }
        let mut wanted = Vec::new();
        for p in ask.paths {
            let path = normalize(p)?;
            let glob = Glob::new(&path)?;
            wanted.push((path, glob));
        }
        let now = now_ms();
        let (expired, result) = {
            let mut book = self.book();
            let expired = self.expire_now(&mut book, now);
            let held: Vec<Claim> = book
                .active
                .iter()
                .filter(|(c, g)| {
                    c.holder != ask.holder && wanted.iter().any(|(_, w)| w.overlaps(g))
                })
                .map(|(c, _)| c.clone())
                .collect();
            let result = if !held.is_empty() {
                Err(ClaimError::Held(Refusal { held }))
            } else if book.active.len() + wanted.len() > MAX_ACTIVE {
                Err(ClaimError::Full)
            } else {
                let mut granted = Vec::new();
                for (path, glob) in wanted {
                    let claim = Claim {
                        path: path.clone(),
                        holder: ask.holder.to_owned(),
                        step: ask.step.map(str::to_owned),
                        dir: ask.dir.map(Path::to_path_buf),
                        since_ms: now,
                        expires_ms: ask.ttl.map(|t| now + t.as_millis() as u64),
                        ended_ms: None,
                        end: None,
                    };
                    // Renewing: the old claim on the same path is replaced, keeping when
                    // it began.
                    let claim = match book
                        .active
                        .iter()
                        .position(|(c, _)| c.holder == ask.holder && c.path == path)
                    {
                        Some(i) => {
                            let since = book.active[i].0.since_ms;
                            book.active.remove(i);
                            Claim {
                                since_ms: since,
                                ..claim
                            }
                        }
                        None => claim,
                    };
                    book.active.push((claim.clone(), glob));
                    granted.push(claim);
                }
                Ok(granted)
            };
            (expired, result)
        };
        self.emit(ClaimRecord::Ended(expired));
        if let Ok(g) = &result {
            self.emit(ClaimRecord::Granted(g.clone()));
        }
        result
    }

    /// Like [`Claims::try_claim`], waiting up to `wait` for the claims in the way to end.
    pub async fn claim(&self, ask: &Ask<'_>, wait: Duration) -> Result<Vec<Claim>, ClaimError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the attempt, so a release in between is not missed.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let refusal = match self.try_claim(ask) {
                Err(ClaimError::Held(r)) => r,
                other => return other,
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ClaimError::Held(refusal));
            }
            let mut until = deadline;
            if let Some(exp) = refusal.held.iter().filter_map(|c| c.expires_ms).min() {
                let left = Duration::from_millis(exp.saturating_sub(now_ms()) + 1);
                until = until.min(now + left);
            }
            tokio::select! {
                () = &mut released => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Ends `holder`'s claims on `paths` (every claim of it when `None`); the claims ended.
    pub fn release(
        &self,
        holder: &str,
        paths: Option<&[String]>,
    ) -> Result<Vec<Claim>, ClaimError> {
        let wanted = match paths {
            Some(ps) => Some(
                ps.iter()
                    .map(|p| normalize(p))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let now = now_ms();
        let (expired, ended) = {
            let mut book = self.book();
            let expired = self.expire_now(&mut book, now);
            let idx: Vec<usize> = (0..book.active.len())
                .filter(|&i| {
                    let c = &book.active[i].0;
                    c.holder == holder && wanted.as_ref().is_none_or(|w| w.contains(&c.path))
                })
                .collect();
            (expired, book.end(idx, ClaimEnd::Released, |_| now))
        };
        self.emit(ClaimRecord::Ended(expired));
        self.emit(ClaimRecord::Ended(ended.clone()));
        Ok(ended)
    }

    /// A step of `holder` ended: its claims from that step end, and so do its claims
    /// made outside any step when `last` (no step of it is running any more).
    pub fn step_ended(&self, holder: &str, step: &str, last: bool) -> Vec<Claim> {
        self.end_where(ClaimEnd::StepEnded, |c| {
            c.holder == holder && (c.step.as_deref() == Some(step) || (last && c.step.is_none()))
        })
    }

    /// The run ended: every claim ends.
    pub fn run_ended(&self) -> Vec<Claim> {
        self.end_where(ClaimEnd::RunEnded, |_| true)
    }

    fn end_where(&self, how: ClaimEnd, which: impl Fn(&Claim) -> bool) -> Vec<Claim> {
        let now = now_ms();
        let (expired, ended) = {
            let mut book = self.book();
            let expired = self.expire_now(&mut book, now);
            let idx: Vec<usize> = (0..book.active.len())
                .filter(|&i| which(&book.active[i].0))
                .collect();
            (expired, book.end(idx, how, |_| now))
        };
        self.emit(ClaimRecord::Ended(expired));
        self.emit(ClaimRecord::Ended(ended.clone()));
        ended
    }

    /// The claims held now.
    pub fn active(&self) -> Vec<Claim> {
        let (expired, active) = {
            let mut book = self.book();
            let expired = self.expire_now(&mut book, now_ms());
            let active = book.active.iter().map(|(c, _)| c.clone()).collect();
            (expired, active)
        };
        self.emit(ClaimRecord::Ended(expired));
        active
    }

    /// Claims of others than `agent` held at some time between `from_ms` and now: the
    /// only ones a step of `agent` over that time can conflict with.
    pub fn others_during(&self, agent: &str, from_ms: u64) -> Vec<Claim> {
        let _ = self.active();
        let book = self.book();
        book.active
            .iter()
            .chain(book.history.iter())
            .filter(|(c, _)| c.holder != agent)
            .filter(|(c, _)| c.ended_ms.is_none_or(|e| e + SLACK_MS >= from_ms))
            .map(|(c, _)| c.clone())
            .collect()
    }
}

/// The files in `changed` (by a step of `agent` in `dir`, between `from_ms` and
/// `to_ms`) that changed while a claim in `claims` of another agent covered them.
pub fn conflicts(
    agent: &str,
    dir: &Path,
    changed: &[Changed],
    claims: &[Claim],
    from_ms: u64,
    to_ms: u64,
) -> Vec<Conflict> {
    let globs: Vec<(&Claim, Glob)> = claims
        .iter()
        .filter(|c| c.holder != agent)
        .filter_map(|c| Glob::new(&c.path).ok().map(|g| (c, g)))
        .collect();
    let mut out = Vec::new();
    for f in changed {
        // Changed by the step: inside its time, with leeway for the file clock.
        if f.mtime_ms + SLACK_MS < from_ms || f.mtime_ms > to_ms + SLACK_MS {
            continue;
        }
        for (c, g) in &globs {
            let held_then = f.mtime_ms + SLACK_MS >= c.since_ms
                && c.ended_ms.is_none_or(|e| f.mtime_ms <= e + SLACK_MS);
            if held_then && g.matches(&f.path) {
                let certain = c.dir.as_deref().is_some_and(|d| !same_dir(d, dir));
                out.push(Conflict {
                    path: f.path.clone(),
                    claim: (*c).clone(),
                    certain,
                });
                break;
            }
        }
    }
    out
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

/// What `coordination.claims: enforce` makes of a step's conflicts: the reason it
/// fails, when one of them is certain. Call it where the step's outcome is decided
/// (the engine does, at the end of each attempt of an agent step).
pub fn enforce_verdict(conflicts: &[Conflict]) -> Option<String> {
    let certain: Vec<String> = conflicts
        .iter()
        .filter(|c| c.certain)
        .map(|c| format!("`{}` (claimed by {})", c.path, c.claim.holder))
        .collect();
    if certain.is_empty() {
        return None;
    }
    Some(format!(
        "it changed {} while another agent held a claim on it (coordination.claims: enforce)",
        certain.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask<'a>(holder: &'a str, paths: &'a [String]) -> Ask<'a> {
        Ask {
            holder,
            step: Some("s"),
            dir: None,
            paths,
            ttl: None,
        }
    }

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_overlapping_claim_of_another_is_refused_with_its_holder() {
        let c = Claims::new();
        let a = paths(&["src/**"]);
        c.try_claim(&ask("alice", &a)).unwrap();
        let b = paths(&["docs/x.md", "src/lib.rs"]);
        let Err(ClaimError::Held(r)) = c.try_claim(&ask("bob", &b)) else {
            panic!("bob got src/lib.rs");
        };
        assert_eq!(r.held[0].holder, "alice");
        assert!(r.to_string().contains("`src/**` is held by alice"));
        assert_eq!(
            c.active().len(),
            1,
            "all or nothing: bob holds no docs/x.md"
        );
        // The holder itself may claim inside its own claim.
        c.try_claim(&ask("alice", &paths(&["src/lib.rs"]))).unwrap();
        assert_eq!(c.release("alice", None).unwrap().len(), 2);
        c.try_claim(&ask("bob", &b)).unwrap();
    }

    #[test]
    fn claims_end_with_their_step() {
        let c = Claims::new();
        let mut records = c.observers().channel();
        c.try_claim(&ask("alice", &paths(&["a"]))).unwrap();
        let b = paths(&["b"]);
        c.try_claim(&Ask {
            step: None,
            ..ask("alice", &b)
        })
        .unwrap();
        assert!(c.step_ended("alice", "other", false).is_empty());
        let ended = c.step_ended("alice", "s", false);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].end, Some(ClaimEnd::StepEnded));
        assert_eq!(
            c.step_ended("alice", "other", true).len(),
            1,
            "its last step"
        );
        assert!(c.active().is_empty());
        assert!(matches!(records.try_recv(), Ok(ClaimRecord::Granted(_))));
        assert!(matches!(records.try_recv(), Ok(ClaimRecord::Granted(_))));
        assert!(matches!(records.try_recv(), Ok(ClaimRecord::Ended(_))));
    }

    #[test]
    fn a_claim_expires_with_its_ttl() {
        let c = Claims::new();
        let p = paths(&["f"]);
        c.try_claim(&Ask {
            ttl: Some(Duration::from_millis(1)),
            ..ask("alice", &p)
        })
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !c.active().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never expired");
            std::thread::yield_now();
        }
        c.try_claim(&ask("bob", &p)).unwrap();
    }

    #[tokio::test]
    async fn a_waiting_claim_is_granted_when_the_holder_releases() {
        let c = std::sync::Arc::new(Claims::new());
        c.try_claim(&ask("alice", &paths(&["f"]))).unwrap();
        let c2 = c.clone();
        let waiter = tokio::spawn(async move {
            let p = paths(&["f"]);
            c2.claim(&ask("bob", &p), Duration::from_secs(60)).await
        });
        // On this one-thread runtime the yields let bob try, be refused and wait.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "bob waits while alice holds f");
        c.release("alice", None).unwrap();
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got[0].holder, "bob");
    }

    #[test]
    fn a_file_changed_under_another_agents_claim_is_a_conflict() {
        let claim = Claim {
            path: "src/*.rs".into(),
            holder: "bob".into(),
            step: Some("b".into()),
            dir: Some(PathBuf::from("/elsewhere")),
            since_ms: 1_000,
            expires_ms: None,
            ended_ms: Some(2_000),
            end: Some(ClaimEnd::Released),
        };
        let changed = [
            Changed {
                path: "src/a.rs".into(),
                mtime_ms: 1_500,
            },
            Changed {
                path: "src/b.rs".into(),
                mtime_ms: 3_000,
            },
            Changed {
                path: "README.md".into(),
                mtime_ms: 1_500,
            },
        ];
        let found = conflicts(
            "alice",
            Path::new("/here"),
            &changed,
            std::slice::from_ref(&claim),
            0,
            5_000,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "src/a.rs");
        assert!(found[0].certain);
        assert!(
            enforce_verdict(&found)
                .unwrap()
                .contains("`src/a.rs` (claimed by bob)")
        );
        let own = conflicts(
            "bob",
            Path::new("/here"),
            &changed,
            std::slice::from_ref(&claim),
            0,
            5_000,
        );
        assert!(own.is_empty(), "a holder's own changes are no conflict");
        let shared = conflicts(
            "alice",
            Path::new("/elsewhere"),
            &changed,
            &[claim],
            0,
            5_000,
        );
        assert!(!shared[0].certain && enforce_verdict(&shared).is_none());
    }
}
