//! A large catalog through the real binary: 100 000 services × 3 nodes.
//!
//! Measures the startup time, the memory per service (RSS from /proc beyond a one-service
//! server, less the node strings), `keyrouter check`'s peak RSS (wait4's rusage, as
//! `/usr/bin/time -v` reports it), the size and time of `/metrics` and `/table`, and lookup
//! latency on keep-alive connections without and with a `/metrics` scrape every second.
//!
//! `cargo bench --bench large_catalog` (`KEYROUTER_BENCH_SERVICES=N` for another size,
//! `KEYROUTER_BENCH_SERIES=N` for the server's `--max-service-series`). Talks to
//! 127.0.0.1 only; every phase is bounded in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keyrouter");
const LOOKUP_SECONDS: u64 = 5;
const ROUNDS: usize = 2;
const CLIENTS: usize = 2;

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let services: usize =
        std::env::var("KEYROUTER_BENCH_SERVICES").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let (big, node_bytes) = write_catalog(dir.path(), "big.toml", services);
    let (small, _) = write_catalog(dir.path(), "small.toml", 1);
    println!("catalog: {services} services x 3 nodes, {} MB file", std::fs::metadata(&big).unwrap().len() / 1_000_000);

    let (check_rss_kb, check_time) = check_peak_rss(&big);
    println!("keyrouter check: {check_time:.2?} wall, peak RSS {} MiB", check_rss_kb / 1024);

    let small_server = Server::start(&small);
    let small_rss = small_server.rss_kb();
    drop(small_server);

    let server = Server::start(&big);
    println!("startup (spawn to listening): {:.2?}", server.startup);
    let rss = server.rss_kb();
    let per_service = (rss.saturating_sub(small_rss) * 1024).saturating_sub(node_bytes as u64) / services as u64;
    println!(
        "RSS: {} MiB (one-service server: {} MiB); per service beyond its node strings ({} KB in all): {} bytes",
        rss / 1024,
        small_rss / 1024,
        node_bytes / 1024,
        per_service
    );

    let (size, took) = timed_get(server.port, "/metrics");
    println!("/metrics: {} KB in {took:.2?}", size / 1024);
    let (size, took) = timed_get(server.port, "/table");
    println!("/table: {} KB in {took:.2?}", size / 1024);

    // Warm up, then alternate the two phases so that background load on a shared machine falls
    // on both alike; the worse p99 of each is compared.
    lookups(server.port, services, false, Duration::from_secs(2));
    let mut worst = [Duration::ZERO; 2];
    for round in 0..ROUNDS {
        for (i, scrape) in [false, true].into_iter().enumerate() {
            let l = lookups(server.port, services, scrape, Duration::from_secs(LOOKUP_SECONDS));
            let what = if scrape { "with a /metrics scrape every second" } else { "without scrapes" };
            println!("round {round}: lookups {what}: {l}");
            worst[i] = worst[i].max(l.p99);
        }
    }
    println!(
        "worst p99 without scrapes {:.0?}, with {:.0?}: ratio {:.2}",
        worst[0],
        worst[1],
        worst[1].as_secs_f64() / worst[0].as_secs_f64()
    );
    println!("RSS after the scrapes: {} MiB", server.rss_kb() / 1024);
}

/// Writes `n` services of 3 nodes; returns the path and the bytes of node strings.
fn write_catalog(dir: &Path, name: &str, n: usize) -> (std::path::PathBuf, usize) {
    let path = dir.join(name);
    let mut out = String::with_capacity(n * 120);
    let mut node_bytes = 0;
    for i in 0..n {
        let nodes: Vec<String> = (1..=3).map(|j| format!("10.{}.{}.{j}:8080", i % 256, (i / 256) % 256)).collect();
        node_bytes += nodes.iter().map(String::len).sum::<usize>();
        out += &format!("[[Services]]\n  Name = \"service-{i:06}\"\n  Nodes = {nodes:?}\n\n");
    }
    std::fs::write(&path, out).unwrap();
    (path, node_bytes)
}

/// Peak RSS (KB) and wall time of `keyrouter check` on `file`.
fn check_peak_rss(file: &Path) -> (u64, Duration) {
    let started = Instant::now();
    // Reaped by wait4 below, which also gives the rusage that Child::wait does not.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(BIN).arg("check").arg("--services").arg(file).stdout(Stdio::null()).spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, filled in by wait4 on our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on the pid of a child we spawned and have not waited for.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "check failed: {status}");
    (usage.ru_maxrss as u64, started.elapsed())
}

struct Server {
    child: Child,
    port: u16,
    startup: Duration,
}

impl Server {
    fn start(file: &Path) -> Server {
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .arg("--services")
            .arg(file)
            .args(["--address", "127.0.0.1:0", "--workers", "2"])
            .args(
                std::env::var("KEYROUTER_BENCH_SERIES")
                    .map(|n| vec!["--max-service-series".to_string(), n])
                    .unwrap_or_default(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("keyrouter exited before listening").unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split([',', ' ']).next().unwrap();
                break addr.rsplit_once(':').unwrap().1.parse().unwrap();
            }
        };
        let startup = started.elapsed();
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, port, startup }
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn { reader: BufReader::new(s) }
    }

    /// GETs `path`; returns the status and body length.
    fn get(&mut self, path: &str) -> (u16, usize) {
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        self.reader.get_mut().write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, length)
    }
}

fn timed_get(port: u16, path: &str) -> (usize, Duration) {
    let mut c = Conn::open(port);
    let started = Instant::now();
    let (status, size) = c.get(path);
    assert_eq!(status, 200);
    (size, started.elapsed())
}

struct Latency {
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    scrapes: usize,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lookups, p50 {:.0?}, p99 {:.0?}, max {:.1?} ({} scrapes)",
            self.count, self.p50, self.p99, self.max, self.scrapes
        )
    }
}

/// Lookups from [`CLIENTS`] keep-alive connections for `duration`, with or without a
/// scrape of `/metrics` every second.
fn lookups(port: u16, services: usize, scrape: bool, duration: Duration) -> Latency {
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = scrape.then(|| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            let mut c = Conn::open(port);
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(c.get("/metrics").0, 200);
                n += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            n
        })
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Conn::open(port);
                let mut samples = Vec::new();
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/service/service-{:06}?key=user-{i}&max=2", (i * 7919) % services);
                    let started = Instant::now();
                    assert_eq!(c.get(&path).0, 200);
                    samples.push(started.elapsed());
                    i += CLIENTS;
                }
                samples
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut samples: Vec<Duration> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let scrapes = scraper.map_or(0, |s| s.join().unwrap());
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Latency { count: samples.len(), p50: at(0.5), p99: at(0.99), max: *samples.last().unwrap(), scrapes }
}
