//! `keyrouter diff` on a rollout-sized input: two services files of one 10 000-node service
//! (one node swapped), and 1 000 000 keys in `--keys`, through the real binary. Prints the
//! median wall time of 3 runs, and the summary-only run for comparison.
//!
//! `cargo bench --bench diff` (the release binary is built for the bench)

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODES: usize = 10_000;
const KEYS: usize = 1_000_000;
const RUNS: usize = 3;

fn services(nodes: impl Iterator<Item = usize>) -> String {
    let mut s = String::from("[[Services]]\nName = \"big\"\nNodes = [\n");
    for i in nodes {
        let _ = writeln!(s, "  \"10.{}.{}.{}:8080\",", i / 65536, i / 256 % 256, i % 256);
    }
    s.push_str("]\n");
    s
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time(args: &[&str]) -> Duration {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_keyrouter"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("keyrouter runs");
    let took = started.elapsed();
    // 1: the files differ, as they do here.
    assert_eq!(status.code(), Some(1), "keyrouter {args:?}");
    took
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: then do nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let old = dir.path().join("old.toml");
    let new = dir.path().join("new.toml");
    let keys = dir.path().join("keys.txt");
    std::fs::write(&old, services(0..NODES)).expect("write");
    std::fs::write(&new, services((1..NODES).chain([NODES]))).expect("write");
    let mut text = String::with_capacity(KEYS * 12);
    for i in 0..KEYS {
        let _ = writeln!(text, "user:{i}");
    }
    std::fs::write(&keys, text).expect("write");
    let (old, new, keys) = (old.to_str().unwrap(), new.to_str().unwrap(), keys.to_str().unwrap());

    let with_keys: Vec<Duration> = (0..RUNS).map(|_| time(&["diff", old, new, "--keys", keys])).collect();
    let summary: Vec<Duration> = (0..RUNS).map(|_| time(&["diff", old, new, "--replicas", "3"])).collect();
    println!(
        "keyrouter diff, 1 x {NODES} nodes, one node swapped, {KEYS} keys in --keys: median of {RUNS} runs {:.1} s \
         ({:.2} ns per node and key); summary only (--replicas 3, sampled keys): {:.1} s",
        median(with_keys.clone()).as_secs_f64(),
        median(with_keys).as_secs_f64() * 1e9 / (NODES * KEYS) as f64,
        median(summary).as_secs_f64(),
    );
}
