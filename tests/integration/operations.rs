//! What an operator relies on, through the real binary: health, readiness, metrics, graceful
//! stop, environment variables, JSON logs, `--watch` and `check`.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{eventually, metric, services, Keyrouter, BIN};

#[test]
fn health_and_readiness() {
    let kr = Keyrouter::start(&services(&[("bar", &["b1"])]));
    let h = kr.get("/healthz");
    assert_eq!((h.status, h.json()["status"].as_str()), (200, Some("ok")));
    let r = kr.get("/readyz");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ready")));
}

#[test]
fn metrics_count_lookups_and_reloads() {
    let kr = Keyrouter::start(&services(&[("bar", &["b1", "b2"]), ("foo", &["f1"])]));
    for _ in 0..3 {
        assert_eq!(kr.get("/service/bar?key=k").status, 200);
    }
    assert_eq!(kr.get("/service/bar?key=k&min=9&max=9").status, 400);
    for name in ["nope", "other", "third"] {
        assert_eq!(kr.get(&format!("/service/{name}?key=k")).status, 404);
    }
    let text = kr.get("/metrics").text();
    assert_eq!(metric(&text, r#"keyrouter_lookups_total{service="bar",status="2xx"}"#), Some(3.0), "{text}");
    assert_eq!(metric(&text, r#"keyrouter_lookups_total{service="bar",status="4xx"}"#), Some(1.0), "{text}");
    assert_eq!(metric(&text, r#"keyrouter_unknown_service_lookups_total{status="4xx"}"#), Some(3.0), "{text}");
    assert!(!text.contains("nope"), "unknown service names must not become labels: {text}");
    assert_eq!(metric(&text, "keyrouter_lookup_duration_seconds_count"), Some(7.0), "{text}");
    // Per service: the 4 lookups of bar; foo had none, so no latency series of its own.
    assert_eq!(metric(&text, r#"keyrouter_service_lookup_duration_seconds_count{service="bar"}"#), Some(4.0), "{text}");
    assert!(!text.contains(r#"keyrouter_service_lookup_duration_seconds_count{service="foo"}"#), "{text}");
    for series in ["process_resident_memory_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds"]
    {
        assert!(metric(&text, series).is_some_and(|v| v > 0.0), "{series}: {text}");
    }
    assert_eq!(metric(&text, "keyrouter_services"), Some(2.0));
    assert_eq!(metric(&text, "keyrouter_ready"), Some(1.0));
    assert_eq!(metric(&text, r#"keyrouter_service_nodes{service="bar"}"#), Some(2.0));
    assert_eq!(metric(&text, "keyrouter_config_last_reload_successful"), Some(1.0));
    assert_eq!(metric(&text, r#"keyrouter_reloads_total{result="success"}"#), Some(0.0));
    let started = metric(&text, "keyrouter_config_last_reload_success_timestamp_seconds").unwrap();
    assert!(started > 1.7e9, "{started}");
    let fingerprint = kr.get("/table").json()["fingerprint"].as_str().unwrap().to_string();
    let version = format!(
        r#"keyrouter_build_info{{algorithm="1",fingerprint="{fingerprint}",version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(metric(&text, &version), Some(1.0), "{text}");

    // A good reload that drops a service, then a bad one. (The timestamp has sub-second
    // resolution: the reload's is later than the start's without waiting.)
    kr.write_services(&services(&[("bar", &["b1", "b2", "b3"])]));
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", mark);
    let text = kr.get("/metrics").text();
    assert_eq!(metric(&text, r#"keyrouter_reloads_total{result="success"}"#), Some(1.0), "{text}");
    assert_eq!(metric(&text, r#"keyrouter_service_nodes{service="bar"}"#), Some(3.0));
    assert_eq!(metric(&text, r#"keyrouter_service_nodes{service="foo"}"#), None, "{text}");
    assert_eq!(metric(&text, "keyrouter_services"), Some(1.0));
    assert_eq!(metric(&text, r#"keyrouter_lookups_total{service="bar",status="2xx"}"#), Some(3.0), "{text}");
    let reloaded = metric(&text, "keyrouter_config_last_reload_success_timestamp_seconds").unwrap();
    assert!(reloaded > started, "{reloaded} > {started}");

    kr.write_services("[[Services]]\nName = 1\n");
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reload failed", mark);
    let text = kr.get("/metrics").text();
    assert_eq!(metric(&text, r#"keyrouter_reloads_total{result="failure"}"#), Some(1.0), "{text}");
    assert_eq!(metric(&text, "keyrouter_config_last_reload_successful"), Some(0.0));
    assert_eq!(metric(&text, "keyrouter_config_last_reload_success_timestamp_seconds"), Some(reloaded));
    assert_eq!(kr.get("/metrics").header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let mut kr = Keyrouter::start_with(&services(&[("bar", &["b1", "b2"])]), &["--shutdown-timeout", "10"]);
    // A request whose body is still arriving when SIGTERM comes.
    let body = br#"{"key":"ryans","max":2}"#;
    let mut s = TcpStream::connect(("127.0.0.1", kr.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let head = format!(
        "POST /service/bar HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body[..5]).unwrap();
    // The server has accepted the connection: its socket is among keyrouter's descriptors.
    let client_port = s.local_addr().unwrap().port();
    eventually("keyrouter to accept the connection", || {
        common::proc_connected_ports(kr.child.id()).contains(&client_port)
    });
    let mark = kr.log().len();
    kr.signal(libc::SIGTERM);
    kr.wait_for_log("SIGTERM", mark);
    assert!(kr.child.try_wait().unwrap().is_none(), "exited with a request in flight");
    s.write_all(&body[5..]).unwrap();
    let mut raw = vec![0u8; 4096];
    let n = s.read(&mut raw).unwrap();
    let r = common::parse_response(&raw[..n]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    drop(s);
    let status = kr.wait_exit(Duration::from_secs(15)).expect("keyrouter did not exit");
    assert!(status.success(), "{status:?}\n{}", kr.log());
    assert!(kr.log().contains("SIGTERM"), "{}", kr.log());
}

#[test]
fn readiness_turns_503_during_the_shutdown_delay_and_sigint_stops_too() {
    let mut kr = Keyrouter::start_with(&services(&[("bar", &["b1"])]), &["--shutdown-delay", "2"]);
    kr.signal(libc::SIGINT);
    eventually("readiness to turn 503", || kr.get("/readyz").status == 503);
    kr.get("/readyz").assert_error(503, "shutting down");
    // Still answering lookups while load balancers catch up.
    assert_eq!(kr.get("/service/bar?key=k").status, 200);
    assert_eq!(kr.get("/healthz").status, 200);
    let status = kr.wait_exit(Duration::from_secs(15)).expect("keyrouter did not exit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn every_flag_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from-env.toml");
    std::fs::write(&path, services(&[("envsvc", &["e1"])])).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env("KEYROUTER_SERVICES", &path)
        .env("KEYROUTER_ADDRESS", "127.0.0.1:0")
        .env("KEYROUTER_LOG_LEVEL", "debug")
        .env("KEYROUTER_LOG_FORMAT", "json")
        .env("KEYROUTER_WORKERS", "1");
    let kr = Keyrouter::spawn(cmd, dir, path);
    assert_eq!(kr.get("/service").json(), serde_json::json!(["envsvc"]));
    let mark = kr.log().len();
    assert_eq!(kr.get("/service/envsvc?key=k").status, 200);
    kr.wait_for_log("lookup", mark);
    // JSON lines: every line parses, and the request was logged at DEBUG.
    let log = kr.log();
    let lines: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(lines.iter().any(|l| l["level"] == "DEBUG" && l["message"] == "lookup"), "{log}");
    assert!(lines.iter().any(|l| l["message"].as_str().unwrap_or("").contains("listening on")), "{log}");
    // KEYROUTER_WORKERS reached the server (keyrouter's own startup line; actix's is hidden).
    assert!(log.contains("with 1 worker,"), "{log}");
}

#[test]
fn watch_picks_up_a_rename_replace() {
    let kr = Keyrouter::start_with(&services(&[("s", &["one"])]), &["--watch"]);
    kr.wait_for_log("watching", 0);
    // What consul-template does: write a temp file, rename it over the target.
    kr.write_services(&services(&[("s", &["two"])]));
    eventually("the watcher to reload", || kr.get("/service/s?key=k").json() == serde_json::json!(["two"]));
    // A bad file keeps the table.
    let mark = kr.log().len();
    kr.write_services("[[Services]]\nName = \"s\"\nNodes = [\n");
    kr.wait_for_log("file change: reload failed", mark);
    assert_eq!(kr.get("/service/s?key=k").json(), serde_json::json!(["two"]));
    // SIGHUP still works with --watch.
    kr.write_services(&services(&[("s", &["three"])]));
    kr.signal(libc::SIGHUP);
    eventually("the reload", || kr.get("/service/s?key=k").json() == serde_json::json!(["three"]));
}

#[test]
fn watch_follows_a_configmap_symlink_swap() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The layout of a Kubernetes ConfigMap volume.
    std::fs::create_dir(root.join("..2026_01")).unwrap();
    std::fs::write(root.join("..2026_01/services.toml"), services(&[("s", &["old"])])).unwrap();
    symlink("..2026_01", root.join("..data")).unwrap();
    symlink("..data/services.toml", root.join("services.toml")).unwrap();
    let path = root.join("services.toml");
    let mut cmd = Command::new(BIN);
    cmd.arg("--services").arg(&path).args(["--address", "127.0.0.1:0", "--watch"]);
    let kr = Keyrouter::spawn(cmd, dir, path);
    kr.wait_for_log("watching", 0);
    assert_eq!(kr.get("/service/s?key=k").json(), serde_json::json!(["old"]));
    // The kubelet's update: a new timestamped dir, then an atomic rename of the ..data link.
    let root = kr.dir.path();
    std::fs::create_dir(root.join("..2026_02")).unwrap();
    std::fs::write(root.join("..2026_02/services.toml"), services(&[("s", &["new"])])).unwrap();
    symlink("..2026_02", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_01")).unwrap();
    eventually("the watcher to follow the swap", || kr.get("/service/s?key=k").json() == serde_json::json!(["new"]));
}

#[test]
fn check_validates_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[[Services]]\nName = \"bar\"\nNodes = [\"a\", \"b\", \"a\"]\n[[Services]]\nName = \"e\"\n")
        .unwrap();
    let out = Command::new(BIN).args(["check", "--services"]).arg(&good).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("OK: 2 services, 2 nodes"), "{stdout}");
    assert!(stdout.contains("\"bar\": removed 1 duplicate node"), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[Services]]\nName = \"\"\n[[Services]]\nName = \"x\"\nNodes = [{ Node = \"n\", Weight = -1 }]\n",
    )
    .unwrap();
    // The services file may also come from the environment, and --services may precede `check`.
    for cmd in [
        Command::new(BIN).arg("check").env("KEYROUTER_SERVICES", &bad).output().unwrap(),
        Command::new(BIN).arg("--services").arg(&bad).arg("check").output().unwrap(),
    ] {
        let stderr = String::from_utf8_lossy(&cmd.stderr);
        assert_eq!(cmd.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("bad.toml:2:8: service Name is empty"), "{stderr}");
        assert!(stderr.contains("bad.toml:5:33: node \"n\": Weight must be"), "{stderr}");
    }
}
