//! What identifies a table, through the real binary: one weight per node, and fingerprints that
//! follow the answers (all-equal weights answer, and fingerprint, like no weights).

use crate::common;

use std::process::Command;

use common::{services, Keyrouter, BIN};

#[test]
fn a_node_listed_twice_with_two_weights_is_a_config_error_naming_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.toml");
    // Both orders: the answer must never depend on which listing comes first.
    for (content, here, there) in [
        ("[[Services]]\nName = \"s\"\nNodes = [\"a\", \"b\", { Node = \"a\", Weight = 5 }]\n", "3:20", "3:10"),
        ("[[Services]]\nName = \"s\"\nNodes = [{ Node = \"a\", Weight = 5 }, \"b\", \"a\"]\n", "3:43", "3:10"),
    ] {
        std::fs::write(&file, content).unwrap();
        let out = Command::new(BIN).arg("check").arg("--services").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&format!("services.toml:{here}: node \"a\" is listed with Weight")), "{stderr}");
        assert!(stderr.contains(&format!("at {here} and with Weight")), "{stderr}");
        assert!(stderr.contains(&format!("at {there}; a node has one weight")), "{stderr}");
        // Serving refuses it too.
        let out = Command::new(BIN).arg("--services").arg(&file).args(["--address", "127.0.0.1:0"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // An exact duplicate is still only removed, with a warning.
    std::fs::write(&file, "[[Services]]\nName = \"s\"\nNodes = [\"a\", { Node = \"a\", Weight = 1 }, \"b\"]\n")
        .unwrap();
    let out = Command::new(BIN).arg("check").arg("--services").arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("OK: 1 service, 2 nodes") && stdout.contains("removed 1 duplicate"), "{stdout}");
}

#[test]
fn a_reload_with_two_weights_for_a_node_keeps_the_table() {
    let kr = Keyrouter::start(&services(&[("s", &["a", "b"])]));
    kr.write_services("[[Services]]\nName = \"s\"\nNodes = [\"a\", \"b\", { Node = \"b\", Weight = 2 }]\n");
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reload failed", mark);
    assert!(kr.log()[mark..].contains("node \"b\" is listed with Weight 2 at 3:20"), "{}", kr.log());
    assert_eq!(kr.get("/service/s?key=k&max=2").json().as_array().unwrap().len(), 2);
}

#[test]
fn equal_weights_have_the_fingerprint_of_no_weights_and_show_in_table() {
    let nodes = ["n1:80", "n2:80", "n3:80", "n4:80"];
    let plain = Keyrouter::start(&services(&[("s", &nodes)]));
    let weighted: String = format!(
        "[[Services]]\nName = \"s\"\nNodes = [{}]\n",
        nodes.iter().map(|n| format!("{{ Node = {n:?}, Weight = 2.0 }}")).collect::<Vec<_>>().join(", ")
    );
    let twos = Keyrouter::start(&weighted);
    let (tp, tw) = (plain.get("/table").json(), twos.get("/table").json());
    assert_eq!(tp["fingerprint"], tw["fingerprint"], "{tp} vs {tw}");
    assert_eq!(tp["services"][0]["fingerprint"], tw["services"][0]["fingerprint"]);
    // /table shows the weights the file set, and hides the default.
    assert_eq!(tw["services"][0]["weights"], serde_json::json!([2.0, 2.0, 2.0, 2.0]));
    assert!(tp["services"][0].get("weights").is_none(), "{tp}");
    // And they do answer alike, header included.
    for i in 0..200 {
        let path = format!("/service/s?key=key-{i}&max=4");
        let (a, b) = (plain.get(&path), twos.get(&path));
        assert_eq!(a.json(), b.json(), "{path}");
        assert_eq!(a.header("keyrouter-fingerprint"), b.header("keyrouter-fingerprint"));
    }
    // Weights that differ answer differently, and so fingerprint differently.
    let mixed = Keyrouter::start(&weighted.replacen("Weight = 2.0", "Weight = 3.0", 1));
    assert_ne!(mixed.get("/table").json()["fingerprint"], tp["fingerprint"]);
}
