//! Node Ids and the `Algorithm` line of the services file, through the real binary: what the
//! ranking hashes (the Id) against what answers carry (the address), the served table's
//! algorithm everywhere it shows, switching algorithm by reload, and `check` and `diff` on both.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use common::{eventually, Keyrouter, BIN};
use serde_json::{json, Value};

const KEYS: usize = 10_000;
/// Keys per batch request (the server's limit is 10 000; smaller bodies keep each request cheap).
const BATCH: usize = 2_500;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).env_remove("KEYROUTER_SERVICES").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A services file: `web` with `(address, id)` nodes (one of weight 2), `plain` without Ids.
fn file(algorithm: Option<u32>, web: &[(String, String)]) -> String {
    let mut out = String::new();
    if let Some(a) = algorithm {
        out.push_str(&format!("Algorithm = {a}\n"));
    }
    out.push_str("[[Services]]\n  Name = \"web\"\n  Nodes = [\n");
    for (i, (address, id)) in web.iter().enumerate() {
        let weight = if i == 0 { ", Weight = 2" } else { "" };
        out.push_str(&format!("    {{ Node = {address:?}, Id = {id:?}{weight} }},\n"));
    }
    out.push_str("  ]\n[[Services]]\n  Name = \"plain\"\n  Nodes = [\"p1:80\", \"p2:80\", \"p3:80\"]\n");
    out
}

fn web_nodes(subnet: u8) -> Vec<(String, String)> {
    (0..8).map(|i| (format!("10.{subnet}.0.{i}:8080"), format!("web-{i}"))).collect()
}

/// The top 3 of every key of `web`, by batch lookups.
fn answers(kr: &Keyrouter) -> Vec<Vec<String>> {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("user:{i}")).collect();
    let mut out = Vec::with_capacity(KEYS);
    for chunk in keys.chunks(BATCH) {
        let body = json!({ "keys": chunk, "min": 1, "max": 3 }).to_string();
        let r = kr.post_json("/service/web", &body);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        for key in chunk {
            out.push(serde_json::from_value(v[key].clone()).unwrap());
        }
    }
    out
}

fn table(kr: &Keyrouter) -> Value {
    kr.get("/table").json()
}

/// Waits until the served table's fingerprint is no longer `old`.
fn wait_for_new_table(kr: &Keyrouter, old: &Value) {
    eventually("the reloaded table", || table(kr)["fingerprint"] != *old);
}

#[test]
fn readdressing_every_node_under_the_same_ids_changes_no_answer_but_the_address_text() {
    for algorithm in [None, Some(2)] {
        let before_nodes = web_nodes(1);
        let after_nodes = web_nodes(2);
        let kr = Keyrouter::start(&file(algorithm, &before_nodes));
        let t = table(&kr);
        let web = &t["services"][1];
        assert_eq!(web["name"], "web", "{t}");
        let ids: Vec<&str> = before_nodes.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(web["ids"], json!(ids), "/table shows the Ids that differ from the addresses: {t}");
        assert!(t["services"][0].get("ids").is_none(), "no Ids, no ids field: {t}");
        let page = kr.get("/status").text();
        assert!(page.contains("<td class=\"name\">10.1.0.0:8080 <span class=\"id\">Id web-0</span></td>"), "{page}");
        assert!(page.contains("<td class=\"name\">p1:80</td>"), "{page}");
        let before = answers(&kr);

        kr.write_services(&file(algorithm, &after_nodes));
        kr.signal(libc::SIGHUP);
        wait_for_new_table(&kr, &t["fingerprint"]);
        let after = answers(&kr);

        let to_id: HashMap<&str, &str> = before_nodes.iter().map(|(a, id)| (a.as_str(), id.as_str())).collect();
        let to_new: HashMap<&str, &str> = after_nodes.iter().map(|(a, id)| (id.as_str(), a.as_str())).collect();
        let mut distinct_first = std::collections::HashSet::new();
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let mapped: Vec<&str> = b.iter().map(|n| to_new[to_id[n.as_str()]]).collect();
            assert_eq!(mapped, *a, "{algorithm:?}: key user:{i} changed more than its addresses");
            distinct_first.insert(a[0].clone());
        }
        // Not a degenerate answer: the keys spread over every node.
        assert_eq!(distinct_first.len(), after_nodes.len(), "{algorithm:?}");
        assert_ne!(before, after, "the addresses did change");
    }
}

#[test]
fn the_served_tables_algorithm_shows_everywhere_and_a_reload_switches_it() {
    let nodes = web_nodes(1);
    let kr = Keyrouter::start(&file(None, &nodes));
    let shows = |kr: &Keyrouter, n: u32| {
        let t = table(kr);
        assert_eq!(t["algorithm"], n, "{t}");
        let index = kr.request("GET", "/", &[("Accept", "application/json")], b"").json();
        assert_eq!(index["algorithm"], n, "{index}");
        let metrics = kr.get("/metrics").text();
        let info = format!(
            r#"keyrouter_build_info{{algorithm="{n}",fingerprint={},version="{}"}} 1"#,
            t["fingerprint"],
            env!("CARGO_PKG_VERSION")
        );
        assert!(metrics.contains(&info), "{metrics}");
        assert_eq!(metrics.matches("keyrouter_build_info{").count(), 1, "{metrics}");
        let page = kr.get("/status").text();
        assert!(page.contains(&format!("ranking algorithm <span id=\"algorithm\">{n}</span>")), "{page}");
        t
    };
    let t1 = shows(&kr, 1);
    let v1 = answers(&kr);

    kr.write_services(&file(Some(2), &nodes));
    kr.signal(libc::SIGHUP);
    wait_for_new_table(&kr, &t1["fingerprint"]);
    shows(&kr, 2);
    let v2 = answers(&kr);
    let moved = v1.iter().zip(&v2).filter(|(a, b)| a[0] != b[0]).count();
    // Unrelated hashes: a key keeps its first choice about as often as chance gives it the same
    // node (about 2/9 with these weights); far from every key staying.
    assert!(moved > KEYS / 2, "{moved} of {KEYS} first choices moved");

    // And back: exactly the algorithm-1 answers again.
    let t2 = table(&kr);
    kr.write_services(&file(Some(1), &nodes));
    kr.signal(libc::SIGHUP);
    wait_for_new_table(&kr, &t2["fingerprint"]);
    assert_eq!(shows(&kr, 1)["fingerprint"], t1["fingerprint"], "Algorithm = 1 is the default");
    assert_eq!(answers(&kr), v1);
}

#[test]
fn a_bad_algorithm_or_id_is_a_positioned_error_and_a_reload_keeps_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    let p = path.to_str().unwrap();
    let body = "[[Services]]\nName = \"web\"\nNodes = [\"a:1\"]\n";
    for (bad, shown) in [("3", "3"), ("0", "0"), ("\"2\"", "\"2\""), ("2.5", "2.5")] {
        std::fs::write(&path, format!("Algorithm = {bad}\n{body}")).unwrap();
        let (code, out, err) = run(&["--services", p, "check"]);
        assert_eq!(code, 1, "{bad}: {out}");
        assert_eq!(
            err,
            format!(
                "keyrouter: error: {p}:1:13: Algorithm must be 1 or 2 (the ranking algorithm's number), got {shown}\n"
            ),
            "{bad}"
        );
    }
    for (nodes, message) in [
        (
            r#"[{ Node = "a:1", Id = "x" }, { Node = "b:1", Id = "x" }]"#,
            "3:59: Id \"x\" is already given to node \"a:1\" at 3:10",
        ),
        (
            r#"[{ Node = "a:1", Id = "x" }, { Node = "a:1", Id = "y" }]"#,
            "3:59: node \"a:1\" has Id \"y\" here and Id \"x\" at 3:10",
        ),
        (r#"[{ Node = "a:1", Id = "" }]"#, "3:31: node \"a:1\": Id is empty"),
    ] {
        std::fs::write(&path, format!("[[Services]]\nName = \"web\"\nNodes = {nodes}\n")).unwrap();
        let (code, _, err) = run(&["--services", p, "check"]);
        assert_eq!(code, 1, "{nodes}");
        assert!(err.starts_with(&format!("keyrouter: error: {p}:{message}")), "{nodes}: {err}");
    }

    let kr = Keyrouter::start(body);
    let t = table(&kr);
    kr.write_services(&format!("Algorithm = 3\n{body}"));
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reload failed, still serving the previous table", mark);
    assert!(kr.log()[mark..].contains(":1:13: Algorithm must be 1 or 2"), "{}", kr.log());
    assert_eq!(table(&kr), t);
}

#[test]
fn check_prints_the_algorithm_and_the_ids_that_differ_from_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    let p = path.to_str().unwrap();
    let mut nodes = web_nodes(1);
    nodes.push(("10.1.0.99:8080".into(), "10.1.0.99:8080".into()));
    std::fs::write(&path, file(Some(2), &nodes)).unwrap();
    let (code, out, err) = run(&["--services", p, "check"]);
    assert_eq!(code, 0, "{err}");
    let first = out.lines().next().unwrap();
    assert!(first.starts_with(&format!("{p}: OK: 2 services, 12 nodes, algorithm 2, fingerprint ")), "{out}");
    assert!(out.contains("  \"web\": 9 nodes, weighted\n    \"10.1.0.0:8080\": Id \"web-0\"\n"), "{out}");
    assert_eq!(out.matches(": Id \"web-").count(), 8, "{out}");
    assert!(!out.contains("Id \"10.1.0.99:8080\""), "an Id equal to its address is not shown: {out}");
    std::fs::write(&path, "[[Services]]\nName = \"a\"\nNodes = [\"x:1\"]\n").unwrap();
    let (_, out, _) = run(&["--services", p, "check"]);
    assert!(out.contains(": OK: 1 service, 1 node, algorithm 1, fingerprint "), "{out}");
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn diff_of_an_algorithm_switch_reports_nearly_every_key_moved() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = web_nodes(1);
    let old = write(dir.path(), "old.toml", &file(None, &nodes));
    let new = write(dir.path(), "new.toml", &file(Some(2), &nodes));
    let (code, out, err) = run(&["diff", &old, &new, "--samples", "20000"]);
    assert_eq!(code, 1, "the tables differ: {out}{err}");
    assert!(out.contains("algorithm 1 -> 2: nearly every key moves\n"), "{out}");
    assert!(!out.contains("no differences"), "{out}");
    let (code, out, _) = run(&["diff", &old, &new, "--samples", "20000", "--format", "json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["old"]["algorithm"].clone(), v["new"]["algorithm"].clone()), (json!(1), json!(2)), "{v}");
    let moved: BTreeMap<String, (f64, bool)> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let m = &s["moved"];
            (s["service"].as_str().unwrap().to_string(), (m["share"].as_f64().unwrap(), m["exact"].as_bool().unwrap()))
        })
        .collect();
    // Nothing added or removed, yet an estimate far from 0: with n nodes a key stays on its
    // node by chance only, about 1/n of the time (weights aside).
    assert_eq!(moved.len(), 2, "{v}");
    for (service, (share, exact)) in &moved {
        assert!(!exact, "{service}: an estimate, not an exact 0: {v}");
        assert!(*share > 0.5, "{service}: {share}: {v}");
    }
    // The same algorithm written out is the same table.
    let explicit = write(dir.path(), "explicit.toml", &file(Some(1), &nodes));
    let (code, out, _) = run(&["diff", &old, &explicit]);
    assert_eq!((code, out.ends_with("no differences\n")), (0, true), "{out}");
}

#[test]
fn diff_shows_readdressed_nodes_which_move_no_keys() {
    let dir = tempfile::tempdir().unwrap();
    let before = web_nodes(1);
    let mut after = before.clone();
    after[3].0 = "10.9.9.9:8080".into();
    for algorithm in [None, Some(2)] {
        let old = write(dir.path(), "old.toml", &file(algorithm, &before));
        let new = write(dir.path(), "new.toml", &file(algorithm, &after));
        let (code, out, err) = run(&["diff", &old, &new]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(out.contains("changed \"web\": +0 -0 ~0 nodes"), "{out}");
        assert!(out.contains("  = Id \"web-3\" re-addressed 10.1.0.3:8080 -> 10.9.9.9:8080\n"), "{out}");
        assert!(out.contains("  first choices moved: 0.0 % (exact)\n"), "{out}");
        // A new Id at the old address is another node: its keys move.
        let mut renamed = before.clone();
        renamed[3].1 = "web-new".into();
        let new = write(dir.path(), "renamed.toml", &file(algorithm, &renamed));
        let (_, out, _) = run(&["diff", &old, &new]);
        assert!(out.contains("changed \"web\": +1 -1 ~0 nodes"), "{out}");
        assert!(!out.contains("first choices moved: 0.0 %"), "{out}");
        // With --keys, the keys whose answer text changes are listed, old and new addresses.
        let keys = write(dir.path(), "keys.txt", &(0..2000).map(|i| format!("user:{i}\n")).collect::<String>());
        let new = write(dir.path(), "new.toml", &file(algorithm, &after));
        let (code, out, _) = run(&["diff", &old, &new, "--keys", &keys]);
        assert_eq!(code, 1);
        assert!(!out.is_empty());
        for line in out.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["old"], json!(["10.1.0.3:8080"]), "{line}");
            assert_eq!(v["new"], json!(["10.9.9.9:8080"]), "{line}");
        }
    }
}
