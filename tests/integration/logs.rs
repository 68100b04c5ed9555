//! Logs a person wants to read: one startup line and none from actix, unchanged reloads only at
//! DEBUG, JSON lines with each span once, counts in good English, a hint for `--address 8080`,
//! and a shutdown line that says how long the stop will take.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{services, Keyrouter, BIN};

fn lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn one_startup_line_from_keyrouter_and_none_from_actix() {
    // `start` runs two workers.
    let k = Keyrouter::start(&services(&[("bar", &["bar1:8080"])]));
    // Give actix the time to log what it would log on starting its workers.
    let _ = k.get("/healthz");
    std::thread::sleep(Duration::from_millis(200));
    let log = k.log();
    let startup = lines(&log);
    assert_eq!(startup.len(), 1, "{log}");
    assert!(startup[0].contains("listening on 127.0.0.1:"), "{log}");
    assert!(startup[0].contains("with 2 workers,") && startup[0].contains("(1 service, 1 node)"), "{log}");
    for limit in
        ["connections at most", "answers of up to 100000 nodes", "requests within 10 s", "services files of up to"]
    {
        assert!(startup[0].contains(limit), "the startup line lacks {limit:?}: {log}");
    }
    for actix in ["starting service", "Actix runtime", "starting 2 workers"] {
        assert!(!log.contains(actix), "actix's own line {actix:?} in:\n{log}");
    }
}

#[test]
fn a_reload_that_changes_nothing_is_quiet_at_info_and_said_at_debug() {
    let file = services(&[("bar", &["a", "b"])]);
    let mut k = Keyrouter::start(&file);
    k.signal(libc::SIGHUP);
    k.write_services(&services(&[("bar", &["a", "b"]), ("foo", &["c"])]));
    k.signal(libc::SIGHUP);
    k.wait_for_log("added [\"foo\"]", 0);
    assert!(!k.log().contains("unchanged"), "{}", k.log());
    k.signal(libc::SIGTERM);
    assert!(k.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()));

    let k = Keyrouter::start_quiet(&file, &["--log-level", "debug"]);
    k.signal(libc::SIGHUP);
    k.wait_for_log("2 nodes; unchanged", 0);
}

#[test]
fn json_lines_carry_each_span_once() {
    let k =
        Keyrouter::start_quiet(&services(&[("bar", &["a", "b"])]), &["--log-level", "debug", "--log-format", "json"]);
    assert_eq!(k.get("/service/bar?key=k").status, 200);
    k.wait_for_log("\"request\"", 0);
    let log = k.log();
    let request = log.lines().find(|l| l.contains("\"message\":\"request\"")).expect("a request line");
    let line: serde_json::Value = serde_json::from_str(request).unwrap();
    assert!(line.get("span").is_some() && line.get("spans").is_none(), "{request}");
    assert!(request.len() < 700, "{} bytes: {request}", request.len());
}

#[test]
fn a_bare_port_as_address_gets_a_hint() {
    let out = Command::new(BIN).args(["--address", "8080"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("write :8080"), "{stderr}");
}

#[test]
fn the_shutdown_line_states_the_delay_and_the_timeout() {
    let mut k =
        Keyrouter::start_with(&services(&[("bar", &["a"])]), &["--shutdown-delay", "0", "--shutdown-timeout", "3"]);
    k.signal(libc::SIGTERM);
    assert!(k.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()));
    let log = k.log();
    let line = log.lines().find(|l| l.contains("SIGTERM")).unwrap_or_else(|| panic!("no SIGTERM line:\n{log}"));
    assert!(line.contains("listener closes in 0 s") && line.contains("up to 3 s"), "{line}");
}
