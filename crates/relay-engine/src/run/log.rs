//! The run's event log as the driver writes it: events are stamped, buffered, and
//! appended in one write when the driver is about to act on them (or to wait), so
//! nothing is acted on before it is in the log; each is folded into the live
//! [`Snapshot`], which is written as `state.json` at a bounded rate (and at the end), so
//! its cost does not grow with the square of the steps.

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::events::{Event, EventKind};
use crate::snapshot::Snapshot;
use crate::store::{RunStore, StoreError};
use crate::trajectory::{self, Decision};

/// Longest a changed snapshot waits before it is written.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

/// Records events in the run's log, keeps the snapshot current, and passes them on.
pub(crate) struct EventLog {
    pub store: RunStore,
    observer: Option<UnboundedSender<Event>>,
    pub snapshot: Snapshot,
    pending: Vec<Event>,
    /// When the snapshot changed first since it was last written.
    dirty_since: Option<Instant>,
    /// Decisions to add to the trajectory, when it is kept.
    decisions: Option<Vec<Decision>>,
}

impl EventLog {
    /// A log over `store`, continuing from `snapshot`, telling `observer` every event.
    pub fn new(
        store: RunStore,
        snapshot: Snapshot,
        observer: Option<UnboundedSender<Event>>,
    ) -> Self {
        EventLog {
            store,
            observer,
            snapshot,
            pending: Vec::new(),
            dirty_since: None,
            decisions: None,
        }
    }

    /// Keeps the run's trajectory from now on, starting with `first`.
    pub fn keep_trajectory(&mut self, first: Decision) {
        self.decisions = Some(vec![first]);
    }

    /// Writes the trajectory's readable summary, when it is kept.
    pub async fn write_trajectory_summary(&mut self) -> Result<(), StoreError> {
        if self.decisions.is_none() {
            return Ok(());
        }
        let text = tokio::fs::read_to_string(self.store.dir().join(trajectory::FILE))
            .await
            .unwrap_or_default();
        let run_id = self.snapshot.run_id.clone().unwrap_or_default();
        let summary = trajectory::summary(&run_id, &trajectory::parse(&text));
        self.store
            .write_file(trajectory::SUMMARY, summary.as_bytes())
            .await
    }

    /// Stamps `kind` and queues it; it is in the log after the next [`flush`](Self::flush).
    pub fn push(&mut self, kind: EventKind) {
        let event = Event::now(kind);
        if self.snapshot.apply(&event) && self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
        if let Some(d) = self.decisions.as_mut()
            && let Some(decision) = trajectory::of_event(&event)
        {
            d.push(decision);
        }
        self.pending.push(event);
    }

    /// Appends what is queued and passes it on.
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        if let Some(d) = self.decisions.as_mut()
            && !d.is_empty()
        {
            let mut buf = Vec::new();
            for decision in d.drain(..) {
                if serde_json::to_writer(&mut buf, &decision).is_ok() {
                    buf.push(b'\n');
                }
            }
            self.store.append_to(trajectory::FILE, &buf).await?;
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.pending);
        self.store.append_all(&events).await?;
        if let Some(o) = &self.observer {
            for e in events {
                let _ = o.send(e);
            }
        }
        Ok(())
    }

    /// Queues `kind` and appends it at once.
    pub async fn record(&mut self, kind: EventKind) -> Result<(), StoreError> {
        self.push(kind);
        self.flush().await
    }

    /// When the snapshot should be written next, if it changed.
    pub fn snapshot_due(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t + SNAPSHOT_EVERY)
    }

    /// Writes `state.json` now if it changed.
    pub async fn write_snapshot(&mut self) -> Result<(), StoreError> {
        if self.dirty_since.take().is_none() {
            return Ok(());
        }
        let text = self.snapshot.to_json().map_err(|e| StoreError {
            path: self.store.dir().join("state.json"),
            source: std::io::Error::other(e),
        })?;
        self.store.write_file("state.json", &text).await
    }

    /// Writes `state.json` if it is due by `now`.
    pub async fn write_snapshot_if_due(&mut self, now: Instant) -> Result<(), StoreError> {
        match self.snapshot_due() {
            Some(at) if at <= now => self.write_snapshot().await,
            _ => Ok(()),
        }
    }
}
