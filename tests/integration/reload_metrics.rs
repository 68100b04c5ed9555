//! Reload and lookup metrics through the real binary, with the meaning Prometheus gives them:
//! a reload that finds the same table is a success, unknown services have their own series,
//! per-service series are capped, and one scrape shows one table.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, metric, services, Keyrouter};

fn scrape(kr: &Keyrouter) -> String {
    let r = kr.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

#[test]
fn the_gauge_recovers_when_the_same_good_file_comes_back() {
    let good = services(&[("s", &["a", "b"])]);
    let kr = Keyrouter::start_with(&good, &["--watch"]);
    kr.wait_for_log("watching", 0);
    let started = metric(&scrape(&kr), "keyrouter_config_last_reload_success_timestamp_seconds").unwrap();

    let mark = kr.log().len();
    kr.write_services("[[Services]]\nName = \"s\"\nNodes = [\n");
    kr.wait_for_log("file change: reload failed", mark);
    let text = scrape(&kr);
    assert_eq!(metric(&text, "keyrouter_config_last_reload_successful"), Some(0.0), "{text}");
    assert_eq!(metric(&text, r#"keyrouter_reloads_total{result="failure"}"#), Some(1.0), "{text}");

    // The timestamp has a resolution finer than this, but make the comparison unambiguous.
    std::thread::sleep(Duration::from_millis(50));
    // The very same table again: nothing to swap, but the reload succeeded.
    kr.write_services(&good);
    eventually("the gauge to return to 1", || {
        metric(&scrape(&kr), "keyrouter_config_last_reload_successful") == Some(1.0)
    });
    let text = scrape(&kr);
    assert_eq!(metric(&text, r#"keyrouter_reloads_total{result="success"}"#), Some(1.0), "{text}");
    let now = metric(&text, "keyrouter_config_last_reload_success_timestamp_seconds").unwrap();
    assert!(now > started, "success timestamp {now} did not move past {started}");
    assert!(!kr.log().contains("reloaded"), "the same table must not be swapped: {}", kr.log());
}

#[test]
fn a_service_called_unknown_does_not_merge_with_unknown_lookups() {
    let kr = Keyrouter::start(&services(&[("_unknown", &["u1"]), ("s", &["a"])]));
    assert_eq!(kr.get("/service/_unknown?key=k").status, 200);
    assert_eq!(kr.get("/service/nope?key=k").status, 404);
    assert_eq!(kr.get("/service/nope2?key=k").status, 404);
    let text = scrape(&kr);
    assert_eq!(metric(&text, r#"keyrouter_lookups_total{service="_unknown",status="2xx"}"#), Some(1.0), "{text}");
    assert_eq!(metric(&text, r#"keyrouter_lookups_total{service="_unknown",status="4xx"}"#), Some(0.0), "{text}");
    assert_eq!(metric(&text, r#"keyrouter_unknown_service_lookups_total{status="4xx"}"#), Some(2.0), "{text}");
    assert_eq!(metric(&text, r#"keyrouter_unknown_service_lookups_total{status="2xx"}"#), Some(0.0), "{text}");

    // Removing the service called `_unknown` keeps unknown lookups counted, its own included.
    kr.write_services(&services(&[("s", &["a"])]));
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", mark);
    assert_eq!(kr.get("/service/_unknown?key=k").status, 404);
    assert_eq!(kr.get("/service/nope?key=k").status, 404);
    let text = scrape(&kr);
    assert_eq!(metric(&text, r#"keyrouter_unknown_service_lookups_total{status="4xx"}"#), Some(4.0), "{text}");
    assert!(!text.contains(r#"service="_unknown""#), "the removed service's series must go: {text}");
    // Each family is declared once (a duplicate TYPE line breaks Prometheus' parser).
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert_eq!(text.matches(&format!("{line}\n")).count(), 1, "{line} twice:\n{text}");
    }
}

#[test]
fn per_service_series_are_capped_and_the_rest_aggregated() {
    let file = services(&[("a", &["a1"]), ("b", &["b1", "b2"]), ("c", &["c1"]), ("d", &["d1"])]);
    let kr = Keyrouter::start_with(&file, &["--max-service-series", "2"]);
    for name in ["a", "b", "c", "d", "d"] {
        assert_eq!(kr.get(&format!("/service/{name}?key=k")).status, 200);
    }
    let text = scrape(&kr);
    assert_eq!(metric(&text, r#"keyrouter_lookups_total{service="a",status="2xx"}"#), Some(1.0), "{text}");
    assert_eq!(metric(&text, r#"keyrouter_lookups_total{service="b",status="2xx"}"#), Some(1.0), "{text}");
    assert!(!text.contains(r#"service="c""#) && !text.contains(r#"service="d""#), "{text}");
    assert_eq!(metric(&text, r#"keyrouter_other_service_lookups_total{status="2xx"}"#), Some(3.0), "{text}");
    // Latency too: per service for the first two, the rest in one series.
    assert_eq!(metric(&text, r#"keyrouter_service_lookup_duration_seconds_count{service="a"}"#), Some(1.0), "{text}");
    assert_eq!(metric(&text, "keyrouter_other_service_lookup_duration_seconds_count"), Some(3.0), "{text}");
    assert_eq!(text.matches("keyrouter_service_lookup_duration_seconds_count{").count(), 2, "{text}");
    assert_eq!(metric(&text, r#"keyrouter_service_nodes{service="b"}"#), Some(2.0), "{text}");
    assert_eq!(metric(&text, "keyrouter_services"), Some(4.0), "{text}");
    assert_eq!(metric(&text, "keyrouter_nodes"), Some(5.0), "{text}");
    assert_eq!(metric(&text, "keyrouter_service_series_limited"), Some(1.0), "{text}");

    // The environment sets it too.
    let mut cmd = std::process::Command::new(common::BIN);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("services.toml");
    std::fs::write(&path, &file).unwrap();
    cmd.arg("--services").arg(&path).args(["--address", "127.0.0.1:0"]).env("KEYROUTER_MAX_SERVICE_SERIES", "1");
    let kr = Keyrouter::spawn(cmd, dir, path);
    let text = scrape(&kr);
    assert_eq!(text.matches("keyrouter_service_nodes{").count(), 1, "{text}");
}

#[test]
fn counts_survive_a_reload_that_keeps_the_service() {
    let kr = Keyrouter::start(&services(&[("s", &["a"]), ("t", &["b"])]));
    for _ in 0..3 {
        assert_eq!(kr.get("/service/s?key=k").status, 200);
    }
    kr.write_services(&services(&[("s", &["a", "c"])]));
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", mark);
    assert_eq!(kr.get("/service/s?key=k").status, 200);
    let text = scrape(&kr);
    assert_eq!(metric(&text, r#"keyrouter_lookups_total{service="s",status="2xx"}"#), Some(4.0), "{text}");
    assert!(!text.contains(r#"service="t""#), "{text}");
}

/// What one scrape says about the table: services, the table fingerprint, the set of services
/// with series. All must belong to the same table.
fn table_view(text: &str) -> (usize, String, Vec<String>) {
    let services = metric(text, "keyrouter_services").unwrap() as usize;
    let fp = text
        .lines()
        .find_map(|l| l.strip_prefix("keyrouter_table_info{fingerprint=\"")?.split('"').next())
        .unwrap()
        .to_string();
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("keyrouter_service_nodes{service=\"")?.split('"').next())
        .map(str::to_string)
        .collect();
    names.sort();
    (services, fp, names)
}

#[test]
fn one_scrape_shows_one_table_while_tables_flip() {
    let small = services(&[("a", &["a1"]), ("b", &["b1"])]);
    let large = services(&[("a", &["a1"]), ("b", &["b1", "b2"]), ("c", &["c1"])]);
    let kr = Arc::new(Keyrouter::start(&small));
    let (_, small_fp, small_names) = table_view(&scrape(&kr));
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicUsize::new(0));
    let scraper = {
        let (kr, stop, scrapes) = (kr.clone(), stop.clone(), scrapes.clone());
        std::thread::spawn(move || {
            let mut large_fp: Option<String> = None;
            while !stop.load(Ordering::Relaxed) {
                let (n, fp, names) = table_view(&scrape(&kr));
                if fp == small_fp {
                    assert_eq!((n, &names), (2, &small_names), "a scrape mixed two tables");
                } else {
                    assert_eq!((n, names.as_slice()), (3, &["a", "b", "c"].map(String::from)[..]), "mixed scrape");
                    assert_eq!(large_fp.get_or_insert(fp.clone()), &fp, "a third table?");
                }
                scrapes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let started = Instant::now();
    let mut flips = 0;
    while started.elapsed() < Duration::from_secs(3) {
        kr.write_services(if flips % 2 == 0 { &large } else { &small });
        kr.signal(libc::SIGHUP);
        flips += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    scraper.join().expect("a scrape mixed two tables");
    assert!(scrapes.load(Ordering::Relaxed) > 20, "only {} scrapes", scrapes.load(Ordering::Relaxed));
}
