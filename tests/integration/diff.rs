//! `keyrouter diff OLD NEW` through the real binary: the moved share, the keys that move (checked
//! against `keyrouter lookup` on both files), exit statuses like diff(1), the JSON format.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{services, Keyrouter, BIN};
use serde_json::Value;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).env_remove("KEYROUTER_SERVICES").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn nodes(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("bar{i}:8080")).collect()
}

fn write(dir: &Path, name: &str, list: &[(&str, &[String])]) -> PathBuf {
    let list: Vec<(&str, Vec<&str>)> = list.iter().map(|(s, n)| (*s, n.iter().map(String::as_str).collect())).collect();
    let list: Vec<(&str, &[&str])> = list.iter().map(|(s, n)| (*s, &n[..])).collect();
    let path = dir.join(name);
    std::fs::write(&path, services(&list)).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `keyrouter lookup` on one file: the answer as node names.
fn lookup(file: &Path, service: &str, key: &str, k: usize) -> Vec<String> {
    let k = k.to_string();
    let (code, out, err) = run(&["--services", s(file), "lookup", service, key, "--min", "1", "--max", &k]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn moved_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Checks `--keys` output against per-key lookups on both files, for `keys` keys of `service`.
fn check_moved_keys(old: &Path, new: &Path, service: &str, keys: usize, k: usize, expect_moved_to: Option<&str>) {
    let dir = old.parent().unwrap();
    let list: Vec<String> = (0..keys).map(|i| format!("user:{i}")).collect();
    let keys_file = dir.join("keys.txt");
    std::fs::write(&keys_file, list.join("\n") + "\n").unwrap();
    let replicas = k.to_string();
    let (code, out, err) = run(&["diff", s(old), s(new), "--keys", s(&keys_file), "--replicas", &replicas]);
    assert_eq!(code, 1, "{err}");
    let moved: std::collections::HashMap<String, (Vec<String>, Vec<String>)> = moved_lines(&out)
        .into_iter()
        .map(|v| {
            assert_eq!(v["service"], service);
            let answer = |f: &str| -> Vec<String> { serde_json::from_value(v[f].clone()).unwrap() };
            (v["key"].as_str().unwrap().to_string(), (answer("old"), answer("new")))
        })
        .collect();
    for key in &list {
        let (a, b) = (lookup(old, service, key, k), lookup(new, service, key, k));
        match moved.get(key) {
            Some((mo, mn)) => {
                assert_ne!(a, b, "{key} listed but its answer does not change");
                assert_eq!((mo, mn), (&a, &b), "{key}");
            }
            None => assert_eq!(a, b, "{key} not listed but its answer changes"),
        }
        if let (Some(node), true) = (expect_moved_to, a != b) {
            // Additions: every key that moves goes to the newcomer. Removals: every key that
            // moves came from the removed node.
            assert!(b[0] == node || a[0] == node, "{key}: {a:?} -> {b:?}");
        }
    }
    // Some keys move, most do not.
    assert!(!moved.is_empty() && moved.len() < keys / 2, "{} of {keys} moved", moved.len());
}

#[test]
fn removing_one_of_ten_nodes_moves_a_tenth_and_only_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.toml", &[("bar", &nodes(0..10))]);
    let new = write(dir.path(), "new.toml", &[("bar", &nodes(0..9))]);
    let (code, out, err) = run(&["diff", s(&old), s(&new)]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("changed \"bar\": +0 -1 ~0 nodes"), "{out}");
    assert!(out.contains("  - bar9:8080\n"), "{out}");
    assert!(out.contains("first choices moved: 10.0 % (exact)"), "{out}");
    check_moved_keys(&old, &new, "bar", 300, 1, Some("bar9:8080"));
}

#[test]
fn adding_one_node_to_ten_moves_one_eleventh_all_to_the_newcomer() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.toml", &[("bar", &nodes(0..10))]);
    let new = write(dir.path(), "new.toml", &[("bar", &nodes(0..11))]);
    let (code, out, err) = run(&["diff", s(&old), s(&new), "--format", "json"]);
    assert_eq!(code, 1, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let bar = &v["services"][0];
    assert_eq!(bar["service"], "bar");
    assert_eq!(bar["change"], "changed");
    assert_eq!(bar["added"], serde_json::json!(["bar10:8080"]));
    assert_eq!(bar["moved"]["exact"], true);
    assert!((bar["moved"]["share"].as_f64().unwrap() - 1.0 / 11.0).abs() < 1e-12, "{bar}");
    assert_ne!(bar["old_fingerprint"], bar["new_fingerprint"]);
    check_moved_keys(&old, &new, "bar", 300, 1, Some("bar10:8080"));
}

#[test]
fn replicas_compare_top_k_sets() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.toml", &[("bar", &nodes(0..10))]);
    let new = write(dir.path(), "new.toml", &[("bar", &nodes(1..10))]);
    let (code, out, err) = run(&["diff", s(&old), s(&new), "--replicas", "3", "--format", "json"]);
    assert_eq!(code, 1, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let r = &v["services"][0]["replicas"];
    assert_eq!(r["k"], 3);
    assert_eq!(r["set_changed"]["exact"], false);
    // A key's 3-set changes exactly when it held the removed node: 3 in 10.
    let (share, bound) = (r["set_changed"]["share"].as_f64().unwrap(), r["set_changed"]["bound"].as_f64().unwrap());
    assert!((share - 0.3).abs() <= bound, "{r}");
    check_moved_keys(&old, &new, "bar", 150, 3, None);
}

#[test]
fn json_key_lines_name_their_service() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.toml", &[("bar", &nodes(0..3)), ("foo", &nodes(0..3))]);
    let new = write(dir.path(), "new.toml", &[("bar", &nodes(0..2)), ("foo", &nodes(0..3))]);
    let keys: Vec<String> = (0..60)
        .flat_map(|i| [format!(r#"{{"service":"bar","key":"k{i}"}}"#), format!(r#"{{"service":"foo","key":"k{i}"}}"#)])
        .collect();
    let keys_file = dir.path().join("keys.jsonl");
    std::fs::write(&keys_file, keys.join("\n")).unwrap();
    let (code, out, err) = run(&["diff", s(&old), s(&new), "--keys", s(&keys_file)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("first choices moved: 33.33 % (exact)"), "the summary goes to stderr: {err}");
    let moved = moved_lines(&out);
    assert!(!moved.is_empty());
    for v in moved {
        assert_eq!(v["service"], "bar", "foo did not change: {v}");
        assert_eq!(v["old"], serde_json::json!(["bar2:8080"]), "{v}");
    }
    std::fs::write(&keys_file, "{\"service\": 1}\n").unwrap();
    let (code, _, err) = run(&["diff", s(&old), s(&new), "--keys", s(&keys_file)]);
    assert_eq!(code, 2);
    assert!(err.contains("keys.jsonl:1: invalid key line"), "{err}");
}

#[test]
fn exit_status_is_like_diff() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), "old.toml", &[("bar", &nodes(0..4))]);
    // The same table in another order: no differences.
    let same = write(dir.path(), "same.toml", &[("bar", &nodes(0..4).into_iter().rev().collect::<Vec<_>>())]);
    let (code, out, err) = run(&["diff", s(&old), s(&same)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no differences"), "{out}");
    let (code, out, _) = run(&["diff", s(&old), s(&same), "--format", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"], serde_json::json!([]));
    // Errors in both files are reported, each with line:column as `check` prints them.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[Services]]\nName = \"bar\"\nNodes = [\"a\", 1]\n").unwrap();
    let missing = dir.path().join("missing.toml");
    let (code, out, err) = run(&["diff", s(&bad), s(&missing)]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "{out}");
    let (check_code, _, check_err) = run(&["--services", s(&bad), "check"]);
    assert_eq!(check_code, 1);
    assert!(check_err.contains("bad.toml:3:"), "{check_err}");
    assert!(err.contains(check_err.trim()), "diff: {err}\ncheck: {check_err}");
    assert!(err.contains("missing.toml: cannot read services file"), "{err}");
    // A removed service and an added one.
    let other = write(dir.path(), "other.toml", &[("foo", &nodes(0..2))]);
    let (code, out, _) = run(&["diff", s(&old), s(&other)]);
    assert_eq!(code, 1);
    assert!(out.contains("removed \"bar\"") && out.contains("added \"foo\""), "{out}");
}

/// The reload's value of `keyrouter_reload_moved_ratio` for `service`, if any.
fn moved_ratio(kr: &Keyrouter, service: &str) -> Option<f64> {
    let metrics = kr.get("/metrics").text();
    let prefix = format!("keyrouter_reload_moved_ratio{{service=\"{service}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.parse().unwrap())
}

#[test]
fn a_sighup_reload_logs_and_exports_the_moved_share() {
    let ten = nodes(0..10);
    let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
    let kr = Keyrouter::start(&services(&[("bar", &ten), ("foo", &["f1", "f2"]), ("gone", &["g1"])]));
    assert_eq!(moved_ratio(&kr, "bar"), None, "no reload has changed bar yet");
    // bar loses one of ten nodes, foo gets a third node, gone goes, new comes.
    kr.write_services(&services(&[("bar", &ten[..9]), ("foo", &["f1", "f2", "f3"]), ("new", &["n1"])]));
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", mark);
    let line = kr.log()[mark..].lines().find(|l| l.contains("reloaded")).unwrap().to_string();
    assert!(
        line.contains(r#"added ["new"], removed ["gone"], changed ["bar" (+0 -1 nodes, 10.0 % moved), "foo" (+1 -0 nodes, 33.33 % moved)]"#),
        "{line}"
    );
    assert_eq!(moved_ratio(&kr, "bar"), Some(0.1));
    assert!((moved_ratio(&kr, "foo").unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(moved_ratio(&kr, "new"), Some(1.0));
    assert_eq!(moved_ratio(&kr, "gone"), None);
    // /table says when each service last changed, and how much that moved.
    let table = kr.get("/table").json();
    let entry = |name: &str| table["services"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let bar = entry("bar");
    assert_eq!(bar["moved"], 0.1, "{bar}");
    assert!((now - bar["changed_at"].as_f64().unwrap()).abs() < 60.0, "{bar}");
    assert_eq!(entry("new")["moved"], 1.0);
    let changed_at = bar["changed_at"].clone();
    // A re-weighted node has no exact formula: the estimate and its bound.
    kr.write_services(
        "[[Services]]\nName = \"foo\"\nNodes = [\"f1\", \"f2\", { Node = \"f3\", Weight = 2.0 }]\n\n\
         [[Services]]\nName = \"bar\"\nNodes = [\"bar0:8080\"]\n",
    );
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", mark);
    let line = kr.log()[mark..].lines().find(|l| l.contains("reloaded")).unwrap().to_string();
    // docs/planning.md shows this line.
    assert!(line.contains(r#""foo" (+0 -0 ~1 nodes, 16.83 % ± 1.95 % moved)"#), "{line}");
    // f3 goes from 1/3 to 2/4 of first choices, taking keys only: 1/6 move.
    let foo = moved_ratio(&kr, "foo").unwrap();
    assert!((foo - 1.0 / 6.0).abs() < 0.025, "{foo}");
    // bar changed again (8 of 9 nodes removed); the series follows the last change.
    assert!((moved_ratio(&kr, "bar").unwrap() - 8.0 / 9.0).abs() < 1e-12);
    let table = kr.get("/table").json();
    let bar = table["services"].as_array().unwrap().iter().find(|s| s["name"] == "bar").unwrap().clone();
    assert!((bar["moved"].as_f64().unwrap() - 8.0 / 9.0).abs() < 1e-12, "{bar}");
    assert!(bar["changed_at"].as_f64() >= changed_at.as_f64(), "{bar}");
    // A service a reload did not change keeps its last change; one never changed has none.
    let kr2 = Keyrouter::start(&services(&[("a", &["x"])]));
    assert!(kr2.get("/table").json()["services"][0].get("changed_at").is_none());
}

/// A weighted service losing two nodes and gaining two (kept weights unchanged): the listed keys
/// are exactly those whose top-2 answers differ between the files.
#[test]
fn weighted_changes_list_exactly_the_keys_that_move() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, range: std::ops::Range<usize>| {
        let nodes: Vec<String> = range.map(|i| format!("{{ Node = \"w{i}:80\", Weight = {} }}", 1 + i % 4)).collect();
        let path = dir.path().join(name);
        std::fs::write(&path, format!("[[Services]]\nName = \"w\"\nNodes = [{}]\n", nodes.join(", "))).unwrap();
        path
    };
    let (old, new) = (file("old.toml", 0..20), file("new.toml", 2..22));
    let (code, out, err) = run(&["diff", s(&old), s(&new), "--format", "json"]);
    assert_eq!(code, 1, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    // Kept w2..w19 weigh 47, removed w0, w1 weigh 1 + 2, added w20, w21 weigh 1 + 2.
    let moved = v["services"][0]["moved"]["share"].as_f64().unwrap();
    assert!((moved - (1.0 - 47.0 / 53.0)).abs() < 1e-12, "{v}");
    check_moved_keys(&old, &new, "w", 120, 2, None);
}
