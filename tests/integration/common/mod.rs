//! The one test harness, included by every test file as `mod common;`: run the real `keyrouter`
//! binary on port 0 and talk raw HTTP/1.1 to it, compute the answer the library gives
//! ([`expected`]), read the deployment files ([`manifests`]) and emulate consul-template
//! ([`consul_template`]).

pub mod browser;
pub mod consul_template;
pub mod manifests;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_keyrouter");

/// A running keyrouter; killed on drop.
pub struct Keyrouter {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub services: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Keyrouter {
    /// Starts keyrouter on `services_toml` (written to a temp dir) on 127.0.0.1, port 0.
    pub fn start(services_toml: &str) -> Keyrouter {
        Self::start_with(services_toml, &[])
    }

    /// Like [`Keyrouter::start`] with extra flags.
    pub fn start_with(services_toml: &str, extra: &[&str]) -> Keyrouter {
        let dir = tempfile::tempdir().unwrap();
        let services = dir.path().join("services.toml");
        std::fs::write(&services, services_toml).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--services").arg(&services).args(["--address", "127.0.0.1:0", "--workers", "2"]).args(extra);
        Self::spawn(cmd, dir, services)
    }

    /// Spawns `cmd` and waits for its "listening on" line.
    pub fn spawn(cmd: Command, dir: tempfile::TempDir, services: PathBuf) -> Keyrouter {
        Self::spawn_within(cmd, dir, services, Duration::from_secs(20))
    }

    /// [`Keyrouter::spawn`], waiting up to `timeout` for the "listening on" line (a table of a
    /// million nodes takes seconds to load in a debug build).
    pub fn spawn_within(cmd: Command, dir: tempfile::TempDir, services: PathBuf, timeout: Duration) -> Keyrouter {
        Self::spawn_on(cmd, dir, services, Some(timeout))
    }

    /// Starts keyrouter on 127.0.0.1 port 0 at a log level that hides the "listening on" line:
    /// the bound port is read from the kernel's socket table for the child's own descriptors.
    pub fn start_quiet(services_toml: &str, extra: &[&str]) -> Keyrouter {
        let dir = tempfile::tempdir().unwrap();
        let services = dir.path().join("services.toml");
        std::fs::write(&services, services_toml).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--services").arg(&services).args(["--address", "127.0.0.1:0"]).args(extra);
        Self::spawn_on(cmd, dir, services, None)
    }

    /// `wait`: how long to wait for the "listening on" line; `None` when the log level hides it.
    fn spawn_on(mut cmd: Command, dir: tempfile::TempDir, services: PathBuf, wait: Option<Duration>) -> Keyrouter {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Logged first, then announced: a test that reads the log right after start sees
                // the "listening" line.
                let port = listening_port(&line);
                {
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(port) = port {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match wait {
            None => listening_port_of(&mut child, &log),
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(p) => p,
                Err(_) => {
                    let _ = child.kill();
                    panic!("keyrouter did not start; log:\n{}", log.lock().unwrap());
                }
            },
        };
        Keyrouter { child, port, dir, services, log }
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (counted from `after` bytes into the log).
    pub fn wait_for_log(&self, needle: &str, after: usize) {
        self.wait_for_log_within(needle, after, Duration::from_secs(10));
    }

    /// [`Keyrouter::wait_for_log`], for up to `timeout`.
    pub fn wait_for_log_within(&self, needle: &str, after: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().get(after..).is_some_and(|l| l.contains(needle)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("log never showed {needle:?}:\n{}", self.log());
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) has no memory preconditions; `self.child` is not yet reaped, so its pid
        // names no other process.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Rewrites the services file (atomically, by rename). Sends no signal: the caller reloads
    /// (`signal(libc::SIGHUP)`) or lets `--watch` see the rename.
    pub fn write_services(&self, content: &str) {
        let tmp = self.dir.path().join(".services.toml.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &self.services).unwrap();
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        request(self.port, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, json: &str) -> Response {
        self.request("POST", path, &[("Content-Type", "application/json")], json.as_bytes())
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Keyrouter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The TCP port `child` listens on, read from /proc (its socket descriptors' inodes, matched in
/// /proc/<pid>/net/tcp and tcp6 against sockets in the LISTEN state); waits up to 20 s for it.
fn listening_port_of(child: &mut Child, log: &Mutex<String>) -> u16 {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("keyrouter exited ({status}) before listening; log:\n{}", log.lock().unwrap());
        }
        if let Some(port) = proc_listening_ports(pid).first() {
            return *port;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("keyrouter did not listen within 20 s; log:\n{}", log.lock().unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Local ports of the TCP sockets in the LISTEN state that process `pid` holds open.
pub fn proc_listening_ports(pid: u32) -> Vec<u16> {
    proc_sockets(pid).into_iter().filter(|s| s.state == TCP_LISTEN).map(|s| s.local_port).collect()
}

/// Remote ports of the established TCP connections that process `pid` holds open: a client's
/// local port shows here once the server has accepted its connection.
pub fn proc_connected_ports(pid: u32) -> Vec<u16> {
    proc_sockets(pid).into_iter().filter(|s| s.state == TCP_ESTABLISHED).map(|s| s.remote_port).collect()
}

const TCP_ESTABLISHED: u8 = 0x01;
const TCP_LISTEN: u8 = 0x0A;

/// A TCP socket from /proc/<pid>/net/tcp{,6}.
struct ProcSocket {
    state: u8,
    local_port: u16,
    remote_port: u16,
}

/// The TCP sockets process `pid` holds open: its descriptors' socket inodes, looked up in the
/// kernel's tables for its network namespace.
fn proc_sockets(pid: u32) -> Vec<ProcSocket> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| Some(l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.to_string()))
        .collect();
    let port = |addr: &str| addr.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    let mut sockets = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else { continue };
        // "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode"
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() <= 9 || !inodes.contains(f[9]) {
                continue;
            }
            if let (Some(local_port), Some(remote_port), Ok(state)) =
                (port(f[1]), port(f[2]), u8::from_str_radix(f[3], 16))
            {
                sockets.push(ProcSocket { state, local_port, remote_port });
            }
        }
    }
    sockets
}

/// Port from a line such as "... listening on 127.0.0.1:41234, serving ...".
pub fn listening_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let addr = rest.split([',', ' ', '"']).next()?;
    addr.rsplit_once(':')?.1.parse().ok()
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Asserts an error answer: this status, a JSON body `{"error": "..."}` containing `needle`.
    pub fn assert_error(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        let msg =
            self.json()["error"].as_str().unwrap_or_else(|| panic!("no error field: {}", self.text())).to_string();
        assert!(msg.contains(needle), "error {msg:?} does not contain {needle:?}");
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req += &format!("{n}: {v}\r\n");
    }
    if !body.is_empty() || method == "POST" {
        req += &format!("Content-Length: {}\r\n", body.len());
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) and close before the whole body is sent.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Response {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no response head: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// A multipart/form-data body as `curl -F name=value` sends it.
pub fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "------------------------keyroutertest";
    let mut body = String::new();
    for (n, v) in fields {
        body += &format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n");
    }
    body += &format!("--{boundary}--\r\n");
    (format!("multipart/form-data; boundary={boundary}"), body.into_bytes())
}

/// A services file with one service per `(name, nodes)`.
pub fn services(list: &[(&str, &[&str])]) -> String {
    let mut s = String::new();
    for (name, nodes) in list {
        let nodes: Vec<String> = nodes.iter().map(|n| format!("{n:?}")).collect();
        s += &format!("[[Services]]\n  Name = {name:?}\n  Nodes = [{}]\n\n", nodes.join(", "));
    }
    s
}

#[path = "../../../crates/ranking/tests/ranking/expected.rs"]
mod expected;
pub use expected::expected;

/// [`expected`] for unweighted nodes, as the JSON the server answers.
pub fn expected_json<N: AsRef<str>>(nodes: &[N], key: &str, min: u64, max: u64) -> serde_json::Value {
    serde_json::json!(expected(nodes, None, key, min, max))
}

/// Polls `f` until it returns true or 10 s pass.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Set to 1 by `.ci/test`: every test must run, so a missing tool fails the test that needs it
/// instead of skipping it.
pub const TEST_ALL: &str = "KEYROUTER_TEST_ALL";

/// Whether a test can go on: `available` says whether `what` (a program, PyPI, an IPv6
/// loopback) is there. When it is not, the test is skipped visibly, with a line on stderr that
/// names it and how to run it, and the caller returns; with `KEYROUTER_TEST_ALL=1` the test
/// fails instead. So a plain `cargo test` on a machine with only Rust runs everything else, and
/// `.ci/test`, which installs every tool, can never pass by skipping.
pub fn require(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    // libtest names each test's thread after the test.
    let test = std::thread::current().name().filter(|n| *n != "main").unwrap_or("a test").to_string();
    if std::env::var(TEST_ALL).is_ok_and(|v| v == "1") {
        panic!("{test} needs {what}, which is missing; {TEST_ALL}=1 requires every test to run");
    }
    // Straight to stderr, not through eprintln!, which the test harness captures.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs {what}; run .ci/test to install it and run everything");
    false
}

/// [`require`] for a program: an absolute path, or a name found on the `PATH`.
pub fn require_tool(program: &str) -> bool {
    require(program, program_exists(program))
}

/// Whether `program` (an absolute path, or a name looked up on the `PATH`) is an executable file.
pub fn program_exists(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    let path = Path::new(program);
    if path.components().count() > 1 {
        return executable(path);
    }
    std::env::var_os("PATH").is_some_and(|dirs| std::env::split_paths(&dirs).any(|d| executable(&d.join(program))))
}

/// [`require`] for a `Result` whose error names what is missing: the value, or `None` after the
/// skip was reported.
pub fn available<T>(r: Result<T, String>) -> Option<T> {
    match r {
        Ok(t) => Some(t),
        Err(what) => {
            require(&what, false);
            None
        }
    }
}

/// A Python command-line tool from PyPI, installed on first use into its own virtual
/// environment under the target directory. Returns the path of `program` in the environment's
/// `bin`, or what is missing (a Python that can make virtual environments, or PyPI) for
/// [`available`]. Installs once, across test processes too (a file lock), and starts over after
/// an interrupted install.
pub fn python_tool(venv: &str, requirement: &str, program: &str) -> Result<PathBuf, String> {
    use std::os::fd::AsRawFd;
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = base.join(venv);
    let exe = dir.join("bin").join(program);
    let marker = dir.join(".installed");
    std::fs::create_dir_all(base).unwrap();
    let lock = std::fs::File::create(base.join(format!("{venv}.lock"))).unwrap();
    // SAFETY: flock(2) on a descriptor we own; released when `lock` is dropped.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == requirement) && exe.exists() {
        return Ok(exe);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let python3 = std::env::var("KEYROUTER_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let venv_ok =
        Command::new(&python3).args(["-c", "import venv, ensurepip"]).output().is_ok_and(|o| o.status.success());
    if !venv_ok {
        return Err(format!("{python3} with venv and ensurepip (Debian: python3-venv)"));
    }
    let out = Command::new(&python3).arg("-m").arg("venv").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{python3} -m venv failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(dir.join("bin/python"))
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", requirement])
        .output()
        .unwrap();
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        return Err(format!("PyPI to install {requirement} (pip install failed: {last})"));
    }
    std::fs::write(&marker, requirement).unwrap();
    Ok(exe)
}

/// Resource limits set in a child between fork and exec: a regression that allocates (or opens)
/// without bound fails its allocation instead of eating the machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rlimits {
    /// `RLIMIT_AS`, in bytes.
    pub address_space: Option<u64>,
    /// `RLIMIT_NOFILE` as (soft, hard).
    pub nofile: Option<(u64, u64)>,
}

impl Rlimits {
    /// Only the address space limited, to `bytes`.
    pub fn address_space(bytes: u64) -> Rlimits {
        Rlimits { address_space: Some(bytes), nofile: None }
    }

    /// Makes `cmd`'s child set these limits before it execs.
    pub fn apply(self, cmd: &mut Command) {
        // SAFETY: the closure calls only setrlimit(2), which is async-signal-safe, and reads only
        // its own copy of `self`: nothing between fork and exec can deadlock on a lock the parent
        // held.
        unsafe {
            cmd.pre_exec(move || {
                let set = |resource, soft: u64, hard: u64| {
                    let lim = libc::rlimit { rlim_cur: soft as libc::rlim_t, rlim_max: hard as libc::rlim_t };
                    match libc::setrlimit(resource, &lim) {
                        0 => Ok(()),
                        _ => Err(std::io::Error::last_os_error()),
                    }
                };
                if let Some(bytes) = self.address_space {
                    set(libc::RLIMIT_AS, bytes, bytes)?;
                }
                if let Some((soft, hard)) = self.nofile {
                    set(libc::RLIMIT_NOFILE, soft, hard)?;
                }
                Ok(())
            });
        }
    }
}

/// The value of a metric line `name{labels} value` in a `/metrics` text (labels exactly as
/// rendered).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// CPU seconds process `pid` has used (user + system), from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which ends at the last ')': utime and stime are the
    // 12th and 13th of them, in clock ticks.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}
