//! Hostile clients against the real binary: each attack that took the server down,
//! or hurt other clients, is driven here over loopback, every loop bounded in count and time.
//! Where a regression could eat the machine's memory the server runs under an address-space
//! limit (`setrlimit(RLIMIT_AS)` in the child), so that it fails the test instead.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{expected_json, multipart, parse_response, services, Keyrouter, Response, Rlimits, BIN};

/// Address space the server gets where a regression could allocate without bound. The largest
/// answer the default budget allows is ~1 MB; before the budget, one request allocated 2.4 GB.
const ADDRESS_SPACE: u64 = 1 << 30;

/// A services file: `big` with `n` nodes, `bar` with three, and `a/b` with one.
fn table(n: usize) -> String {
    let nodes: Vec<String> = (0..n).map(|i| format!("n{i}:80")).collect();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    services(&[("big", &nodes), ("bar", &["b1:80", "b2:80", "b3:80"]), ("a/b", &["x:1"])])
}

/// Starts keyrouter on `toml` with `extra` flags under `limits`.
fn start(toml: &str, extra: &[&str], limits: Rlimits) -> Keyrouter {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.toml");
    std::fs::write(&path, toml).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--services").arg(&path).args(["--address", "127.0.0.1:0"]).args(extra);
    if !extra.contains(&"--workers") {
        cmd.args(["--workers", "2"]);
    }
    // glibc reserves 64 MiB of address space per malloc arena; two keep the reservation small
    // so that the limit measures what the server allocates.
    cmd.env("MALLOC_ARENA_MAX", "2");
    limits.apply(&mut cmd);
    Keyrouter::spawn(cmd, dir, path)
}

fn capped() -> Rlimits {
    Rlimits::address_space(ADDRESS_SPACE)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until the server closes; `None` if it did not within the read timeout.
fn read_until_closed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => Some(raw),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(raw),
        Err(_) => None,
    }
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The value `f` settles at: read every 100 ms until it holds still over five reads (bounded:
/// 20 s, then the last value).
fn settled(mut f: impl FnMut() -> u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut last, mut still) = (f(), 0);
    while still < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = f();
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    last
}

/// `pid`'s RSS once `done` holds for it, or the last reading after `within`.
fn wait_for_rss(pid: u32, within: Duration, done: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let now = rss(pid);
        if done(now) || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded: 60 s) until `s` has a byte to read, without reading it.
fn wait_readable(s: &TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let n = s.peek(&mut [0; 1]).expect("no answer began to arrive within 60 s");
    assert_eq!(n, 1, "the server closed the connection instead of answering");
}

const MAX: &str = "18446744073709551615";

#[test]
fn batch_amplification_gets_a_4xx_before_any_allocation() {
    let kr = start(&table(10_000), &[], capped());
    let keys: Vec<String> = (0..10_000).map(|i| format!("user:{i}")).collect();
    let want = "10000 key(s) x 10000 node(s) per key = 100000000 nodes, more than the limit of 100000";

    let started = Instant::now();
    let json = serde_json::json!({ "keys": keys, "max": u64::MAX }).to_string();
    kr.post_json("/service/big", &json).assert_error(400, want);
    eprintln!("JSON batch of 10 000 keys x max=u64::MAX refused in {:?}", started.elapsed());

    let form: String = keys.iter().map(|k| format!("keys={k}&")).collect::<String>() + "max=" + MAX;
    kr.request("POST", "/service/big", &[("Content-Type", "application/x-www-form-urlencoded")], form.as_bytes())
        .assert_error(400, want);
    let fields: Vec<(&str, &str)> = keys.iter().take(300).map(|k| ("keys", k.as_str())).chain([("max", MAX)]).collect();
    let (ct, body) = multipart(&fields);
    kr.request("POST", "/service/big", &[("Content-Type", &ct)], &body)
        .assert_error(400, "300 key(s) x 10000 node(s) per key");

    // GET with a query string of just under 8 KiB of repeated keys.
    let mut query = format!("max={MAX}");
    let mut i = 0;
    while query.len() < 8_000 {
        query += &format!("&keys=k{i}");
        i += 1;
    }
    let r = kr.get(&format!("/service/big?{query}"));
    r.assert_error(400, &format!("{i} key(s) x 10000 node(s) per key"));
    // HEAD gets the same status, and no body.
    let r = kr.request("HEAD", &format!("/service/big?{query}"), &[], b"");
    assert_eq!(r.status, 400);
    assert!(r.body.is_empty());

    // The largest allowed answer is served, and the server is still there.
    let r = kr.post_json("/service/big", &serde_json::json!({ "keys": &keys[..10], "max": u64::MAX }).to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().as_object().unwrap().values().map(|v| v.as_array().unwrap().len()).sum::<usize>(), 100_000);
    eprintln!("largest answer allowed by default over 10 000 nodes `n{{i}}:80`: {} bytes", r.body.len());
    assert_eq!(kr.get("/service/bar?key=k").status, 200);
    assert_eq!(kr.get("/healthz").status, 200);
}

#[test]
fn the_budget_is_a_flag_and_the_offline_lookup_keeps_it() {
    let kr = start(&table(100), &["--max-answer-nodes", "50"], capped());
    kr.get("/service/big?key=k&max=51").assert_error(400, "1 key(s) x 51 node(s) per key = 51 nodes");
    assert_eq!(kr.get("/service/big?key=k&max=50").json().as_array().unwrap().len(), 50);
    kr.get("/service/big?keys=a&keys=b&max=26").assert_error(400, "more than the limit of 50");
    drop(kr);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.toml");
    std::fs::write(&path, table(100)).unwrap();
    let lookup = |args: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.arg("--services").arg(&path).arg("lookup").args(args);
        if let Some(v) = env {
            cmd.env("KEYROUTER_MAX_ANSWER_NODES", v);
        }
        cmd.output().unwrap()
    };
    let out = lookup(&["big", "k", "--max", MAX, "--max-answer-nodes", "99"], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 key(s) x 100 node(s) per key = 100 nodes, more than the limit of 99"), "{stdout}");
    let out = lookup(&["big", "k", "--max", MAX], Some("99"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let out = lookup(&["big", "k", "--max", MAX], None);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn paths_and_bodies_mean_one_thing() {
    let kr = start(&table(20), &[], capped());
    assert_eq!(kr.get("/service/a%2Fb?key=k").json(), serde_json::json!(["x:1"]));
    assert_eq!(kr.get("/service/a%2fb?key=k").json(), serde_json::json!(["x:1"]));
    assert_eq!(kr.get("/service/%62ar?key=k").json(), kr.get("/service/bar?key=k").json());
    for bad in ["%FF", "%FE", "b%C3ar"] {
        kr.get(&format!("/service/{bad}?key=k")).assert_error(400, "service name is not valid UTF-8");
    }
    kr.get("/service/bar?key=%FF").assert_error(400, "field `key` is not valid UTF-8");
    kr.get("/service/bar?keys=a&keys=%FE").assert_error(400, "field `keys` is not valid UTF-8");
    // Distinct escapes are distinct keys, not both U+FFFD: each spelling gets its own key's
    // answer, and the keys' answers differ, so conflating them would fail here.
    // Over 20 nodes, two keys all but never get the same order.
    let big: Vec<String> = (0..20).map(|i| format!("n{i}:80")).collect();
    let spellings = [("%C3%A9", r#""\u00e9""#, "\u{e9}"), ("%EF%BF%BD", r#""\ufffd""#, "\u{fffd}")];
    let answers: Vec<serde_json::Value> = spellings.iter().map(|(_, _, key)| expected_json(&big, key, 0, 20)).collect();
    assert_ne!(answers[0], answers[1], "the test needs keys whose answers differ");
    for ((query, json, key), answer) in spellings.iter().zip(&answers) {
        assert_eq!(&kr.get(&format!("/service/big?key={query}&max=20")).json(), answer, "{key:?} as {query}");
        let body = format!(r#"{{"key":{json},"max":20}}"#);
        assert_eq!(&kr.post_json("/service/big", &body).json(), answer, "{key:?} as {json}");
    }

    kr.post_json("/service/bar", r#"["ryans",null,1,3]"#).assert_error(400, "must be an object");
    kr.post_json("/service/bar", r#""ryans""#).assert_error(400, "must be an object");
    kr.post_json("/service/bar", r#"{"key":"k","max":-1}"#).assert_error(400, "`max` must be a non-negative integer");
    kr.post_json("/service/bar", r#"{"key":"k","min":1.5}"#).assert_error(400, "`min` must be a non-negative integer");
    kr.post_json("/service/bar", r#"{"key":"k","max":1e300}"#).assert_error(400, "`max` is too large");
    kr.get("/service/bar?key=k&min=-1").assert_error(400, "`min` must be a non-negative integer");
    let one = kr.post_json("/service/bar", r#"{"key":"k","max":1}"#).json();
    for max in ["1.0", "1e0", "0.1e1"] {
        let r = kr.post_json("/service/bar", &format!(r#"{{"key":"k","max":{max}}}"#));
        assert_eq!(r.status, 200, "max={max}: {}", r.text());
        assert_eq!(r.json(), one, "max={max}");
    }
}

#[test]
fn a_client_that_stalls_in_its_body_gets_408_and_is_closed() {
    let kr = start(&table(3), &["--request-timeout", "1"], capped());
    let mut s = connect(kr.port);
    s.write_all(b"POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"key\":")
        .unwrap();
    let raw = read_until_closed(&mut s).expect("the server neither answered nor closed");
    let r = parse_response(&raw);
    r.assert_error(408, "request not received within 1 s");
    assert_eq!(r.header("connection"), Some("close"));

    // Chunked, stalling between chunks.
    let mut s = connect(kr.port);
    s.write_all(b"POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"k\r\n")
        .unwrap();
    let raw = read_until_closed(&mut s).expect("the server neither answered nor closed");
    parse_response(&raw).assert_error(408, "--request-timeout");
    assert_eq!(kr.get("/service/bar?key=k").status, 200);
}

#[test]
fn a_refused_body_is_not_drained_for_ever() {
    let kr = start(&table(3), &["--request-timeout", "1"], capped());
    let mut s = connect(kr.port);
    s.write_all(b"POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    // Keep sending the refused body, slowly, for at most 10 s: the server must close.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut raw = Vec::new();
    let closed = loop {
        if Instant::now() > deadline {
            break false;
        }
        if s.write_all(&[b' '; 1024]).is_err() {
            break true;
        }
        let mut buf = [0; 4096];
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break true,
        }
    };
    assert!(closed, "the server kept draining a refused body");
    parse_response(&raw).assert_error(413, "larger than");
}

#[test]
fn a_client_that_stalls_in_its_head_is_closed() {
    let kr = start(&table(3), &["--request-timeout", "1"], capped());
    let mut s = connect(kr.port);
    s.write_all(b"POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Le").unwrap();
    let raw = read_until_closed(&mut s).expect("the server kept a stalled head open");
    parse_response(&raw).assert_error(408, "request not received within 1 s");
}

#[test]
fn bad_requests_cost_no_log_line_at_the_default_level() {
    let kr = start(&table(3), &[], capped());
    // A marker line: whatever the server logs at startup comes before its answer to a signal.
    kr.signal(libc::SIGUSR1);
    kr.wait_for_log("SIGUSR1: ignored", 0);
    let before = kr.log();
    for i in 0..100 {
        match i % 5 {
            0 => {
                let mut s = connect(kr.port);
                s.write_all(b"GARBAGE\r\n\r\n").unwrap();
                read_until_closed(&mut s);
            }
            1 => assert_eq!(kr.post_json("/service/bar", "{").status, 400),
            2 => assert_eq!(kr.get("/service/nope?key=k").status, 404),
            3 => {
                // Headers, half a body, then gone.
                let mut s = connect(kr.port);
                s.write_all(b"POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nkey=").unwrap();
                let _ = s.shutdown(Shutdown::Both);
            }
            _ => {
                // Headers too large (431).
                let mut s = connect(kr.port);
                let head = format!("GET /healthz HTTP/1.1\r\n{}\r\n", "X-A: b\r\n".repeat(5000));
                s.write_all(head.as_bytes()).unwrap_or(());
                read_until_closed(&mut s);
            }
        }
    }
    assert_eq!(kr.get("/healthz").status, 200);
    // Another marker, after every bad request was answered or dropped: only it may be new.
    kr.signal(libc::SIGUSR2);
    kr.wait_for_log("SIGUSR2: ignored", before.len());
    let after = kr.log();
    let new: Vec<&str> = after[before.len()..].lines().filter(|l| !l.contains("SIGUSR2: ignored")).collect();
    assert!(new.is_empty(), "bad requests were logged at the default level:\n{}", new.join("\n"));

    // At DEBUG they show.
    let kr = start(&table(3), &["--log-level", "debug"], capped());
    let mut s = connect(kr.port);
    s.write_all(b"GARBAGE\r\n\r\n").unwrap();
    read_until_closed(&mut s);
    kr.wait_for_log("stream error", 0);
}

#[test]
fn descriptors_raise_to_the_hard_limit_and_never_run_out() {
    let limits = Rlimits { address_space: Some(ADDRESS_SPACE), nofile: Some((200, 400)) };
    let mut kr = start(&table(3), &["--request-timeout", "2"], limits);
    // 400 less a tenth (at least 64) and a descriptor per worker is 334, 167 per worker.
    kr.wait_for_log(
        "334 connections at most (167 per worker at most; descriptors: soft limit 400 (was 200, hard limit 400))",
        0,
    );
    kr.wait_for_log("only 334 client connections fit", 0);
    let pid = kr.child.id();
    let base = rss(pid);

    // More idle connections than the server may take: the excess waits in the backlog (or is
    // refused by the kernel), and the server never runs out of descriptors.
    let mut held = Vec::new();
    let mut failures = 0;
    for _ in 0..600 {
        match TcpStream::connect_timeout(&([127, 0, 0, 1], kr.port).into(), Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            // The backlog is full: let the server accept some, a bounded number of times.
            Err(_) if failures < 10 => failures += 1,
            Err(_) => break,
        }
    }
    // Until the server has taken what it will: the count holds still for a while.
    let during = settled(|| open_descriptors(pid) as u64) as usize;
    assert!(during < 400, "{during} descriptors open");
    eprintln!("{} connections opened, server holds {during} descriptors", held.len());
    drop(held);

    // Once they are gone (closed here, or timed out there) a new client is served.
    let r = kr.get("/service/bar?key=k");
    assert_eq!(r.status, 200);

    // Refused bodies: each 413 lingers on a duplicate descriptor for a while, at most half the
    // headroom (32 here) at once, so a burst of them cannot exhaust the descriptors either.
    for _ in 0..150 {
        let mut s = connect(kr.port);
        s.write_all(b"POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n").unwrap();
        let mut head = [0; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 413");
    }
    let lingering = open_descriptors(pid);
    assert!(lingering < 400, "{lingering} descriptors open");
    eprintln!("after 150 refused bodies the server holds {lingering} descriptors");
    assert_eq!(kr.get("/service/bar?key=k").status, 200);
    // A marker line: an accept error logged before it would show.
    kr.signal(libc::SIGUSR1);
    kr.wait_for_log("SIGUSR1: ignored", 0);
    let log = kr.log();
    assert!(!log.contains("accept"), "accept errors:\n{log}");
    assert!(!log.contains("ERROR"), "{log}");
    eprintln!("RSS {} KiB before, {} KiB after", base / 1024, rss(pid) / 1024);
    assert!(kr.child.try_wait().unwrap().is_none());
}

/// A JSON batch of `n` short keys.
fn batch(n: usize) -> String {
    let keys: Vec<String> = (0..n).map(|i| format!("{i:x}")).collect();
    serde_json::json!({ "keys": keys }).to_string()
}

#[test]
fn heavy_lookups_leave_the_io_thread_and_are_shed_when_saturated() {
    let kr = start(
        &table(200_000),
        &["--workers", "1", "--heavy-lookups", "1", "--heavy-lookup-work", "100000", "--max-answer-nodes", "200000"],
        capped(),
    );
    let port = kr.port;
    // The heavy lookup must hold its slot while everything below happens, whatever the build
    // profile and the machine's load: its size comes from a measured rate, for about 3 s of
    // work (bounded by the batch limit of 10 000 keys: about 4 s in a release build).
    let probe = 200;
    let since = Instant::now();
    assert_eq!(kr.post_json("/service/big", &batch(probe)).status, 200);
    let per_key = since.elapsed().as_secs_f64() / probe as f64;
    let keys = ((3.0 / per_key) as usize).clamp(probe, 10_000);
    let heavy = batch(keys);
    eprintln!("{:.1} us per key of 200 000 nodes: {keys} keys", per_key * 1e6);

    let (sender, results) = std::sync::mpsc::channel();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (h, sender) = (heavy.clone(), sender.clone());
            std::thread::spawn(move || {
                let r = common::request(
                    port,
                    "POST",
                    "/service/big",
                    &[("Content-Type", "application/json")],
                    h.as_bytes(),
                );
                let _ = sender.send((r, Instant::now()));
            })
        })
        .collect();
    // Three of the four are shed while one holds the only slot: wait for those three answers
    // (an event, not a sleep), so the heavy one is surely running.
    let wait = Duration::from_secs(60);
    let mut shed: Vec<(Response, Instant)> = (0..3).map(|_| results.recv_timeout(wait).expect("no answer")).collect();
    // Small lookups on the same (only) worker are answered while the heavy one runs.
    for _ in 0..20 {
        assert_eq!(kr.get("/service/bar?key=k").status, 200);
    }
    let small_done = Instant::now();
    let mut all: Vec<(Response, Instant)> = std::mem::take(&mut shed);
    all.push(results.recv_timeout(Duration::from_secs(120)).expect("the heavy lookup was never answered"));
    for c in clients {
        c.join().unwrap();
    }
    let statuses: Vec<u16> = all.iter().map(|(r, _)| r.status).collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 1, "{statuses:?}");
    let (answer, heavy_done) = all.iter().find(|(r, _)| r.status == 200).unwrap();
    assert_eq!(answer.json().as_object().unwrap().len(), keys);
    assert!(small_done < *heavy_done, "small lookups waited for the heavy one");
    for (shed, _) in all.iter().filter(|(r, _)| r.status != 200) {
        shed.assert_error(503, "too many large lookups in progress");
        assert_eq!(shed.header("retry-after"), Some("1"));
    }
    // The slot is free again.
    assert_eq!(kr.post_json("/service/big", &batch(probe)).status, 200);
    // Shedding is counted apart: an error-rate alert on 5xx must not fire on it (issue 28).
    let text = kr.get("/metrics").text();
    assert_eq!(common::metric(&text, r#"keyrouter_lookups_total{service="big",status="shed"}"#), Some(3.0), "{text}");
    assert_eq!(common::metric(&text, r#"keyrouter_lookups_total{service="big",status="5xx"}"#), Some(0.0), "{text}");
}

#[test]
fn every_answer_keeps_the_contract() {
    let kr = start(&table(3), &[], capped());
    kr.request(
        "POST",
        "/service/bar",
        &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
        b"\x1f\x8b\x08\x00garbage",
    )
    .assert_error(415, "unsupported Content-Encoding \"gzip\"");
    let r = kr.request(
        "POST",
        "/service/bar",
        &[("Content-Type", "application/json"), ("Content-Encoding", "identity")],
        br#"{"key":"k"}"#,
    );
    assert_eq!(r.status, 200);

    // Expect: 100-continue with a body over the limit: 413 at once, never `100 Continue`.
    let mut s = connect(kr.port);
    s.write_all(
        b"POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 5000000\r\n\r\n",
    )
    .unwrap();
    let raw = read_until_closed(&mut s).expect("no answer to Expect");
    assert!(raw.starts_with(b"HTTP/1.1 413"), "{}", String::from_utf8_lossy(&raw));
    parse_response(&raw).assert_error(413, "larger than 1048576 bytes");
    // Within the limit the client is told to continue, and answered.
    let mut s = connect(kr.port);
    s.write_all(b"POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: 11\r\n\r\n")
        .unwrap();
    let mut buf = [0; 25];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(br#"{"key":"k"}"#).unwrap();
    let raw = read_until_closed(&mut s).unwrap();
    assert_eq!(parse_response(&raw).status, 200);
}

#[test]
fn memory_comes_back_when_connections_go() {
    let kr = start(&table(3), &["--request-timeout", "30"], capped());
    let pid = kr.child.id();
    std::thread::sleep(Duration::from_millis(300));
    let base = rss(pid);
    // 300 connections, each with most of a 1 MB body in flight.
    let part = vec![b' '; 900_000];
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = connect(kr.port);
        s.write_all(b"POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
            .unwrap();
        s.write_all(&part).unwrap();
        held.push(s);
    }
    // Until the server holds the bodies (bounded: it reads them as they arrive).
    let peak = wait_for_rss(pid, Duration::from_secs(30), |rss| rss > base + (150 << 20));
    assert!(peak > base + (150 << 20), "the bodies were not held: {peak}");
    drop(held);
    // Most of it comes back: the trim runs every 5 s, so two rounds are 10 s; the deadline leaves
    // margin for a loaded machine. (Without the trimming 78-112 MB stayed, far above the bound.)
    let now = wait_for_rss(pid, Duration::from_secs(40), |rss| rss < base + (64 << 20));
    eprintln!("RSS {} KiB at start, {} KiB with 300 bodies in flight, {} KiB after", base >> 10, peak >> 10, now >> 10);
    assert!(now < base + (64 << 20), "memory did not come back: {} KiB", now >> 10);
}

/// Sends `n` requests for the largest answer on one connection each and never reads; returns
/// the connections.
fn non_readers(port: u16, n: usize, request: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = connect(port);
            s.write_all(request).unwrap();
            s
        })
        .collect()
}

#[test]
fn clients_that_never_read_pin_at_most_one_bounded_answer_each() {
    // Every such lookup is heavy: let them all run, this test is about memory.
    let kr = start(&table(10_000), &["--heavy-lookups", "64"], capped());
    let pid = kr.child.id();
    let keys: Vec<String> = (0..10).map(|i| format!("user:{i}")).collect();
    let body = serde_json::json!({ "keys": keys, "max": u64::MAX }).to_string();
    let answer = kr.post_json("/service/big", &body).body.len() as u64;
    let request = format!(
        "POST /service/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    std::thread::sleep(Duration::from_millis(200));
    let base = rss(pid);

    // Many clients, each asking for the largest answer and never reading it.
    const CLIENTS: u64 = 16;
    let held = non_readers(kr.port, CLIENTS as usize, request.as_bytes());
    // Until every client's answer has begun to arrive: each is built and being written.
    for s in &held {
        wait_readable(s);
    }
    let many = rss(pid).saturating_sub(base);

    // One client pipelining many such requests without reading.
    let mut pipelined = connect(kr.port);
    for _ in 0..50 {
        if pipelined.write_all(request.as_bytes()).is_err() {
            break;
        }
    }
    wait_readable(&pipelined);
    let with_pipeline = rss(pid).saturating_sub(base);
    eprintln!(
        "largest answer {answer} bytes; {CLIENTS} non-reading clients: +{} KiB RSS; plus 50 pipelined: +{} KiB",
        many / 1024,
        with_pipeline / 1024
    );
    // At most one answer per connection (the kernel's socket buffers hold part of it), plus
    // allocator slack.
    let bound = (CLIENTS + 1) * answer * 2 + (32 << 20);
    assert!(with_pipeline < bound, "+{with_pipeline} bytes > {bound}");
    drop(held);
    drop(pipelined);
    let mut kr = kr;
    assert!(kr.child.try_wait().unwrap().is_none(), "server died:\n{}", kr.log());
    assert_eq!(kr.get("/service/bar?key=k").status, 200, "{}", kr.log());
}

/// Reads one answer on a kept-alive connection: its head, then `Content-Length` bytes.
fn read_one_answer(s: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut byte = [0; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("no answer"), 1, "closed mid-answer: {raw:?}");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().expect("bad content-length"));
    let mut body = vec![0; length];
    s.read_exact(&mut body).unwrap();
    raw.extend_from_slice(&body);
    parse_response(&raw)
}

/// A connection that was answered once and stays open (keep-alive).
fn answered_once(port: u16) -> TcpStream {
    let mut s = connect(port);
    s.write_all(b"GET /service/bar?key=k HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_one_answer(&mut s).status, 200);
    s
}

#[test]
fn stalled_heads_on_kept_alive_connections_cannot_lock_out_other_clients() {
    let kr = start(
        &table(3),
        &["--workers", "1", "--max-connections", "2", "--request-timeout", "3", "--keep-alive", "5"],
        capped(),
    );
    // Two clients take both connections, each answered once, then send one byte of their next
    // head and nothing more.
    let mut stalled: Vec<TcpStream> = (0..2).map(|_| answered_once(kr.port)).collect();
    for s in &mut stalled {
        s.write_all(b"G").unwrap();
    }
    let since = Instant::now();
    // A third client is answered once a stalled head is cut: within the request timeout (and
    // at most twice it plus the keep-alive timeout).
    let mut third = connect(kr.port);
    third.write_all(b"GET /service/bar?key=k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let raw = read_until_closed(&mut third).expect("the third client was never answered");
    assert_eq!(parse_response(&raw).status, 200);
    let waited = since.elapsed();
    assert!(waited <= Duration::from_secs(2 * 3 + 5), "the third client waited {waited:?}");
    // The stalled ones were told why, and closed.
    for s in &mut stalled {
        let raw = read_until_closed(s).expect("a stalled head was kept open");
        parse_response(&raw).assert_error(408, "request not received within 3 s");
    }
}

#[test]
fn a_head_dribbled_on_a_kept_alive_connection_is_cut() {
    let kr = start(&table(3), &["--request-timeout", "2", "--keep-alive", "30"], capped());
    let mut s = answered_once(kr.port);
    let mut reader = s.try_clone().unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answer = {
        let done = done.clone();
        std::thread::spawn(move || {
            let raw = read_until_closed(&mut reader);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            raw
        })
    };
    // One byte every 400 ms: each gap is far below the timeout, the head never ends. Bounded:
    // 60 bytes, 24 s.
    let head = b"GET /service/bar?key=kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";
    let since = Instant::now();
    let mut sent = 0;
    for b in head.iter().take(60) {
        if done.load(std::sync::atomic::Ordering::SeqCst) || s.write_all(&[*b]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(400));
    }
    let raw = answer.join().unwrap().expect("the dribbled head was never cut");
    parse_response(&raw).assert_error(408, "request not received within 2 s");
    assert!(sent < head.len(), "the whole head was dribbled without a cut");
    assert!(since.elapsed() >= Duration::from_millis(1900), "cut too early: {:?}", since.elapsed());
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let kr = start(&table(3), &["--keep-alive", "1", "--request-timeout", "30"], capped());
    let mut s = answered_once(kr.port);
    let since = Instant::now();
    let raw = read_until_closed(&mut s).expect("an idle connection was kept open");
    assert!(raw.is_empty(), "an idle connection got {:?}", String::from_utf8_lossy(&raw));
    let idle = since.elapsed();
    assert!(idle >= Duration::from_millis(900), "closed after {idle:?}, before --keep-alive 1");
    assert!(idle < Duration::from_secs(15), "closed after {idle:?}");
}

#[test]
fn the_longest_request_timeout_does_not_overflow_a_deadline() {
    // u64::MAX seconds is refused by the parser now (tests/integration/cli.rs); the longest accepted timeout
    // and keep-alive still go through every deadline computation.
    let mut kr = start(&table(3), &["--request-timeout", "24h", "--keep-alive", "1h"], capped());
    let mut s = answered_once(kr.port);
    s.write_all(b"GET /service/bar?key=k HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_one_answer(&mut s).status, 200);
    // A slow head and body, timed against the huge deadline.
    s.write_all(b"POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"Content-Length: 11\r\n\r\n{\"key\"").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b":\"k\"}").unwrap();
    assert_eq!(read_one_answer(&mut s).status, 200);
    assert!(kr.child.try_wait().unwrap().is_none(), "{}", kr.log());
}

#[test]
fn max_connections_below_the_worker_count_is_exact() {
    let kr = start(&table(3), &["--workers", "2", "--max-connections", "1", "--keep-alive", "60"], capped());
    kr.wait_for_log("1 connection at most", 0);
    assert!(!kr.log().contains("fit the file-descriptor limit"), "{}", kr.log());
    let first = answered_once(kr.port);
    // A second client waits while the first holds the only connection, on either worker.
    let mut second = connect(kr.port);
    second.write_all(b"GET /service/bar?key=k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    second.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut byte = [0; 1];
    let early = second.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "a second connection was served beside the first: {early:?}"
    );
    // Once the first goes, the second is served.
    drop(first);
    second.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let raw = read_until_closed(&mut second).expect("the waiting connection was never served");
    assert_eq!(parse_response(&raw).status, 200);
}

#[test]
fn a_uri_beyond_the_http_crates_cap_gets_the_json_414() {
    let kr = start(&table(3), &[], capped());
    // 65 535 and 65 536 bytes are where the `http` crate refuses a URI (a bare 400 from actix);
    // the head limit is 128 KiB.
    for len in [65_535, 65_536, 100_000, 128 * 1024 - 200] {
        let uri = format!("/service/bar?key={}", "k".repeat(len - "/service/bar?key=".len()));
        assert_eq!(uri.len(), len);
        // On a fresh connection, and as the second request of a kept-alive one.
        let mut s = connect(kr.port);
        let _ = s.write_all(format!("GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        parse_response(&read_until_closed(&mut s).unwrap()).assert_error(414, "request line is longer than");
        let mut s = answered_once(kr.port);
        let _ = s.write_all(format!("GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        parse_response(&read_until_closed(&mut s).unwrap()).assert_error(414, "request line is longer than");
    }
    // A body a handler leaves unread (actix drains a chunked one after the answer) is not taken
    // for a request line, however long and without line breaks.
    let mut s = connect(kr.port);
    s.write_all(b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n186a0\r\n").unwrap();
    assert_eq!(read_one_answer(&mut s).status, 405);
    s.write_all(format!("{}\r\n0\r\n\r\n", "x".repeat(0x186a0)).as_bytes()).unwrap();
    s.write_all(b"GET /service/bar?key=k HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_one_answer(&mut s).status, 200);
    // A long query string within the line cap still gets the lookup's own 414.
    kr.get(&format!("/service/bar?key={}", "k".repeat(20_000))).assert_error(414, "query string is longer than");
}

#[test]
fn stray_signals_do_not_stop_the_server() {
    let mut kr = start(&table(3), &[], capped());
    for (sig, name) in [(libc::SIGUSR1, "SIGUSR1"), (libc::SIGUSR2, "SIGUSR2"), (libc::SIGALRM, "SIGALRM")] {
        let after = kr.log().len();
        kr.signal(sig);
        kr.wait_for_log(&format!("{name}: ignored"), after);
        assert_eq!(kr.get("/service/bar?key=k").status, 200, "after {name}");
    }
    assert!(kr.child.try_wait().unwrap().is_none(), "{}", kr.log());
}
