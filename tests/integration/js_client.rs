//! The JavaScript client package (clients/js, `keyrouter-client`) against the real binary: it
//! gives exactly the server's batch answers for 100 000 random keys, follows a reload within a
//! refresh, keeps answering from the last good table when the server is gone or sends a table
//! altered in transit, refuses algorithm 1, and passes its own unit tests (`node --test`: the
//! conformance vectors, exclude, spread, errors) and the examples of its documentation.
//!
//! Needs `node` (18 or later), which `.ci/test` installs; the tests drive the package through
//! tests/integration/js/driver.mjs. The package needs nothing from npm; the check of its
//! TypeScript declarations installs `typescript`, and the check of its WebAssembly assembler
//! `wabt`, with npm under the target directory, once.
//!
//! Zones, `exclude` and `spread` (issue 26) are in the mix once the server has them: while the
//! repository lacks `crates/ranking/tests/vectors/lookup-options.json`, which comes with them,
//! the random-keys test says on stderr that it leaves them out.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Keyrouter;
use serde_json::{json, Value};

const JS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js");
const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/js/driver.mjs");
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/ranking/tests/vectors/algorithm2.json");
/// Comes with zones, `exclude` and `spread` (issue 26): while it is missing, so are they.
const LOOKUP_OPTIONS_VECTORS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/crates/ranking/tests/vectors/lookup-options.json");

fn has_lookup_options() -> bool {
    Path::new(LOOKUP_OPTIONS_VECTORS).exists()
}

/// Whether node 18 or later is there (the skip reported if not).
fn node() -> bool {
    let version = Command::new("node").arg("--version").output().ok().filter(|o| o.status.success());
    let major = version.and_then(|o| {
        String::from_utf8_lossy(&o.stdout).trim().trim_start_matches('v').split('.').next()?.parse::<u32>().ok()
    });
    common::require("node 18 or later", major.is_some_and(|m| m >= 18))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// xorshift64*: reproducible random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545f4914f6cdd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A key of 6 to 29 characters, some of them outside ASCII.
    fn key(&mut self) -> String {
        const ALPHABET: &[char] = &['a', 'b', 'z', '0', '9', '-', '_', ':', '/', ' ', 'é', 'ß', '日', '本', '😀', '"'];
        let len = 6 + self.below(24) as usize;
        (0..len).map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize]).collect()
    }
}

/// The services file of the random-keys test: unweighted, weighted, and Ids (with zones once
/// the server has them).
fn three_services(zones: bool) -> String {
    let mut s = String::from("Algorithm = 2\n\n[[Services]]\nName = \"plain\"\nNodes = [");
    s += &(0..100).map(|i| format!("\"p{i}.example:80\"")).collect::<Vec<_>>().join(", ");
    s += "]\n\n[[Services]]\nName = \"weighted\"\nNodes = [";
    let weights = [0.5, 1.0, 2.0, 3.25, 8.0, 0.125, 1.5];
    s += &(0..40)
        .map(|i| format!("{{ Node = \"w{i}:80\", Weight = {} }}", weights[i % weights.len()]))
        .collect::<Vec<_>>()
        .join(", ");
    s += "]\n\n[[Services]]\nName = \"ids\"\nNodes = [";
    s += &(0..30)
        .map(|i| {
            // Every fifth node without a zone: those form a zone of their own.
            let zone = if zones && i % 5 != 0 { format!(", Zone = \"zone-{}\"", i % 3) } else { String::new() };
            format!("{{ Node = \"10.1.0.{i}:8080\", Id = \"ids-{i}\"{zone} }}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    s + "]\n"
}

/// Runs the driver to completion with `args`; its stdout, or a panic with its stderr.
fn driver(args: &[&str]) -> String {
    let out = Command::new("node").arg(DRIVER).args(args).output().expect("node runs");
    assert!(
        out.status.success(),
        "driver {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

#[test]
fn hundred_thousand_random_keys_give_the_servers_batch_answers() {
    if !node() {
        return;
    }
    let options = has_lookup_options();
    if !options {
        let _ = writeln!(
            std::io::stderr(),
            "NOTE js_client: zones, exclude and spread left out: {LOOKUP_OPTIONS_VECTORS} is missing (issue 26 not merged)"
        );
    }
    let kr = Keyrouter::start(&three_services(options));
    let mut rng = Rng(0x6b65_7972_6f75_7465);
    let mut requests = Vec::new();
    let mut server_answers = Vec::new();
    for batch in 0..10 {
        let service = ["plain", "weighted", "ids"][batch % 3];
        let keys: Vec<String> = (0..10_000).map(|_| rng.key()).collect();
        let max = 1 + (batch % 8) as u64;
        let min = if batch % 4 == 3 { max } else { 1 };
        let mut request = json!({ "service": service, "keys": keys, "min": min, "max": max });
        if options {
            if batch % 2 == 1 {
                let exclude = match service {
                    "plain" => json!(["p5.example:80", "p17.example:80", "nope"]),
                    "weighted" => json!(["w4:80", "w4:80"]),
                    _ => json!(["ids-3", "ids-10", "ids-11", "10.1.0.7:8080"]),
                };
                request["exclude"] = exclude;
            }
            if service == "ids" || batch == 0 {
                request["spread"] = json!("zone");
            }
        }
        let mut body = request.clone();
        body.as_object_mut().unwrap().remove("service");
        let r = kr.post_json(&format!("/service/{service}"), &body.to_string());
        assert_eq!(r.status, 200, "batch {batch}: {}", r.text());
        server_answers.push(r.json());
        requests.push(request);
    }
    let fingerprint = kr.get("/table").json()["fingerprint"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let (requests_path, out_path) = (dir.path().join("requests.json"), dir.path().join("answers.json"));
    std::fs::write(&requests_path, Value::Array(requests.clone()).to_string()).unwrap();
    driver(&["answers", &url(kr.port), requests_path.to_str().unwrap(), out_path.to_str().unwrap()]);
    let client: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();

    let mut compared = 0;
    for (batch, (server, client)) in server_answers.iter().zip(client.as_array().unwrap()).enumerate() {
        assert_eq!(client["fingerprint"], fingerprint.as_str(), "batch {batch}");
        // The unweighted services rank by the WebAssembly scan, the weighted one in JavaScript.
        assert_eq!(client["engine"], "wasm", "batch {batch}");
        let server = server.as_object().unwrap();
        let pairs = client["answers"].as_array().unwrap();
        assert_eq!(pairs.len(), server.len(), "batch {batch}: as many distinct keys");
        for pair in pairs {
            let key = pair[0].as_str().unwrap();
            assert_eq!(
                Some(&pair[1]),
                server.get(key),
                "batch {batch} ({}), key {key:?}: the client answers {} where the server answers {:?}",
                requests[batch],
                pair[1],
                server.get(key)
            );
            compared += 1;
        }
    }
    // Repeated random keys collapse in a batch: nearly all of the 100 000 are distinct.
    assert!(compared > 99_000, "only {compared} keys compared");
}

/// The driver in `watch` mode: a client refreshing every `refresh_ms`, its output lines on a
/// channel. Killed on drop.
struct Watcher {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Value>,
}

impl Watcher {
    fn start(port: u16, refresh_ms: u64) -> Watcher {
        let mut child = Command::new("node")
            .arg(DRIVER)
            .args(["watch", &url(port), &refresh_ms.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver printed {line:?}: {e}"));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Watcher { child, stdin, lines }
    }

    /// The next line that has `field` (others, such as polls, are skipped), within 30 s.
    fn next(&self, field: &str, mut accept: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v.get(field).is_some() && accept(&v[field]) => return v[field].clone(),
                Ok(_) => continue,
                Err(e) => panic!("no {field:?} line from the driver: {e}"),
            }
        }
    }

    fn ask(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let field = if command.get("state").is_some() { "state" } else { "answer" };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.lines.recv_timeout(left).unwrap_or_else(|e| panic!("no answer to {command}: {e}"));
            if let Some(e) = v.get("error") {
                panic!("{command}: the client failed: {e}");
            }
            if v.get(field).is_some() {
                return v;
            }
        }
    }

    fn lookup(&mut self, service: &str, key: &str, max: u64) -> Value {
        self.ask(json!({ "lookup": [service, key, { "max": max }] }))["answer"].clone()
    }

    /// The first poll that started after `after_ms` (Unix milliseconds).
    fn poll_after(&self, after_ms: u64) -> Value {
        self.next("poll", |p| p["started"].as_u64().is_some_and(|s| s > after_ms))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn services_v2(nodes: &[&str]) -> String {
    format!("Algorithm = 2\n{}", common::services(&[("s", nodes)]))
}

/// The server's answer for each key, for comparing with the client's.
fn server_answers(kr: &Keyrouter, keys: &[String]) -> Vec<Value> {
    keys.iter().map(|k| kr.post_json("/service/s", &json!({ "key": k, "max": 3 }).to_string()).json()).collect()
}

fn fingerprint(kr: &Keyrouter) -> String {
    kr.get("/table").json()["fingerprint"].as_str().unwrap().to_string()
}

/// Rewrites the services file, reloads, and waits until the server serves it; returns its
/// fingerprint and the time (Unix milliseconds) by which the server served it.
fn reload(kr: &Keyrouter, toml: &str) -> (String, u64) {
    let before = fingerprint(kr);
    kr.write_services(toml);
    kr.signal(libc::SIGHUP);
    common::eventually("the reload", || fingerprint(kr) != before);
    (fingerprint(kr), now_ms())
}

#[test]
fn after_a_reload_the_client_serves_the_new_table_from_its_next_poll_and_the_last_one_when_the_server_is_gone() {
    if !node() {
        return;
    }
    let mut kr = Keyrouter::start(&services_v2(&["a:1", "b:1", "c:1", "d:1"]));
    let refresh_ms = 300;
    let mut client = Watcher::start(kr.port, refresh_ms);
    assert_eq!(client.next("connected", |_| true), fingerprint(&kr).as_str());

    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let (new, served_by) = reload(&kr, &services_v2(&["a:1", "b:1", "c:1", "d:1", "e:1", "f:1"]));
    // Within one refresh interval: the first poll that starts once the server has the new
    // table brings it (the poll times come from the client's own fetch).
    let poll = client.poll_after(served_by);
    assert_eq!(poll["fingerprint"], new.as_str(), "the first poll after the reload: {poll}");
    assert_eq!(poll["error"], Value::Null);
    let expected = server_answers(&kr, &keys);
    for (key, want) in keys.iter().zip(&expected) {
        assert_eq!(&client.lookup("s", key, 3), want, "key {key}");
    }

    // The server stops: polls fail, and the client goes on with the last good table.
    let _ = kr.child.kill();
    let _ = kr.child.wait();
    let stopped = now_ms();
    let poll = client.poll_after(stopped);
    assert!(poll["error"].is_string(), "a poll of a stopped server fails: {poll}");
    let state = client.ask(json!({ "state": true }))["state"].clone();
    assert_eq!(state["fingerprint"], new.as_str());
    assert!(state["lastError"].is_string(), "{state}");
    // Failed polls leave `lastRefresh` at the last one that succeeded.
    let poll = client.poll_after(now_ms());
    assert!(poll["error"].is_string(), "{poll}");
    let later = client.ask(json!({ "state": true }))["state"].clone();
    assert_eq!(later["lastRefresh"], state["lastRefresh"], "{state} then {later}");
    assert!(state["lastRefresh"].is_u64(), "{state}");
    for (key, want) in keys.iter().zip(&expected) {
        assert_eq!(&client.lookup("s", key, 3), want, "key {key}, server stopped");
    }
}

/// A small HTTP server on 127.0.0.1 for one test: each request's head goes to `respond`, whose
/// bytes are written back before the connection closes. It stops when dropped, or after 120 s.
struct LoopbackServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl LoopbackServer {
    fn start(respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> LoopbackServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let respond = Arc::new(respond);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let respond = respond.clone();
                        std::thread::spawn(move || Self::serve(stream, &*respond));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        LoopbackServer { port, stop }
    }

    /// One request (its head; no body is read) on `stream`.
    fn serve(mut stream: TcpStream, respond: &(dyn Fn(&str) -> Vec<u8> + Send + Sync)) {
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let _ = stream.write_all(&respond(&String::from_utf8_lossy(&head)));
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An HTTP response with `Connection: close`: the status line, `headers`, `body`.
fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += "\r\n";
    [head.as_bytes(), body].concat()
}

/// An HTTP proxy on 127.0.0.1 in front of a server: passes every request on, and while
/// `alter` is set changes the first node of the first service in `/table` answers (and
/// nothing else: the fingerprints stay those of the real table). Stops when dropped.
struct AlteringProxy {
    port: u16,
    alter: Arc<AtomicBool>,
    _server: LoopbackServer,
}

impl AlteringProxy {
    fn start(server_port: u16) -> AlteringProxy {
        let alter = Arc::new(AtomicBool::new(false));
        let altering = alter.clone();
        let server = LoopbackServer::start(move |head| {
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            let if_none_match = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("if-none-match"))
                .map(|(_, v)| v.trim().to_string());
            let headers: Vec<(&str, &str)> = if_none_match.iter().map(|v| ("If-None-Match", v.as_str())).collect();
            let r = common::request(server_port, "GET", &path, &headers, b"");
            let mut body = r.body.clone();
            if altering.load(Ordering::Relaxed) && path == "/table" && r.status == 200 {
                let mut table: Value = serde_json::from_slice(&body).unwrap();
                table["services"][0]["nodes"][0] = json!("10.66.6.6:80");
                body = serde_json::to_vec(&table).unwrap();
            }
            let passed: Vec<(&str, &str)> =
                ["content-type", "etag"].into_iter().filter_map(|name| Some((name, r.header(name)?))).collect();
            response(r.status, &passed, &body)
        });
        AlteringProxy { port: server.port, alter, _server: server }
    }
}

/// One origin for a page that uses the package, as a real site has: the package's source under
/// `/src/`, the test page (`/page.html`, and with `?csp` a Content-Security-Policy that forbids
/// WebAssembly, as many sites send), the keys to look up (`/keys.json`), and `/table` passed to
/// the server.
fn page_server(server_port: u16, keys: String) -> LoopbackServer {
    LoopbackServer::start(move |head| {
        let target = head.split(' ').nth(1).unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        const PAGE: &str = "<!doctype html><meta charset=utf-8><title>keyrouter-client</title>\
                            <script type=module src=/page.js></script>";
        let js = |file: PathBuf| std::fs::read(file).ok().map(|body| (200, "text/javascript", body));
        let source = path
            .strip_prefix("/src/")
            .filter(|name| name.ends_with(".js") && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'.'));
        let (status, content_type, body) = match path {
            "/page.html" => Some((200, "text/html; charset=utf-8", PAGE.as_bytes().to_vec())),
            "/page.js" => js(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/js/page.js")),
            "/keys.json" => Some((200, "application/json", keys.as_bytes().to_vec())),
            "/table" => {
                let r = common::request(server_port, "GET", "/table", &[], b"");
                Some((r.status, "application/json", r.body))
            }
            _ => source.and_then(|name| js(Path::new(JS).join("src").join(name))),
        }
        .unwrap_or((404, "text/plain", b"not found".to_vec()));
        let mut headers = vec![("Content-Type", content_type)];
        if path == "/page.html" && query == "csp" {
            // Scripts from the origin only, and no 'wasm-unsafe-eval': WebAssembly may not compile.
            headers.push(("Content-Security-Policy", "default-src 'self'"));
        }
        response(status, &headers, &body)
    })
}

/// The package in a real browser (headless Chromium), from a page of the server's origin: its
/// Client fetches and verifies the table and ranks by the WebAssembly scan; on a page whose
/// Content-Security-Policy forbids WebAssembly it ranks in plain JavaScript instead, by itself.
/// Either way every answer is the server's, for a service of 3 000 nodes among others.
#[test]
fn in_a_browser_the_client_ranks_by_webassembly_or_by_javascript_under_a_strict_csp() {
    let Some(browser) = common::browser::Browser::start() else {
        return;
    };
    let mut toml = three_services(has_lookup_options());
    toml += "\n[[Services]]\nName = \"big\"\nNodes = [";
    toml += &(0..3000).map(|i| format!("\"big{i}.example:80\"")).collect::<Vec<_>>().join(", ");
    toml += "]\n";
    let kr = Keyrouter::start(&toml);
    let mut rng = Rng(0x7765_6261_7373_656d);
    let keys: Vec<String> = (0..300).map(|_| rng.key()).collect();
    let services = ["plain", "weighted", "ids", "big"];
    let expected: Vec<Vec<Value>> = services
        .iter()
        .map(|service| {
            let r = kr.post_json(&format!("/service/{service}"), &json!({ "keys": keys, "max": 3 }).to_string());
            assert_eq!(r.status, 200, "{service}: {}", r.text());
            keys.iter().map(|k| r.json()[k].clone()).collect()
        })
        .collect();
    let pages = page_server(kr.port, json!({ "services": services, "keys": keys }).to_string());
    for (page, engine) in [("/page.html", "wasm"), ("/page.html?csp", "js")] {
        browser.goto(&format!("http://127.0.0.1:{}{page}", pages.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        let results = loop {
            let r = browser.script("return window.results ?? null;", json!([]));
            if !r.is_null() {
                break r;
            }
            assert!(Instant::now() < deadline, "{page}: no results within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(results["error"].is_null(), "{page}: {}", results["error"]);
        assert_eq!(results["engine"], engine, "{page}");
        assert_eq!(results["plainEngine"], "js", "{page}");
        assert_eq!(results["fingerprint"], kr.get("/table").json()["fingerprint"], "{page}");
        for (s, service) in services.iter().enumerate() {
            for which in ["client", "plain"] {
                let answers = results[which][service].as_array().unwrap_or_else(|| panic!("{page}: {which} {service}"));
                assert_eq!(answers.len(), keys.len(), "{page}: {which} {service}");
                for (i, answer) in answers.iter().enumerate() {
                    assert_eq!(answer, &expected[s][i], "{page}: {which} {service} key {:?}", keys[i]);
                }
            }
        }
    }
}

#[test]
fn a_table_altered_in_transit_is_refused_and_the_last_good_one_kept() {
    if !node() {
        return;
    }
    let kr = Keyrouter::start(&services_v2(&["a:1", "b:1", "c:1", "d:1"]));
    let proxy = AlteringProxy::start(kr.port);
    let good = fingerprint(&kr);
    let mut client = Watcher::start(proxy.port, 200);
    assert_eq!(client.next("connected", |_| true), good.as_str());
    let keys: Vec<String> = (0..30).map(|i| format!("key-{i}")).collect();
    let expected = server_answers(&kr, &keys);

    // From now on every table the proxy passes has one node changed.
    proxy.alter.store(true, Ordering::Relaxed);
    let (new, served_by) = reload(&kr, &services_v2(&["a:1", "b:1", "c:1", "d:1", "e:1"]));
    let poll = client.poll_after(served_by);
    let error = poll["error"].as_str().unwrap_or_else(|| panic!("an altered table was taken: {poll}"));
    assert!(error.contains("does not verify") && error.contains("service \"s\""), "{error}");
    assert_eq!(poll["fingerprint"], good.as_str());
    for (key, want) in keys.iter().zip(&expected) {
        assert_eq!(&client.lookup("s", key, 3), want, "key {key}: the last good table answers");
    }
    // A first connection through the proxy fails: there is no good table to keep.
    let refused: Value = serde_json::from_str(&driver(&["connect", &url(proxy.port)])).unwrap();
    assert_eq!((&refused["name"], &refused["code"]), (&json!("TableError"), &json!("unverified")), "{refused}");

    // The tampering stops: the next poll brings the server's table.
    proxy.alter.store(false, Ordering::Relaxed);
    let poll = client.poll_after(now_ms());
    assert_eq!((&poll["fingerprint"], &poll["error"]), (&json!(new), &Value::Null), "{poll}");
}

#[test]
fn a_table_of_algorithm_1_is_refused_with_the_way_out() {
    if !node() {
        return;
    }
    let kr = Keyrouter::start(&format!("Algorithm = 1\n{}", common::services(&[("s", &["a:1", "b:1"])])));
    let refused: Value = serde_json::from_str(&driver(&["connect", &url(kr.port)])).unwrap();
    assert_eq!(refused["code"], "algorithm", "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(message.contains("algorithm 1") && message.contains("`Algorithm = 2`"), "{message}");
}

/// The package's unit tests: `node --test` on its test files, with the TAP summary read back.
fn node_test(files: &[&str], vectors: &Path) -> (bool, String, usize, usize) {
    let out = Command::new("node")
        .current_dir(JS)
        .args(["--test", "--test-reporter=tap"])
        .args(files)
        .env("KEYROUTER_VECTORS", vectors)
        .env("KEYROUTER_OPTIONS_VECTORS", LOOKUP_OPTIONS_VECTORS)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let count = |what: &str| -> usize {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {what} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `# {what}` in node --test's output:\n{stdout}"))
    };
    let (pass, fail) = (count("pass"), count("fail"));
    (out.status.success(), stdout, pass, fail)
}

fn test_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(Path::new(JS).join("test"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.mjs"))
        .map(|n| format!("test/{n}"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_packages_unit_tests_pass_the_conformance_vectors_among_them() {
    if !node() {
        return;
    }
    let files = test_files();
    assert!(files.len() >= 3, "{files:?}");
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let (ok, stdout, pass, fail) = node_test(&files, Path::new(VECTORS));
    assert!(ok && fail == 0, "node --test failed:\n{stdout}");
    assert!(pass >= 15, "only {pass} tests ran:\n{stdout}");
    // The lookup-options vectors are skipped only while the repository lacks them.
    let skipped =
        stdout.lines().find_map(|l| l.strip_prefix("# skipped ")).and_then(|n| n.trim().parse::<usize>().ok());
    assert_eq!(skipped, Some(usize::from(!has_lookup_options())), "{stdout}");
}

#[test]
fn the_vector_test_fails_on_a_wrong_answer() {
    if !node() {
        return;
    }
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    let lookup = v["services"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|s| s["lookups"].as_array_mut().unwrap().iter_mut())
        .find(|l| l["expected"].as_array().unwrap().len() >= 2)
        .expect("a lookup of two nodes or more");
    lookup["expected"].as_array_mut().unwrap().swap(0, 1);
    let dir = tempfile::tempdir().unwrap();
    let altered: PathBuf = dir.path().join("altered.json");
    std::fs::write(&altered, v.to_string()).unwrap();
    let (ok, stdout, _, fail) = node_test(&["test/vectors.test.mjs"], &altered);
    // Once through each engine: the WebAssembly scan and plain JavaScript.
    assert!(!ok && fail == 2, "altered vectors passed:\n{stdout}");
    for engine in ["WebAssembly", "JavaScript"] {
        assert!(
            stdout.contains(&format!("not ok 2 - every service's fingerprint and lookups ({engine} scan)"))
                || stdout.contains(&format!("not ok 3 - every service's fingerprint and lookups ({engine} scan)")),
            "{stdout}"
        );
    }
}

/// The fenced blocks of a Markdown text, as (info string, text, line).
fn fenced_blocks(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        match (open.take(), line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) => open = Some((lang.trim().to_string(), String::new(), i + 1)),
            (Some(block), Some(_)) => out.push(block),
            (Some((lang, mut body, at)), None) => {
                body.push_str(line);
                body.push('\n');
                open = Some((lang, body, at));
            }
            (None, None) => {}
        }
    }
    out
}

/// Every `js` block of docs/clients.md and clients/js/README.md runs verbatim (as an ES module
/// importing the package as `keyrouter-client`, `localhost:8080` pointing at a server of
/// clients/js/examples/services.toml), and prints the `text` block that follows it.
#[test]
fn documented_javascript_examples_run_verbatim() {
    if !node() {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kr = Keyrouter::start(&std::fs::read_to_string(Path::new(JS).join("examples/services.toml")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("node_modules")).unwrap();
    std::os::unix::fs::symlink(JS, dir.path().join("node_modules/keyrouter-client")).unwrap();
    let mut ran = 0;
    for doc in ["docs/clients.md", "clients/js/README.md"] {
        let blocks = fenced_blocks(&std::fs::read_to_string(repo.join(doc)).unwrap());
        for (i, (lang, code, line)) in blocks.iter().enumerate().filter(|(_, b)| b.0 == "js") {
            let (shown_lang, shown, _) = blocks.get(i + 1).unwrap_or_else(|| panic!("{doc}:{line}: no output block"));
            assert_eq!(shown_lang, "text", "{doc}:{line}: a {lang} example is followed by its output, in a text block");
            let script = dir.path().join(format!("example-{ran}.mjs"));
            std::fs::write(&script, code.replace("localhost:8080", &format!("127.0.0.1:{}", kr.port))).unwrap();
            let out = Command::new("node").arg(&script).current_dir(dir.path()).output().expect("node runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{doc}:{line}: failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(stdout.trim_end(), shown.trim_end(), "{doc}:{line}: prints something else than shown");
            ran += 1;
        }
    }
    assert!(ran >= 4, "only {ran} JavaScript examples found");
}

const TYPESCRIPT: &str = "typescript@5.9.3";
const WABT: &str = "wabt@1.0.39";

/// `package` (name@version) from npm, installed once (across test processes too: a file lock)
/// under the target directory, in `dir`; `expect` is a path in it that shows the install is
/// whole. Or what is missing, for [`common::available`].
fn npm_install(package: &str, dir: &str, expect: &str) -> Result<PathBuf, String> {
    use std::os::fd::AsRawFd;
    if !common::program_exists("npm") {
        return Err("npm".into());
    }
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let root = base.join(dir);
    let marker = root.join(".installed");
    std::fs::create_dir_all(base).unwrap();
    let lock = std::fs::File::create(base.join(format!("{dir}.lock"))).unwrap();
    // SAFETY: flock(2) on a descriptor we own; released when `lock` is dropped.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == package) && root.join(expect).exists() {
        return Ok(root);
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--no-save", "--silent", "--prefix"])
        .arg(&root)
        .arg(package)
        .output()
        .unwrap();
    if !out.status.success() || !root.join(expect).exists() {
        let _ = std::fs::remove_dir_all(&root);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        return Err(format!("the npm registry to install {package} (npm install failed: {last})"));
    }
    std::fs::write(&marker, package).unwrap();
    Ok(root)
}

/// `tsc`, from npm under the target directory.
fn tsc() -> Result<PathBuf, String> {
    Ok(npm_install(TYPESCRIPT, "js-typescript", "node_modules/.bin/tsc")?.join("node_modules/.bin/tsc"))
}

/// The package ships its WebAssembly as text that its own small assembler turns into bytes
/// (clients/js/src/wasm.js), so that it needs no build step: those bytes must be what wabt's
/// `wat2wasm` makes of the same text, for the scan and for every instruction the assembler
/// knows.
#[test]
fn the_packages_webassembly_assembles_as_wabt_does() {
    if !node() {
        return;
    }
    let Some(wabt) = common::available(npm_install(WABT, "js-wabt", "node_modules/wabt/index.js")) else {
        return;
    };
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/js/wabt-check.mjs"))
        .arg(&wabt)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the assembler differs from wabt:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches(": same: ").count(), 2, "{stdout}");
}

/// The TypeScript declarations describe the API: clients/js/test/types.ts compiles under
/// `--strict`, and its `@ts-expect-error` lines (misuses) are errors.
#[test]
fn the_typescript_declarations_accept_the_api_and_reject_misuse() {
    if !node() {
        return;
    }
    let Some(tsc) = common::available(tsc()) else {
        return;
    };
    let args = ["--noEmit", "--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext"];
    let out = Command::new(&tsc)
        .current_dir(JS)
        .args(args)
        .args(["--lib", "es2022,dom", "test/types.ts"])
        .output()
        .expect("tsc runs");
    assert!(
        out.status.success(),
        "tsc found errors in the declarations or their use:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
