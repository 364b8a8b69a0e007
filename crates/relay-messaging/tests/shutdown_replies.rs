//! A run that stops right after carrying out a request still answers it: the owner's
//! `reject` that ended the run gets its reply, not a closed connection.

#![allow(clippy::unwrap_used)]

use relay_messaging::client::Client;
use relay_messaging::control::Control;
use relay_messaging::protocol::{Reply, Request};
use relay_messaging::{Broker, RouterConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_carried_out_as_the_run_stops_is_still_answered() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Broker::start(dir.path(), "s1", RouterConfig::default())
            .await
            .unwrap();
        let mut controls = b.take_controls().unwrap();
        let sock = b.socket().to_path_buf();
        let owner = b.access().owner_token().to_owned();
        let asking = tokio::task::spawn_blocking(move || {
            Client::connect(&sock)
                .unwrap()
                .with_token(Some(owner))
                .request(&Request::Pause {
                    paused: true,
                    by: "ann".into(),
                })
        });
        // The engine takes the request, and the run ends at once.
        let Some(Control::Pause { reply, .. }) = controls.recv().await else {
            panic!("no pause request");
        };
        let _ = reply.send(Ok(()));
        b.shutdown("the run ended").await;
        let answer = asking.await.unwrap();
        assert!(
            matches!(answer, Ok(Reply::Paused { paused: true })),
            "round {round}: {answer:?}"
        );
    }
}
