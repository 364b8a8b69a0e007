//! Making sure a JetStream stream exists when several processes (workers, coordinators)
//! start at once: the server answers a creation that lost the race with "subjects
//! overlap with an existing stream", so a failed creation is followed by a look-up of
//! the stream the winner made.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// The stream `config` names, created when it does not exist yet.
pub async fn ensure(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, String> {
    let mut last = String::new();
    for round in 1..=5u64 {
        match js.get_or_create_stream(config.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
        if let Ok(s) = js.get_stream(&config.name).await {
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(50 * round)).await;
    }
    Err(last)
}
