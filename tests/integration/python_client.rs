//! The Python package (clients/python, import name `keyrouter`) against the real server: the
//! same answers as the server's batch answers for 100 000 keys, a new table after SIGHUP, the
//! last good table when the server is gone or a table was altered on the way, the conformance
//! vectors, and `Table.from_file` with `keyrouter check`'s errors.
//!
//! The package is built with maturin (from PyPI, pinned) into a virtual environment under the
//! target directory, once per test process and across processes (a file lock); a second run
//! only re-checks the cargo build and reinstalls the wheel when it changed. The Rust test owns
//! the server (start, SIGHUP, stop) and compares; a small driver (clients/python/tests/driver.py)
//! does what a program using the package does, one JSON line per request.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{available, python_tool, Keyrouter, BIN};
use keyrouter::ranking::{Algorithm, NodeSpec, ServiceSpec, Table};
use serde_json::{json, Value};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const MATURIN: &str = "maturin==1.16.0";

/// The virtual environment's interpreter with the package installed, or `None` (the skip
/// reported) when a venv or PyPI is missing. Built once per process.
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    available(PYTHON.get_or_init(install).clone())
}

/// Builds the wheel with maturin (release: the benchmark uses the same build) into the target
/// directory and installs it into the venv when it changed. The extension's cargo build has a
/// target directory of its own: the outer `cargo test` holds the lock of the main one.
fn install() -> Result<PathBuf, String> {
    use std::os::fd::AsRawFd;
    let maturin = python_tool("venv-python-client", MATURIN, "maturin")?;
    let venv = maturin.parent().and_then(Path::parent).expect("venv/bin/maturin").to_path_buf();
    let python = venv.join("bin/python");
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let lock = std::fs::File::create(base.join("python-client-build.lock")).unwrap();
    // SAFETY: flock(2) on a descriptor we own; released when `lock` is dropped.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    let wheels = base.join("python-client-wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    let started = Instant::now();
    let out = Command::new(&maturin)
        .args(["build", "--release", "--locked", "--quiet", "--interpreter"])
        .arg(&python)
        .arg("--out")
        .arg(&wheels)
        .current_dir(Path::new(REPO).join("clients/python"))
        .env("CARGO_TARGET_DIR", base.join("python-client-build"))
        .env("VIRTUAL_ENV", &venv)
        .output()
        .unwrap();
    assert!(out.status.success(), "maturin build failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("maturin built a wheel");
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains("-cp39-abi3-"), "not an abi3 wheel for CPython 3.9+: {name}");
    // Reinstall only a changed wheel (its bytes, not its time stamp).
    let digest = format!("{:x}", ahash_digest(&std::fs::read(&wheel).unwrap()));
    let marker = venv.join(".keyrouter-wheel");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(digest.as_str()) {
        let out = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index", "--no-deps"])
            .args(["--force-reinstall"])
            .arg(&wheel)
            .output()
            .unwrap();
        assert!(out.status.success(), "pip install failed:\n{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&marker, digest).unwrap();
    }
    let _ = writeln!(std::io::stderr(), "python_client: package built and installed in {:.1?}", started.elapsed());
    Ok(python)
}

/// A digest of `bytes` (to tell a changed wheel; not a security boundary).
fn ahash_digest(bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = ahash::RandomState::with_seeds(7, 8, 9, 10).build_hasher();
    h.write(bytes);
    h.finish()
}

/// The driver process: one JSON request per line, one answer per line, each within a deadline.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
}

impl Driver {
    fn start(python: &Path) -> Driver {
        let mut child = Command::new(python)
            .arg(Path::new(REPO).join("clients/python/tests/driver.py"))
            // No __pycache__ beside the sources: a test run leaves `git status` clean.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, answers) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Driver { child, stdin, answers }
    }

    /// The answer to `request`: `Ok(value)`, or `Err((exception class, message))`.
    fn call(&mut self, request: Value) -> Result<Value, (String, String)> {
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let line = match self.answers.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("the driver did not answer {request} within 120 s"),
            Err(RecvTimeoutError::Disconnected) => panic!("the driver exited on {request}"),
        };
        let mut answer: Value = serde_json::from_str(&line).unwrap();
        match answer.get_mut("ok") {
            Some(ok) => Ok(ok.take()),
            None => Err((answer["error"].as_str().unwrap().into(), answer["message"].as_str().unwrap().into())),
        }
    }

    fn ok(&mut self, request: Value) -> Value {
        self.call(request.clone()).unwrap_or_else(|e| panic!("{request}: {e:?}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A deterministic stream of keys of every kind: ASCII, numbers, Unicode, emoji.
fn keys(n: usize, seed: u64) -> Vec<String> {
    let mut x = seed | 1;
    let mut next = move || {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    (0..n)
        .map(|i| match next() % 5 {
            0 => format!("user:{}", next() % 1_000_000),
            1 => format!("ключ-{i}-{}", next() % 997),
            2 => format!("session {} 🚀", next()),
            _ => format!("{:x}", next()),
        })
        .collect()
}

/// Three services: unweighted, weighted and with Ids and zones (algorithm `algorithm`).
fn catalog(algorithm: u32, nodes: usize) -> String {
    let mut s = format!("Algorithm = {algorithm}\n");
    let plain: Vec<String> = (0..nodes).map(|i| format!("\"plain-{i}.example:8080\"")).collect();
    s += &format!("[[Services]]\nName = \"plain\"\nNodes = [{}]\n", plain.join(", "));
    let weighted: Vec<String> = (0..nodes)
        .map(|i| format!("{{ Node = \"w-{i}.example:8080\", Weight = {} }}", [0.5, 1.0, 2.5, 4.0][i % 4]))
        .collect();
    s += &format!("[[Services]]\nName = \"weighted\"\nNodes = [{}]\n", weighted.join(", "));
    // Ids and zones: three zones, and every fourth node in none (the zone of its own).
    let ids: Vec<String> = (0..nodes)
        .map(|i| {
            let zone = if i % 4 == 3 { String::new() } else { format!(", Zone = \"eu-1{}\"", ["a", "b", "c"][i % 3]) };
            format!("{{ Node = \"10.0.{}.{}:80\", Id = \"web-{i}\"{zone} }}", i / 200, i % 200)
        })
        .collect();
    s += &format!("[[Services]]\nName = \"ids\"\nNodes = [{}]\n", ids.join(", "));
    s
}

fn table_fingerprint(server: &Keyrouter) -> String {
    server.get("/table").json()["fingerprint"].as_str().unwrap().to_string()
}

#[test]
fn python_answers_equal_the_servers_batch_answers_for_100_000_keys() {
    let Some(python) = python() else { return };
    for (algorithm, total) in [(2, 100_000), (1, 20_000)] {
        // Batches of 10 000 keys of up to 60 nodes each.
        let server = Keyrouter::start_with(&catalog(algorithm, 60), &["--max-answer-nodes", "1000000"]);
        let mut driver = Driver::start(&python);
        let state =
            driver.ok(json!({"op": "connect", "url": format!("http://127.0.0.1:{}", server.port), "refresh": 60.0}));
        assert_eq!(state["fingerprint"].as_str().unwrap(), table_fingerprint(&server));
        let all = keys(total, 0x5eed + u64::from(algorithm));
        let mut compared = 0;
        for (i, batch) in all.chunks(10_000).enumerate() {
            let service = ["plain", "weighted", "ids"][i % 3];
            let (min, max) = [(1, 1), (1, 3), (2, 5), (0, 7), (50, 60)][i % 5];
            // exclude (identities: addresses, or the Ids of "ids", one unknown) and spread in the mix.
            let exclude: Vec<String> = match (i / 3) % 3 {
                0 => vec![],
                _ if service == "ids" => vec!["web-0".into(), "web-5".into(), "web-9".into(), "nobody".into()],
                _ if service == "plain" => vec!["plain-1.example:8080".into(), "plain-2.example:8080".into()],
                _ => vec!["w-3.example:8080".into()],
            };
            let mut fields = json!({"min": min, "max": max, "exclude": exclude});
            if i % 2 == 1 {
                fields["spread"] = json!("zone");
            }
            let mut body = fields.clone();
            body["keys"] = json!(batch);
            let response = server.post_json(&format!("/service/{service}"), &body.to_string());
            assert_eq!(response.status, 200, "{}", response.text());
            let mut request = fields.clone();
            request["op"] = json!("lookup_many");
            request["service"] = json!(service);
            request["keys"] = json!(batch);
            let from_python = driver.ok(request);
            assert!(from_python == response.json(), "algorithm {algorithm}, batch {i} ({service}, {fields}) differs");
            compared += batch.len();
            // One key alone, as `lookup` answers it.
            let mut request = fields.clone();
            request["op"] = json!("lookup");
            request["service"] = json!(service);
            request["key"] = json!(batch[7]);
            assert_eq!(driver.ok(request), response.json()[&batch[7]]);
        }
        assert_eq!(compared, total);
    }
}

#[test]
fn python_errors_carry_the_servers_messages() {
    let Some(python) = python() else { return };
    let server = Keyrouter::start(&catalog(2, 3));
    let mut driver = Driver::start(&python);
    driver.ok(json!({"op": "connect", "url": format!("http://127.0.0.1:{}", server.port), "refresh": 60.0}));
    for (service, key, min, max, class) in [
        ("nope", "k", 1, 1, "UnknownServiceError"),
        ("plain", "k", 3, 2, "InvalidLookupError"),
        ("plain", "", 1, 1, "InvalidLookupError"),
        ("plain", "k", 4, 5, "NotEnoughNodesError"),
        // The server's order: the service, then the bounds, then the key.
        ("nope", "", 3, 2, "UnknownServiceError"),
        ("plain", "", 3, 2, "InvalidLookupError"),
        ("plain", "", 4, 5, "InvalidLookupError"),
    ] {
        let (got_class, message) = driver
            .call(json!({"op": "lookup", "service": service, "key": key, "min": min, "max": max}))
            .expect_err("an error");
        assert_eq!(got_class, class);
        let response =
            server.post_json(&format!("/service/{service}"), &json!({"key": key, "min": min, "max": max}).to_string());
        assert!(response.status >= 400, "{}", response.text());
        assert_eq!(response.json()["error"].as_str().unwrap(), message, "{service} min {min} max {max}");
    }
    // An empty batch: refused as the server refuses it, in the server's order (the service,
    // the bounds, the keys, then the nodes left).
    for (service, min, max, class) in [
        ("plain", 1, 1, "InvalidLookupError"),
        ("plain", 4, 5, "InvalidLookupError"),
        ("plain", 3, 2, "InvalidLookupError"),
        ("nope", 1, 1, "UnknownServiceError"),
    ] {
        let (got_class, message) = driver
            .call(json!({"op": "lookup_many", "service": service, "keys": [], "min": min, "max": max}))
            .expect_err("an error");
        assert_eq!(got_class, class);
        let response =
            server.post_json(&format!("/service/{service}"), &json!({"keys": [], "min": min, "max": max}).to_string());
        assert!(response.status >= 400, "{}", response.text());
        assert_eq!(response.json()["error"].as_str().unwrap(), message, "{service} [] min {min} max {max}");
    }
    // spread: the server's message, before the bounds are checked.
    for spread in ["rack".to_string(), "r".repeat(50)] {
        let (class, message) = driver
            .call(json!({"op": "lookup", "service": "plain", "key": "k", "min": 3, "max": 2, "spread": spread}))
            .expect_err("an error");
        assert_eq!(class, "InvalidLookupError");
        let response =
            server.post_json("/service/plain", &json!({"key": "k", "min": 3, "max": 2, "spread": spread}).to_string());
        assert_eq!(response.json()["error"].as_str().unwrap(), message);
    }
}

/// `exclude` is, by issue 26's contract, the answer of the same service without those nodes:
/// compared with the ranking crate's answer for a table built without them.
#[test]
fn exclude_answers_as_the_service_without_those_nodes() {
    let Some(python) = python() else { return };
    let server = Keyrouter::start(&catalog(2, 20));
    let mut driver = Driver::start(&python);
    driver.ok(json!({"op": "connect", "url": format!("http://127.0.0.1:{}", server.port), "refresh": 60.0}));
    let table = server.get("/table").json();
    let batch = keys(2_000, 77);
    for service in table["services"].as_array().unwrap() {
        let name = service["name"].as_str().unwrap();
        let nodes: Vec<&str> = service["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        let ids: Vec<&str> = match service.get("ids") {
            Some(ids) => ids.as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect(),
            None => nodes.clone(),
        };
        let weights: Vec<f64> = match service.get("weights") {
            Some(w) => w.as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect(),
            None => vec![1.0; nodes.len()],
        };
        // Every third identity, an unknown one and a duplicate (both ignored).
        let mut exclude: Vec<&str> = ids.iter().copied().step_by(3).collect();
        exclude.extend(["not-a-node", ids[0]]);
        let zones: Vec<Option<&str>> = match service.get("zones") {
            Some(z) => z.as_array().unwrap().iter().map(|z| z.as_str()).collect(),
            None => vec![None; nodes.len()],
        };
        let kept = (0..nodes.len()).filter(|&i| i % 3 != 0).map(|i| {
            let mut spec = NodeSpec::weighted(nodes[i], weights[i]);
            if ids[i] != nodes[i] {
                spec = spec.with_id(ids[i]);
            }
            if let Some(zone) = zones[i] {
                spec = spec.with_zone(zone);
            }
            spec
        });
        let (oracle, _) =
            Table::build_with(Algorithm::V2, [ServiceSpec { name: name.into(), nodes: kept.collect() }]).unwrap();
        let oracle = oracle.get(name).unwrap();
        let got = driver
            .ok(json!({"op": "lookup_many", "service": name, "keys": batch, "min": 1, "max": 4, "exclude": exclude}));
        for key in &batch {
            let expected = oracle.lookup(key, 1, 4).unwrap();
            assert_eq!(got[key], json!(expected), "{name} {key:?}");
        }
        // min and max count the nodes left.
        let left = oracle.len();
        let (class, message) = driver
            .call(json!({"op": "lookup", "service": name, "key": "k", "min": left + 1, "max": left + 1, "exclude": exclude}))
            .expect_err("not enough nodes");
        assert_eq!(class, "NotEnoughNodesError");
        assert!(message.contains(&format!("has {left} node(s)")), "{message}");
        // Without zones, spread=zone is the plain answer; another spread is refused.
        if service.get("zones").is_none() {
            let spread = driver.ok(json!({"op": "lookup", "service": name, "key": "k", "max": 3, "spread": "zone"}));
            assert_eq!(spread, driver.ok(json!({"op": "lookup", "service": name, "key": "k", "max": 3})));
        }
        let (class, _) = driver
            .call(json!({"op": "lookup", "service": name, "key": "k", "spread": "rack"}))
            .expect_err("unknown spread");
        assert_eq!(class, "InvalidLookupError");
    }
}

#[test]
fn python_client_follows_a_reload_and_keeps_the_last_table_when_the_server_is_gone() {
    let Some(python) = python() else { return };
    let mut server = Keyrouter::start(&catalog(2, 10));
    let mut driver = Driver::start(&python);
    let refresh = 0.5;
    let state =
        driver.ok(json!({"op": "connect", "url": format!("http://127.0.0.1:{}", server.port), "refresh": refresh}));
    let old = state["fingerprint"].as_str().unwrap().to_string();

    server.write_services(&catalog(2, 12));
    server.signal(libc::SIGHUP);
    common::eventually("the server's new table", || table_fingerprint(&server) != old);
    let new = table_fingerprint(&server);
    // A refresh counts when it starts. The one under way at the swap (number `seen`) may have
    // fetched either table; the next one starts after the swap, within one interval, and
    // fetches the new table: the client serves it before a third refresh starts.
    let seen = driver.ok(json!({"op": "state"}))["refreshes"].as_u64().unwrap();
    let waited = driver.ok(json!({"op": "wait_fingerprint", "fingerprint": new, "timeout": 60}));
    assert!(waited["seconds"].is_number(), "the client never took the new table: {waited}");
    let refreshes = waited["refreshes"].as_u64().unwrap();
    assert!(refreshes <= seen + 2, "the new table took {} refreshes: {waited}", refreshes - seen);
    assert_eq!(waited["last_error"], Value::Null);
    let _ = writeln!(
        std::io::stderr(),
        "python_client: new table served {:.3} s after the server had it (refresh {refresh} s)",
        waited["seconds"].as_f64().unwrap()
    );
    let batch = keys(1_000, 3);
    let expected = server.post_json("/service/ids", &json!({"keys": batch, "max": 3}).to_string()).json();
    assert_eq!(driver.ok(json!({"op": "lookup_many", "service": "ids", "keys": batch, "max": 3})), expected);

    // The server goes away: refreshes fail, the client answers from the table it has.
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(10)).expect("the server exits");
    let seen = driver.ok(json!({"op": "state"}))["refreshes"].as_u64().unwrap();
    let waited = driver.ok(json!({"op": "wait_refreshes", "count": seen + 2, "timeout": 60}));
    let error = waited["last_error"].as_str().unwrap_or_else(|| panic!("no error recorded: {waited}"));
    assert!(error.contains("cannot fetch") && error.contains("/table"), "{error}");
    assert_eq!(waited["fingerprint"].as_str().unwrap(), new);
    assert_eq!(driver.ok(json!({"op": "lookup_many", "service": "ids", "keys": batch, "max": 3})), expected);
}

/// A proxy on 127.0.0.1 in front of `upstream` that, while `tamper` is set, moves one node of
/// the `/table` document to another address. One request per connection.
fn tampering_proxy(upstream: u16, tamper: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let tamper = tamper.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match conn.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                let response = common::request(upstream, "GET", &path, &[], b"");
                let mut body = response.text();
                if tamper.load(Ordering::SeqCst) {
                    body = body.replacen("10.0.0.3:80", "10.0.0.3:81", 1);
                }
                let reply = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    response.status,
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes());
            });
        }
    });
    port
}

#[test]
fn a_table_altered_in_transit_is_refused_and_the_good_one_kept() {
    let Some(python) = python() else { return };
    let server = Keyrouter::start(&catalog(2, 10));
    let tamper = Arc::new(AtomicBool::new(false));
    let proxy = tampering_proxy(server.port, tamper.clone());
    let url = format!("http://127.0.0.1:{proxy}");
    let mut driver = Driver::start(&python);
    let good =
        driver.ok(json!({"op": "connect", "url": url, "refresh": 0.3}))["fingerprint"].as_str().unwrap().to_string();

    tamper.store(true, Ordering::SeqCst);
    let seen = driver.ok(json!({"op": "state"}))["refreshes"].as_u64().unwrap();
    let waited = driver.ok(json!({"op": "wait_refreshes", "count": seen + 2, "timeout": 60}));
    let error = waited["last_error"].as_str().unwrap_or_else(|| panic!("an altered table was taken: {waited}"));
    assert!(error.contains("does not verify") && error.contains("\"ids\""), "{error}");
    assert_eq!(waited["fingerprint"].as_str().unwrap(), good);
    // Lookups still come from the good table: the server's answers.
    let batch = keys(500, 9);
    let expected = server.post_json("/service/ids", &json!({"keys": batch, "max": 10}).to_string()).json();
    assert_eq!(driver.ok(json!({"op": "lookup_many", "service": "ids", "keys": batch, "max": 10})), expected);

    // A new client never starts from an altered table.
    let mut fresh = Driver::start(&python);
    let (class, message) = fresh.call(json!({"op": "connect", "url": url, "refresh": 60.0})).expect_err("refused");
    assert_eq!(class, "UnverifiedTableError", "{message}");

    // Untampered again, the next refresh is good and clears the error.
    tamper.store(false, Ordering::SeqCst);
    let seen = driver.ok(json!({"op": "state"}))["refreshes"].as_u64().unwrap();
    let waited = driver.ok(json!({"op": "wait_refreshes", "count": seen + 2, "timeout": 60}));
    assert_eq!(waited["last_error"], Value::Null, "{waited}");
}

#[test]
fn the_conformance_vectors_pass_through_the_python_package() {
    let Some(python) = python() else { return };
    let mut driver = Driver::start(&python);
    let vectors = Path::new(REPO).join("crates/ranking/tests/vectors/algorithm2.json");
    let checked = driver.ok(json!({"op": "vectors", "path": vectors}));
    // 35 services with their lookups, 5 tables: hundreds of checks, not a handful.
    assert!(checked.as_u64().unwrap() > 200, "only {checked} checks");
}

#[test]
fn the_lookup_options_vectors_pass_through_the_python_package() {
    let Some(python) = python() else { return };
    let mut driver = Driver::start(&python);
    let vectors = Path::new(REPO).join("crates/ranking/tests/vectors/lookup-options.json");
    let checked = driver.ok(json!({"op": "option_vectors", "path": vectors}));
    assert!(checked.as_u64().unwrap() > 100, "only {checked} checks");
}

#[test]
fn table_from_file_raises_keyrouter_checks_errors() {
    let Some(python) = python() else { return };
    let mut driver = Driver::start(&python);
    let dir = tempfile::tempdir().unwrap();
    let files: &[(&str, &str)] = &[
        ("syntax.toml", "[[Services]]\nName = \"bar\nNodes = []\n"),
        ("duplicate.toml", "[[Services]]\nName = \"a\"\nNodes = []\n[[Services]]\nName = \"a\"\nNodes = []\n"),
        ("weight.toml", "[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x:1\", Weight = -1 }, 3]\n"),
        (
            "ids.toml",
            "[[Services]]\nName = \"a\"\nNodes = [{ Node = \"x:1\", Id = \"w\" }, { Node = \"y:1\", Id = \"w\" }]\n",
        ),
        ("algorithm.toml", "Algorithm = 9\n"),
    ];
    let mut cases: Vec<PathBuf> = files
        .iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    cases.push(dir.path().join("missing.toml"));
    cases.push(dir.path().to_path_buf());
    for path in &cases {
        let out = Command::new(BIN).args(["check", "--services"]).arg(path).output().unwrap();
        assert!(!out.status.success(), "{} passed check", path.display());
        let stderr = String::from_utf8(out.stderr).unwrap();
        let check =
            stderr.strip_prefix("keyrouter: error: ").unwrap_or_else(|| panic!("{stderr}")).trim_end_matches('\n');
        let (class, message) = driver.call(json!({"op": "from_file", "path": path})).expect_err("an error");
        assert_eq!(class, "ConfigError");
        assert_eq!(message, check, "{}", path.display());
    }
    let good = Path::new(REPO).join("deploy/services.example.toml");
    let out = Command::new(BIN).args(["check", "--services"]).arg(&good).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let fingerprint = driver.ok(json!({"op": "from_file", "path": good}));
    assert!(
        stdout.lines().next().unwrap().ends_with(&format!("fingerprint {}", fingerprint.as_str().unwrap())),
        "{stdout}"
    );
}

/// The package's own unit tests (unittest, standard library only).
#[test]
fn the_python_unit_tests_pass() {
    let Some(python) = python() else { return };
    let out = Command::new(python)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(Path::new(REPO).join("clients/python/tests"))
        .args(["-p", "test_*.py", "-v"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python unit tests failed:\n{stderr}");
    assert!(stderr.contains("OK") && !stderr.contains("Ran 0 tests"), "{stderr}");
}

/// The extension links the ranking and the parser, never the server's runtime: the compiler's
/// view (`cargo tree`), not a text scan of the sources.
#[test]
fn the_python_extension_links_no_server_runtime() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--locked", "-p", "keyrouter-python", "-e", "normal", "--prefix", "none"])
        .current_dir(REPO)
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo tree failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(
        crates.contains(&"keyrouter-ranking") && crates.contains(&"keyrouter-config") && crates.contains(&"pyo3"),
        "{tree}"
    );
    for forbidden in ["actix", "tokio", "tracing", "mio", "hyper", "keyrouter"] {
        let found: Vec<&&str> =
            crates.iter().filter(|c| **c == forbidden || c.starts_with(&format!("{forbidden}-"))).collect();
        let found: Vec<&&str> = found.into_iter().filter(|c| !c.starts_with("keyrouter-")).collect();
        assert!(found.is_empty(), "the Python extension links {found:?}:\n{tree}");
    }
}

/// The `## Python` section of docs/clients.md: each `python` block, run verbatim against the
/// README's example server (its `http://localhost:8080` given the real port, from the repository
/// root), prints exactly the `text` block that follows it.
#[test]
fn the_python_examples_of_the_docs_print_what_they_show() {
    let Some(python) = python() else { return };
    let doc = std::fs::read_to_string(Path::new(REPO).join("docs/clients.md")).unwrap();
    let start = doc.find("\n## Python\n").expect("docs/clients.md has a `## Python` section");
    let section = &doc[start + 1..];
    let section = section[3..].find("\n## ").map_or(section, |end| &section[..end + 3]);
    let services = std::fs::read_to_string(Path::new(REPO).join("deploy/services.example.toml")).unwrap();
    let server = Keyrouter::start(&services);
    let blocks: Vec<(&str, &str)> =
        section.split("```").skip(1).step_by(2).filter_map(|b| b.split_once('\n')).collect();
    let mut ran = 0;
    for (i, (lang, code)) in blocks.iter().enumerate().filter(|(_, (lang, _))| *lang == "python") {
        let shown = blocks.get(i + 1).filter(|(l, _)| *l == "text").map(|(_, t)| *t);
        let shown = shown.unwrap_or_else(|| panic!("a {lang} block without its output (a text block):\n{code}"));
        let code = code.replace("http://localhost:8080", &format!("http://127.0.0.1:{}", server.port));
        let out = Command::new(&python)
            .arg("-c")
            .arg(&code)
            .current_dir(REPO)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{code}\nfailed:\n{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            stdout, shown,
            "docs/clients.md: the example\n{code}\nprints\n{stdout}\nbut the document shows\n{shown}"
        );
        ran += 1;
    }
    assert!(ran >= 3, "only {ran} Python examples found");
}
