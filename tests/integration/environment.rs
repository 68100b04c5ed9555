//! The process survives its environment, through the real binary: odd things at the
//! services path (a FIFO, a symlink to /dev/zero, a directory, an oversized file, an empty
//! file), a log pipe that closes or stalls, and shutdowns during CPU-bound requests or a long
//! reload. Every server runs under an address-space limit, on 127.0.0.1, and every loop is
//! bounded in count and time.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, path_str, services, Keyrouter, Rlimits, BIN};

const MIB: u64 = 1024 * 1024;
/// Enough for the server with small tables (threads reserve address space generously).
const SMALL_AS: u64 = 1024 * MIB;
/// For tests that load a table of several hundred thousand nodes.
const BIG_AS: u64 = 4096 * MIB;

/// The command for serving `services` on 127.0.0.1 port 0, with `extra` flags, memory-limited.
fn command(services: &Path, extra: &[&str], memory: u64) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--services").arg(services).args(["--address", "127.0.0.1:0", "--workers", "2"]).args(extra);
    Rlimits::address_space(memory).apply(&mut cmd);
    cmd
}

/// Starts keyrouter on `toml` with `extra` flags under an address-space limit.
fn start(toml: &str, extra: &[&str], memory: u64) -> Keyrouter {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.toml");
    std::fs::write(&path, toml).unwrap();
    Keyrouter::spawn(command(&path, extra, memory), dir, path)
}

/// Puts what `make` creates at a temporary path in place of the services file, by rename (as
/// consul-template or an operator's `mv` would).
fn replace_with(kr: &Keyrouter, make: impl FnOnce(&Path)) {
    let tmp = kr.dir.path().join(".incoming");
    make(&tmp);
    std::fs::rename(&tmp, &kr.services).unwrap();
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path_str(path)).unwrap();
    // SAFETY: `c` is a NUL-terminated string that outlives the call; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// A sample's value from `/metrics` (`name` with its labels, as exposed).
fn metric(port: u16, name: &str) -> f64 {
    let text = common::request(port, "GET", "/metrics", &[], b"").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn failed_reloads(port: u16) -> f64 {
    metric(port, r#"keyrouter_reloads_total{result="failure"}"#)
}

/// Resident memory of a process, from /proc.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

/// Sends SIGHUP and returns the log of the failed reload that follows, which must contain
/// `needle`.
fn sighup_fails(kr: &Keyrouter, needle: &str) -> String {
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reload failed, still serving the previous table", mark);
    let log = kr.log()[mark..].to_string();
    assert!(log.contains(needle), "expected {needle:?} in:\n{log}");
    assert!(log.contains(path_str(&kr.services)), "the error names the path:\n{log}");
    log
}

/// Sends `signal`, then waits for the exit; returns the status and how long it took.
fn stop(kr: &mut Keyrouter, signal: i32, within: Duration) -> (ExitStatus, Duration) {
    let t0 = Instant::now();
    kr.signal(signal);
    let status = kr.wait_exit(within).unwrap_or_else(|| panic!("no exit within {within:?}:\n{}", kr.log()));
    (status, t0.elapsed())
}

/// Long enough for the watcher's debounced reload to have run.
fn watch_quiet() -> Duration {
    keyrouter::table::watch::DEBOUNCE * 3
}

/// Slack on top of a promised time, for a machine shared with other test processes.
const SLACK: Duration = Duration::from_millis(1500);

const GOOD: &str = "[[Services]]\nName = \"bar\"\nNodes = [\"b1:80\", \"b2:80\"]\n";

#[test]
fn a_fifo_at_the_path_blocks_neither_reloads_nor_shutdown() {
    let mut kr = start(GOOD, &["--watch", "--shutdown-delay", "3", "--shutdown-timeout", "1"], SMALL_AS);
    let before = kr.get("/service/bar?key=k&max=2").json();
    // Renamed over the file: the watcher sees it and must not wedge on it.
    let mark = kr.log().len();
    replace_with(&kr, mkfifo);
    kr.wait_for_log("it is a FIFO (named pipe), not a regular file", mark);
    // And SIGHUP must not block on it either.
    std::thread::sleep(watch_quiet());
    let mark = kr.log().len();
    sighup_fails(&kr, "it is a FIFO (named pipe), not a regular file");
    kr.wait_for_log("SIGHUP: reload failed", mark);
    assert!(failed_reloads(kr.port) >= 2.0);
    assert_eq!(metric(kr.port, "keyrouter_config_last_reload_successful"), 0.0);
    assert_eq!(kr.get("/service/bar?key=k&max=2").json(), before);
    assert_eq!(kr.get("/readyz").status, 200);
    // SIGTERM is handled at once: readiness turns 503 right away, and the process exits 0 within
    // --shutdown-delay + --shutdown-timeout + about a second.
    let t0 = Instant::now();
    kr.signal(libc::SIGTERM);
    while kr.get("/readyz").status != 503 {
        assert!(t0.elapsed() < Duration::from_secs(2), "readiness still 200 after {:?}", t0.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = kr.wait_exit(Duration::from_millis(4500) + SLACK).expect("keyrouter did not exit");
    assert!(status.success(), "{status:?}\n{}", kr.log());
}

#[test]
fn a_symlink_to_dev_zero_is_refused_without_reading_it() {
    let kr = start(GOOD, &[], SMALL_AS);
    let before = kr.get("/service/bar?key=k&max=2").json();
    replace_with(&kr, |p| std::os::unix::fs::symlink("/dev/zero", p).unwrap());
    sighup_fails(&kr, "it is a character device, not a regular file");
    assert_eq!(failed_reloads(kr.port), 1.0);
    assert_eq!(kr.get("/service/bar?key=k&max=2").json(), before);
    let rss = rss_mib(kr.child.id());
    assert!(rss < 100, "RSS {rss} MiB after reading /dev/zero");
}

#[test]
fn a_directory_at_the_path_is_refused() {
    let kr = start(GOOD, &[], SMALL_AS);
    std::fs::remove_file(&kr.services).unwrap();
    std::fs::create_dir(&kr.services).unwrap();
    sighup_fails(&kr, "it is a directory, not a regular file");
    assert_eq!(failed_reloads(kr.port), 1.0);
    assert_eq!(kr.get("/service").json(), serde_json::json!(["bar"]));
    // A good file afterwards is picked up.
    std::fs::remove_dir(&kr.services).unwrap();
    kr.write_services(&services(&[("new", &["n1"])]));
    kr.signal(libc::SIGHUP);
    eventually("the good file", || kr.get("/service").json() == serde_json::json!(["new"]));
}

#[test]
fn a_file_over_max_services_bytes_is_refused() {
    // DEBUG: the reload of the same table at the end is logged at DEBUG only.
    let kr = start(GOOD, &["--max-services-bytes", "200", "--log-level", "debug"], SMALL_AS);
    let big = services(&[("bar", &["b1:80", "b2:80"]), ("more", &["m1:80", "m2:80", "m3:80", "m4:80", "m5:80"])])
        + &"# padding\n".repeat(10);
    assert!(big.len() > 200 && GOOD.len() <= 200);
    kr.write_services(&big);
    sighup_fails(&kr, &format!("services file too large: {} bytes, the limit is 200 bytes", big.len()));
    assert_eq!(failed_reloads(kr.port), 1.0);
    assert_eq!(kr.get("/service").json(), serde_json::json!(["bar"]));
    // Exactly at the limit is fine.
    let padded = format!("{GOOD}{}", "#".repeat(199 - GOOD.len()) + "\n");
    assert_eq!(padded.len(), 200);
    kr.write_services(&padded);
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", mark);
}

/// Runs `keyrouter ARGS` to completion (memory-limited), with a time bound.
fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    Rlimits::address_space(SMALL_AS).apply(&mut cmd);
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(out) => {
            let out = out.unwrap();
            (out.status, String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
        }
        Err(_) => {
            // SAFETY: kill(2) has no memory preconditions. The thread waiting for the child has not
            // reported, so the pid is still the child's (had it exited this instant, the pid could
            // name another process only after the pid space wrapped).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("keyrouter {args:?} did not finish within 20 s");
        }
    }
}

#[test]
fn startup_check_and_lookup_refuse_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    mkfifo(&fifo);
    let zero = dir.path().join("zero.toml");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, GOOD).unwrap();
    let directory = dir.path().to_path_buf();
    let too_large = format!("services file too large: {} bytes, the limit is 20 bytes", GOOD.len());
    let cases = [
        (&fifo, "it is a FIFO (named pipe), not a regular file"),
        (&zero, "it is a character device, not a regular file"),
        (&directory, "it is a directory, not a regular file"),
        (&big, too_large.as_str()),
    ];
    let limit = [("KEYROUTER_MAX_SERVICES_BYTES", "20")];
    for (path, needle) in cases {
        let p = path_str(path);
        for args in [
            vec!["--services", p, "--address", "127.0.0.1:0"],
            vec!["check", "--services", p],
            vec!["lookup", "--services", p, "bar", "k"],
        ] {
            let (status, _, stderr) = run(&args, &limit);
            assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
            assert!(stderr.contains(needle) && stderr.contains(p), "{args:?}: {stderr}");
        }
    }
    // The flag works as the environment variable does, and a big enough limit passes.
    let (status, _, stderr) = run(&["check", "--services", path_str(&big), "--max-services-bytes", "20"], &[]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let (status, stdout, _) = run(&["check", "--services", path_str(&big), "--max-services-bytes", "1000"], &[]);
    assert!(status.success() && stdout.contains("OK: 1 service,"), "{stdout}");
}

#[test]
fn an_empty_file_does_not_replace_a_served_table() {
    let kr = start(GOOD, &[], SMALL_AS);
    for empty in ["", "# nothing rendered\n"] {
        kr.write_services(empty);
        let log = sighup_fails(&kr, "the file has no services; refusing to replace the 1 service being served");
        assert!(log.contains("--allow-empty"), "{log}");
        assert_eq!(kr.get("/service").json(), serde_json::json!(["bar"]));
        assert_eq!(kr.get("/service/bar?key=k").status, 200);
        assert_eq!(kr.get("/readyz").status, 200);
    }
    assert_eq!(failed_reloads(kr.port), 2.0);
    assert_eq!(metric(kr.port, "keyrouter_config_last_reload_successful"), 0.0);
    assert_eq!(metric(kr.port, "keyrouter_services"), 1.0);
}

#[test]
fn with_allow_empty_an_empty_file_is_served_and_ready() {
    let kr = start(GOOD, &["--allow-empty"], SMALL_AS);
    kr.write_services("");
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", mark);
    assert_eq!(kr.get("/service").json(), serde_json::json!([]));
    assert_eq!(kr.get("/readyz").status, 200);
    assert_eq!(metric(kr.port, r#"keyrouter_reloads_total{result="success"}"#), 1.0);
    // The environment variable too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.toml");
    std::fs::write(&path, "").unwrap();
    let mut cmd = command(&path, &[], SMALL_AS);
    cmd.env("KEYROUTER_ALLOW_EMPTY", "true");
    let kr = Keyrouter::spawn(cmd, dir, path);
    assert_eq!(kr.get("/readyz").status, 200);
}

#[test]
fn started_on_an_empty_file_it_serves_but_is_not_ready_until_a_table_loads() {
    // DEBUG: reloading the same (empty) table is logged at DEBUG only.
    let kr = start("", &["--log-level", "debug"], SMALL_AS);
    kr.wait_for_log("no services: /readyz answers 503", 0);
    kr.get("/readyz").assert_error(503, "no services loaded");
    // The alert rules see it too (deploy/prometheus: KeyrouterNotReady).
    assert_eq!(common::metric(&kr.get("/metrics").text(), "keyrouter_ready"), Some(0.0));
    assert_eq!(kr.get("/healthz").status, 200);
    kr.get("/service/bar?key=k").assert_error(404, "unknown service");
    // An empty file again is no change of state (not a refusal: nothing is served).
    kr.write_services("");
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", mark);
    assert_eq!(kr.get("/readyz").status, 503);
    kr.write_services(GOOD);
    kr.signal(libc::SIGHUP);
    eventually("readiness once a table loads", || kr.get("/readyz").status == 200);
    assert_eq!(kr.get("/service/bar?key=k").status, 200);
}

#[test]
fn check_warns_about_an_empty_file_and_an_empty_node_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let (status, stdout, stderr) = run(&["check", "--services", path_str(&empty)], &[]);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("OK: 0 services"), "{stdout}");
    assert!(stderr.contains("warning") && stderr.contains("has no services"), "{stderr}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[Services]]\nName = \"a\"\nNodes = [\"x\", \"\"]\n").unwrap();
    let (status, _, stderr) = run(&["check", "--services", path_str(&bad)], &[]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains(&format!("{}:3:15: service \"a\": node is empty", bad.display())), "{stderr}");
}

/// A keyrouter whose stderr is a pipe this test holds (or closes), on a port picked here.
struct Piped {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    services: PathBuf,
}

impl Piped {
    fn spawn(extra: &[&str]) -> (Piped, BufReader<std::process::ChildStderr>) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let services = dir.path().join("services.toml");
        std::fs::write(&services, GOOD).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--services")
            .arg(&services)
            .args(["--address", &format!("127.0.0.1:{port}"), "--workers", "2"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Rlimits::address_space(SMALL_AS).apply(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        (Piped { child, port, _dir: dir, services }, stderr)
    }

    fn get(&self, path: &str) -> common::Response {
        common::request(self.port, "GET", path, &[], b"")
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) has no memory preconditions; `self.child` is not yet reaped, so its pid
        // names no other process.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, sig) }, 0);
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("keyrouter did not exit within {timeout:?}");
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lookups, a reload and the metrics all work with the log gone, and SIGTERM exits 0.
fn serves_without_its_log(mut kr: Piped) {
    for i in 0..50 {
        assert_eq!(kr.get(&format!("/service/bar?key=k{i}")).status, 200);
    }
    std::fs::write(&kr.services, services(&[("after", &["a1"])])).unwrap();
    kr.signal(libc::SIGHUP);
    eventually("the reload", || kr.get("/service").json() == serde_json::json!(["after"]));
    eventually("dropped lines to be counted", || metric(kr.port, "keyrouter_log_lines_dropped_total") > 0.0);
    kr.signal(libc::SIGTERM);
    let status = kr.wait_exit(Duration::from_secs(6) + SLACK);
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_log_pipe_closed_after_startup_changes_nothing() {
    let (kr, mut stderr) = Piped::spawn(&["--log-level", "debug"]);
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "stderr closed before the listening line");
    }
    eventually("the port", || TcpStream::connect(("127.0.0.1", kr.port)).is_ok());
    drop(stderr);
    serves_without_its_log(kr);
}

#[test]
fn a_log_reader_gone_at_startup_like_head_2_changes_nothing() {
    // `keyrouter 2>&1 | head -2`: the reader takes two lines and exits while keyrouter starts.
    let (mut kr, mut stderr) = Piped::spawn(&["--log-level", "debug"]);
    // keyrouter logs one line at startup ("listening on"): read up to it, at most two lines.
    let mut line = String::new();
    for _ in 0..2 {
        stderr.read_line(&mut line).unwrap();
        if line.contains("listening on") {
            break;
        }
    }
    drop(stderr);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", kr.port)).is_err() {
        assert!(Instant::now() < deadline, "never listened");
        if let Some(status) = kr.child.try_wait().unwrap() {
            panic!("keyrouter exited with {status:?} when its log reader went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    serves_without_its_log(kr);
}

#[test]
fn a_stalled_log_reader_blocks_neither_requests_nor_shutdown() {
    // The reader stays open but never reads: the pipe fills and stays full.
    let (mut kr, stderr) = Piped::spawn(&["--log-level", "debug", "--shutdown-timeout", "1"]);
    eventually("the port", || TcpStream::connect(("127.0.0.1", kr.port)).is_ok());
    let t0 = Instant::now();
    for i in 0..600 {
        let started = Instant::now();
        assert_eq!(kr.get(&format!("/service/bar?key=k{i}")).status, 200);
        assert!(started.elapsed() < Duration::from_secs(2), "request {i} took {:?}", started.elapsed());
    }
    assert!(t0.elapsed() < Duration::from_secs(60));
    std::fs::write(&kr.services, services(&[("after", &["a1"])])).unwrap();
    kr.signal(libc::SIGHUP);
    eventually("the reload", || kr.get("/service").json() == serde_json::json!(["after"]));
    let t0 = Instant::now();
    kr.signal(libc::SIGTERM);
    let status = kr.wait_exit(Duration::from_secs(1) + SLACK + Duration::from_secs(1));
    assert!(status.success(), "{status:?} after {:?}", t0.elapsed());
    drop(stderr);
}

/// A services file with one service of `n` nodes.
fn big_table(n: usize) -> String {
    let mut s = String::with_capacity(n * 24 + 64);
    s.push_str("[[Services]]\nName = \"big\"\nNodes = [\n");
    for i in 0..n {
        s.push_str(&format!("\"node-{i}.example:8080\",\n"));
    }
    s.push_str("]\n");
    s
}

#[test]
fn sigterm_during_cpu_bound_requests_exits_within_the_promised_time() {
    let mut kr = start(&big_table(100_000), &["--shutdown-timeout", "1"], BIG_AS);
    // Each request ranks 100 000 nodes for 10 000 keys: far longer than the shutdown timeout.
    let keys: Vec<String> = (0..keyrouter::request::MAX_BATCH_KEYS).map(|i| format!("key-{i}")).collect();
    let body = serde_json::json!({ "keys": keys, "max": 3 }).to_string();
    let port = kr.port;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
                let head = format!(
                    "POST /service/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(body.as_bytes()).unwrap();
                let mut out = Vec::new();
                let _ = std::io::Read::read_to_end(&mut s, &mut out);
            })
        })
        .collect();
    // Until the server is ranking: it has spent half a second of CPU since the requests went out
    // (bounded: 60 s, however loaded the machine).
    let (pid, cpu) = (kr.child.id(), common::cpu_seconds(kr.child.id()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while common::cpu_seconds(pid) < cpu + 0.5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(clients.iter().any(|c| !c.is_finished()), "the requests were not long enough to test anything");
    let (status, took) = stop(&mut kr, libc::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", kr.log());
    assert!(took < Duration::from_millis(1500) + SLACK, "exit took {took:?} with --shutdown-timeout 1\n{}", kr.log());
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn sigterm_during_a_long_reload_is_handled_at_once() {
    let mut kr = start(GOOD, &["--log-level", "debug", "--shutdown-delay", "3", "--shutdown-timeout", "1"], BIG_AS);
    kr.write_services(&big_table(600_000));
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("SIGHUP: reading", mark);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!kr.log()[mark..].contains("reloaded"), "the reload was too quick to test anything");
    let t0 = Instant::now();
    kr.signal(libc::SIGTERM);
    while kr.get("/readyz").status != 503 {
        assert!(t0.elapsed() < Duration::from_secs(2), "readiness still 200 after {:?}", t0.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = kr.wait_exit(Duration::from_millis(4500) + SLACK).unwrap_or_else(|| panic!("no exit:\n{}", kr.log()));
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_second_sigterm_or_sigint_exits_at_once() {
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let mut kr = start(GOOD, &["--shutdown-delay", "30"], SMALL_AS);
        kr.signal(signal);
        eventually("readiness to turn 503", || kr.get("/readyz").status == 503);
        let (status, took) = stop(&mut kr, signal, Duration::from_secs(5));
        assert_eq!(status.code(), Some(code), "{status:?}");
        assert!(took < Duration::from_secs(2), "second signal: exit took {took:?}");
        assert!(kr.log().contains("again: exiting now"), "{}", kr.log());
    }
}
