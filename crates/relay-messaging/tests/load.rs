//! The broker under load, through its real socket and real message log: two agents
//! trading ten thousand messages each way, and fifty agents broadcasting to each other.
//! Every message must arrive exactly once, in order per sender, and end `read` in
//! `messages.jsonl`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use relay_messaging::client::Client;
use relay_messaging::persist::{MESSAGES_FILE, read_log};
use relay_messaging::protocol::{Reply, Request};
use relay_messaging::{AgentInfo, AgentState, Broker, MessageState, RouterConfig};

/// A client of the socket at `sock`, with the run's owner token (kept beside it).
fn connect(sock: &Path) -> Client {
    Client::connect(sock)
        .unwrap()
        .with_token(relay_messaging::access::client_token(sock.parent()))
}

fn agent(name: &str) -> AgentInfo {
    AgentInfo {
        name: name.into(),
        role: None,
        interactive: false,
        channels: vec!["all".into()],
        state: AgentState::Running,
    }
}

async fn broker(dir: &Path, names: &[String]) -> Broker {
    let b = Broker::start(dir, "load", RouterConfig::default())
        .await
        .unwrap();
    for n in names {
        b.router().register(agent(n));
    }
    b
}

fn send(c: &mut Client, from: &str, to: &str, text: String) {
    match c
        .request(&Request::Send {
            from: from.into(),
            to: to.into(),
            text,
        })
        .unwrap()
    {
        Reply::Sent { receipts } => {
            assert!(
                receipts.iter().all(|r| r.state == MessageState::Queued),
                "{receipts:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// Reads `agent`'s inbox until `n` messages came, or the deadline passes.
fn read_n(sock: &Path, agent: &str, n: usize) -> Vec<(String, String)> {
    let mut c = connect(sock);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "{agent} got only {} of {n}",
            got.len()
        );
        let req = Request::Inbox {
            agent: agent.into(),
            wait_ms: Some(2000),
            max: None,
        };
        match c.request(&req).unwrap() {
            Reply::Messages { messages } => {
                got.extend(messages.into_iter().map(|m| (m.from, m.text)));
            }
            other => panic!("{other:?}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_trade_ten_thousand_messages_each_way_exactly_once_in_order() {
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), &["a".into(), "b".into()]).await;
    let sock: PathBuf = b.socket().to_path_buf();
    let mut threads = Vec::new();
    for (me, peer) in [("a", "b"), ("b", "a")] {
        let s = sock.clone();
        threads.push(std::thread::spawn(move || {
            let mut c = connect(&s);
            for i in 0..N {
                send(&mut c, me, peer, format!("{me}-{i}"));
            }
            Vec::new()
        }));
        let s = sock.clone();
        threads.push(std::thread::spawn(move || read_n(&s, me, N)));
    }
    let mut received: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
    for (i, t) in threads.into_iter().enumerate() {
        let got = tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
        received.insert(i, got);
    }
    for (reader, from) in [(1, "b"), (3, "a")] {
        let got = &received[&reader];
        let want: Vec<(String, String)> = (0..N)
            .map(|i| (from.to_string(), format!("{from}-{i}")))
            .collect();
        assert_eq!(got.len(), N);
        assert!(
            got == &want,
            "out of order or duplicated for reader of {from}"
        );
    }
    b.shutdown("the test ended").await;
    let log = read_log(&dir.path().join(MESSAGES_FILE)).unwrap();
    assert!(log.bad_lines.is_empty());
    assert_eq!(log.messages.len(), 2 * N);
    assert!(log.messages.iter().all(|m| m.state == MessageState::Read));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_agents_broadcast_to_each_other() {
    const AGENTS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..AGENTS).map(|i| format!("agent-{i:02}")).collect();
    let b = broker(dir.path(), &names).await;
    let sock = b.socket().to_path_buf();
    let threads: Vec<_> = names
        .iter()
        .cloned()
        .map(|me| {
            let s = sock.clone();
            std::thread::spawn(move || {
                let mut c = connect(&s);
                send(&mut c, &me, "*", format!("hello from {me}"));
                send(&mut c, &me, "#all", format!("channel note from {me}"));
                (me.clone(), read_n(&s, &me, 2 * (AGENTS - 1)))
            })
        })
        .collect();
    for t in threads {
        let (me, got) = tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
        let mut senders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (from, text) in got {
            senders.entry(from).or_default().push(text);
        }
        assert_eq!(
            senders.len(),
            AGENTS - 1,
            "{me} heard from {}",
            senders.len()
        );
        assert!(!senders.contains_key(&me), "{me} got its own broadcast");
        for (from, texts) in senders {
            assert_eq!(
                texts,
                [
                    format!("hello from {from}"),
                    format!("channel note from {from}")
                ],
                "{me}: from {from}, in order, once"
            );
        }
    }
    b.shutdown("the test ended").await;
    let log = read_log(&dir.path().join(MESSAGES_FILE)).unwrap();
    assert_eq!(log.messages.len(), 2 * AGENTS * (AGENTS - 1));
}
