//! Headless Chromium driven over WebDriver, for the tests that need a real browser (the status
//! page, the JavaScript client): Debian's `chromium` and `chromium-driver`, which `.ci/test`
//! installs. Without them a browser test is skipped, or fails under `KEYROUTER_TEST_ALL=1`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `path` of the environment variable `var` if set, else `default`, or `None` when it is missing:
/// the browser test is then skipped, never passed, and fails under `KEYROUTER_TEST_ALL=1`.
fn required_program(var: &str, default: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os(var).unwrap_or_else(|| default.into()));
    let what = format!("{} (Debian's chromium and chromium-driver, or {var} pointing at it)", path.display());
    super::require(&what, super::program_exists(&path.to_string_lossy())).then_some(path)
}

/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process (in a process group of its own, with the Chromium it starts) and one
/// session, spoken to with a few WebDriver HTTP/JSON calls over the harness's HTTP client. On
/// drop the session is closed and the whole group killed.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (the test is skipped) when Chromium or chromedriver is missing.
    pub fn start() -> Option<Browser> {
        let chromium = required_program("KEYROUTER_TEST_CHROMIUM", "/usr/bin/chromium")?;
        let chromedriver = required_program("KEYROUTER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let profile = tempfile::tempdir().unwrap();
        use std::os::unix::process::CommandExt;
        let mut driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || driver.try_wait().unwrap().is_some() {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver did not listen on 127.0.0.1:{port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut browser = Browser { driver, port, session: String::new(), _profile: profile };
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--window-size=1100,1000",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "timeouts": {"pageLoad": 20_000, "script": 10_000, "implicit": 0},
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let created = browser.call("POST", "/session", Some(caps));
        browser.session = created["sessionId"].as_str().expect("a session id").to_string();
        Some(browser)
    }

    /// One WebDriver command; panics on an error answer. Returns `value`.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    pub fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Value> {
        let path = match path.starts_with("/session/") || path == "/session" {
            true => path.to_string(),
            false => format!("/session/{}{path}", self.session),
        };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, answer) = webdriver_http(self.port, method, &path, &body);
        let value = answer["value"].clone();
        match status {
            200 => Ok(value),
            _ => Err(value),
        }
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    pub fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.call("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        found.as_array().unwrap().iter().map(|e| e[ELEMENT].as_str().unwrap().to_string()).collect()
    }

    pub fn find(&self, css: &str) -> String {
        let found = self.find_all(css);
        assert_eq!(found.len(), 1, "{css}: {} elements", found.len());
        found.into_iter().next().unwrap()
    }

    /// The rendered text of an element, as WebDriver gives it.
    pub fn text(&self, element: &str) -> String {
        self.call("GET", &format!("/element/{element}/text"), None).as_str().unwrap().to_string()
    }

    pub fn text_of(&self, css: &str) -> String {
        self.text(&self.find(css))
    }

    /// Types `text` into an input (real key events), after clearing it.
    pub fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css);
        self.call("POST", &format!("/element/{input}/clear"), Some(json!({})));
        self.call("POST", &format!("/element/{input}/value"), Some(json!({ "text": text })));
    }

    pub fn screenshot(&self) -> Vec<u8> {
        base64_decode(self.call("GET", "/screenshot", None).as_str().unwrap())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.try_call("DELETE", "", None)));
        }
        // SAFETY: kill(2) on the process group of our own child (it leads the group).
        unsafe { libc::kill(-(self.driver.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

/// One WebDriver HTTP exchange: the status and the JSON answer. The answer is read up to its
/// `Content-Length` (chromedriver keeps the connection open whatever the request says), within
/// 30 s.
fn webdriver_http(port: u16, method: &str, path: &str, body: &str) -> (u16, Value) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("chromedriver accepts");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).and_then(|()| s.write_all(body.as_bytes())).expect("request sent");
    let mut reader = BufReader::new(s);
    let (mut status, mut length) = (0u16, 0usize);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
        let l = line.trim_end();
        if n == 0 || l.is_empty() {
            break;
        }
        if l.starts_with("HTTP/") {
            status = l.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        } else if let Some((name, value)) = l.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer).unwrap_or_else(|e| panic!("{method} {path}: short answer: {e}"));
    let value = serde_json::from_slice(&answer).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e})"));
    (status, value)
}

pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
