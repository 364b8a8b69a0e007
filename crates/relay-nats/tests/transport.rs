//! The JetStream mailboxes against a real nats-server: order per sender, copies gone
//! from the stream once settled, nothing lost while the server restarts, and copies an
//! earlier coordinator left behind dropped rather than delivered again.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use relay_messaging::persist::Persist;
use relay_messaging::{AgentInfo, AgentState, Router, RouterConfig, Target, Transport};
use relay_nats::names::MAIL_STREAM;
use relay_nats::transport::NatsTransport;
use relay_testkit::nats::NatsServer;

fn agent(name: &str) -> AgentInfo {
    AgentInfo {
        name: name.into(),
        role: None,
        interactive: false,
        channels: Vec::new(),
        state: AgentState::Running,
    }
}

async fn router(
    client: &async_nats::Client,
    dir: &std::path::Path,
    run: &str,
    epoch: u64,
) -> Router {
    let t: Arc<dyn Transport> = Arc::new(NatsTransport::new(
        client.clone(),
        run,
        epoch,
        Duration::from_secs(1),
    ));
    let r = Router::new(
        t,
        Persist::open(&dir.join(format!("messages-{epoch}.jsonl"))).unwrap(),
        1,
        RouterConfig::default(),
    );
    for n in ["a", "b", "c"] {
        r.register(agent(n));
    }
    r
}

async fn in_stream(client: &async_nats::Client) -> u64 {
    let js = jetstream::new(client.clone());
    match js.get_stream(MAIL_STREAM).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

async fn wait_for_stream(client: &async_nats::Client, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = in_stream(client).await;
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} messages in the stream, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_keep_their_order_and_leave_the_stream_once_settled() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let client = async_nats::connect(server.url()).await.unwrap();
    let r = router(&client, dir.path(), "run-1", 1).await;
    for i in 0..50 {
        r.send("a", &Target::Agent("c".into()), &format!("a{i}"))
            .await
            .unwrap();
        r.send("b", &Target::Agent("c".into()), &format!("b{i}"))
            .await
            .unwrap();
    }
    wait_for_stream(&client, 100).await;
    let mut got: Vec<String> = Vec::new();
    while got.len() < 100 {
        for d in r
            .take("c", 1000, Some(Duration::from_secs(5)))
            .await
            .unwrap()
        {
            got.push(d.envelope().text.clone());
            d.delivered();
        }
    }
    for who in ["a", "b"] {
        let mine: Vec<&String> = got.iter().filter(|t| t.starts_with(who)).collect();
        let want: Vec<String> = (0..50).map(|i| format!("{who}{i}")).collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>(), "order of {who}");
    }
    wait_for_stream(&client, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_while_the_server_restarts_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let client = async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(server.url())
        .await
        .unwrap();
    let r = router(&client, dir.path(), "run-2", 1).await;
    r.send("a", &Target::Agent("c".into()), "before")
        .await
        .unwrap();
    wait_for_stream(&client, 1).await;
    server.stop();
    let sender = {
        let r = r.clone();
        tokio::spawn(async move { r.send("a", &Target::Agent("c".into()), "during").await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    let receipts = sender.await.unwrap().unwrap();
    assert_eq!(receipts[0].state, relay_messaging::MessageState::Queued);
    // Both are in the stream (files survive the restart) and claimable, in order.
    wait_for_stream(&client, 2).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        for d in r.take("c", 10, Some(Duration::from_secs(5))).await.unwrap() {
            got.push(d.envelope().text.clone());
            d.delivered();
        }
    }
    assert_eq!(got, ["before", "during"]);
    wait_for_stream(&client, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_coordinators_copies_are_dropped_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let client = async_nats::connect(server.url()).await.unwrap();
    {
        let first = router(&client, dir.path(), "run-3", 1).await;
        for i in 0..5 {
            first
                .send("a", &Target::Agent("c".into()), &format!("m{i}"))
                .await
                .unwrap();
        }
        wait_for_stream(&client, 5).await;
        // The first coordinator dies with its messages unsettled.
    }
    // Its resumed successor reads the same mailbox (messages.jsonl puts back what was
    // queued, under the new instance); the old copies go without being offered.
    let second = router(&client, dir.path(), "run-3", 2).await;
    let offered = second
        .take("c", 10, Some(Duration::from_millis(1500)))
        .await
        .unwrap();
    assert!(offered.is_empty(), "{} old copies offered", offered.len());
    wait_for_stream(&client, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_processes_making_one_stream_at_once_all_get_it() {
    const CLIENTS: usize = 32;
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let Some(server) = NatsServer::start(&dir.path().join("js")) else {
            return;
        };
        // Every client connected first, then all asking at the same moment.
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            clients.push(async_nats::connect(server.url()).await.unwrap());
        }
        let start = Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let mut tasks = Vec::new();
        for client in clients {
            let start = start.clone();
            tasks.push(tokio::spawn(async move {
                let js = jetstream::new(client);
                start.wait().await;
                relay_nats::streams::ensure(
                    &js,
                    jetstream::stream::Config {
                        name: "RACE".into(),
                        subjects: vec!["race.>".into()],
                        retention: jetstream::stream::RetentionPolicy::WorkQueue,
                        storage: jetstream::stream::StorageType::File,
                        ..Default::default()
                    },
                )
                .await
            }));
        }
        for t in tasks {
            let got = t.await.unwrap();
            assert!(got.is_ok(), "round {round}: {got:?}");
        }
    }
}

/// The answers nats-server gives a creation that lost the race to another process (the
/// stream is not there when looked up, the creation is refused because the winner's
/// stream now holds the subjects, and a second look finds it), played by a responder on
/// an API prefix of its own, so the loss happens every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creation_that_lost_the_race_finds_the_winners_stream() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let client = async_nats::connect(server.url()).await.unwrap();
    let config = jetstream::stream::Config {
        name: "RACE".into(),
        subjects: vec!["race.>".into()],
        retention: jetstream::stream::RetentionPolicy::WorkQueue,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    };
    // What the winner's stream looks like, as the real server describes it.
    jetstream::new(client.clone())
        .create_stream(config.clone())
        .await
        .unwrap();
    let info = client
        .request("$JS.API.STREAM.INFO.RACE", "".into())
        .await
        .unwrap()
        .payload;
    let mut api = client.subscribe("$RACE.API.>").await.unwrap();
    let responder = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut created = false;
            while let Some(m) = api.next().await {
                let Some(reply) = m.reply.clone() else {
                    continue;
                };
                let answer: Vec<u8> = if m.subject.as_str() == "$RACE.API.STREAM.CREATE.RACE" {
                    created = true;
                    r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":500,"err_code":10065,"description":"subjects overlap with an existing stream"}}"#.as_bytes().to_vec()
                } else if created {
                    info.to_vec()
                } else {
                    r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"#.as_bytes().to_vec()
                };
                client.publish(reply, answer.into()).await.unwrap();
            }
        })
    };
    let js = jetstream::with_prefix(client.clone(), "$RACE.API");
    let got = relay_nats::streams::ensure(&js, config).await;
    assert!(got.is_ok(), "{:?}", got.err());
    assert_eq!(got.unwrap().cached_info().config.name, "RACE");
    responder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_sent_together_are_stored_together_and_leave_once_all_are_settled() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let client = async_nats::connect(server.url()).await.unwrap();
    let r = router(&client, dir.path(), "run-4", 1).await;
    let to = Target::Agent("c".into());
    let sends: Vec<_> = (0..50)
        .map(|i| r.submit("a", &to, &format!("m{i}")))
        .collect();
    for s in sends {
        s.await.unwrap();
    }
    let stored = in_stream(&client).await;
    assert!(
        (1..50).contains(&stored),
        "{stored} stream messages for 50 envelopes"
    );
    let mut taken = Vec::new();
    while taken.len() < 50 {
        taken.extend(
            r.take("c", 100, Some(Duration::from_secs(5)))
                .await
                .unwrap(),
        );
    }
    let texts: Vec<String> = taken.iter().map(|d| d.envelope().text.clone()).collect();
    let want: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want);
    // A batch stays until its last envelope is settled.
    let last = taken.pop().unwrap();
    for d in taken {
        d.delivered();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        in_stream(&client).await >= 1,
        "a batch left before all of it was settled"
    );
    last.delivered();
    wait_for_stream(&client, 0).await;
}
