//! Large catalogs through the real binary: `keyrouter check` within a memory limit, and the
//! per-service series capped by default. (The figures are in `benches/large_catalog.rs`.)

use crate::common;

use std::process::Command;

use common::{Keyrouter, BIN};

fn catalog(n: usize) -> String {
    let mut out = String::with_capacity(n * 120);
    for i in 0..n {
        out += &format!(
            "[[Services]]\n  Name = \"service-{i:06}\"\n  Nodes = [\"10.{a}.{b}.1:8080\", \"10.{a}.{b}.2:8080\", \"10.{a}.{b}.3:8080\"]\n\n",
            a = i % 256,
            b = (i / 256) % 256
        );
    }
    out
}

#[test]
fn check_of_fifty_thousand_services_fits_in_100_mib_of_address_space() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.toml");
    std::fs::write(&file, catalog(50_000)).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("check").arg("--services").arg(&file);
    common::Rlimits::address_space(100 << 20).apply(&mut cmd);
    // Parsing the whole document at once peaked at 152 MB of RSS here (25 times the file).
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("OK: 50000 services, 150000 nodes"), "{}", &stdout[..stdout.len().min(300)]);
}

#[test]
fn per_service_series_are_capped_by_default() {
    let kr = Keyrouter::start(&catalog(12_000));
    let text = kr.get("/metrics").text();
    assert_eq!(text.matches("keyrouter_service_nodes{").count(), 10_000);
    // Four outcomes per service: 2xx, 4xx, 5xx, shed.
    assert_eq!(text.matches("keyrouter_lookups_total{").count(), 40_000);
    // Idle services have no latency series: a scrape of a large idle catalog stays small.
    assert_eq!(text.matches("keyrouter_service_lookup_duration_seconds_count{").count(), 0);
    assert!(text.contains("keyrouter_services 12000\n") && text.contains("keyrouter_service_series_limited 1\n"));
    assert_eq!(kr.get("/service/service-011999?key=k").status, 200);
    let text = kr.get("/metrics").text();
    assert!(text.contains("keyrouter_other_service_lookups_total{status=\"2xx\"} 1\n"), "aggregated lookups");
    assert!(text.contains("keyrouter_other_service_lookup_duration_seconds_count 1\n"), "aggregated latency");
    let table = kr.get("/table").json();
    assert_eq!(table["services"].as_array().unwrap().len(), 12_000);
    assert_eq!(kr.get("/service").json().as_array().unwrap().len(), 12_000);
}
