//! Who is out there: every worker answers a status request with its capacity, labels,
//! what it offers and the attempts it runs (with their leases).

use std::time::Duration;

use futures_util::StreamExt;

use crate::names;
use crate::wire::{self, WorkerStatus};

/// The workers that answer within `wait`, by name.
pub async fn list(client: &async_nats::Client, wait: Duration) -> Vec<WorkerStatus> {
    let inbox = client.new_inbox();
    let Ok(mut sub) = client.subscribe(inbox.clone()).await else {
        return Vec::new();
    };
    if client
        .publish_with_reply(names::STATUS, inbox, Vec::new().into())
        .await
        .is_err()
    {
        return Vec::new();
    }
    let _ = client.flush().await;
    let deadline = tokio::time::Instant::now() + wait;
    let mut out: Vec<WorkerStatus> = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
        if let Ok(s) = wire::decode::<WorkerStatus>(&m.payload) {
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
