//! `exclude` and `spread=zone` through the real binary: every input form, batches, the bounds
//! (`--max-exclude`, the answer budget), the errors, `/table`'s zones, and the retry a client
//! makes when its first choice fails.

use crate::common;

use common::{multipart, Keyrouter};
use keyrouter::ranking::{Algorithm, LookupOptions, NodeSpec, Service, ServiceSpec, Spread};
use serde_json::{json, Value};

/// 30 nodes in 3 zones (and 3 without a zone), half with Ids, two weights; algorithm 2.
fn nodes() -> Vec<NodeSpec> {
    (0..30)
        .map(|i| {
            let mut n = NodeSpec::weighted(format!("10.0.0.{i}:8080"), if i % 4 == 0 { 2.0 } else { 1.0 });
            if i % 2 == 0 {
                n = n.with_id(format!("web-{i}"));
            }
            if i % 10 != 9 {
                n = n.with_zone(["eu-1a", "eu-1b", "eu-1c"][i % 3]);
            }
            n
        })
        .collect()
}

fn services_toml(nodes: &[NodeSpec]) -> String {
    let list: Vec<String> = nodes
        .iter()
        .map(|n| {
            let mut fields = vec![format!("Node = {:?}", n.node), format!("Weight = {:?}", n.weight)];
            fields.extend(n.id.as_ref().map(|id| format!("Id = {id:?}")));
            fields.extend(n.zone.as_ref().map(|z| format!("Zone = {z:?}")));
            format!("  {{ {} }}", fields.join(", "))
        })
        .collect();
    format!("Algorithm = 2\n[[Services]]\nName = \"web\"\nNodes = [\n{}\n]\n", list.join(",\n"))
}

fn library() -> Service {
    Service::build_with(ServiceSpec { name: "web".into(), nodes: nodes() }, Algorithm::V2).unwrap().0
}

/// The library's answer, as the server's JSON.
fn expected(key: &str, max: u64, exclude: &[&str], spread: Spread) -> Value {
    json!(library().lookup_with(key, 1, max, &LookupOptions { exclude, spread }).unwrap())
}

fn identity_of(address: &str) -> String {
    let n = nodes().into_iter().find(|n| n.node == address).unwrap();
    n.id.unwrap_or(n.node)
}

#[test]
fn every_input_form_takes_exclude_and_spread() {
    let kr = Keyrouter::start(&services_toml(&nodes()));
    for key in ["ryans", "user:42", "ключ"] {
        let want = expected(key, 4, &["web-0", "10.0.0.3:8080"], Spread::Zone);
        let q = format!("/service/web?key={}&max=4&exclude=web-0&exclude=10.0.0.3:8080&spread=zone", urlencode(key));
        assert_eq!(kr.get(&q).json(), want, "query string, {key}");
        let form = format!("key={}&max=4&exclude=web-0&exclude=10.0.0.3%3A8080&spread=zone", urlencode(key));
        let r = kr.request(
            "POST",
            "/service/web",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        );
        assert_eq!(r.json(), want, "form, {key}");
        let (ct, body) = multipart(&[
            ("key", key),
            ("max", "4"),
            ("exclude", "web-0"),
            ("exclude", "10.0.0.3:8080"),
            ("spread", "zone"),
        ]);
        assert_eq!(kr.request("POST", "/service/web", &[("Content-Type", &ct)], &body).json(), want, "multipart");
        let body = json!({"key": key, "max": 4, "exclude": ["web-0", "10.0.0.3:8080"], "spread": "zone"});
        assert_eq!(kr.post_json("/service/web", &body.to_string()).json(), want, "JSON, {key}");
        // Each option alone.
        let r = kr.post_json("/service/web", &json!({"key": key, "max": 3, "exclude": ["web-0"]}).to_string());
        assert_eq!(r.json(), expected(key, 3, &["web-0"], Spread::None));
        let r = kr.post_json("/service/web", &json!({"key": key, "max": 3, "spread": "zone"}).to_string());
        assert_eq!(r.json(), expected(key, 3, &[], Spread::Zone));
    }
}

#[test]
fn a_batch_applies_the_options_to_every_key() {
    let kr = Keyrouter::start(&services_toml(&nodes()));
    let keys: Vec<String> = (0..200).map(|i| format!("user:{i}")).collect();
    let body = json!({"keys": keys, "max": 3, "exclude": ["web-2", "10.0.0.5:8080", "gone:1"], "spread": "zone"});
    let answer = kr.post_json("/service/web", &body.to_string()).json();
    for key in &keys {
        assert_eq!(answer[key], expected(key, 3, &["web-2", "10.0.0.5:8080"], Spread::Zone), "{key}");
    }
}

/// What a client does when its first choice fails: ask again without it. For 1 000 keys (in
/// batches, one per failed node), the retry's first choice is the old second one, and its
/// second the old third.
#[test]
fn a_retry_excluding_the_first_answer_gets_the_old_second_choice_first() {
    let kr = Keyrouter::start(&services_toml(&nodes()));
    let keys: Vec<String> = (0..1000).map(|i| format!("session-{i}")).collect();
    let before = kr.post_json("/service/web", &json!({"keys": keys, "max": 3}).to_string()).json();
    let mut by_first: std::collections::BTreeMap<String, Vec<&String>> = Default::default();
    for key in &keys {
        by_first.entry(before[key][0].as_str().unwrap().to_string()).or_default().push(key);
    }
    assert!(by_first.len() > 20, "first choices spread over {} nodes", by_first.len());
    let mut checked = 0;
    for (failed, keys) in &by_first {
        let body = json!({"keys": keys, "max": 2, "exclude": [identity_of(failed)]});
        let after = kr.post_json("/service/web", &body.to_string()).json();
        for key in keys {
            let old = before[key.as_str()].as_array().unwrap();
            assert_eq!(after[key.as_str()], json!([old[1], old[2]]), "key {key}, {failed} excluded");
            checked += 1;
        }
    }
    assert_eq!(checked, 1000);
}

#[test]
fn bad_options_are_clear_400s() {
    let kr = Keyrouter::start_with(&services_toml(&nodes()), &["--max-exclude", "3", "--max-answer-nodes", "10"]);
    let post = |body: Value| kr.post_json("/service/web", &body.to_string());
    post(json!({"key": "k", "exclude": ["a", "b", "c", "d"]}))
        .assert_error(400, "too many `exclude` entries: 4, at most 3 in one lookup (--max-exclude)");
    kr.get("/service/web?key=k&exclude=a&exclude=b&exclude=c&exclude=d").assert_error(400, "at most 3");
    post(json!({"key": "k", "exclude": "web-0"})).assert_error(400, "`exclude` must be an array of strings");
    post(json!({"key": "k", "exclude": [1]})).assert_error(400, "`exclude` must be an array of strings; item 0");
    post(json!({"key": "k", "exclude": {"web-0": true}})).assert_error(400, "`exclude` must be an array of strings");
    post(json!({"key": "k", "spread": "rack"})).assert_error(400, "`spread` must be \"zone\"");
    post(json!({"key": "k", "spread": true})).assert_error(400, "`spread` must be a string");
    kr.get("/service/web?key=k&spread=zones").assert_error(400, "`spread` must be \"zone\"");
    kr.get("/service/web?key=k&spread=zone&spread=zone").assert_error(400, "more than once");
    // Excluded nodes count in the answer budget: 2 keys x (3 + 2 excluded) = 10 fits, 12 does not.
    let ok = post(json!({"keys": ["a", "b"], "max": 3, "exclude": ["web-0", "web-2"]}));
    assert_eq!(ok.status, 200, "{}", ok.text());
    post(json!({"keys": ["a", "b"], "max": 4, "exclude": ["web-0", "web-2"]}))
        .assert_error(400, "2 key(s) x 6 node(s) per key (including 2 excluded) = 12 nodes");
    // min applies to the nodes left.
    let mut few = nodes();
    few.truncate(3);
    let kr = Keyrouter::start(&services_toml(&few));
    kr.post_json("/service/web", &json!({"key": "k", "min": 2, "exclude": ["web-0", "10.0.0.1:8080"]}).to_string())
        .assert_error(400, "has 1 node(s), fewer than min (2)");
    let r = kr.post_json("/service/web", &json!({"key": "k", "min": 1, "max": 5, "exclude": ["web-0"]}).to_string());
    assert_eq!(r.json().as_array().unwrap().len(), 2);
}

#[test]
fn table_shows_zones_only_where_given() {
    let mut list = nodes();
    list.truncate(10);
    let toml = services_toml(&list) + "[[Services]]\nName = \"plain\"\nNodes = [\"a:1\", \"b:1\"]\n";
    let kr = Keyrouter::start(&toml);
    let table = kr.get("/table").json();
    let web = table["services"].as_array().unwrap().iter().find(|s| s["name"] == "web").unwrap();
    let want: Vec<Value> = list.iter().map(|n| json!(n.zone)).collect();
    assert_eq!(web["zones"], json!(want));
    assert_eq!(web["zones"][9], Value::Null);
    let plain = table["services"].as_array().unwrap().iter().find(|s| s["name"] == "plain").unwrap();
    assert!(plain.get("zones").is_none(), "{plain}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = std::process::Command::new(common::BIN).args(args).envs(env.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `keyrouter lookup --exclude ID --spread zone` answers what the server answers; its errors
/// and `--max-exclude` (and KEYROUTER_MAX_EXCLUDE) are the server's.
#[test]
fn keyrouter_lookup_takes_exclude_and_spread() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.toml");
    std::fs::write(&file, services_toml(&nodes())).unwrap();
    let f = file.to_str().unwrap();
    let kr = Keyrouter::start(&services_toml(&nodes()));
    for key in ["ryans", "user:7"] {
        let args =
            ["lookup", "--services", f, "web", key, "--max", "3", "--exclude", "web-0", "--exclude", "10.0.0.1:8080"];
        let (code, out, err) = run(&[&args[..], &["--spread", "zone"]].concat(), &[]);
        assert_eq!(code, 0, "{err}");
        let served = kr.get(&format!("/service/web?key={key}&max=3&exclude=web-0&exclude=10.0.0.1:8080&spread=zone"));
        assert_eq!(out.trim().as_bytes(), &served.body[..]);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            expected(key, 3, &["web-0", "10.0.0.1:8080"], Spread::Zone)
        );
    }
    let (code, out, _) = run(&["lookup", "--services", f, "web", "k", "--spread", "rack"], &[]);
    assert_eq!(code, 1);
    assert!(out.contains("`spread` must be \\\"zone\\\""), "{out}");
    let two = ["lookup", "--services", f, "web", "k", "--exclude", "a", "--exclude", "b"];
    let (code, out, _) = run(&[&two[..], &["--max-exclude", "1"]].concat(), &[]);
    assert_eq!(code, 1);
    assert!(out.contains("at most 1 in one lookup (--max-exclude)"), "{out}");
    let (code, out, _) = run(&two, &[("KEYROUTER_MAX_EXCLUDE", "1")]);
    assert_eq!(code, 1, "{out}");
    let (code, _, err) = run(&two, &[]);
    assert_eq!(code, 0, "{err}");
    let (_, help, _) = run(&["--help"], &[]);
    assert!(
        help.contains("--max-exclude") && help.contains("KEYROUTER_MAX_EXCLUDE") && help.contains("[default: 1000]")
    );
}

/// `check` counts the nodes of each zone; `diff` shows a node's zone change and added nodes'
/// zones.
#[test]
fn check_and_diff_show_zones() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.toml");
    std::fs::write(&old, services_toml(&nodes())).unwrap();
    let (code, out, err) = run(&["check", "--services", old.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("    zones: \"eu-1a\" 9, \"eu-1b\" 9, \"eu-1c\" 9, no zone 3\n"), "{out}");
    let mut changed = nodes();
    changed[1].zone = Some("eu-1c".into());
    changed[9].zone = Some("eu-1a".into());
    changed.push(NodeSpec::new("10.0.1.1:8080").with_zone("eu-1b"));
    let new = dir.path().join("new.toml");
    std::fs::write(&new, services_toml(&changed)).unwrap();
    let (code, out, err) = run(&["diff", old.to_str().unwrap(), new.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("  + 10.0.1.1:8080 zone \"eu-1b\"\n"), "{out}");
    assert!(out.contains("  @ 10.0.0.1:8080 zone \"eu-1b\" -> \"eu-1c\"\n"), "{out}");
    assert!(out.contains("  @ 10.0.0.9:8080 zone none -> \"eu-1a\"\n"), "{out}");
    let (_, out, _) = run(&["diff", old.to_str().unwrap(), new.to_str().unwrap(), "--format", "json"], &[]);
    let summary: Value = serde_json::from_str(&out).unwrap();
    let web = &summary["services"][0];
    assert_eq!(web["rezoned"][0], json!({"node": "10.0.0.1:8080", "old": "eu-1b", "new": "eu-1c"}));
    assert_eq!(web["new_zones"].as_array().unwrap().len(), 31);
    // Only a zone changed: plain lookups move nothing, but the files differ.
    let mut rezoned = nodes();
    rezoned[0].zone = Some("eu-9".into());
    std::fs::write(&new, services_toml(&rezoned)).unwrap();
    let (code, out, _) = run(&["diff", old.to_str().unwrap(), new.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(out.contains("first choices moved: 0.00 % (exact)") || out.contains("first choices moved: 0"), "{out}");
}
