//! Batch lookups, weighted nodes, table fingerprints and the offline lookup, through the real
//! binary.

use crate::common;

use std::process::Command;

use common::{services, Keyrouter, BIN};

const NODES: &[&str] = &["n1:80", "n2:80", "n3:80", "n4:80", "n5:80"];

#[test]
fn batch_answers_equal_single_answers() {
    let kr = Keyrouter::start(&services(&[("s", NODES)]));
    let keys: Vec<String> = (0..500).map(|i| format!("user-{i}")).collect();
    let body = serde_json::json!({ "keys": keys, "min": 1, "max": 3 }).to_string();
    let r = kr.post_json("/service/s", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let batch = r.json();
    assert_eq!(batch.as_object().unwrap().len(), 500);
    for key in keys.iter().step_by(25) {
        let single = kr.get(&format!("/service/s?key={key}&min=1&max=3")).json();
        assert_eq!(batch[key], single, "{key}");
    }
    // Order of the answer follows the request; repeated keys appear once.
    let r = kr.post_json("/service/s", r#"{"keys":["b","a","b"],"max":2}"#);
    let text = r.text();
    assert!(text.starts_with(r#"{"b":["#) && text.matches("\"b\"").count() == 1, "{text}");
    // Forms can batch with repeated `keys`.
    let r = kr.get("/service/s?keys=a&keys=b&max=2");
    assert_eq!(r.json().as_object().unwrap().len(), 2);
}

#[test]
fn batch_errors() {
    let kr = Keyrouter::start(&services(&[("s", NODES)]));
    kr.post_json("/service/s", r#"{"key":"a","keys":["b"]}"#).assert_error(400, "not both");
    kr.post_json("/service/s", r#"{"keys":[]}"#).assert_error(400, "must not be empty");
    kr.post_json("/service/s", r#"{"keys":["a",""]}"#).assert_error(400, "empty key");
    kr.post_json("/service/s", r#"{"keys":"a"}"#).assert_error(400, "`keys` must be an array of strings");
    kr.post_json("/service/s", r#"{"keys":["a",5]}"#).assert_error(400, "`keys` must be an array of strings; item 1");
    let many: Vec<String> = (0..=keyrouter::request::MAX_BATCH_KEYS).map(|i| i.to_string()).collect();
    kr.post_json("/service/s", &serde_json::json!({ "keys": many }).to_string()).assert_error(400, "too many keys");
    kr.post_json("/service/s", r#"{"keys":["a"],"min":6}"#).assert_error(400, "fewer than min");
}

#[test]
fn weighted_nodes_through_the_server() {
    let toml = "[[Services]]\nName = \"w\"\nNodes = [\"light:80\", { Node = \"heavy:80\", Weight = 9 }]\n";
    let kr = Keyrouter::start(toml);
    let mut heavy = 0;
    for i in 0..400 {
        if kr.get(&format!("/service/w?key=k{i}")).json()[0] == "heavy:80" {
            heavy += 1;
        }
    }
    // Expected 360 of 400 (weight 9 of 10); allow for sampling noise.
    assert!((330..=390).contains(&heavy), "heavy won {heavy} of 400");
    let table = kr.get("/table").json();
    assert_eq!(table["services"][0]["weights"], serde_json::json!([1.0, 9.0]));
}

#[test]
fn fingerprints_identify_the_table_not_the_file_order() {
    let a = Keyrouter::start(&services(&[("s", NODES), ("t", &["x"])]));
    let mut reversed: Vec<&str> = NODES.to_vec();
    reversed.reverse();
    let b = Keyrouter::start(&services(&[("t", &["x"]), ("s", &reversed)]));
    let (ta, tb) = (a.get("/table").json(), b.get("/table").json());
    assert_eq!(ta["fingerprint"], tb["fingerprint"]);
    assert_eq!(ta["services"][0]["fingerprint"], tb["services"][0]["fingerprint"]);
    assert_eq!(ta["services"][0]["name"], "s");
    assert_eq!(ta["services"][0]["nodes"], serde_json::json!(NODES));
    let header = a.get("/service/s?key=k").header("keyrouter-fingerprint").unwrap().to_string();
    assert_eq!(serde_json::json!(header), ta["services"][0]["fingerprint"]);
    let metrics = a.get("/metrics").text();
    assert!(
        metrics.contains(&format!("keyrouter_service_info{{fingerprint=\"{header}\",service=\"s\"}} 1")),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("keyrouter_table_info{{fingerprint={}}} 1", ta["fingerprint"])), "{metrics}");

    // A different node set is a different fingerprint, and a reload updates it.
    a.write_services(&services(&[("s", &NODES[1..]), ("t", &["x"])]));
    a.signal(libc::SIGHUP);
    common::eventually("the new fingerprint", || a.get("/table").json()["fingerprint"] != ta["fingerprint"]);
    assert_ne!(a.get("/table").json()["services"][0]["fingerprint"], ta["services"][0]["fingerprint"]);
    assert_eq!(a.get("/table").json()["services"][1]["fingerprint"], ta["services"][1]["fingerprint"]);
}

fn offline(file: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).arg("--services").arg(file).arg("lookup").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn offline_lookup_answers_like_the_server() {
    let kr = Keyrouter::start(&services(&[("s", NODES), ("empty", &[])]));
    for (query, args) in [
        ("key=ryans&min=1&max=3", vec!["s", "ryans", "--min", "1", "--max", "3"]),
        ("key=ryans", vec!["s", "ryans"]),
        ("key=k%20with%20space&max=9&min=0", vec!["s", "k with space", "--max", "9", "--min", "0"]),
    ] {
        let (code, out, err) = offline(&kr.services, &args);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, kr.get(&format!("/service/s?{query}")).text(), "{args:?}");
    }
    for (query, args) in [
        ("/service/nope?key=a", vec!["nope", "a"]),
        ("/service/s?key=a&min=3&max=1", vec!["s", "a", "--min", "3", "--max", "1"]),
        ("/service/s?key=a&min=-1", vec!["s", "a", "--min", "-1"]),
        ("/service/s?key=a&max=x", vec!["s", "a", "--max", "x"]),
        ("/service/empty?key=a", vec!["empty", "a"]),
        ("/service/s?key=", vec!["s", ""]),
    ] {
        let (code, out, err) = offline(&kr.services, &args);
        assert_eq!(code, 1, "{args:?}: {out}");
        let served = kr.get(query);
        assert!(served.status >= 400);
        assert_eq!(out, served.text(), "{args:?}");
        assert!(err.contains(served.json()["error"].as_str().unwrap()), "{err}");
    }
    let (code, _, err) = offline(std::path::Path::new("/nonexistent.toml"), &["s", "a"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent.toml: cannot read services file"), "{err}");
}
