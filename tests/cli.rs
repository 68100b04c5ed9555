//! The command line through the real binary: flags, startup failures, addresses.

mod common;

use std::process::Command;

use common::{services, Keyrouter, BIN};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_and_help() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("keyrouter {}", env!("CARGO_PKG_VERSION")));
    for flag in ["--help", "--help-long"] {
        let (code, out, _) = run(&[flag]);
        assert_eq!(code, 0, "{flag}");
        for f in ["--services", "--address", "--log-level", "--version", "KEYROUTER_SERVICES", "[default: :8080]"] {
            assert!(out.contains(f), "{flag} lacks {f}:\n{out}");
        }
    }
    let (code, out, _) = run(&["--help-man"]);
    assert_eq!(code, 0);
    assert!(out.starts_with(".ie") || out.contains(".TH keyrouter"), "not a man page:\n{out}");
    assert!(out.contains("services"), "{out}");
}

#[test]
fn startup_failures_are_one_clear_message_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let (code, _, err) = run(&["--services", missing.to_str().unwrap(), "--address", "127.0.0.1:0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.toml: cannot read services file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[Services]]\nName = \"bar\"\nNodes = [\"a\", 7]\n").unwrap();
    let (code, _, err) = run(&["--services", bad.to_str().unwrap(), "--address", "127.0.0.1:0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.toml:3:15: "), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one message: {err}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, services(&[("bar", &["a"])])).unwrap();
    for (args, needle) in [
        (vec!["--address", "nonsense"], "invalid address"),
        (vec!["--address", ":99999"], "invalid address"),
        (vec!["--log-level", "LOUD"], "unknown log level"),
        (vec!["--bogus"], "--bogus"),
    ] {
        let mut all = vec!["--services", good.to_str().unwrap()];
        all.extend(&args);
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn port_already_in_use_is_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, services(&[("bar", &["a"])])).unwrap();
    let (code, _, err) = run(&["--services", good.to_str().unwrap(), "--address", &addr]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn go_style_port_with_the_default_services_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.toml");
    std::fs::write(&path, services(&[("bar", &["b1:8080", "b2:8080"])])).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir.path()).args(["--address", ":0"]);
    let kr = Keyrouter::spawn(cmd, dir, path);
    assert_eq!(kr.get("/service").json(), serde_json::json!(["bar"]));
    assert_eq!(kr.get("/service/bar?key=ryans&max=2").json().as_array().unwrap().len(), 2);
}

/// Set to 1 where the machine has no IPv6 loopback, to skip the IPv6 test (visibly) instead of
/// failing it.
const NO_IPV6: &str = "KEYROUTER_TEST_NO_IPV6";

#[test]
fn ipv6_loopback_address() {
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        if std::env::var(NO_IPV6).is_ok_and(|v| v == "1") {
            // Straight to stderr, not through eprintln!, which the test harness captures.
            use std::io::Write;
            let _ =
                writeln!(std::io::stderr(), "SKIPPED ipv6_loopback_address: cannot bind [::1] ({e}) and {NO_IPV6}=1");
            return;
        }
        if !common::require(&format!("an IPv6 loopback ([::1]: {e}; {NO_IPV6}=1 skips it even under .ci/test)"), false)
        {
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, services(&[("bar", &["b1"])])).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--address", "[::1]:0", "--services", path.to_str().unwrap()]);
    let kr = Keyrouter::spawn(cmd, dir, path);
    let mut s = std::net::TcpStream::connect(("::1", kr.port)).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /service HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(common::parse_response(&raw).json(), serde_json::json!(["bar"]));
}

#[test]
fn log_level_is_case_insensitive_and_debug_logs_requests() {
    let kr = Keyrouter::start_with(&services(&[("bar", &["b1"])]), &["--log-level", "debug"]);
    let mark = kr.log().len();
    assert_eq!(kr.get("/service/bar?key=k").status, 200);
    kr.wait_for_log("lookup", mark);
    // At WARN, neither the startup line nor requests are logged, but a failed reload is.
    let quiet = Keyrouter::start_quiet(&services(&[("bar", &["b1"])]), &["--log-level", "Warn"]);
    assert_eq!(quiet.get("/service/bar?key=k").status, 200);
    std::fs::write(&quiet.services, "not toml").unwrap();
    quiet.signal(libc::SIGHUP);
    quiet.wait_for_log("reload failed", 0);
    assert!(!quiet.log().contains("lookup"), "{}", quiet.log());
    assert!(!quiet.log().contains("listening"), "{}", quiet.log());
}

#[test]
fn duplicate_nodes_are_warned_about() {
    let kr = Keyrouter::start("[[Services]]\nName = \"bar\"\nNodes = [\"a\", \"a\", \"b\"]\n");
    let warning = format!("{}: service \"bar\": removed 1 duplicate node", kr.services.display());
    kr.wait_for_log(&warning, 0);
    assert_eq!(kr.log().matches("duplicate node").count(), 1, "warned once: {}", kr.log());
    assert_eq!(kr.get("/service/bar?key=k&min=0&max=5").json().as_array().unwrap().len(), 2);
}
