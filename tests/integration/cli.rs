//! The command line through the real binary: flags, startup failures, addresses.

use crate::common;

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

fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A services file in a temp dir, and its path as a string.
fn good_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.toml");
    std::fs::write(&path, services(&[("bar", &["a", "b"])])).unwrap();
    let p = path.to_str().unwrap().to_string();
    (dir, p)
}

/// `args` is a usage error (status 2), before anything starts, whose message has every needle.
fn refused(args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let (code, out, err) = run_env(args, env);
    assert_eq!(code, 2, "{args:?} {env:?}: {out}{err}");
    assert!(!err.contains("panicked") && !err.contains("listening"), "{args:?}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?} {env:?}: lacks {needle:?}: {err}");
    }
}

#[test]
fn workers_513_is_refused_not_a_panic() {
    let (_dir, file) = good_file();
    refused(&["--services", &file, "--address", "127.0.0.1:0", "--workers", "513"], &[], &["--workers", "0..=512"]);
    refused(
        &["--services", &file, "--address", "127.0.0.1:0"],
        &[("KEYROUTER_WORKERS", "513")],
        &["KEYROUTER_WORKERS=513", "0..=512"],
    );
}

#[test]
fn heavy_lookups_of_2_pow_61_are_refused_not_a_panic() {
    let (_dir, file) = good_file();
    let big = (1u64 << 61).to_string();
    refused(
        &["--services", &file, "--address", "127.0.0.1:0", "--heavy-lookups", &big],
        &[],
        &["--heavy-lookups", "0..=512"],
    );
}

#[test]
fn request_timeout_of_u64_max_is_refused_not_a_panic_on_the_first_connection() {
    let (_dir, file) = good_file();
    let max = u64::MAX.to_string();
    refused(
        &["--services", &file, "--address", "127.0.0.1:0", "--request-timeout", &max],
        &[],
        &["--request-timeout", "from 1s to 24h"],
    );
    refused(
        &["--services", &file, "--address", "127.0.0.1:0"],
        &[("KEYROUTER_REQUEST_TIMEOUT", &max)],
        &["KEYROUTER_REQUEST_TIMEOUT=18446744073709551615", "from 1s to 24h"],
    );
}

#[test]
fn shutdown_delay_of_u64_max_is_refused_not_a_panic_on_sigterm() {
    let (_dir, file) = good_file();
    let max = u64::MAX.to_string();
    refused(
        &["--services", &file, "--address", "127.0.0.1:0", "--shutdown-delay", &max],
        &[],
        &["--shutdown-delay", "from 0s to 1h"],
    );
    refused(
        &["--services", &file, "--address", "127.0.0.1:0", "--shutdown-timeout", "0"],
        &[],
        &["--shutdown-timeout", "from 1s to 1h"],
    );
}

#[test]
fn durations_take_go_units_and_reach_the_server() {
    let mut kr = Keyrouter::start_with(
        &services(&[("bar", &["a"])]),
        &["--shutdown-timeout", "1500ms", "--shutdown-delay", "0s", "--request-timeout", "2m"],
    );
    assert!(kr.log().contains("requests within 120 s"), "{}", kr.log());
    kr.signal(libc::SIGTERM);
    kr.wait_for_log("up to 1.5 s", 0);
    assert!(kr.wait_exit(std::time::Duration::from_secs(20)).is_some_and(|s| s.success()), "{}", kr.log());
}

#[test]
fn an_empty_variable_counts_as_unset_and_flags_beat_variables() {
    let (_dir, file) = good_file();
    for args in [
        vec!["check", "--services", &file],
        vec!["--services", &file, "check"],
        vec!["lookup", "--services", &file, "bar", "k"],
        vec!["--services", &file, "lookup", "bar", "k"],
    ] {
        for env in [[("KEYROUTER_SERVICES", "")], [("KEYROUTER_SERVICES", "/nonexistent/services.toml")]] {
            let (code, _, err) = run_env(&args, &env);
            assert_eq!(code, 0, "{args:?} {env:?}: {err}");
        }
    }
    // Empty: the default applies (no services.toml in this directory, so check says which).
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).arg("check").current_dir(dir.path()).env("KEYROUTER_SERVICES", "").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("services.toml: cannot read services file"), "{err}");
    // An empty numeric variable is unset too, on the server's flags as well.
    let (code, _, err) = run_env(&["lookup", "--services", &file, "bar", "k"], &[("KEYROUTER_MAX_ANSWER_NODES", "")]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_subcommand_ignores_the_variables_of_flags_it_does_not_have() {
    let (_dir, file) = good_file();
    let server_only = [
        ("KEYROUTER_ADDRESS", "garbage"),
        ("KEYROUTER_WORKERS", "513"),
        ("KEYROUTER_REQUEST_TIMEOUT", "forever"),
        ("KEYROUTER_LOG_LEVEL", "loud"),
    ];
    for args in [vec!["check", "--services", &file], vec!["lookup", "--services", &file, "bar", "k"]] {
        let (code, _, err) = run_env(&args, &server_only);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    // The server still refuses them, naming the variable.
    refused(
        &["--services", &file],
        &[("KEYROUTER_ADDRESS", "garbage")],
        &["KEYROUTER_ADDRESS=garbage", "invalid address"],
    );
}

#[test]
fn a_flag_the_subcommand_does_not_have_is_an_error_not_ignored() {
    let (_dir, file) = good_file();
    refused(&["diff", "--services", &file, &file, &file], &[], &["--services"]);
    refused(&["--services", &file, "diff", &file, &file], &[], &["--services does not apply to `keyrouter diff`"]);
    refused(&["--workers", "3", "check", "--services", &file], &[], &["--workers does not apply to `keyrouter check`"]);
    refused(&["--services", &file, "check", "--services", &file], &[], &["--services is given both before and after"]);
    // The flags a subcommand has still work before it.
    let (code, _, err) = run(&["--max-services-bytes", "1000", "diff", &file, &file]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["--max-services-bytes", "10", "diff", &file, &file]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("services file too large"), "{err}");
}

#[test]
fn keyrouter_diff_samples_abc_names_the_variable() {
    let (_dir, file) = good_file();
    refused(&["diff", &file, &file], &[("KEYROUTER_DIFF_SAMPLES", "abc")], &["error: KEYROUTER_DIFF_SAMPLES=abc: "]);
    refused(
        &["diff", &file, &file],
        &[("KEYROUTER_DIFF_SAMPLES", "0")],
        &["KEYROUTER_DIFF_SAMPLES=0", "1..=100000000"],
    );
    refused(
        &["check", "--services", &file],
        &[("KEYROUTER_MAX_SERVICES_BYTES", "0")],
        &["KEYROUTER_MAX_SERVICES_BYTES=0", "1..=4294967296"],
    );
}

#[test]
fn help_shows_consistent_value_names_and_help_long_shows_every_subcommand() {
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for shown in ["--max-answer-nodes <N>", "--request-timeout <DURATION>", "--max-services-bytes <BYTES>", "0..=512"] {
        let shown = shown.replace("0..=512", "0 to 512");
        assert!(help.contains(&shown), "--help lacks {shown}:\n{help}");
    }
    for upper in ["<MAX_", "<HEAVY", "<REQUEST", "<SHUTDOWN", "<SECS>"] {
        assert!(!help.contains(upper), "--help shows {upper}:\n{help}");
    }
    assert!(!help.contains("--samples"), "{help}");
    let (code, long, _) = run(&["--help-long"]);
    assert_eq!(code, 0);
    assert!(!long.contains("same as --help"), "{long}");
    for sub in ["keyrouter check", "keyrouter lookup", "keyrouter diff", "--samples <N>", "--replicas <K>"] {
        assert!(long.contains(sub), "--help-long lacks {sub}:\n{long}");
    }
}

#[test]
fn a_malformed_address_is_a_usage_error_as_the_docs_say() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operating.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.contains("2 for a usage error: an unknown flag, a value out of its range, a malformed `--address`"),
        "docs/operating.md no longer states the status of a bad address"
    );
    let (_dir, file) = good_file();
    refused(&["--services", &file, "--address", "nonsense"], &[], &["invalid address"]);
}
