//! One conformance suite for the state, run against every backend: memory (with its
//! file), a real redis-server on a random loopback port, and a real SQLite file. Each
//! test names a behaviour the README promises for all of them.

#![allow(clippy::unwrap_used)]

mod common {
    pub mod redis_server;
}

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use relay_state::memory::{BOARD_FILE, MemoryStore};
use relay_state::redis_store::RedisStore;
use relay_state::sqlite::SqliteStore;
use relay_state::{Backend, Cas, State, StateError, Watched};

/// Where a suite's state lives; `client` makes another client of the same storage.
enum Fixture {
    Memory {
        state: State,
        _dir: tempfile::TempDir,
    },
    Redis(RedisServer),
    Database(tempfile::TempDir),
}

impl Fixture {
    fn memory() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::open(&dir.path().join(BOARD_FILE), "t").unwrap();
        Fixture::Memory {
            state: State::new(Backend::Memory(store), "t", None),
            _dir: dir,
        }
    }

    fn redis() -> Option<Fixture> {
        RedisServer::start().map(Fixture::Redis)
    }

    fn database() -> Fixture {
        Fixture::Database(tempfile::tempdir().unwrap())
    }

    /// A client in namespace `ns` whose writes live `ttl` by default. The memory
    /// backend lives in one process, so its clients share one store; the others get a
    /// connection (or SQLite connection and thread) of their own.
    async fn client_ttl(&self, ns: &str, ttl: Option<Duration>) -> State {
        match self {
            Fixture::Memory { state, .. } => {
                let s = state.namespaced(ns);
                if ttl.is_some() {
                    // Memory clients share a store; a default TTL needs a state of its own.
                    return State::new(Backend::Memory(MemoryStore::new()), ns, ttl);
                }
                s
            }
            Fixture::Redis(r) => State::new(
                Backend::Redis(RedisStore::connect(&r.url()).await.unwrap()),
                ns,
                ttl,
            ),
            Fixture::Database(d) => State::new(
                Backend::Database(SqliteStore::open(&d.path().join("state.sqlite")).unwrap()),
                ns,
                ttl,
            ),
        }
    }

    async fn client(&self, ns: &str) -> State {
        self.client_ttl(ns, None).await
    }
}

/// Polls `cond` until it holds; fails after a generous deadline.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn get_set_delete_and_list(f: &Fixture) {
    let s = f.client("suite").await;
    assert_eq!(s.get("plan").await.unwrap(), None);
    let e = s.set("plan", "step one", "alice", None).await.unwrap();
    assert_eq!((e.value.as_str(), e.by.as_str()), ("step one", "alice"));
    assert_eq!(e.expires_ms, None, "no TTL unless asked");
    let got = s.get("plan").await.unwrap().unwrap();
    assert_eq!(got, e);
    let e2 = s.set("plan", "step two", "bob", None).await.unwrap();
    assert!(e2.rev > e.rev, "every write gets a higher revision");
    s.set("plan/a", "1", "bob", None).await.unwrap();
    s.set("plan/b", "2", "bob", None).await.unwrap();
    s.set("other", "3", "bob", None).await.unwrap();
    // Pattern characters in a prefix are plain text.
    s.set("odd*[key]", "4", "bob", None).await.unwrap();
    let keys: Vec<String> = s.list("plan/").await.unwrap().into_keys().collect();
    assert_eq!(keys, ["plan/a", "plan/b"]);
    assert_eq!(s.list("").await.unwrap().len(), 5);
    assert_eq!(s.list("odd*").await.unwrap().len(), 1);
    assert_eq!(s.list("o*").await.unwrap().len(), 0);
    assert!(s.delete("plan/a", "bob").await.unwrap());
    assert!(!s.delete("plan/a", "bob").await.unwrap(), "already gone");
    assert_eq!(s.get("plan/a").await.unwrap(), None);
    let again = s.set("plan/a", "back", "bob", None).await.unwrap();
    assert!(
        again.rev > e2.rev,
        "a key set again after a delete has a new revision"
    );
}

async fn namespaces_keep_runs_apart(f: &Fixture) {
    let a = f.client("ns-a").await;
    let b = f.client("ns-b").await;
    a.set("k", "from a", "x", None).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    assert!(b.list("").await.unwrap().is_empty());
    b.set("k", "from b", "x", None).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().unwrap().value, "from a");
    // A namespace that is a prefix of another does not see the other's keys.
    let short = f.client("ns").await;
    assert!(short.list("").await.unwrap().is_empty());
}

async fn compare_and_set(f: &Fixture) {
    let s = f.client("cas").await;
    let Cas::Swapped { entry } = s.cas("lock", None, "alice", "alice", None).await.unwrap() else {
        panic!("an unset key takes a create");
    };
    assert_eq!(entry.value, "alice");
    let Cas::Mismatch { current } = s.cas("lock", None, "bob", "bob", None).await.unwrap() else {
        panic!("a set key refuses a create");
    };
    assert_eq!(current.unwrap().value, "alice");
    let Cas::Mismatch { current } = s
        .cas("lock", Some("carol"), "bob", "bob", None)
        .await
        .unwrap()
    else {
        panic!("a wrong expectation is refused");
    };
    assert_eq!(current.unwrap().by, "alice");
    assert!(matches!(
        s.cas("lock", Some("alice"), "bob", "bob", None)
            .await
            .unwrap(),
        Cas::Swapped { .. }
    ));
    assert_eq!(s.get("lock").await.unwrap().unwrap().value, "bob");
    let Cas::Mismatch { current: None } =
        s.cas("nothing", Some("x"), "y", "z", None).await.unwrap()
    else {
        panic!("an unset key matches no value");
    };
}

/// 20 clients add 1 to a counter 10 times each with compare-and-set: not one update
/// may be lost.
async fn concurrent_cas_loses_no_update(f: &Fixture) {
    const CLIENTS: usize = 20;
    const EACH: usize = 10;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(f.client("count").await);
    }
    clients[0].set("n", "0", "init", None).await.unwrap();
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let me = format!("client-{i}");
            let mut mine = Vec::new();
            for _ in 0..EACH {
                loop {
                    let cur = c.get("n").await.unwrap().unwrap().value;
                    let next = (cur.parse::<usize>().unwrap() + 1).to_string();
                    match c.cas("n", Some(&cur), &next, &me, None).await.unwrap() {
                        Cas::Swapped { .. } => {
                            mine.push(next);
                            break;
                        }
                        Cas::Mismatch { .. } => continue,
                    }
                }
            }
            mine
        }));
    }
    let mut written = BTreeSet::new();
    for t in tasks {
        for v in t.await.unwrap() {
            assert!(written.insert(v.clone()), "two clients both wrote {v}");
        }
    }
    let s = f.client("count").await;
    let total = s.get("n").await.unwrap().unwrap().value;
    assert_eq!(total, (CLIENTS * EACH).to_string());
    assert_eq!(written.len(), CLIENTS * EACH);
}

async fn entries_expire_with_their_ttl(f: &Fixture) {
    let s = f.client("ttl").await;
    let e = s
        .set("short", "v", "a", Some(Duration::from_millis(150)))
        .await
        .unwrap();
    let exp = e.expires_ms.expect("a TTL gives an expiry");
    assert!(exp >= e.ts_ms + 150, "{e:?}");
    s.set("long", "v", "a", None).await.unwrap();
    eventually("the short entry expires", || async {
        s.get("short").await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        s.list("").await.unwrap().len(),
        1,
        "an expired entry is not listed"
    );
    assert!(
        matches!(
            s.cas("short", None, "again", "b", None).await.unwrap(),
            Cas::Swapped { .. }
        ),
        "an expired entry counts as unset"
    );
    // The state's TTL applies to writes that set none.
    let d = f
        .client_ttl("ttl-default", Some(Duration::from_millis(100)))
        .await;
    let e = d.set("k", "v", "a", None).await.unwrap();
    assert!(e.expires_ms.is_some());
    eventually("the state's TTL expires the entry", || async {
        d.get("k").await.unwrap().is_none()
    })
    .await;
}

async fn a_watch_wakes_on_writes_deletes_and_expiry(f: &Fixture) {
    let s = f.client("watch").await;
    let other = f.client("watch").await;
    let first = s.set("k", "1", "a", None).await.unwrap();
    // Waiting from a known revision: the write may land before or after the watch reads.
    let w = s.clone();
    let seen = first.rev;
    let watcher =
        tokio::spawn(async move { w.watch("k", Some(seen), Duration::from_secs(60)).await });
    other.set("k", "2", "b", None).await.unwrap();
    let Watched::Changed { entry } = watcher.await.unwrap().unwrap() else {
        panic!("a write wakes the watch");
    };
    let second = entry.unwrap();
    assert_eq!(second.value, "2");

    let w = s.clone();
    let watcher = tokio::spawn(async move {
        w.watch("k", Some(second.rev), Duration::from_secs(60))
            .await
    });
    other.delete("k", "b").await.unwrap();
    assert_eq!(
        watcher.await.unwrap().unwrap(),
        Watched::Changed { entry: None },
        "a delete wakes the watch"
    );

    // Waiting for a key to appear: revision 0 is "unset".
    let w = s.clone();
    let watcher =
        tokio::spawn(async move { w.watch("new", Some(0), Duration::from_secs(60)).await });
    other.set("new", "here", "b", None).await.unwrap();
    assert!(matches!(
        watcher.await.unwrap().unwrap(),
        Watched::Changed { entry: Some(e) } if e.value == "here"
    ));

    let e = s
        .set("brief", "v", "a", Some(Duration::from_millis(100)))
        .await
        .unwrap();
    assert_eq!(
        s.watch("brief", Some(e.rev), Duration::from_secs(60))
            .await
            .unwrap(),
        Watched::Changed { entry: None },
        "an expiry wakes the watch"
    );

    s.set("still", "v", "a", None).await.unwrap();
    assert!(matches!(
        s.watch("still", None, Duration::from_millis(50))
            .await
            .unwrap(),
        Watched::TimedOut { entry: Some(_) }
    ));
}

async fn bad_input_is_refused(f: &Fixture) {
    let s = f.client("bad").await;
    assert!(matches!(
        s.set("", "v", "a", None).await,
        Err(StateError::BadKey(_))
    ));
    assert!(matches!(
        s.get("a\u{1b}b").await,
        Err(StateError::BadKey(_))
    ));
    let big = "x".repeat(relay_state::MAX_VALUE_BYTES + 1);
    assert!(matches!(
        s.set("k", &big, "a", None).await,
        Err(StateError::TooLong(_))
    ));
    // Text of any kind round-trips.
    let odd = "line one\nline two\t\"quoted\" ünïcode 🦀 ' ; DROP TABLE";
    s.set("odd", odd, "a", None).await.unwrap();
    assert_eq!(s.get("odd").await.unwrap().unwrap().value, odd);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Fixture::memory()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(f) = super::Fixture::redis() else { return };
                    super::$name(&f).await;
                }
            )*
        }
        mod database {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Fixture::database()).await;
                }
            )*
        }
    };
}

conformance!(
    get_set_delete_and_list,
    namespaces_keep_runs_apart,
    compare_and_set,
    concurrent_cas_loses_no_update,
    entries_expire_with_their_ttl,
    a_watch_wakes_on_writes_deletes_and_expiry,
    bad_input_is_refused,
);

/// The memory backend's file is what a resumed run starts from.
#[tokio::test]
async fn memory_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(BOARD_FILE);
    let s = State::new(
        Backend::Memory(MemoryStore::open(&path, "wf").unwrap()),
        "wf",
        None,
    );
    s.set("plan", "kept", "alice", None).await.unwrap();
    s.set("gone", "x", "alice", Some(Duration::from_millis(1)))
        .await
        .unwrap();
    drop(s);
    let again = State::new(
        Backend::Memory(MemoryStore::open(&path, "wf").unwrap()),
        "wf",
        None,
    );
    assert_eq!(again.get("plan").await.unwrap().unwrap().value, "kept");
    let next = again.set("plan", "newer", "bob", None).await.unwrap();
    assert!(next.rev > 2, "revisions go on from the file's");
    eventually("the expired entry stays gone", || async {
        again.get("gone").await.unwrap().is_none()
    })
    .await;
}
