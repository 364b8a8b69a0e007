//! The run state's side of rate-limit parking (the clocks and holds are in `park.rs`): a
//! rate-limited attempt parks its node until the reset without spending a retry, a node
//! whose provider is held back parks before its attempt starts, parked nodes start again
//! when their time comes or at once on `agent-relay unpark`, and a resumed run parks again
//! the nodes its log left parked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Attempts, Effect, Kind, RunState};
use crate::events::EventKind;
use crate::job::{Previous, StepJob};
use crate::outcome::StepOutcome;
use crate::plan::NodeId;
use crate::run::park::{MAX_PARKS, Parking, Until};

/// The provider whose limits an attempt of `job` is under: its agent's CLI.
fn provider_of(job: &StepJob) -> Option<String> {
    job.agent().map(|a| a.cli.as_str().to_owned())
}

/// A rate limit an attempt reported.
pub(super) struct Limited {
    pub output: String,
    pub message: String,
    pub resets_at: Option<u64>,
}

impl RunState<'_> {
    /// The run's wall clock read `wall_ms` at `now`; a park without a reset time waits
    /// `backoff` (doubling); `parked` are the nodes (by label) a resumed run's log left
    /// parked, with until when (wall-clock milliseconds).
    pub fn with_parking(
        mut self,
        now: Instant,
        wall_ms: u64,
        backoff: Duration,
        parked: BTreeMap<String, u64>,
    ) -> Self {
        self.parking = Parking::new(now, wall_ms, backoff);
        self.resume_parks = parked;
        self
    }

    /// The parked nodes: label and until when (wall-clock milliseconds).
    pub fn parked_steps(&self) -> Vec<(String, u64)> {
        self.nodes
            .0
            .iter()
            .filter_map(|n| match &n.kind {
                Kind::Run {
                    attempts: Attempts::Parked { until, .. },
                    ..
                } => Some((n.label.clone(), until.wall_ms)),
                _ => None,
            })
            .collect()
    }

    /// Attempt `n` of node `id` reported a rate limit: the node parks until the reset
    /// (no retry spent), or fails when the run is stopping or the provider kept refusing.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rate_limited(
        &mut self,
        id: NodeId,
        job: Arc<StepJob>,
        n: u32,
        limited: Limited,
        now: Instant,
        out: &mut Vec<Effect>,
    ) {
        let rec = &mut self.nodes.0[id.index()];
        rec.parks += 1;
        let strikes = rec.parks;
        let provider = provider_of(&job);
        let Some(provider) = provider.filter(|_| self.stop.is_none() && strikes <= MAX_PARKS)
        else {
            let reason = if strikes > MAX_PARKS {
                format!(
                    "rate limited {MAX_PARKS} times in a row: {}",
                    limited.message
                )
            } else {
                format!("rate limited: {}", limited.message)
            };
            let failed = StepOutcome::Failed {
                output: limited.output,
                reason,
                exit_code: None,
                retryable: false,
            };
            return self.node_done(id, failed, n, now, out);
        };
        // The attempt ran and is counted, but spends no retry.
        rec.free_attempts += 1;
        let until = self
            .parking
            .park(&provider, limited.resets_at, strikes, now);
        self.park_node(id, job, n + 1, None, provider, until, limited.message, out);
    }

    /// Whether attempt `n` of node `id` must wait instead of starting now: its provider
    /// is held back, or the run's log left it parked before a resume. Parks it if so.
    pub(super) fn hold_back(
        &mut self,
        id: NodeId,
        job: &Arc<StepJob>,
        n: u32,
        previous: Option<&Previous>,
        now: Instant,
        out: &mut Vec<Effect>,
    ) -> bool {
        let Some(provider) = provider_of(job) else {
            return false;
        };
        let label = self.nodes.0[id.index()].label.clone();
        if let Some(wall_ms) = self.resume_parks.remove(&label)
            && wall_ms > self.parking.wall_ms(now)
        {
            let until = Until {
                at: self.parking.instant_of(wall_ms, now),
                wall_ms,
            };
            self.parking.hold(&provider, until);
            let reason = "parked when the run stopped; parked again on resume".to_string();
            self.park_node(
                id,
                job.clone(),
                n,
                previous.cloned(),
                provider,
                until,
                reason,
                out,
            );
            return true;
        }
        if let Some(until) = self.parking.held(&provider, now) {
            let reason = format!("held back: {provider} reported a rate limit");
            self.park_node(
                id,
                job.clone(),
                n,
                previous.cloned(),
                provider,
                until,
                reason,
                out,
            );
            return true;
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn park_node(
        &mut self,
        id: NodeId,
        job: Arc<StepJob>,
        next: u32,
        previous: Option<Previous>,
        provider: String,
        until: Until,
        reason: String,
        out: &mut Vec<Effect>,
    ) {
        let rec = &mut self.nodes.0[id.index()];
        out.push(Effect::Record(EventKind::StepParked {
            step: rec.label.clone(),
            attempt: next,
            provider,
            until: crate::clock::rfc3339(
                std::time::UNIX_EPOCH + Duration::from_millis(until.wall_ms),
            ),
            until_ms: until.wall_ms,
            reason,
        }));
        if let Kind::Run { attempts, .. } = &mut rec.kind {
            *attempts = Attempts::Parked {
                job,
                n: next,
                previous,
                until,
            };
        }
        self.parked.insert(id, until.at);
    }

    /// Starts the parked nodes whose time has come (all of them when `all`).
    pub(super) fn unpark(&mut self, all: bool, now: Instant, out: &mut Vec<Effect>) {
        let due: Vec<NodeId> = self
            .parked
            .iter()
            .filter(|(_, at)| all || now >= **at)
            .map(|(id, _)| *id)
            .collect();
        if all {
            self.parking.clear();
            self.resume_parks.clear();
            let steps: Vec<String> = due
                .iter()
                .map(|id| self.nodes.0[id.index()].label.clone())
                .collect();
            if !steps.is_empty() {
                out.push(Effect::Record(EventKind::RunUnparked { steps }));
            }
        }
        for id in due {
            self.parked.remove(&id);
            let attempts = match &mut self.nodes.0[id.index()].kind {
                Kind::Run { attempts, .. } => std::mem::replace(attempts, Attempts::Idle),
                Kind::Gate(_) => continue,
            };
            if let Attempts::Parked {
                job, n, previous, ..
            } = attempts
            {
                self.launch(id, job, n, previous.as_ref(), now, out);
            }
        }
    }

    /// The run stops: parked nodes end as cancelled.
    pub(super) fn end_parked(&mut self, now: Instant, out: &mut Vec<Effect>) {
        for id in std::mem::take(&mut self.parked).into_keys() {
            let (n, output) = match &self.nodes.0[id.index()].kind {
                Kind::Run {
                    attempts: Attempts::Parked { n, previous, .. },
                    ..
                } => (
                    n.saturating_sub(1),
                    previous
                        .as_ref()
                        .map(|p| p.output.clone())
                        .unwrap_or_default(),
                ),
                _ => continue,
            };
            self.node_done(id, StepOutcome::Cancelled { output }, n, now, out);
        }
    }
}
