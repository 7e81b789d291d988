//! A real headless browser for the page tests: Debian's `chromium`,
//! driven over the Chrome DevTools Protocol (CDP) on a WebSocket. Small on
//! purpose: open a page, size the window, pick light or dark, evaluate
//! JavaScript, hover, click, type, take a screenshot, and collect every
//! problem the page causes.
//!
//! ```ignore
//! let mut page = Browser::launch().await?;
//! page.viewport(360, 740).await?;
//! page.color_scheme(Scheme::Dark).await?;
//! page.open(&format!("{base}/status/main")).await?;
//! let bars: u64 = page.eval_as("document.querySelectorAll('[data-day]').length").await?;
//! page.hover("[data-day='2026-11-28']").await?;
//! page.screenshot("status-phone-dark").await?;
//! assert_eq!(page.problems(), Vec::<String>::new());
//! ```
//!
//! [`Browser::problems`] holds every console error or warning, uncaught
//! exception, failed load the browser logged, and Content-Security-Policy
//! violation (from the browser's log and from a `securitypolicyviolation`
//! listener installed before any page script runs), so a test asserts
//! "no console errors and no CSP violations" with one line.
//!
//! Chromium is found at `$SENTRYK8S_CHROMIUM` or `/usr/bin/chromium`;
//! `scripts/test.sh` installs it. A missing browser fails the test with a
//! message saying so: a page test is never skipped. Screenshots land in
//! `target/screenshots/{name}.png`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long one protocol command or a page load may take.
const STEP: Duration = Duration::from_secs(20);

/// Light or dark (`prefers-color-scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Light,
    Dark,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// One browser with one tab.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    outgoing: mpsc::UnboundedSender<Message>,
    pending: Pending,
    events: Arc<Mutex<Vec<Value>>>,
    session: String,
    next_id: u64,
}

/// Records CSP violations in the page itself, before any of its scripts
/// run (a script added through the protocol is not subject to the page's
/// policy).
const WATCH_VIOLATIONS: &str = "window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
    ' at ' + e.sourceFile + ':' + e.lineNumber);
});";

impl Browser {
    /// Starts headless chromium with a fresh profile and opens one tab.
    pub async fn launch() -> Result<Browser, String> {
        let binary = std::env::var("SENTRYK8S_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        if !std::path::Path::new(&binary).exists() {
            return Err(format!(
                "no browser at {binary}: the page tests need Debian's chromium \
                 (scripts/test.sh installs it: apt-get install chromium)"
            ));
        }
        let profile = std::env::temp_dir().join(format!("sentryk8s-chromium-{}", super::unique_name("p")));
        let mut child = Command::new(&binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {binary}: {e}"))?;
        let stderr = child.stderr.take().ok_or("chromium's stderr is not piped")?;
        let endpoint = tokio::time::timeout(STEP, async {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://") {
                    let endpoint = line[at..].trim().to_string();
                    // Keep draining stderr so chromium never blocks on it.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return Some(endpoint);
                }
            }
            None
        })
        .await
        .map_err(|_| "chromium did not print its DevTools address within 20 s".to_string())?
        .ok_or("chromium exited before printing its DevTools address")?;

        let (socket, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .map_err(|e| format!("connecting to chromium at {endpoint}: {e}"))?;
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (pending_in, events_in) = (pending.clone(), events.clone());
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else { continue };
                let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
                match value.get("id").and_then(Value::as_u64) {
                    Some(id) => {
                        let waiter = pending_in.lock().ok().and_then(|mut p| p.remove(&id));
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(value);
                        }
                    }
                    None => {
                        if let Ok(mut events) = events_in.lock() {
                            events.push(value);
                        }
                    }
                }
            }
        });

        let mut browser =
            Browser { child, profile, outgoing, pending, events, session: String::new(), next_id: 0 };
        let target = browser.call(None, "Target.createTarget", json!({ "url": "about:blank" })).await?;
        let target_id = target["targetId"].as_str().ok_or("no targetId")?.to_string();
        let attached = browser
            .call(None, "Target.attachToTarget", json!({ "targetId": target_id, "flatten": true }))
            .await?;
        browser.session = attached["sessionId"].as_str().ok_or("no sessionId")?.to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.command(domain, json!({})).await?;
        }
        browser
            .command("Page.addScriptToEvaluateOnNewDocument", json!({ "source": WATCH_VIOLATIONS }))
            .await?;
        Ok(browser)
    }

    /// Sends one protocol command (to the tab when `session` is set) and
    /// waits for its answer.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().map_err(|_| "poisoned")?.insert(id, tx);
        self.outgoing.send(Message::Text(message.to_string().into())).map_err(|_| "chromium is gone")?;
        let answer = tokio::time::timeout(STEP, rx)
            .await
            .map_err(|_| format!("{method}: no answer within 20 s"))?
            .map_err(|_| format!("{method}: chromium closed the connection"))?;
        if let Some(error) = answer.get("error") {
            return Err(format!("{method}: {error}"));
        }
        Ok(answer["result"].clone())
    }

    /// A command to the tab.
    pub async fn command(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let session = self.session.clone();
        self.call(Some(&session), method, params).await
    }

    /// The window's size in CSS pixels (a phone: 360 wide).
    pub async fn viewport(&mut self, width: u32, height: u32) -> Result<(), String> {
        let params =
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600 });
        self.command("Emulation.setDeviceMetricsOverride", params).await.map(drop)
    }

    /// `prefers-color-scheme` as the page sees it.
    pub async fn color_scheme(&mut self, scheme: Scheme) -> Result<(), String> {
        let value = match scheme {
            Scheme::Light => "light",
            Scheme::Dark => "dark",
        };
        let params = json!({ "features": [{ "name": "prefers-color-scheme", "value": value }] });
        self.command("Emulation.setEmulatedMedia", params).await.map(drop)
    }

    /// Opens `url` and waits for its `load` event.
    pub async fn open(&mut self, url: &str) -> Result<(), String> {
        self.forget("Page.loadEventFired");
        let answer = self.command("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = answer.get("errorText").and_then(Value::as_str) {
            return Err(format!("opening {url}: {error}"));
        }
        self.wait_for("Page.loadEventFired").await
    }

    /// Waits for the tab to load a new page after a click or a form post.
    pub async fn wait_for_load(&mut self) -> Result<(), String> {
        self.wait_for("Page.loadEventFired").await
    }

    /// Forgets earlier events of `method`, so that a wait sees a new one.
    pub fn forget(&self, method: &str) {
        if let Ok(mut events) = self.events.lock() {
            events.retain(|e| e["method"] != method);
        }
    }

    async fn wait_for(&mut self, method: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let found = self.events.lock().is_ok_and(|mut events| {
                let at = events.iter().position(|e| e["method"] == method);
                at.map(|at| events.remove(at)).is_some()
            });
            if found {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("no {method} within 20 s"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Evaluates `expression` in the page (promises are awaited) and
    /// returns its value as JSON; a thrown exception is an error.
    pub async fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let params = json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
        let answer = self.command("Runtime.evaluate", params).await?;
        if let Some(details) = answer.get("exceptionDetails") {
            return Err(format!("{expression}: threw {details}"));
        }
        Ok(answer["result"]["value"].clone())
    }

    /// [`eval`](Self::eval), read as `T`.
    pub async fn eval_as<T: serde::de::DeserializeOwned>(&mut self, expression: &str) -> Result<T, String> {
        let value = self.eval(expression).await?;
        serde_json::from_value(value.clone()).map_err(|e| format!("{expression} gave {value}: {e}"))
    }

    /// The centre of the first element matching `selector`, scrolled into view.
    async fn centre(&mut self, selector: &str) -> Result<(f64, f64), String> {
        let selector_json = json!(selector).to_string();
        let expression = format!(
            "(function () {{ const e = document.querySelector({selector_json}); if (!e) return null;
               e.scrollIntoView({{block: 'center', inline: 'center'}});
               const r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        );
        let at: Option<(f64, f64)> = self.eval_as(&expression).await?;
        at.ok_or_else(|| format!("no element matches {selector}"))
    }

    /// Moves the mouse over the first element matching `selector`.
    pub async fn hover(&mut self, selector: &str) -> Result<(), String> {
        let (x, y) = self.centre(selector).await?;
        self.mouse("mouseMoved", x, y).await
    }

    /// Clicks the first element matching `selector`.
    pub async fn click(&mut self, selector: &str) -> Result<(), String> {
        let (x, y) = self.centre(selector).await?;
        self.mouse("mouseMoved", x, y).await?;
        self.mouse("mousePressed", x, y).await?;
        self.mouse("mouseReleased", x, y).await
    }

    async fn mouse(&mut self, kind: &str, x: f64, y: f64) -> Result<(), String> {
        let mut params = json!({ "type": kind, "x": x, "y": y });
        if kind != "mouseMoved" {
            params["button"] = json!("left");
            params["clickCount"] = json!(1);
        }
        self.command("Input.dispatchMouseEvent", params).await.map(drop)
    }

    /// Focuses the first element matching `selector` and types `text` into it.
    pub async fn type_into(&mut self, selector: &str, text: &str) -> Result<(), String> {
        let selector_json = json!(selector).to_string();
        let focused: bool = self
            .eval_as(&format!(
                "(function () {{ const e = document.querySelector({selector_json}); if (!e) return false;
                   e.focus(); return true; }})()"
            ))
            .await?;
        if !focused {
            return Err(format!("no element matches {selector}"));
        }
        self.command("Input.insertText", json!({ "text": text })).await.map(drop)
    }

    /// A PNG of the whole page, saved as `target/screenshots/{name}.png`;
    /// returns its path.
    pub async fn screenshot(&mut self, name: &str) -> Result<PathBuf, String> {
        let metrics = self.command("Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(1280.0).ceil();
        let height = size["height"].as_f64().unwrap_or(900.0).ceil();
        let params = json!({
            "format": "png",
            "captureBeyondViewport": true,
            "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
        });
        let shot = self.command("Page.captureScreenshot", params).await?;
        let data = shot["data"].as_str().ok_or("no screenshot data")?;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| format!("screenshot: {e}"))?;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// Every console error and warning, uncaught exception, error the
    /// browser logged (a failed load, a blocked resource) and CSP violation
    /// seen so far, one line each. Reads the page's violation list too,
    /// so call it while the page is still open.
    pub async fn problems(&mut self) -> Vec<String> {
        let mut found = Vec::new();
        if let Ok(events) = self.events.lock() {
            for event in events.iter() {
                let params = &event["params"];
                match event["method"].as_str() {
                    Some("Runtime.exceptionThrown") => {
                        let details = &params["exceptionDetails"];
                        let text = details["exception"]["description"].as_str().or(details["text"].as_str());
                        found.push(format!("exception: {}", text.unwrap_or("?")));
                    }
                    Some("Runtime.consoleAPICalled") => {
                        let kind = params["type"].as_str().unwrap_or("");
                        if kind == "error" || kind == "warning" || kind == "assert" {
                            let args: Vec<String> = params["args"]
                                .as_array()
                                .map(|a| a.iter().map(|v| v["value"].to_string()).collect())
                                .unwrap_or_default();
                            found.push(format!("console.{kind}: {}", args.join(" ")));
                        }
                    }
                    Some("Log.entryAdded") => {
                        let entry = &params["entry"];
                        let level = entry["level"].as_str().unwrap_or("");
                        if level == "error" || level == "warning" {
                            found.push(format!(
                                "log {level} ({}): {} {}",
                                entry["source"].as_str().unwrap_or("?"),
                                entry["text"].as_str().unwrap_or("?"),
                                entry["url"].as_str().unwrap_or("")
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        let violations: Vec<String> = self
            .eval_as("window.__cspViolations || []")
            .await
            .unwrap_or_else(|e| vec![format!("reading: {e}")]);
        found.extend(violations.into_iter().map(|v| format!("CSP violation: {v}")));
        found
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
