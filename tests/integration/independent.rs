//! The specification of ranking algorithm 2 (docs/ranking.md) is enough to implement it: two
//! implementations written from its text alone, in Python (tests/independent/ranking_v2.py) and
//! in dependency-free JavaScript (tests/independent/ranking_v2.mjs), pass every conformance
//! vector (crates/ranking/tests/vectors/algorithm2.json), and each says which case it fails on
//! a copy of the vectors with a wrong answer and a wrong fingerprint. Both also check the
//! algorithm-2 cases of the lookup-options vectors (crates/ranking/tests/vectors/lookup-options.json:
//! `exclude`, `spread=zone` and zones in fingerprints).
//!
//! The Python checker runs in a virtual environment (with `xxhash` from PyPI) that the test
//! provisions under the target directory; the JavaScript one needs `node` (18 or later).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{available, python_tool, require_tool};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/ranking/tests/vectors/algorithm2.json");
const OPTIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/ranking/tests/vectors/lookup-options.json");
const PYTHON_CHECKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent/ranking_v2.py");
const JS_CHECKER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent/ranking_v2.mjs");
const XXHASH: &str = "xxhash==4.1.0";

/// The Python interpreter of the checker's environment, or `None` (the skip reported) when it
/// cannot be made (no python3 venv, no PyPI).
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    available(PYTHON.get_or_init(|| python_tool("venv-xxhash", XXHASH, "python")).clone())
}

/// The interpreter that creates the environment: what `python_tool` runs.
fn system_python() -> String {
    std::env::var("KEYROUTER_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn vectors() -> Value {
    serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap()
}

/// Every case a checker counts: each hash vector, each service's fingerprint, each lookup (key
/// hash and answer together) and each table's fingerprint.
fn case_count(v: &Value) -> usize {
    let len = |field: &str| v[field].as_array().unwrap().len();
    let services = v["services"].as_array().unwrap();
    let lookups: usize = services.iter().map(|s| s["lookups"].as_array().unwrap().len()).sum();
    len("xxh64") + len("fmix64") + services.len() + lookups + len("tables")
}

/// Runs a checker on `vectors` and returns its output and the counts of its summary line
/// (`<language>: N passed, M failed`).
fn run_checker(mut cmd: Command, language: &str, vectors: &Path) -> (Output, String, usize, usize) {
    let out = cmd.arg(vectors).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let prefix = format!("{language}: ");
    let summary = stdout.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| {
        panic!("no `{prefix}` summary line; stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr))
    });
    let count = |word: &str| -> usize {
        summary
            .split(", ")
            .find_map(|part| part.strip_suffix(word))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot read `{word}` in summary {summary:?}"))
    };
    let (passed, failed) = (count(" passed"), count(" failed"));
    (out, stdout, passed, failed)
}

fn assert_passes_every_vector(cmd: Command, language: &str) {
    let expected = case_count(&vectors());
    let (out, stdout, passed, failed) = run_checker(cmd, language, Path::new(VECTORS));
    assert!(
        out.status.success() && failed == 0,
        "the {language} checker failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(passed, expected, "the {language} checker did not count every case:\n{stdout}");
}

/// A copy of the vectors with one lookup's answer (two nodes swapped, in a weighted service)
/// and another service's fingerprint altered; returns its path and the names of the two cases,
/// as the checkers spell them.
fn altered_vectors(file: &str) -> (PathBuf, String, String) {
    let mut v = vectors();
    let services = v["services"].as_array_mut().unwrap();
    let weighted = |s: &Value| s["nodes"].as_array().unwrap().iter().any(|n| n.get("weight").is_some());
    let at = services
        .iter()
        .position(|s| {
            weighted(s) && s["lookups"].as_array().unwrap().iter().any(|l| l["expected"].as_array().unwrap().len() >= 2)
        })
        .expect("a weighted service with a lookup of two nodes or more");
    let service = &mut services[at];
    let name = service["name"].as_str().unwrap().to_owned();
    let lookup = service["lookups"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["expected"].as_array().unwrap().len() >= 2)
        .unwrap();
    lookup["expected"].as_array_mut().unwrap().swap(0, 1);
    let answer_case =
        format!("service {name} lookup key {} k={}", serde_json::to_string(&lookup["key"]).unwrap(), lookup["k"]);

    let next = (at + 1) % services.len();
    let other = &mut services[next];
    let fingerprint = other["fingerprint"].as_str().unwrap();
    // Flip the last hex digit's lowest bit: still 16 hex digits, now wrong.
    let last = u8::from_str_radix(&fingerprint[15..], 16).unwrap() ^ 1;
    let wrong = format!("{}{last:x}", &fingerprint[..15]);
    other["fingerprint"] = Value::String(wrong);
    let fingerprint_case = format!("service {} fingerprint", other["name"].as_str().unwrap());

    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    (path, answer_case, fingerprint_case)
}

fn assert_names_the_altered_cases(cmd: Command, language: &str, file: &str) {
    let total = case_count(&vectors());
    let (path, answer_case, fingerprint_case) = altered_vectors(file);
    let (out, stdout, passed, failed) = run_checker(cmd, language, &path);
    assert!(!out.status.success(), "the {language} checker passed altered vectors:\n{stdout}");
    assert_eq!((passed, failed), (total - 2, 2), "{stdout}");
    for case in [&answer_case, &fingerprint_case] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("FAIL {case}:"))),
            "the {language} checker did not name `{case}`:\n{stdout}"
        );
    }
}

fn python_cmd() -> Option<Command> {
    let mut cmd = Command::new(python()?);
    cmd.arg(PYTHON_CHECKER);
    Some(cmd)
}

fn node_cmd() -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(JS_CHECKER);
    cmd
}

#[test]
fn python_implementation_from_the_spec_passes_every_vector() {
    if let Some(cmd) = require_tool(&system_python()).then(python_cmd).flatten() {
        assert_passes_every_vector(cmd, "python");
    }
}

#[test]
fn javascript_implementation_from_the_spec_passes_every_vector() {
    if require_tool("node") {
        assert_passes_every_vector(node_cmd(), "javascript");
    }
}

#[test]
fn python_checker_names_a_wrong_answer_and_a_wrong_fingerprint() {
    if let Some(cmd) = require_tool(&system_python()).then(python_cmd).flatten() {
        assert_names_the_altered_cases(cmd, "python", "independent-altered-python.json");
    }
}

#[test]
fn javascript_checker_names_a_wrong_answer_and_a_wrong_fingerprint() {
    if require_tool("node") {
        assert_names_the_altered_cases(node_cmd(), "javascript", "independent-altered-javascript.json");
    }
}

fn options() -> Value {
    serde_json::from_str(&std::fs::read_to_string(OPTIONS).unwrap()).unwrap()
}

/// The cases of the lookup-options vectors a checker of algorithm 2 counts: each algorithm-2
/// case's fingerprint and lookups.
fn options_count(v: &Value) -> usize {
    let cases = v["cases"].as_array().unwrap().iter().filter(|c| c["algorithm"] == 2);
    cases.map(|c| 1 + c["lookups"].as_array().unwrap().len()).sum()
}

/// The checker passes every algorithm-2 case of the lookup-options vectors; on a copy with a
/// `spread=zone` answer reordered and a zoned service's fingerprint altered, it fails exactly
/// those two and names them.
fn assert_checks_lookup_options(cmd: impl Fn() -> Command, language: &str, file: &str) {
    let v = options();
    let expected = options_count(&v);
    assert!(expected > 500, "{expected} algorithm-2 cases");
    let (out, stdout, passed, failed) = run_checker(cmd(), language, Path::new(OPTIONS));
    assert!(out.status.success() && failed == 0, "the {language} checker failed:\n{stdout}");
    assert_eq!(passed, expected, "{stdout}");

    let mut v = v;
    let cases = v["cases"].as_array_mut().unwrap();
    let zoned =
        |c: &Value| c["algorithm"] == 2 && c["nodes"].as_array().unwrap().iter().any(|n| n.get("zone").is_some());
    let at = cases.iter().position(zoned).unwrap();
    let name = cases[at]["name"].as_str().unwrap().to_owned();
    let lookup = cases[at]["lookups"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["spread"] == "zone" && l["expected"].as_array().is_some_and(|e| e.len() >= 2))
        .unwrap();
    lookup["expected"].as_array_mut().unwrap().swap(0, 1);
    let spread_case = format!("case {name} lookup key {}", serde_json::to_string(&lookup["key"]).unwrap());
    let fingerprint = cases[at]["fingerprint"].as_str().unwrap().to_owned();
    let last = u8::from_str_radix(&fingerprint[15..], 16).unwrap() ^ 1;
    cases[at]["fingerprint"] = Value::String(format!("{}{last:x}", &fingerprint[..15]));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    let (out, stdout, passed, failed) = run_checker(cmd(), language, &path);
    assert!(!out.status.success(), "the {language} checker passed altered vectors:\n{stdout}");
    assert_eq!((passed, failed), (expected - 2, 2), "{stdout}");
    for case in [spread_case, format!("case {name} fingerprint:")] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("FAIL {case}"))),
            "{language} did not name {case}:\n{stdout}"
        );
    }
}

#[test]
fn python_implementation_checks_exclude_spread_and_zones() {
    if let Some(_cmd) = require_tool(&system_python()).then(python_cmd).flatten() {
        assert_checks_lookup_options(|| python_cmd().unwrap(), "python", "independent-options-python.json");
    }
}

#[test]
fn javascript_implementation_checks_exclude_spread_and_zones() {
    if require_tool("node") {
        assert_checks_lookup_options(node_cmd, "javascript", "independent-options-javascript.json");
    }
}
