//! The web dashboard through the real binary: `serve` and `run --dashboard` on loopback,
//! the token on every request (plain HTTP), and the pages in a real headless Chromium
//! driven over the DevTools protocol: the runs page lists a finished run, a live step
//! turns from running to completed without a reload, the agent page shows what the fake
//! agent printed in its terminal, and an answer typed on the page reaches the agent.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use relay_testkit::chromium::{Browser, chromium_or_skip};
use support::World;

const WAIT: Duration = Duration::from_secs(40);

/// Agents of two CLIs; TUI timing knobs kept small.
fn workflow(steps: &str) -> String {
    format!(
        "name: t\nagents:\n  - name: lead\n    cli: claude\n  - name: dev\n    cli: codex\n    interactive: false\nworkflows:\n  - name: main\n    steps:\n{steps}"
    )
}

fn quick(c: &mut std::process::Command) -> &mut std::process::Command {
    c.env("AGENT_RELAY_SETTLE_MS", "150")
        .env("AGENT_RELAY_READY_TIMEOUT_MS", "4000")
        .env("FAKE_AGENT_THINK_MS", "50")
        .env("AGENT_RELAY_DASHBOARD_INTERVAL_MS", "100")
}

/// A child that is ended when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `agent-relay serve` in the world and returns it with its URL.
fn serve(w: &World) -> (Running, String) {
    let mut c = w.cmd();
    let mut child = quick(&mut c)
        .args(["serve"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "serve printed `{url}`"
    );
    assert!(url.contains("/?t="), "the URL carries the token: {url}");
    (Running(child), url)
}

/// `run FILE --dashboard --json` in the background; the run page's URL from its stderr.
fn run_with_dashboard(w: &World, yaml: &str) -> (Running, String, std::thread::JoinHandle<String>) {
    let f = w.write("wf.yaml", yaml);
    let mut c = w.cmd();
    let mut child = quick(&mut c)
        .args(["run", f.to_str().unwrap(), "--dashboard", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let rest = std::thread::spawn(move || {
        let mut all = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(url) = line.strip_prefix("dashboard of this run: ") {
                let _ = tx.send(url.to_owned());
                sent = true;
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = rx
        .recv_timeout(WAIT)
        .expect("run --dashboard prints the run page's URL");
    (Running(child), url, rest)
}

/// One HTTP/1.1 request; (status, body).
fn http(url_base: &str, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let host = url_base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut s = TcpStream::connect(&host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn token_of(url: &str) -> String {
    url.split_once("t=").unwrap().1.to_owned()
}

fn finished_run(w: &World, steps: &str) -> String {
    let f = w.write("wf.yaml", &workflow(steps));
    let mut c = w.cmd();
    let o = quick(&mut c)
        .args(["run", f.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    s["runId"].as_str().unwrap().to_owned()
}

#[test]
fn every_request_needs_the_token() {
    let w = World::new();
    let run_id = finished_run(
        &w,
        "      - {name: one, agent: dev, task: \"[[fake:say=ONE]]\"}\n",
    );
    let (_server, url) = serve(&w);
    let token = token_of(&url);
    let bearer = format!("Bearer {token}");
    let run_path = format!("/api/runs/{run_id}");
    for path in ["/", "/api/runs", run_path.as_str(), "/api/runs/stream"] {
        let (code, body) = http(&url, "GET", path, None);
        assert_eq!(code, 401, "{path} without the token");
        assert!(
            body.contains("access token"),
            "the refusal says why: {body}"
        );
        let (code, _) = http(
            &url,
            "GET",
            &format!("{path}?t=0123456789abcdef0123456789abcdef"),
            None,
        );
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let (code, _) = http(&url, "POST", &format!("/api/runs/{run_id}/cancel"), None);
    assert_eq!(code, 401, "an action without the token");
    let (code, page) = http(&url, "GET", &format!("/?t={token}"), None);
    assert_eq!(code, 200);
    assert!(
        page.contains("<script>") && !page.contains("src=\"http"),
        "assets are inline, no CDN"
    );
    let (code, body) = http(&url, "GET", "/api/runs", Some(&bearer));
    assert_eq!(code, 200);
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows[0]["runId"], run_id.as_str());
    assert_eq!(rows[0]["status"], "completed");
    assert_eq!(rows[0]["done"], 1);
    let (code, body) = http(&url, "GET", &format!("/api/runs/nope?t={token}"), None);
    assert_eq!(code, 404, "{body}");
    let (code, body) = http(
        &url,
        "POST",
        &format!("/api/runs/{run_id}/cancel?t={token}"),
        None,
    );
    assert_eq!(code, 409, "a finished run cannot be cancelled: {body}");
}

#[test]
fn a_taken_port_is_an_environment_error() {
    let w = World::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = w.run(&["serve", "--port", &port]);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn the_browser_shows_a_finished_run_its_graph_and_what_the_agent_printed() {
    let Some(chromium) = chromium_or_skip("the_browser_shows_a_finished_run") else {
        return;
    };
    let w = World::new();
    let run_id = finished_run(
        &w,
        "      - {name: plan, agent: dev, task: \"[[fake:say=PLAN_READY]]\"}\n      - {name: talk, agent: lead, dependsOn: [plan], task: \"[[fake:say=printed by the fake agent]]\"}\n",
    );
    let (_server, url) = serve(&w);
    let mut b = Browser::launch(&chromium, 1280, 900).unwrap();
    b.open(&url).unwrap();
    let sel = format!("tr[data-run='{run_id}'][data-status='completed']");
    let row = b
        .wait_for(
            &format!("document.querySelector(\"{sel}\")?.textContent"),
            WAIT,
        )
        .unwrap();
    assert!(row.as_str().unwrap().contains("2/2 done"), "{row}");

    // The run page: both steps completed in the table and in the drawn graph.
    b.click(&format!("{sel} a")).unwrap();
    b.wait_for(
        "document.querySelectorAll('#steps tr[data-state=completed]').length === 2",
        WAIT,
    )
    .unwrap();
    let graph = b
        .eval("Array.from(document.querySelectorAll('#graph svg g.step')).map(g => g.dataset.step + ':' + g.dataset.state).join(',')")
        .unwrap();
    assert_eq!(graph, "plan:completed,talk:completed");
    assert_eq!(
        b.eval("document.querySelectorAll('#graph path.edge').length")
            .unwrap(),
        1
    );

    // The agent page of the terminal agent: its screen shows what it printed.
    b.click("#steps tr[data-step=talk] a").unwrap();
    let screen = b
        .wait_for(
            "(document.querySelector('#transcript')?.textContent || '').includes('printed by the fake agent') && document.querySelector('#transcript').textContent",
            WAIT,
        )
        .unwrap();
    assert!(screen.as_str().unwrap().contains("/exit"), "{screen}");
}

#[test]
fn a_live_step_turns_completed_without_a_reload_and_its_screen_is_live() {
    let Some(chromium) = chromium_or_skip("a_live_step_turns_completed") else {
        return;
    };
    let w = World::new();
    let (mut run, url, stderr) = run_with_dashboard(
        &w,
        &workflow(
            "      - {name: first, type: deterministic, command: \"while [ ! -f go ]; do sleep 0.05; done; echo FIRST\"}\n      - {name: second, agent: lead, dependsOn: [first], task: \"[[fake:say=live words on screen]] [[fake:wait-messages=1]]\"}\n",
        ),
    );
    let mut b = Browser::launch(&chromium, 1280, 900).unwrap();
    b.open(&url).unwrap();
    b.wait_for(
        "document.querySelector('#steps tr[data-step=first]')?.dataset.state === 'running'",
        WAIT,
    )
    .unwrap();
    let load = b.eval("window.relayPageLoad").unwrap();
    std::fs::write(w.path().join("go"), "").unwrap();
    b.wait_for(
        "document.querySelector('#steps tr[data-step=first]')?.dataset.state === 'completed'",
        WAIT,
    )
    .unwrap();
    assert_eq!(
        b.eval("window.relayPageLoad").unwrap(),
        load,
        "the page did not reload"
    );
    let seen = b
        .eval("document.querySelector('#steps tr[data-step=first]').dataset.seen")
        .unwrap();
    assert!(
        seen.as_str().unwrap().contains("running completed"),
        "{seen}"
    );
    assert_eq!(
        b.eval("document.querySelector('#graph g.step[data-step=first]').dataset.state")
            .unwrap(),
        "completed"
    );

    // The second agent's live screen, while it runs.
    if let Err(e) = b.wait_for(
        "document.querySelector('#steps tr[data-step=second]')?.dataset.state === 'running'",
        WAIT,
    ) {
        let seen = b.eval("document.querySelector('#steps tr[data-step=second]')?.dataset.seen");
        let _ = run.0.kill();
        panic!(
            "{e}; second went {seen:?}; run said:\n{}",
            stderr.join().unwrap()
        );
    }
    b.click("#steps tr[data-step=second] a").unwrap();
    b.wait_for(
        "(document.querySelector('#screen')?.textContent || '').includes('live words on screen')",
        WAIT,
    )
    .unwrap();
    // A message from the page's box ends the agent's wait.
    b.click("#send input[name=text]").unwrap();
    b.type_text("all done").unwrap();
    b.click("#send button").unwrap();
    b.wait_for("(document.querySelector('#screen')?.textContent || '').includes('got: Relay message from user: all done')", WAIT)
        .unwrap();
    let status = run.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr.join().unwrap());
}

#[test]
fn an_answer_typed_on_the_page_reaches_the_agent() {
    let Some(chromium) = chromium_or_skip("an_answer_typed_on_the_page_reaches_the_agent") else {
        return;
    };
    let w = World::new();
    let (mut run, url, stderr) = run_with_dashboard(
        &w,
        &workflow(
            "      - {name: ask, agent: dev, task: \"[[fake:nth=q:HUMAN_QUESTION: which port?|done]] [[fake:echo-task]]\"}\n",
        ),
    );
    let mut b = Browser::launch(&chromium, 1280, 900).unwrap();
    b.open(&url).unwrap();
    b.wait_for(
        "document.querySelector('.question[data-step=ask]')?.textContent.includes('which port?')",
        WAIT,
    )
    .unwrap();
    b.click(".question[data-step=ask] textarea").unwrap();
    b.type_text("use 9090").unwrap();
    b.click(".question[data-step=ask] button").unwrap();
    b.wait_for(
        "(document.querySelector('#notice')?.textContent || '').includes('answered')",
        WAIT,
    )
    .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = run.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not finish after the answer"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    run.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{}", stderr.join().unwrap());
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    let output = s["steps"][0]["output"].as_str().unwrap();
    assert!(output.contains("HUMAN_ANSWER: use 9090"), "{output}");
}

/// Waits for the run to end; its exit code and its stderr.
fn finish(run: &mut Running, stderr: std::thread::JoinHandle<String>) -> (Option<i32>, String) {
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = run.0.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = run.0.kill();
            panic!(
                "the run did not finish; it said:\n{}",
                stderr.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), stderr.join().unwrap())
}

/// The run's events of `kind`, from its log.
fn events_of(w: &World, kind: &str) -> Vec<serde_json::Value> {
    let root = w.path().join(".agent-relay/runs");
    let mut out = Vec::new();
    for d in std::fs::read_dir(root).unwrap().flatten() {
        let text = std::fs::read_to_string(d.path().join("events.jsonl")).unwrap_or_default();
        out.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|e| e["type"] == kind),
        );
    }
    out
}

#[test]
fn an_approval_gate_is_approved_from_the_page_and_the_run_completes() {
    let Some(chromium) = chromium_or_skip("an_approval_gate_is_approved_from_the_page") else {
        return;
    };
    let w = World::new();
    let (mut run, url, stderr) = run_with_dashboard(
        &w,
        &workflow(
            "      - {name: build, type: deterministic, command: \"echo built\"}\n      - {name: deploy, type: deterministic, dependsOn: [build], command: \"echo deployed > deployed.txt\", approval: {approvers: [ann]}}\n",
        ),
    );
    let mut b = Browser::launch(&chromium, 1280, 900).unwrap();
    b.open(&url).unwrap();
    let shown = b
        .wait_for(
            "document.querySelector('.approval[data-step=deploy]')?.textContent",
            WAIT,
        )
        .unwrap();
    assert!(
        shown.as_str().unwrap().contains("approvers: ann"),
        "{shown}"
    );
    assert!(
        !w.path().join("deployed.txt").exists(),
        "nothing ran before the approval"
    );
    b.click(".approval[data-step=deploy] input[name=reason]")
        .unwrap();
    b.type_text("looks good").unwrap();
    b.click(".approval[data-step=deploy] button.approve")
        .unwrap();
    // Decided as the page said: the approver it names (the server's user is not ann).
    b.wait_for(
        "(document.querySelector('#notice')?.textContent || '').length > 0",
        WAIT,
    )
    .unwrap();
    let notice = b
        .eval("document.querySelector('#notice').textContent")
        .unwrap();
    assert!(
        notice.as_str().unwrap().contains("may not decide"),
        "only ann may decide: {notice}"
    );
    b.eval("document.querySelector('#approver').value = 'ann'")
        .unwrap();
    b.click(".approval[data-step=deploy] button.approve")
        .unwrap();
    b.wait_for(
        "(document.querySelector('#notice')?.textContent || '').includes('approved')",
        WAIT,
    )
    .unwrap();
    let (code, said) = finish(&mut run, stderr);
    assert_eq!(code, Some(0), "{said}");
    assert!(w.path().join("deployed.txt").exists(), "deploy ran");
    let decided = events_of(&w, "approval:decided");
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0]["approved"], true);
    assert_eq!(decided[0]["by"], "ann");
    assert_eq!(decided[0]["reason"], "looks good");
    // The page saw the gate go and the step complete, without a reload.
    b.wait_for(
        "document.querySelector('#steps tr[data-step=deploy]')?.dataset.state === 'completed' && !document.querySelector('.approval')",
        WAIT,
    )
    .unwrap();
}

#[test]
fn a_rejection_from_the_page_fails_the_step_without_running_it() {
    let Some(chromium) = chromium_or_skip("a_rejection_from_the_page") else {
        return;
    };
    let w = World::new();
    let (mut run, url, stderr) = run_with_dashboard(
        &w,
        &workflow(
            "      - {name: deploy, type: deterministic, command: \"echo deployed > deployed.txt\", approval: required}\n",
        ),
    );
    let mut b = Browser::launch(&chromium, 1280, 900).unwrap();
    b.open(&url).unwrap();
    b.wait_for(
        "!!document.querySelector('.approval[data-step=deploy] button.reject')",
        WAIT,
    )
    .unwrap();
    b.click(".approval[data-step=deploy] button.reject")
        .unwrap();
    let (code, said) = finish(&mut run, stderr);
    assert_eq!(code, Some(1), "a rejected step fails the run: {said}");
    assert!(!w.path().join("deployed.txt").exists(), "deploy never ran");
    assert_eq!(events_of(&w, "approval:decided")[0]["approved"], false);
}

#[test]
fn pause_on_the_page_stops_new_steps_starting_until_unpause() {
    let Some(chromium) = chromium_or_skip("pause_on_the_page_stops_new_steps") else {
        return;
    };
    let w = World::new();
    let (mut run, url, stderr) = run_with_dashboard(
        &w,
        &workflow(
            "      - {name: first, type: deterministic, command: \"while [ ! -f go ]; do sleep 0.05; done; echo FIRST\"}\n      - {name: second, type: deterministic, dependsOn: [first], command: \"echo SECOND > second.txt\"}\n",
        ),
    );
    let mut b = Browser::launch(&chromium, 1280, 900).unwrap();
    b.open(&url).unwrap();
    b.wait_for(
        "document.querySelector('#steps tr[data-step=first]')?.dataset.state === 'running'",
        WAIT,
    )
    .unwrap();
    b.click("#pause").unwrap();
    b.wait_for(
        "document.querySelector('#head')?.dataset.paused === 'true' && document.querySelector('#pause').textContent === 'Unpause'",
        WAIT,
    )
    .unwrap();
    assert_eq!(events_of(&w, "run:paused").len(), 1);
    // The running step goes on and completes; the next one does not start.
    std::fs::write(w.path().join("go"), "").unwrap();
    b.wait_for(
        "document.querySelector('#steps tr[data-step=first]')?.dataset.state === 'completed'",
        WAIT,
    )
    .unwrap();
    // The engine records a step's start in the same turn as what made it ready, so a
    // start would already be in the log beside first's completion.
    let started: Vec<_> = events_of(&w, "step:started")
        .into_iter()
        .filter(|e| e["step"] == "second")
        .collect();
    assert!(
        started.is_empty(),
        "second started while paused: {started:?}"
    );
    assert_eq!(
        b.eval("document.querySelector('#steps tr[data-step=second]').dataset.state")
            .unwrap(),
        "pending"
    );
    assert!(!w.path().join("second.txt").exists());
    b.click("#pause").unwrap();
    let (code, said) = finish(&mut run, stderr);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        w.path().join("second.txt").exists(),
        "second ran after unpause"
    );
    assert_eq!(events_of(&w, "run:unpaused").len(), 1);
}
