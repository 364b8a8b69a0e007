//! A worker's socket bridge against a real nats-server and a coordinator's real socket,
//! router and JetStream mailboxes: sends an agent writes back to back on one connection
//! reach the coordinator together, are answered in order, and arrive in order; a
//! connection's requests are pipelined; many connections at once each get their own
//! replies.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use relay_messaging::{AgentInfo, AgentState, Broker, RouterConfig};
use relay_nats::transport::NatsTransport;
use relay_testkit::nats::NatsServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

/// `n` send requests from `a` to `b` (texts `m0`, `m1`, ...), one line each.
fn sends(n: usize, token: Option<&str>) -> String {
    let mut out = String::new();
    for i in 0..n {
        let mut req =
            serde_json::json!({"op": "send", "from": "a", "to": "b", "text": format!("m{i}")});
        if let Some(t) = token {
            req["token"] = t.into();
        }
        out.push_str(&format!("{req}\n"));
    }
    out
}

/// A coordinator of run `run` in `dir`: its socket, router (agents `a` and `b`) and
/// JetStream mailboxes, answering workers' bridges.
async fn coordinator(server: &NatsServer, dir: &Path, run: &str) -> (async_nats::Client, Broker) {
    let coord = async_nats::connect(server.url()).await.unwrap();
    let t = Arc::new(NatsTransport::new(
        coord.clone(),
        run,
        1,
        Duration::from_secs(30),
    ));
    let b = Broker::start_with_transport(dir, run, RouterConfig::default(), t)
        .await
        .unwrap();
    for a in ["a", "b"] {
        b.router().register(AgentInfo {
            name: a.into(),
            role: None,
            interactive: false,
            channels: Vec::new(),
            state: AgentState::Running,
        });
    }
    relay_nats::dispatch::relay_socket(
        coord.clone(),
        run,
        b.socket().to_path_buf(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    (coord, b)
}

/// The texts of the first `n` messages `b` takes, in the order taken.
async fn texts_to_b(b: &Broker, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        for d in b
            .router()
            .take("b", 1000, Some(Duration::from_secs(5)))
            .await
            .unwrap()
        {
            got.push(d.envelope().text.clone());
            d.read();
        }
    }
    got
}

/// The first `n` reply lines from `r`.
async fn replies(r: tokio::net::unix::OwnedReadHalf, n: usize) -> Vec<serde_json::Value> {
    let mut r = BufReader::new(r);
    let mut out = Vec::new();
    for _ in 0..n {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(20), r.read_line(&mut line))
            .await
            .expect("a reply")
            .unwrap();
        out.push(serde_json::from_str(&line).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_written_back_to_back_go_to_the_coordinator_together_and_in_order() {
    const N: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let run = "bridged";
    let (coord, b) = coordinator(&server, dir.path(), run).await;
    // What reaches the coordinator as one request holding several lines.
    let mut spy = coord
        .subscribe(format!("{}.*", relay_nats::names::run_subject(run, "pipe")))
        .await
        .unwrap();
    relay_nats::connect::round_trip(&coord).await.unwrap();
    let worker = async_nats::connect(server.url()).await.unwrap();
    let bridge = relay_nats::bridge::Bridge::start(worker, run, dir.path().join("w.sock")).unwrap();
    let token = b.access().agent_token("a").unwrap();
    let s = tokio::net::UnixStream::connect(bridge.path())
        .await
        .unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(sends(N, Some(&token)).as_bytes())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for v in replies(r, N).await {
        assert_eq!(v["reply"], "sent", "{v}");
        ids.push(v["receipts"][0]["id"].as_u64().unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");
    let together = tokio::time::timeout(Duration::from_secs(5), spy.next())
        .await
        .expect("sends passed on together")
        .unwrap();
    let n = together.payload.split(|c| *c == b'\n').count();
    assert!(n > 1, "{n} line(s) in the first request");
    // And they arrive in the order written.
    let got = texts_to_b(&b, N).await;
    let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    b.shutdown("done").await;
}

/// Requests of one connection are pipelined: the next goes out before the one before it
/// is answered, and replies are written back in the order asked whatever order they
/// come in. (The coordinator here holds its answers until it has two requests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_asks_again_before_it_is_answered_and_replies_stay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let coord = async_nats::connect(server.url()).await.unwrap();
    let run = "piped";
    let mut asked = coord
        .subscribe(format!("{}.*", relay_nats::names::run_subject(run, "pipe")))
        .await
        .unwrap();
    coord.flush().await.unwrap();
    let answering = {
        let coord = coord.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(m) = asked.next().await {
                let Some(reply) = m.reply else { continue };
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                held.push((reply, v["op"].clone()));
                if held.len() == 2 {
                    // The later one first.
                    for (reply, op) in held.drain(..).rev() {
                        let r = serde_json::json!({"reply": "ok", "op": op});
                        coord.publish(reply, r.to_string().into()).await.unwrap();
                    }
                }
            }
        })
    };
    let worker = async_nats::connect(server.url()).await.unwrap();
    let bridge = relay_nats::bridge::Bridge::start(worker, run, dir.path().join("w.sock")).unwrap();
    let s = tokio::net::UnixStream::connect(bridge.path())
        .await
        .unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(b"{\"op\":\"agents\"}\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.write_all(b"{\"op\":\"board\"}\n").await.unwrap();
    let got = replies(r, 2).await;
    assert_eq!(got[0]["op"], "agents", "{got:?}");
    assert_eq!(got[1]["op"], "board", "{got:?}");
    answering.abort();
}

/// With no coordinator listening for the run, every request line gets an error reply
/// saying so (no hang, no missing line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_coordinator_every_line_gets_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let worker = async_nats::connect(server.url()).await.unwrap();
    let bridge =
        relay_nats::bridge::Bridge::start(worker, "gone", dir.path().join("w.sock")).unwrap();
    let s = tokio::net::UnixStream::connect(bridge.path())
        .await
        .unwrap();
    let (r, mut w) = s.into_split();
    w.write_all(sends(3, None).as_bytes()).await.unwrap();
    for v in replies(r, 3).await {
        assert_eq!(v["reply"], "error", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("not listening"),
            "{v}"
        );
    }
}

/// Many connections of one bridge at once: each gets exactly its own replies, and each
/// one's messages arrive in the order it wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_sharing_the_bridge_each_get_their_own_replies() {
    const CONNS: usize = 8;
    const N: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let run = "shared";
    let (_coord, b) = coordinator(&server, dir.path(), run).await;
    let worker = async_nats::connect(server.url()).await.unwrap();
    let bridge = relay_nats::bridge::Bridge::start(worker, run, dir.path().join("w.sock")).unwrap();
    let token = b.access().agent_token("a").unwrap();
    let mut tasks = Vec::new();
    for c in 0..CONNS {
        let path = bridge.path().to_path_buf();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let s = tokio::net::UnixStream::connect(path).await.unwrap();
            let (r, mut w) = s.into_split();
            // A send, then one whose reply only this connection and this place can
            // have: an error naming its unknown recipient.
            let mut lines = String::new();
            for i in 0..N {
                let req = serde_json::json!({"op": "send", "from": "a", "to": "b",
                    "text": format!("c{c}-m{i}"), "token": token});
                lines.push_str(&format!("{req}\n"));
                let req = serde_json::json!({"op": "send", "from": "a",
                    "to": format!("nobody-{c}-{i}"), "text": "x", "token": token});
                lines.push_str(&format!("{req}\n"));
            }
            w.write_all(lines.as_bytes()).await.unwrap();
            let got = replies(r, 2 * N).await;
            for (i, v) in got.iter().enumerate() {
                if i % 2 == 0 {
                    assert_eq!(v["reply"], "sent", "connection {c}, reply {i}: {v}");
                } else {
                    assert_eq!(v["reply"], "error", "connection {c}, reply {i}: {v}");
                    let name = format!("nobody-{c}-{}", i / 2);
                    assert!(
                        v["message"].as_str().unwrap().contains(&name),
                        "connection {c}, reply {i}: {v}"
                    );
                }
            }
            got.len()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 2 * N);
    }
    let got = texts_to_b(&b, CONNS * N).await;
    for c in 0..CONNS {
        let prefix = format!("c{c}-");
        let mine: Vec<String> = got
            .iter()
            .filter(|t| t.starts_with(&prefix))
            .cloned()
            .collect();
        let want: Vec<String> = (0..N).map(|i| format!("c{c}-m{i}")).collect();
        assert_eq!(mine, want, "connection {c}");
    }
    b.shutdown("done").await;
}
