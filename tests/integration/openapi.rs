//! The OpenAPI document against the running binary: schemathesis (from PyPI, installed by the
//! test itself) generates a bounded number of requests, valid and invalid, for every operation,
//! against 127.0.0.1 only, and checks that no answer is a server error or breaks the schema.

use crate::common;

use std::process::Command;

use common::{python_tool, services, Keyrouter};

#[test]
fn the_binary_serves_its_own_specification() {
    let kr = Keyrouter::start(&services(&[("bar", &["b1"])]));
    let r = kr.get("/openapi.yaml");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/yaml"));
    assert_eq!(r.text(), include_str!("../../src/openapi.yaml"));
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let Some(st) = common::available(python_tool("venv-schemathesis", "schemathesis==4.32.5", "st")) else {
        return;
    };
    let mut kr = Keyrouter::start(&services(&[
        ("bar", &["bar1:8080", "bar2:8080", "bar3:8080"]),
        ("empty", &[]),
        ("a b", &["x:1"]),
    ]));
    let base = format!("http://127.0.0.1:{}", kr.port);
    // schemathesis keeps its caches (.schemathesis/, .hypothesis/) in its working directory:
    // run it under target/, so that a test run leaves the work tree as it was.
    let workdir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-run");
    std::fs::create_dir_all(&workdir).unwrap();
    let out = Command::new(st)
        .current_dir(&workdir)
        .args(["run", &format!("{base}/openapi.yaml"), "--url", &base])
        // Every check but positive_data_acceptance: the schema cannot say that `min <= max`,
        // that `key` and `keys` exclude each other, or that a service has enough nodes, so
        // schema-valid requests that break those rules rightly get 400.
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", "40", "--seed", "20261126", "--request-timeout", "10", "--workers", "2"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis failed:\n{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("No issues found") || report.contains("passed"), "{report}");
    assert!(kr.child.try_wait().unwrap().is_none(), "the server died under schemathesis");
}
