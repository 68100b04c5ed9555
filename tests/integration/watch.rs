//! `--watch` through the real binary, the way operators change files: directories removed and
//! recreated, release symlinks swapped, links into other directories, editors writing in place,
//! busy directories and keyrouter's own log file beside the services file.

use crate::common;

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, metric, services, Keyrouter, BIN};

fn reloads(kr: &Keyrouter) -> (f64, f64) {
    let text = kr.get("/metrics").text();
    let count = |result: &str| metric(&text, &format!("keyrouter_reloads_total{{result=\"{result}\"}}")).unwrap();
    (count("success"), count("failure"))
}

/// Starts keyrouter with `--watch` on `services` (inside `dir`), waiting for the watcher.
fn start_watching(dir: tempfile::TempDir, services: PathBuf) -> Keyrouter {
    let mut cmd = Command::new(BIN);
    cmd.arg("--services").arg(&services).args(["--address", "127.0.0.1:0", "--workers", "2", "--watch"]);
    let kr = Keyrouter::spawn(cmd, dir, services);
    kr.wait_for_log("watching", 0);
    kr
}

/// Writes `content` to `path` by writing a temporary file beside it and renaming it into place.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn answer(kr: &Keyrouter, service: &str) -> serde_json::Value {
    kr.get(&format!("/service/{service}?key=k")).json()
}

fn one(service: &str, node: &str) -> String {
    services(&[(service, &[node])])
}

#[test]
fn a_directory_removed_and_recreated_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    let path = conf.join("services.toml");
    std::fs::write(&path, one("s", "old")).unwrap();
    let kr = start_watching(dir, path.clone());
    for round in 0..2 {
        let mark = kr.log().len();
        std::fs::remove_dir_all(&conf).unwrap();
        kr.wait_for_log("is gone", mark);
        // Still serving the last table; the file being gone is not a failed reload.
        assert_eq!(answer(&kr, "s").as_array().unwrap().len(), 1);
        std::fs::create_dir(&conf).unwrap();
        let node = format!("new{round}");
        std::fs::write(&path, one("s", &node)).unwrap();
        eventually("the recreated file to load", || answer(&kr, "s") == serde_json::json!([node]));
    }
    let text = kr.get("/metrics").text();
    assert_eq!(metric(&text, "keyrouter_config_last_reload_successful"), Some(1.0), "{text}");
    assert_eq!(metric(&text, r#"keyrouter_reloads_total{result="failure"}"#), Some(0.0), "{text}");
    // And writes to the new directory keep being seen.
    replace(&path, &one("s", "later"));
    eventually("a later edit", || answer(&kr, "s") == serde_json::json!(["later"]));
}

#[test]
fn a_release_symlink_swap_is_followed_and_the_old_release_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    for rel in ["rel1", "rel2"] {
        std::fs::create_dir(base.join(rel)).unwrap();
        std::fs::write(base.join(rel).join("services.toml"), one("s", rel)).unwrap();
    }
    symlink("rel1", base.join("current")).unwrap();
    let kr = start_watching(dir, base.join("current/services.toml"));
    assert_eq!(answer(&kr, "s"), serde_json::json!(["rel1"]));
    // `ln -s rel2 tmp && mv -T tmp current`
    symlink("rel2", base.join("current.tmp")).unwrap();
    std::fs::rename(base.join("current.tmp"), base.join("current")).unwrap();
    eventually("the swap to load rel2", || answer(&kr, "s") == serde_json::json!(["rel2"]));
    // Edits to the release now current count, edits to the old one do not.
    replace(&base.join("rel2/services.toml"), &one("s", "rel2-edited"));
    eventually("the edit of rel2", || answer(&kr, "s") == serde_json::json!(["rel2-edited"]));
    let before = reloads(&kr);
    std::fs::write(base.join("rel1/services.toml"), one("s", "rel1-edited")).unwrap();
    replace(&base.join("rel1/services.toml"), &one("s", "rel1-edited-again"));
    // A marker instead of a pause: an edit of the current release, after those of the old one,
    // must be the one reload that follows.
    replace(&base.join("rel2/services.toml"), &one("s", "rel2-marker"));
    eventually("the marker edit of rel2", || answer(&kr, "s") == serde_json::json!(["rel2-marker"]));
    assert_eq!(reloads(&kr), (before.0 + 1.0, before.1), "edits to the old release caused reloads");
}

#[test]
fn a_symlink_into_another_directory_reloads_on_edits_there() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    std::fs::write(b.join("real.toml"), one("s", "first")).unwrap();
    symlink("../b/real.toml", a.join("services.toml")).unwrap();
    let kr = start_watching(dir, a.join("services.toml"));
    // An editor writing in place, then one renaming into place.
    std::fs::write(b.join("real.toml"), one("s", "second")).unwrap();
    eventually("the in-place edit", || answer(&kr, "s") == serde_json::json!(["second"]));
    replace(&b.join("real.toml"), &one("s", "third"));
    eventually("the rename", || answer(&kr, "s") == serde_json::json!(["third"]));
    // Repointing the link at another file in yet another directory.
    let c = kr.dir.path().join("c");
    std::fs::create_dir(&c).unwrap();
    std::fs::write(c.join("other.toml"), one("s", "fourth")).unwrap();
    let link = kr.dir.path().join("a/services.toml");
    symlink("../c/other.toml", kr.dir.path().join("a/link.tmp")).unwrap();
    std::fs::rename(kr.dir.path().join("a/link.tmp"), &link).unwrap();
    eventually("the repointed link", || answer(&kr, "s") == serde_json::json!(["fourth"]));
    std::fs::write(c.join("other.toml"), one("s", "fifth")).unwrap();
    eventually("an edit behind the new link", || answer(&kr, "s") == serde_json::json!(["fifth"]));
}

#[test]
fn a_file_written_in_place_is_never_served_half_written() {
    let old = services(&[("s1", &["old"]), ("s2", &["old"]), ("s3", &["old"])]);
    let kr = Keyrouter::start_with(&old, &["--watch"]);
    kr.wait_for_log("watching", 0);
    let first = "[[Services]]\n  Name = \"s1\"\n  Nodes = [\"new\"]\n\n";
    let rest = services(&[("s2", &["new"]), ("s3", &["new"])]);
    for round in 0..2 {
        let path = kr.services.clone();
        let rest = rest.clone();
        let writer = std::thread::spawn(move || {
            // open('w'), the first service, a pause, the rest, close.
            let mut f = std::fs::File::create(&path).unwrap();
            f.write_all(first.as_bytes()).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(500));
            f.write_all(rest.as_bytes()).unwrap();
        });
        let started = Instant::now();
        let mut polls = 0;
        while started.elapsed() < Duration::from_millis(450) {
            let r = kr.get("/service/s2?key=k");
            assert_eq!(r.status, 200, "round {round}: the half-written file was served: {}", r.text());
            polls += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        writer.join().unwrap();
        assert!(polls >= 10, "only {polls} polls during the pause");
        eventually("the whole file", || answer(&kr, "s3") == serde_json::json!(["new"]));
        assert_eq!(answer(&kr, "s1"), serde_json::json!(["new"]));
        // Put the old file back for the second round (written in place too).
        std::fs::write(&kr.services, &old).unwrap();
        eventually("the old file", || answer(&kr, "s1") == serde_json::json!(["old"]));
    }
    assert!(!kr.log().contains("removed [\"s2\""), "{}", kr.log());
}

#[test]
fn a_busy_directory_does_not_delay_a_change_beyond_a_second() {
    let kr = Keyrouter::start_with(&one("s", "before"), &["--watch"]);
    kr.wait_for_log("watching", 0);
    let heartbeat = kr.dir.path().join("heartbeat");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beat = {
        let stop = stop.clone();
        // Beats until the change is seen (bounded: 30 s), so it never stops before.
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&heartbeat).unwrap();
            for i in 0..300 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                writeln!(f, "beat {i}").unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = reloads(&kr);
    replace(&kr.services, &one("s", "after"));
    let written = Instant::now();
    eventually("the change", || answer(&kr, "s") == serde_json::json!(["after"]));
    let took = written.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // The promise is about a second (MAX_WAIT and the settle time); the margin is for a loaded
    // machine. The heartbeat goes on until here, so quiet never came.
    assert!(took < Duration::from_secs(4), "the change took {took:?} with a heartbeat beside it");
    beat.join().unwrap();
    // The heartbeat itself never caused a reload.
    assert_eq!(reloads(&kr), (before.0 + 1.0, before.1), "{}", kr.log());
}

#[test]
fn a_file_rewritten_without_pause_is_still_loaded_within_about_a_second() {
    let kr = Keyrouter::start_with(&one("s", "start"), &["--watch"]);
    kr.wait_for_log("watching", 0);
    let path = kr.services.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // A rename into place every 50 ms until the test has its answer (at most 30 s): never
            // 100 ms of quiet.
            for i in 0..600 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                replace(&path, &one("s", &format!("burst-{i}")));
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < Duration::from_secs(20) {
        if answer(&kr, "s")[0].as_str().is_some_and(|n| n.starts_with("burst-")) {
            seen = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let took = seen.expect("nothing from the burst was loaded while it lasted");
    // The promise is about a second; the margin is for a loaded machine.
    assert!(took < Duration::from_secs(4), "the first load took {took:?}");
}

#[test]
fn keyrouters_own_log_file_beside_the_services_file_causes_no_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let services_path = dir.path().join("services.toml");
    std::fs::write(&services_path, one("s", "a")).unwrap();
    let log_path = dir.path().join("keyrouter.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(BIN)
        .arg("--services")
        .arg(&services_path)
        .args(["--address", &format!("127.0.0.1:{port}"), "--watch", "--log-level", "debug", "--workers", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(child);
    let scrape = || common::request(port, "GET", "/metrics", &[], b"").text();
    let counts = |text: &str| {
        let c = |r: &str| metric(text, &format!("keyrouter_reloads_total{{result=\"{r}\"}}")).unwrap();
        (c("success"), c("failure"))
    };
    eventually("keyrouter to serve", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    eventually("the watcher", || std::fs::read_to_string(&log_path).unwrap().contains("watching"));
    // Lookups write DEBUG lines into the watched directory.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert_eq!(common::request(port, "GET", "/service/s?key=k", &[], b"").status, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(counts(&scrape()), (0.0, 0.0), "{}", std::fs::read_to_string(&log_path).unwrap());
    // A bad file is one failed reload, not one per log line.
    replace(&services_path, "[[Services]]\nName = \"s\"\nNodes = [\n");
    eventually("the failed reload", || counts(&scrape()).1 == 1.0);
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(counts(&scrape()), (0.0, 1.0), "{}", std::fs::read_to_string(&log_path).unwrap());
    let errors = std::fs::read_to_string(&log_path).unwrap().matches("reload failed").count();
    assert_eq!(errors, 1, "{}", std::fs::read_to_string(&log_path).unwrap());
}
