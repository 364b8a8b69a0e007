//! The shared state and claims over a run's real socket: an agent writes and claims only
//! as itself, values are cleaned like messages, a claim in the way names its holder,
//! `agents` lists the claims, and a watch wakes when another client writes.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use relay_messaging::client::Client;
use relay_messaging::protocol::{ErrorKind, Reply, Request};
use relay_messaging::{Broker, RouterConfig};

fn ask(sock: &Path, token: &str, req: Request) -> Reply {
    Client::connect(sock)
        .unwrap()
        .with_token(Some(token.to_owned()))
        .request(&req)
        .unwrap()
}

async fn ask_async(sock: PathBuf, token: String, req: Request) -> Reply {
    tokio::task::spawn_blocking(move || ask(&sock, &token, req))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_use_the_state_and_claims_as_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), "s1", RouterConfig::default())
        .await
        .unwrap();
    let sock = b.socket().to_path_buf();
    let alice = b.access().agent_token("alice").unwrap();
    let bob = b.access().agent_token("bob").unwrap();

    let set = Request::StateSet {
        key: "plan".into(),
        value: "step\u{1b}[2J one".into(),
        by: Some("bob".into()),
        ttl_ms: None,
    };
    let Reply::Written { entry, .. } = ask_async(sock.clone(), alice.clone(), set).await else {
        panic!("not written");
    };
    assert_eq!(
        entry.by, "alice",
        "an agent writes as itself, whatever it says"
    );
    assert_eq!(entry.value, "step one", "escape sequences are dropped");

    let cas = Request::StateCas {
        key: "plan".into(),
        expected: Some("other".into()),
        value: "x".into(),
        by: None,
        ttl_ms: None,
    };
    let Reply::Mismatch { current, .. } = ask_async(sock.clone(), bob.clone(), cas).await else {
        panic!("a wrong expectation was written");
    };
    assert_eq!(current.unwrap().value, "step one");

    let forged = Request::Claim {
        agent: "alice".into(),
        step: None,
        dir: None,
        paths: vec!["src/**".into()],
        ttl_ms: None,
        wait_ms: None,
    };
    assert!(matches!(
        ask_async(sock.clone(), bob.clone(), forged).await,
        Reply::Error {
            kind: ErrorKind::Unauthorized,
            ..
        }
    ));
    let claim = |agent: &str, path: &str| Request::Claim {
        agent: agent.into(),
        step: Some("s".into()),
        dir: None,
        paths: vec![path.into()],
        ttl_ms: None,
        wait_ms: None,
    };
    assert!(matches!(
        ask_async(sock.clone(), alice.clone(), claim("alice", "src/")).await,
        Reply::Claimed { .. }
    ));
    let Reply::Refused { held } =
        ask_async(sock.clone(), bob.clone(), claim("bob", "src/main.rs")).await
    else {
        panic!("bob got a file alice holds");
    };
    assert_eq!(
        (held[0].holder.as_str(), held[0].path.as_str()),
        ("alice", "src/**")
    );
    let Reply::Agents { claims, .. } = ask_async(sock.clone(), bob.clone(), Request::Agents).await
    else {
        panic!("no agents reply");
    };
    assert_eq!(claims.len(), 1);
    assert!(matches!(
        ask_async(sock.clone(), bob.clone(), claim("bob", "../x")).await,
        Reply::Error {
            kind: ErrorKind::BadRequest,
            ..
        }
    ));

    // A watch from a known revision wakes when another client writes.
    let watch = Request::StateWatch {
        key: "plan".into(),
        rev: Some(entry.rev),
        wait_ms: 60_000,
    };
    let watcher = tokio::spawn(ask_async(sock.clone(), bob.clone(), watch));
    let set = Request::StateSet {
        key: "plan".into(),
        value: "two".into(),
        by: None,
        ttl_ms: None,
    };
    ask_async(sock.clone(), alice.clone(), set).await;
    let Reply::Watched {
        changed: true,
        entry: Some(e),
        ..
    } = watcher.await.unwrap()
    else {
        panic!("the watch did not wake");
    };
    assert_eq!(e.value, "two");
    b.shutdown("the run ended").await;
}
