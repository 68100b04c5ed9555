//! SIGHUP reload through the real binary: good, bad and vanished files, removals, and lookups
//! hammered while the table flips.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, expected_json, services, Keyrouter};

#[test]
fn good_reload_adds_changes_and_removes_services() {
    let kr = Keyrouter::start(&services(&[("bar", &["b1", "b2"]), ("gone", &["g1"])]));
    assert_eq!(kr.get("/service").json(), serde_json::json!(["bar", "gone"]));
    kr.write_services(&services(&[("bar", &["b1", "b2", "b3"]), ("new", &["n1"])]));
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", mark);
    assert!(
        kr.log()[mark..].contains(r#"added ["new"], removed ["gone"], changed ["bar" (+1 -0 nodes, 33.33 % moved)]"#),
        "{}",
        kr.log()
    );
    assert_eq!(kr.get("/service").json(), serde_json::json!(["bar", "new"]));
    kr.get("/service/gone?key=k").assert_error(404, "unknown service");
    assert_eq!(kr.get("/service/bar?key=k&max=3").json(), expected_json(&["b1", "b2", "b3"], "k", 1, 3));
}

#[test]
fn bad_or_vanished_file_keeps_the_old_table() {
    let kr = Keyrouter::start(&services(&[("bar", &["b1", "b2"])]));
    let before = kr.get("/service/bar?key=k&max=2").json();
    for (what, content) in [
        ("syntax", Some("[[Services]\nName = \"bar\"\n")),
        ("types", Some("[[Services]]\nName = \"bar\"\nNodes = [1, 2]\n")),
        ("unknown key", Some("[[Services]]\nName = \"bar\"\nNode = [\"x\"]\n")),
        ("vanished", None),
    ] {
        match content {
            Some(c) => kr.write_services(c),
            None => std::fs::remove_file(&kr.services).unwrap(),
        }
        let mark = kr.log().len();
        kr.signal(libc::SIGHUP);
        kr.wait_for_log("reload failed, still serving the previous table", mark);
        let line = &kr.log()[mark..];
        let path = kr.services.display().to_string();
        assert!(line.contains(&path), "{what}: the error names the file: {line}");
        if what == "syntax" {
            assert!(line.contains(&format!("{path}:1:")), "{what}: line and column: {line}");
        }
        assert_eq!(kr.get("/service/bar?key=k&max=2").json(), before, "{what}");
        assert_eq!(kr.get("/service").json(), serde_json::json!(["bar"]), "{what}");
    }
    // And a good file after all that is picked up.
    kr.write_services(&services(&[("bar", &["b9"])]));
    kr.signal(libc::SIGHUP);
    eventually("the good file", || kr.get("/service/bar?key=k").json() == serde_json::json!(["b9"]));
}

#[test]
fn removing_a_node_moves_only_its_keys() {
    let nodes = ["n1:80", "n2:80", "n3:80", "n4:80", "n5:80"];
    let kr = Keyrouter::start(&services(&[("s", &nodes)]));
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    let before: Vec<String> =
        keys.iter().map(|k| kr.get(&format!("/service/s?key={k}")).json()[0].as_str().unwrap().to_string()).collect();
    kr.write_services(&services(&[("s", &["n1:80", "n2:80", "n4:80", "n5:80"])]));
    kr.signal(libc::SIGHUP);
    eventually("n3 to leave", || kr.get("/service/s?key=x&min=0&max=9").json().as_array().unwrap().len() == 4);
    let mut moved = 0;
    for (k, b) in keys.iter().zip(&before) {
        let a = kr.get(&format!("/service/s?key={k}")).json()[0].as_str().unwrap().to_string();
        if a != *b {
            assert_eq!(b, "n3:80", "{k} moved from {b} to {a} though {b} is still there");
            moved += 1;
        }
    }
    assert!(moved > 20, "n3 owned only {moved} of 300 keys?");
}

#[test]
fn lookups_never_fail_or_mix_tables_while_reloading() {
    let a: &[&str] = &["a1:80", "a2:80", "a3:80", "a4:80"];
    let b: &[&str] = &["b1:80", "b2:80", "b3:80", "a1:80"];
    let file_a = services(&[("s", a)]);
    let file_b = services(&[("s", b)]);
    let kr = Arc::new(Keyrouter::start(&file_a));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (kr, stop, done) = (kr.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("t{t}-{i}");
                    let r = if i % 2 == 0 {
                        kr.get(&format!("/service/s?key={key}&max=3"))
                    } else {
                        kr.post_json("/service/s", &format!(r#"{{"key":"{key}","max":3}}"#))
                    };
                    assert_eq!(r.status, 200, "{}", r.text());
                    let got = r.json();
                    assert!(
                        got == expected_json(a, &key, 1, 3) || got == expected_json(b, &key, 1, 3),
                        "{key}: mixed answer {got}"
                    );
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    // Each flip waits for the previous reload to be logged (not for a fixed time), until there
    // were at least 20 flips and 200 lookups, within a bounded time.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut flips = 0;
    while (flips < 20 || done.load(Ordering::Relaxed) < 200) && Instant::now() < deadline {
        kr.write_services(if flips % 2 == 0 { &file_b } else { &file_a });
        let mark = kr.log().len();
        kr.signal(libc::SIGHUP);
        kr.wait_for_log("SIGHUP: reloaded", mark);
        flips += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a lookup failed during reloads");
    }
    assert!(done.load(Ordering::Relaxed) > 100, "only {} lookups", done.load(Ordering::Relaxed));
    assert!(flips >= 20);
    assert_eq!(kr.log().matches("reload failed").count(), 0, "{}", kr.log());
}

/// The value of `keyrouter_reloads_total{result="success"}`.
fn successful_reloads(kr: &Keyrouter) -> u64 {
    let text = kr.get("/metrics").text();
    let series = r#"keyrouter_reloads_total{result="success"} "#;
    let line = text.lines().find_map(|l| l.strip_prefix(series)).unwrap_or_else(|| panic!("no {series}in {text}"));
    line.parse().unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn a_burst_of_sighups_coalesces_and_the_last_file_wins() {
    // Files big enough that one reload takes far longer than the whole burst (the debug binary
    // parses 50 000 nodes in a few hundred milliseconds), written beforehand so that the burst
    // itself is only renames and kill(2) calls.
    const SIGNALS: usize = 21;
    const NODES: usize = 50_000;
    let kr = Keyrouter::start(&services(&[("s", &["one"])]));
    let staged: Vec<std::path::PathBuf> = (0..SIGNALS - 1)
        .map(|i| {
            let nodes: Vec<String> = (0..NODES).map(|j| format!("n{i}-{j}.example:8080")).collect();
            let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
            let path = kr.dir.path().join(format!("staged-{i}.toml"));
            std::fs::write(&path, services(&[("s", &nodes)])).unwrap();
            path
        })
        .collect();
    let last = kr.dir.path().join("staged-last.toml");
    std::fs::write(&last, services(&[("s", &["last"])])).unwrap();
    assert_eq!(successful_reloads(&kr), 0);

    let burst = Instant::now();
    for path in staged.iter().chain([&last]) {
        std::fs::rename(path, &kr.services).unwrap();
        kr.signal(libc::SIGHUP);
    }
    let burst = burst.elapsed();

    eventually("the last file", || kr.get("/service/s?key=k").json() == serde_json::json!(["last"]));
    // Reloads still queued may follow: wait until the count stays put for half a second.
    let mut reloads = successful_reloads(&kr);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = successful_reloads(&kr);
        if now == reloads || Instant::now() > deadline {
            break;
        }
        reloads = now;
    }
    assert!(reloads >= 1, "no reload at all");
    assert!(
        (reloads as usize) < SIGNALS,
        "{SIGNALS} SIGHUPs sent within {burst:?} caused {reloads} reloads: they did not coalesce\n{}",
        kr.log()
    );
    assert_eq!(kr.log().matches("SIGHUP: reloaded").count(), reloads as usize, "{}", kr.log());
    assert_eq!(kr.log().matches("reload failed").count(), 0, "{}", kr.log());
    assert_eq!(kr.get("/service/s?key=k&min=0&max=9").json(), serde_json::json!(["last"]));
    eprintln!("{SIGNALS} SIGHUPs within {burst:?}: {reloads} reload(s)");
}
