//! A headless Chromium driven over the DevTools protocol, for tests of the dashboard in a
//! real browser. It speaks CDP over `--remote-debugging-pipe` (JSON messages ending in a
//! NUL byte, Chromium reading fd 3 and writing fd 4), so no websocket client is needed:
//! a shell hands the child's stdin and stdout pipes to those descriptors.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The Chromium binary on PATH (Debian's `chromium`, or `chromium-browser`).
pub fn chromium_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser", "google-chrome"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// The browser, or why a test cannot have one: when Chromium is missing outside CI the
/// test prints the reason and returns; in CI (`CI` set), where `.ci/run` installs it, a
/// missing browser is a failure.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    match chromium_path() {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => {
            panic!("{test}: chromium is not installed, and CI must have it (.ci/run installs it)")
        }
        None => {
            eprintln!(
                "SKIPPED {test}: no chromium on PATH (install Debian's `chromium`; .ci/run does)"
            );
            None
        }
    }
}

/// A running headless browser with one page attached.
pub struct Browser {
    child: Child,
    input: ChildStdin,
    messages: Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

/// Longest wait for one protocol reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

impl Browser {
    /// Starts `chromium` headless with a fresh profile and a window of `width` x `height`.
    pub fn launch(chromium: &std::path::Path, width: u32, height: u32) -> Result<Browser, String> {
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--remote-debugging-pipe",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
        let input = child.stdin.take().ok_or("no stdin pipe")?;
        let output = child.stdout.take().ok_or("no stdout pipe")?;
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(output);
            let mut buf = Vec::new();
            while r.read_until(0, &mut buf).map(|n| n > 0).unwrap_or(false) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(v).is_err()
                {
                    break;
                }
                buf.clear();
            }
        });
        Ok(Browser {
            child,
            input,
            messages,
            next_id: 0,
            session: None,
            _profile: profile,
        })
    }

    /// One protocol call; its `result`, or the error Chromium answered.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session
            && !method.starts_with("Target.")
        {
            msg["sessionId"] = json!(s);
        }
        let mut line = serde_json::to_vec(&msg).map_err(|e| e.to_string())?;
        line.push(0);
        self.input
            .write_all(&line)
            .and_then(|_| self.input.flush())
            .map_err(|e| format!("the browser went away: {e}"))?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(v) if v["id"] == json!(id) => {
                    if let Some(e) = v.get("error") {
                        return Err(format!("{method}: {e}"));
                    }
                    return Ok(v["result"].clone());
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return Err(format!("{method}: no reply")),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("{method}: the browser went away"));
                }
            }
        }
    }

    /// Opens `url` in a new page and attaches to it; later calls go to that page.
    pub fn open(&mut self, url: &str) -> Result<(), String> {
        let target = self.call("Target.createTarget", json!({"url": url}))?;
        let id = target["targetId"]
            .as_str()
            .ok_or("no target id")?
            .to_owned();
        let attached = self.call(
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
        )?;
        self.session = Some(
            attached["sessionId"]
                .as_str()
                .ok_or("no session id")?
                .to_owned(),
        );
        self.call("Runtime.enable", json!({}))?;
        Ok(())
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expression}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Waits until `expression` is truthy in the page; its value then.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            match self.eval(expression) {
                Ok(v)
                    if !matches!(&v, Value::Null | Value::Bool(false))
                        && v != json!("")
                        && v != json!(0) =>
                {
                    return Ok(v);
                }
                Ok(v) => last = v,
                Err(e) => last = json!(e),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "timed out waiting for `{expression}` (last: {last})"
        ))
    }

    /// Types `text` into the focused element, as a keyboard would insert it.
    pub fn type_text(&mut self, text: &str) -> Result<(), String> {
        self.call("Input.insertText", json!({"text": text}))
            .map(|_| ())
    }

    /// Presses and releases the mouse at page coordinates (`x`, `y`).
    pub fn click_at(&mut self, x: f64, y: f64) -> Result<(), String> {
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )?;
        }
        Ok(())
    }

    /// Clicks the middle of the first element matching the CSS `selector`.
    pub fn click(&mut self, selector: &str) -> Result<(), String> {
        let sel = serde_json::to_string(selector).map_err(|e| e.to_string())?;
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return null; e.scrollIntoView(); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ))?;
        let (x, y) = match (at[0].as_f64(), at[1].as_f64()) {
            (Some(x), Some(y)) => (x, y),
            _ => return Err(format!("nothing matches `{selector}`")),
        };
        self.click_at(x, y)
    }

    /// A PNG of the page as it is drawn.
    pub fn screenshot_png_base64(&mut self) -> Result<String, String> {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        r["data"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no image".into())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium's helpers share its process group; end them all.
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
