//! A small WebDriver client for the dashboard tests: Debian's `chromedriver` driving a
//! headless `chromium`, spoken to over plain `std` sockets (the W3C WebDriver HTTP API:
//! JSON over HTTP/1.1 on loopback).
//!
//! [`Browser::start`] runs `chromedriver --port=0`, reads the port it bound from its first
//! line, and opens one session of a headless Chromium with a fresh profile and the flags
//! this machine's closed network needs (no background networking, no component updates,
//! no sync, no QUIC). Dropping the browser ends the session and the driver.
//!
//! Waiting is always polling a condition ([`Browser::wait_for`]), never a sleep that hopes
//! to be long enough.

use serde_json::{Value, json};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C name of an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a condition may take before a test gives up: generous, for a busy machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// What the browser answered when a command failed.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status, self.message)
    }
}

/// A reference to an element of the current page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(pub String);

/// Where the browser and its driver are: `chromium` and `chromedriver` on `PATH`, else
/// Debian's `/usr/bin` paths.
fn program(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("/usr/bin").join(name)
}

/// A headless Chromium driven by chromedriver; one session, killed on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Option<Child>,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width` × `height` CSS pixels in the
    /// time zone `tz` (an IANA name). Panics with a hint when they are not installed.
    pub fn start(width: u32, height: u32, tz: &str) -> Browser {
        let chromium = program("chromium");
        let chromedriver = program("chromedriver");
        assert!(
            chromium.is_file() && chromedriver.is_file(),
            "the dashboard tests need Chromium and ChromeDriver ({} and {}); \
             ./test.sh installs them (apt-get install chromium chromium-driver)",
            chromium.display(),
            chromedriver.display()
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let mut driver = Command::new(&chromedriver)
            .arg("--port=0")
            .env("TZ", tz)
            .env("LANG", "en_US.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let port = read_port(&mut driver);
        let mut browser = Browser {
            driver: Some(driver),
            port,
            session: String::new(),
            _profile: profile,
        };
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let session = browser
            .call(
                "POST",
                "/session",
                Some(json!({
                    "capabilities": {
                        "alwaysMatch": {
                            "browserName": "chrome",
                            "goog:chromeOptions": {
                                "binary": chromium.display().to_string(),
                                "args": args,
                            },
                            "goog:loggingPrefs": { "browser": "ALL" },
                            "timeouts": { "script": 60_000, "pageLoad": 60_000, "implicit": 0 },
                        }
                    }
                })),
            )
            .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"));
        browser.session = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
    }

    /// One WebDriver command; `path` is relative to the server root.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let (status, text) = request(self.port, method, path, body.as_ref());
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if status == 200 {
            return Ok(value);
        }
        Err(WebDriverError {
            status,
            error: value["error"].as_str().unwrap_or("unknown").to_owned(),
            message: value["message"]
                .as_str()
                .unwrap_or(&text)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        })
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        self.call(method, &full, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// Loads `url` and waits for the document to load.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The address of the current page.
    pub fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) and returns its value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Polls `script` until it returns something truthy (not null, false, 0 or ""), and
    /// returns that; panics with `what` after [`PATIENCE`].
    #[track_caller]
    pub fn wait_for(&self, what: &str, script: &str, args: &[Value]) -> Value {
        let start = Instant::now();
        let mut poll = Duration::from_millis(10);
        loop {
            let value = self.execute(script, args);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(_) | Value::Object(_) => true,
            };
            if truthy {
                return value;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "timed out after {PATIENCE:?} waiting for {what} (on {})",
                self.url()
            );
            std::thread::sleep(poll);
            poll = (poll * 2).min(Duration::from_millis(200));
        }
    }

    /// Waits for an element matching `css` and returns it.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element {
        self.wait_for(
            &format!("an element matching {css}"),
            "return document.querySelector(arguments[0]) !== null;",
            &[json!(css)],
        );
        let found = self.session_call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        Element(found[ELEMENT].as_str().expect("an element id").to_owned())
    }

    /// Clicks the element matching `css`, as a user would (it must be visible).
    #[track_caller]
    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.session_call("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    /// Types `text` into the element matching `css` (after clearing it).
    #[track_caller]
    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.session_call("POST", &format!("/element/{}/clear", e.0), Some(json!({})));
        self.session_call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        );
    }

    /// Presses keys on whatever has the focus (`\u{E004}` is Tab, `\u{E007}` Enter,
    /// `\u{E008}` Shift).
    pub fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        let mut held = Vec::new();
        for c in keys.chars() {
            let key = c.to_string();
            if c == '\u{E008}' {
                actions.push(json!({ "type": "keyDown", "value": key }));
                held.push(key);
                continue;
            }
            actions.push(json!({ "type": "keyDown", "value": key }));
            actions.push(json!({ "type": "keyUp", "value": key }));
            for k in held.drain(..) {
                actions.push(json!({ "type": "keyUp", "value": k }));
            }
        }
        self.session_call(
            "POST",
            "/actions",
            Some(json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] })),
        );
        self.session_call("DELETE", "/actions", None);
    }

    /// Sets the window's outer size.
    pub fn resize(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let data = self.session_call("GET", "/screenshot", None);
        let png = base64_decode(data.as_str().expect("base64 screenshot"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver (not W3C), e.g.
    /// `Emulation.setEmulatedMedia` to show the page as a dark-mode system would.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.session_call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": cmd, "params": params })),
        )
    }

    /// Saves a PNG of the element matching `css` alone (scrolled into view) to `path`.
    pub fn element_screenshot(&self, css: &str, path: &Path) {
        let e = self.find(css);
        let data = self.session_call("GET", &format!("/element/{}/screenshot", e.0), None);
        let png = base64_decode(data.as_str().expect("base64 screenshot"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// The browser's console since the last call (Chromium's log; not W3C).
    pub fn console(&self) -> Vec<String> {
        let full = format!("/session/{}/se/log", self.session);
        match self.call("POST", &full, Some(json!({ "type": "browser" }))) {
            Ok(Value::Array(entries)) => entries
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["level"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        if let Some(mut driver) = self.driver.take() {
            let _ = driver.kill();
            let _ = driver.wait();
        }
    }
}

/// Reads `… started successfully on port N.` from chromedriver's stdout, then keeps
/// draining it on a thread so that the driver never blocks on a full pipe.
fn read_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().expect("chromedriver stdout");
    let mut reader = BufReader::new(stdout);
    let mut seen = String::new();
    let start = Instant::now();
    let port = loop {
        let mut line = Vec::new();
        // The line may end without a newline until more is logged: read byte by byte up
        // to the period that ends it.
        let mut byte = [0u8; 1];
        loop {
            match reader.read(&mut byte) {
                Ok(0) => panic!("chromedriver exited before it said its port: {seen:?}"),
                Ok(_) => {
                    line.push(byte[0]);
                    if byte[0] == b'\n'
                        || (byte[0] == b'.' && line.starts_with(b"ChromeDriver was started"))
                    {
                        break;
                    }
                }
                Err(e) => panic!("reading chromedriver's output: {e}"),
            }
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        seen.push_str(&text);
        // "Starting ChromeDriver … on port 0" comes first: the bound port is on the line
        // that says it started.
        if let Some(rest) = text.split("started successfully on port ").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(port) = digits.parse() {
                break port;
            }
        }
        assert!(
            start.elapsed() < PATIENCE,
            "chromedriver never said its port: {seen:?}"
        );
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    port
}

/// One HTTP/1.1 exchange with chromedriver on loopback; returns the status and the body.
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let answer = crate::http::exchange(("127.0.0.1", port), req.as_bytes(), PATIENCE * 2);
    (answer.status, answer.body)
}

/// Standard base64 (the screenshot's encoding).
fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("valid base64")
}
