//! The router's promises, one by one: the policy refuses with the rule's name, messages
//! to ended agents fail, queued messages fail when their agent ends, an unsettled claim
//! goes back, retries keep the order per sender, a session feed holds one message at a
//! time, text is sanitized, and a restarted broker delivers what its predecessor left
//! queued.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use relay_messaging::persist::{MESSAGES_FILE, Persist, read_log};
use relay_messaging::{
    AgentInfo, AgentState, Broker, InProcess, MessageState, Router, RouterConfig, SendError,
    Target, Topology, feed,
};

fn router() -> Router {
    let r = Router::new(
        Arc::new(InProcess::new()),
        Persist::none(),
        1,
        RouterConfig {
            retry_base: Duration::from_millis(10),
            retry_cap: Duration::from_millis(40),
            ..RouterConfig::default()
        },
    );
    for (name, chans) in [
        ("lead", vec!["main"]),
        ("dev", vec!["main", "ops"]),
        ("qa", vec!["main", "ops"]),
    ] {
        r.register(AgentInfo {
            name: name.into(),
            role: None,
            interactive: true,
            channels: chans.into_iter().map(String::from).collect(),
            state: AgentState::Pending,
        });
    }
    r
}

fn to(name: &str) -> Target {
    Target::parse(name).unwrap()
}

async fn texts(r: &Router, agent: &str) -> Vec<String> {
    r.take(agent, 100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| {
            let t = d.envelope().text.clone();
            d.read();
            t
        })
        .collect()
}

/// How many messages `inbox` would take now (they are put back).
async fn texts_peek(r: &Router, agent: &str) -> usize {
    r.take(agent, 100, None).await.unwrap().len()
}

#[tokio::test]
async fn a_refusal_names_the_rule_and_is_on_record() {
    let r = router();
    let mut seen = r.observe();
    r.policy()
        .set(Topology::Hub(std::collections::BTreeSet::from([
            "lead".to_string()
        ])));
    let receipts = r.send("dev", &to("#main"), "status").await.unwrap();
    let refused: Vec<_> = receipts
        .iter()
        .filter(|x| x.state == MessageState::Failed)
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].to, "qa");
    assert!(
        refused[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("refused by the topology rule `hub-spoke: spokes message only the hub`")
    );
    assert_eq!(texts(&r, "lead").await, ["status"]);
    assert!(texts(&r, "qa").await.is_empty());
    let mut states = Vec::new();
    while let Ok(rec) = seen.try_recv() {
        states.push((rec.to, rec.state));
    }
    assert!(states.contains(&("qa".into(), MessageState::Failed)));
}

#[tokio::test]
async fn unknown_names_are_errors_with_a_suggestion() {
    let r = router();
    let e = r.send("lead", &to("deev"), "x").await.unwrap_err();
    assert!(matches!(&e, SendError::UnknownRecipient { suggestion: Some(s), .. } if s == "dev"));
    assert!(e.to_string().contains("did you mean `dev`?"), "{e}");
    let e = r.send("lead", &to("#opz"), "x").await.unwrap_err();
    assert!(e.to_string().contains("did you mean `#ops`?"), "{e}");
    assert_eq!(
        r.send("lead", &to("dev"), " \n ").await,
        Err(SendError::Empty)
    );
}

#[tokio::test]
async fn ending_an_agent_fails_what_waits_and_what_comes_later() {
    let r = router();
    let mut seen = r.observe();
    r.send("lead", &to("dev"), "one").await.unwrap();
    r.set_state("dev", AgentState::Ended, None).await;
    let late = r.send("lead", &to("dev"), "two").await.unwrap();
    assert_eq!(late[0].state, MessageState::Failed);
    assert!(late[0].reason.as_deref().unwrap().contains("has ended"));
    let mut failed = Vec::new();
    while let Ok(rec) = seen.try_recv() {
        if rec.state == MessageState::Failed {
            failed.push(rec.reason.unwrap());
        }
    }
    assert!(
        failed[0].contains("`dev` ended before the message could be delivered"),
        "{failed:?}"
    );
    // An ended agent is off its channels for new messages.
    let receipts = r.send("lead", &to("#ops"), "ops").await.unwrap();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].to, "qa");
}

#[tokio::test]
async fn an_unsettled_claim_goes_back_and_retries_keep_the_order() {
    let r = router();
    for t in ["first", "second"] {
        r.send("lead", &to("dev"), t).await.unwrap();
    }
    r.send("qa", &to("dev"), "other sender").await.unwrap();
    let d = r.next("dev").await.unwrap();
    assert_eq!(d.envelope().text, "first");
    drop(d);
    let d = r.next("dev").await.unwrap();
    assert_eq!(
        d.envelope().text,
        "first",
        "a dropped claim is offered again"
    );
    d.retry_later("screen did not change");
    // While `first` waits for its retry, lead's `second` may not overtake it; qa's may.
    assert_eq!(texts(&r, "dev").await, ["other sender"]);
    let again = tokio::time::timeout(Duration::from_secs(5), r.next("dev"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.envelope().text, "first");
    again.delivered();
    assert_eq!(texts(&r, "dev").await, ["second"]);
}

#[tokio::test]
async fn a_session_feed_holds_one_message_at_a_time() {
    let r = router();
    for i in 0..3 {
        r.send("lead", &to("qa"), &format!("m{i}")).await.unwrap();
    }
    r.send("dev", &to("qa"), "from dev").await.unwrap();
    let (mut rx, task) = feed(r.clone(), "qa".into());
    let first = rx.recv().await.unwrap();
    assert_eq!(first.envelope().text, "m0");
    // The next message waits in the channel; lead's later ones wait behind m0.
    tokio::time::timeout(Duration::from_secs(5), async {
        while texts_peek(&r, "qa").await != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    first.delivered();
    assert_eq!(texts(&r, "qa").await, ["m1", "m2"]);
    drop(rx);
    task.await.unwrap();
    // What the feed held went back when it stopped.
    assert_eq!(texts(&r, "qa").await, ["from dev"]);
}

#[tokio::test]
async fn text_is_sanitized_before_anyone_sees_it() {
    let r = router();
    r.send(
        "lead",
        &to("dev"),
        "\x1b[2J\x1b]0;owned\x07clean\r\nline\x07",
    )
    .await
    .unwrap();
    let d = r.next("dev").await.unwrap();
    assert_eq!(d.envelope().text, "clean\nline");
    assert_eq!(d.injection_line(), "Relay message from lead: clean ⏎ line");
}

#[tokio::test]
async fn a_restarted_broker_requeues_leftovers_and_continues_the_ids() {
    let dir = tempfile::tempdir().unwrap();
    let agent = |name: &str, state| AgentInfo {
        name: name.into(),
        role: None,
        interactive: false,
        channels: vec![],
        state,
    };
    let b = Broker::start(dir.path(), "r1", RouterConfig::default())
        .await
        .unwrap();
    b.router().register(agent("x", AgentState::Pending));
    b.router().register(agent("gone", AgentState::Pending));
    b.router()
        .send("user", &to("x"), "left behind")
        .await
        .unwrap();
    b.router()
        .send("user", &to("gone"), "too late")
        .await
        .unwrap();
    b.router().sync().await;
    // The coordinator dies: no shutdown. A new broker opens the same run directory.
    drop(b);
    let mut b = Broker::start(dir.path(), "r1", RouterConfig::default())
        .await
        .unwrap();
    b.router().register(agent("x", AgentState::Pending));
    b.router().register(agent("gone", AgentState::Ended));
    b.requeue_carried().await;
    let r = b.router().send("user", &to("x"), "new").await.unwrap();
    assert_eq!(r[0].id.0, 3, "ids go on");
    assert_eq!(texts(b.router(), "x").await, ["left behind", "new"]);
    b.shutdown("the run ended").await;
    let log = read_log(&dir.path().join(MESSAGES_FILE)).unwrap();
    let states: Vec<_> = log
        .messages
        .iter()
        .map(|m| {
            (
                m.text.as_str(),
                m.state,
                m.reason.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(states[0].1, MessageState::Read, "{states:?}");
    assert_eq!(states[1].1, MessageState::Failed);
    assert!(states[1].2.contains("`gone` has ended"), "{states:?}");
    assert_eq!(states[2].1, MessageState::Read);
}

#[tokio::test]
async fn a_full_mailbox_refuses_more_until_its_agent_takes_some() {
    let r = Router::new(
        Arc::new(InProcess::new()),
        Persist::none(),
        1,
        RouterConfig {
            max_waiting: 2,
            ..RouterConfig::default()
        },
    );
    r.register(AgentInfo {
        name: "dev".into(),
        role: None,
        interactive: false,
        channels: vec![],
        state: AgentState::Pending,
    });
    for text in ["one", "two"] {
        let rc = r.send("user", &to("dev"), text).await.unwrap();
        assert_eq!(rc[0].state, MessageState::Queued);
    }
    let rc = r.send("user", &to("dev"), "three").await.unwrap();
    assert_eq!(rc[0].state, MessageState::Failed);
    assert!(
        rc[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("2 messages waiting")
    );
    assert_eq!(texts(&r, "dev").await, ["one", "two"]);
    let rc = r.send("user", &to("dev"), "four").await.unwrap();
    assert_eq!(
        rc[0].state,
        MessageState::Queued,
        "room again once they were read"
    );
}
