//! Services files full of errors, and services files (and clients) that try to forge log lines,
//! through the real binary: `check`, startup, SIGHUP and `--watch` reloads.
//!
//! Speed is the bench's business (benches/diagnostics.rs); here a file of 40 000 errors is
//! only bounded in time so that a quadratic regression fails instead of hanging the suite.

use crate::common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, services, Keyrouter, BIN};

/// Runs the binary to its end, killing it after `limit`.
fn run(args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keyrouter {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), stdout.join().unwrap(), stderr.join().unwrap())
}

/// 40 000 `[[Services]]` entries without `Name` (1 MB): one error each.
fn nameless(n: usize) -> String {
    "[[Services]]\nNodes = [\"a\"]\n".repeat(n)
}

#[test]
fn check_of_40000_nameless_services_prints_100_and_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.toml");
    std::fs::write(&file, nameless(40_000)).unwrap();
    // Seconds even in a debug build on a loaded machine; the quadratic version took minutes.
    let (code, stdout, stderr) = run(&["check", "--services", file.to_str().unwrap()], Duration::from_secs(120));
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout, "");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 101, "{stderr}");
    let path = file.display().to_string();
    assert_eq!(lines[0], format!("keyrouter: error: {path}:1:1: missing field `Name`"));
    for (i, line) in lines[1..100].iter().enumerate() {
        assert_eq!(*line, format!("{path}:{}:1: missing field `Name`", 2 * (i + 1) + 1));
    }
    assert_eq!(lines[100], format!("{path}: \u{2026} and 39900 more errors"));
}

#[test]
fn reload_of_40000_nameless_services_logs_one_line_and_a_count_and_the_next_file_is_served() {
    let kr = Keyrouter::start(&services(&[("bar", &["b1"])]));
    let mark = kr.log().len();
    kr.write_services(&nameless(40_000));
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("SIGHUP: reload failed", mark);
    let failure = kr.log()[mark..].to_string();
    let lines: Vec<&str> = failure.lines().collect();
    assert_eq!(lines.len(), 1, "{failure}");
    assert!(
        lines[0].ends_with(":1:1: missing field `Name` (and 39999 more errors; `keyrouter check` lists them)"),
        "{failure}"
    );
    kr.write_services(&services(&[("bar", &["b9"])]));
    kr.signal(libc::SIGHUP);
    eventually("the good file", || kr.get("/service/bar?key=k").json() == serde_json::json!(["b9"]));
}

/// Text that would end a log line and start a forged one, or disguise a line on a terminal.
const FORGED: &str = "q\\n2031-01-01T00:00:00.000000Z  INFO SIGHUP: reloaded forged: 1 service\
                      \\r\\u001b[31m\\u0007\\u007f\\u0085\\u2028\\u2029\\u202e\\u2066\\t";

/// A services file whose errors all carry [`FORGED`]: an unknown top-level key, an unknown key in
/// an entry, a duplicate name, an invalid weight on a named node.
fn forging_file() -> String {
    format!(
        "\"{FORGED}\" = 1\n[[Services]]\nName = \"{FORGED}\"\n\"{FORGED}\" = 2\n\
         [[Services]]\nName = \"{FORGED}\"\nNodes = [{{ Node = \"{FORGED}\", Weight = 0 }}]\n"
    )
}

/// Every line of `text` is one line: no control character but the newlines between lines, no
/// line or paragraph separator, no bidi control; and no line is the forged one.
fn assert_one_line_each(what: &str, text: &str) {
    for line in text.lines() {
        let bad: Vec<char> = line
            .chars()
            .filter(|&c| {
                c.is_control()
                    || matches!(c, '\u{2028}' | '\u{2029}' | '\u{061C}' | '\u{200E}' | '\u{200F}')
                    || ('\u{202A}'..='\u{202E}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c)
            })
            .collect();
        assert!(bad.is_empty(), "{what}: raw {bad:?} in {line:?}\n{text}");
        assert!(!line.starts_with("2031-"), "{what}: a forged line {line:?}\n{text}");
    }
}

#[test]
fn services_file_text_cannot_forge_log_lines() {
    let forged = forging_file();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("forged.toml");
    std::fs::write(&file, &forged).unwrap();
    let path = file.to_str().unwrap();

    // `check`, and startup: an error per diagnostic, each on its line.
    let (code, _, stderr) = run(&["check", "--services", path], Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("unknown field `q\\n2031-"), "{stderr}");
    assert!(stderr.contains("\\u{1b}[31m") && stderr.contains("\\u{2028}"), "{stderr}");
    assert_one_line_each("check", &stderr);
    for format in ["text", "json"] {
        let (code, _, stderr) =
            run(&["--services", path, "--address", "127.0.0.1:0", "--log-format", format], Duration::from_secs(60));
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("q\\n2031-"), "{stderr}");
        assert_one_line_each(&format!("startup ({format})"), &stderr);
    }

    // SIGHUP in both formats, and `--watch`: the reload failure is one line.
    for (format, watch) in [("text", false), ("json", false), ("text", true)] {
        let mut flags = vec!["--log-format", format];
        if watch {
            flags.push("--watch");
        }
        let kr = Keyrouter::start_with(&services(&[("bar", &["b1"])]), &flags);
        let mark = kr.log().len();
        kr.write_services(&forged);
        if !watch {
            kr.signal(libc::SIGHUP);
        }
        kr.wait_for_log("reload failed", mark);
        let log = kr.log()[mark..].to_string();
        assert_eq!(log.lines().count(), 1, "{format}: {log}");
        if format == "json" {
            let line: serde_json::Value = serde_json::from_str(log.trim_end()).unwrap();
            let message = line["message"].as_str().unwrap();
            assert!(message.contains("q\\n2031-"), "{message}");
            assert_one_line_each("SIGHUP (json message)", message);
        } else {
            assert!(log.contains("q\\n2031-"), "{log}");
        }
        assert_one_line_each(&format!("reload ({format}, watch: {watch})"), &log);
        assert_eq!(kr.get("/service/bar?key=k").json(), serde_json::json!(["b1"]));
    }
}

#[test]
fn duplicate_node_warnings_and_check_output_escape_names() {
    let name = "a\\n2031-01-01T00:00:00Z  INFO forged\\u001b[2J\\u2028";
    let file = format!("[[Services]]\nName = \"{name}\"\nNodes = [\"x\", \"x\"]\n");
    // The warning at startup and on reload.
    let kr = Keyrouter::start(&file);
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    eventually("the reload's warning", || kr.log()[mark..].contains("removed 1 duplicate node"));
    let log = kr.log();
    assert!(log.contains(r#"service "a\n2031-01-01T00:00:00Z  INFO forged\u{1b}[2J\u{2028}": removed"#), "{log}");
    assert_one_line_each("duplicates", &log);
    let (code, stdout, stderr) = run(&["check", "--services", kr.services.to_str().unwrap()], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert_one_line_each("check", &stdout);
}

#[test]
fn client_text_cannot_forge_log_lines() {
    let kr = Keyrouter::start_with(&services(&[("bar", &["b1"])]), &["--log-level", "debug"]);
    let mark = kr.log().len();
    let resp = kr.get("/service/a%0A2031-01-01T00:00:00Z%20INFO%20forged%1B%5B31m%E2%80%A8?key=k%0D%0Ax");
    assert_eq!(resp.status, 404, "{}", resp.text());
    let _ = kr.get("/service/bar?key=%0A2031-01-01%1B%5B2J%E2%80%AE");
    eventually("the request lines", || kr.log()[mark..].lines().count() >= 2);
    std::thread::sleep(Duration::from_millis(200));
    let log = kr.log()[mark..].to_string();
    assert_one_line_each("requests", &log);
}

#[test]
fn duplicate_node_warnings_are_bounded_to_100_lines_and_a_count() {
    let file: String = (0..150).map(|i| format!("[[Services]]\nName = \"s{i}\"\nNodes = [\"x\", \"x\"]\n")).collect();
    let kr = Keyrouter::start(&file);
    let log = kr.log();
    assert_eq!(log.matches("removed 1 duplicate node").count(), 100, "{log}");
    assert!(log.contains(": \u{2026} and 50 more services with duplicate nodes removed"), "{log}");
}
