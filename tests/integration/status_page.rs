//! The status page (`GET /`, `/status`), through the real binary: first over plain HTTP (headers,
//! content negotiation, methods, escaping in the raw HTML, size bounds), then in a real browser,
//! headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`; `.ci/test`
//! installs them, and without them the browser test is skipped, or fails under
//! `KEYROUTER_TEST_ALL=1`): every service and node shows as text and nothing a hostile name
//! carries runs, the bars' shares are the weights', the lookup form answers what the API answers,
//! and a SIGHUP shows the new fingerprint after a refresh. Screenshots go to `target/`; with
//! `KEYROUTER_UPDATE_SCREENSHOT=1` the one of the shipped example file also goes to
//! `deploy/status-page.png`, the one the documentation shows.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{Keyrouter, Response};
use serde_json::{json, Value};

/// A service name a Consul catalog may well hold: markup, both quotes, an emoji.
const HOSTILE: &str = r#"<script>window.__pwned=1;alert(1)</script> "dq" 'sq' 🚀"#;
/// A node that would run script if it were ever taken as HTML.
const HOSTILE_NODE: &str = r#"<img src=x onerror="window.__pwned=2">:80"#;

/// Services with and without weights, and the hostile one: `(name, [(node, weight)])`.
fn catalog(extra_cache_node: bool) -> Vec<(&'static str, Vec<(&'static str, f64)>)> {
    let mut cache = vec![("cache-a:6379", 1.0), ("cache-b:6379", 2.0), ("cache-c:6379", 1.0), ("cache-d:6379", 4.0)];
    if extra_cache_node {
        cache.push(("cache-e:6379", 2.0));
    }
    vec![
        ("bar", vec![("bar1:8080", 1.0), ("bar2:8080", 1.0), ("bar3:8080", 1.0)]),
        ("cache", cache),
        (HOSTILE, vec![(HOSTILE_NODE, 3.0), ("node \"q\" 'x' 🦀:1", 1.0)]),
    ]
}

fn toml_of(catalog: &[(&str, Vec<(&str, f64)>)]) -> String {
    let mut s = String::new();
    for (name, nodes) in catalog {
        let nodes: Vec<String> =
            nodes.iter().map(|(n, w)| format!("{{ Node = {}, Weight = {w} }}", json!(n))).collect();
        s += &format!("[[Services]]\n  Name = {}\n  Nodes = [{}]\n\n", json!(name), nodes.join(", "));
    }
    s
}

fn accept(kr: &Keyrouter, path: &str, accept: &str) -> Response {
    kr.request("GET", path, &[("Accept", accept)], b"")
}

// ---- plain HTTP --------------------------------------------------------------------------------

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn assert_hardened(r: &Response) {
    assert_eq!(r.header("content-security-policy"), Some(CSP), "{:?}", r.headers);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[test]
fn the_page_is_self_contained_small_and_locked_down() {
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/services.example.toml"));
    let kr = Keyrouter::start(&example.unwrap());
    for path in ["/", "/status"] {
        let r = accept(&kr, path, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_hardened(&r);
        let html = r.text();
        assert!(r.body.len() < 64 * 1024, "{path}: {} bytes", r.body.len());
        // Nothing from elsewhere and nothing inline: two scripts (the form, the traffic view)
        // and one style sheet, all ours.
        assert_eq!(html.matches("<script").count(), 2, "{html}");
        assert!(html.contains(r#"<script src="/status.js" defer></script>"#));
        assert!(html.contains(r#"<script src="/status/traffic.js" defer></script>"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/status.css">"#));
        for banned in ["http://", "https://", "style=", "<style", " on", "javascript:"] {
            assert!(!html.contains(banned), "{path} contains {banned:?}");
        }
        let fingerprint = kr.get("/table").json()["fingerprint"].as_str().unwrap().to_string();
        assert!(html.contains(&format!(r#"<p class="fingerprint" id="fingerprint">{fingerprint}</p>"#)));
        assert!(html.contains(env!("CARGO_PKG_VERSION")));
        // Every input has a label.
        for id in ["lookup-service", "lookup-key", "lookup-min", "lookup-max", "lookup-exclude", "lookup-spread"] {
            assert!(html.contains(&format!(r#"<label for="{id}">"#)) && html.contains(&format!(r#"id="{id}""#)));
        }
    }
    for (path, kind) in [("/status.js", "text/javascript; charset=utf-8"), ("/status.css", "text/css; charset=utf-8")] {
        let r = kr.get(path);
        assert_eq!((r.status, r.header("content-type")), (200, Some(kind)), "{path}");
        assert_hardened(&r);
    }
    for path in ["/status.js", "/status/traffic.js"] {
        let js = kr.get(path).text();
        assert!(!js.contains("innerHTML") && js.contains("textContent"), "{path}: data must enter the page as text");
    }
}

#[test]
fn slash_answers_json_clients_with_an_index_and_everyone_else_with_the_page() {
    let kr = Keyrouter::start(&common::services(&[("bar", &["b1"])]));
    for json_accept in ["application/json", "application/json, text/plain, */*", "text/html;q=0.5, application/json"] {
        let r = accept(&kr, "/", json_accept);
        assert_eq!(r.status, 200, "{json_accept}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{json_accept}");
        assert_eq!(r.header("vary"), Some("Accept"));
        let index = r.json();
        assert_eq!(index["version"], env!("CARGO_PKG_VERSION"));
        for path in ["/service/{name}", "/table", "/status", "/metrics", "/healthz", "/readyz", "/openapi.yaml"] {
            assert!(index["endpoints"][path].is_string(), "{path} missing from {index}");
        }
    }
    for html_accept in ["*/*", "text/html", "text/html, application/json"] {
        let r = accept(&kr, "/", html_accept);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"), "{html_accept}");
    }
    assert_eq!(kr.get("/").header("content-type"), Some("text/html; charset=utf-8"), "no Accept: HTML");
    // /status is always the page.
    assert_eq!(accept(&kr, "/status", "application/json").header("content-type"), Some("text/html; charset=utf-8"));
}

#[test]
fn head_works_and_other_methods_get_405_with_allow() {
    let kr = Keyrouter::start(&common::services(&[("bar", &["b1"])]));
    for path in ["/", "/status", "/status.js", "/status.css"] {
        let r = kr.request("HEAD", path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body.is_empty(), "HEAD {path} has a body");
        assert!(r.header("content-type").is_some());
        for method in ["POST", "PUT", "DELETE"] {
            let r = kr.request(method, path, &[], b"");
            r.assert_error(405, method);
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {path}");
        }
    }
}

#[test]
fn hostile_names_and_errors_are_escaped_and_a_failed_reload_shows_why() {
    let kr = Keyrouter::start(&toml_of(&catalog(false)));
    let html = kr.get("/status").text();
    assert_eq!(html.matches("<script").count(), 2, "only the page's own script tags");
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;script&gt;window.__pwned=1;alert(1)&lt;/script&gt; &quot;dq&quot; &#39;sq&#39; 🚀"));
    assert!(html.contains("&lt;img src=x onerror=&quot;window.__pwned=2&quot;&gt;:80"));
    assert!(html.contains(r#"<p id="reload-result" class="result none">"#), "no reload yet");
    let before = kr.get("/table").json()["fingerprint"].clone();

    // A file refused with a message that quotes a hostile node: the old table keeps serving and
    // the page says why, escaped.
    let bad = r#"[[Services]]
  Name = "x"
  Nodes = [{ Node = "<b>dup</b>", Weight = 5 }, { Node = "<b>dup</b>", Weight = 1 }]
"#;
    let at = kr.log().len();
    kr.write_services(bad);
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reload failed", at);
    let html = kr.get("/status").text();
    assert!(html.contains(r#"<p id="reload-result" class="result failed"><strong>FAILED</strong>"#), "{html}");
    let error = html.split(r#"<pre id="reload-error" class="error">"#).nth(1).unwrap().split("</pre>").next().unwrap();
    assert!(error.contains("node &quot;&lt;b&gt;dup&lt;/b&gt;&quot; is listed with Weight"), "{error}");
    assert!(!html.contains("<b>"));
    assert_eq!(kr.get("/table").json()["fingerprint"], before, "the old table still serves");
    assert!(html.contains(&format!(r#"id="fingerprint">{}</p>"#, before.as_str().unwrap())));
}

#[test]
fn a_huge_table_gives_a_bounded_page() {
    // One service of 10 000 nodes, one with a name of 5 000 characters and a node of 100 000,
    // and 2 000 small ones: the page shows the first 50 services, 25 nodes of each and 200
    // characters of a name, and says how many more there are.
    let mut toml = String::from("[[Services]]\n  Name = \"aaa-big\"\n  Nodes = [");
    toml += &(0..10_000).map(|i| format!("\"big-{i:05}.example:8080\"")).collect::<Vec<_>>().join(", ");
    toml += "]\n\n";
    toml +=
        &format!("[[Services]]\n  Name = \"aab-{}\"\n  Nodes = [\"{}\"]\n\n", "n".repeat(5_000), "x".repeat(100_000));
    for i in 0..2_000 {
        toml += &format!("[[Services]]\n  Name = \"svc-{i:04}\"\n  Nodes = [\"n{i}:1\"]\n\n");
    }
    let kr = Keyrouter::start(&toml);
    let started = Instant::now();
    let r = kr.get("/status");
    let elapsed = started.elapsed();
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(r.body.len() < 128 * 1024, "{} bytes", r.body.len());
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(html.matches(r#"<section class="service""#).count(), 50);
    assert!(html.contains("1952 more not shown"), "services beyond the first 50");
    assert!(!html.contains(&"x".repeat(201)) && html.contains(&format!("{}…", "x".repeat(200))), "a long node is cut");
    assert!(!html.contains(&"n".repeat(201)), "a long name is cut");
    assert!(html.contains("<td>9975 more nodes</td>"), "nodes beyond the first 25");
    assert_eq!(html.matches(r#"<tr class="node""#).count(), 25 + 1 + 48);
    assert!(html.contains(r#"data-share="0.0001"><td class="name">big-00000.example:8080</td>"#));
    eprintln!("status page of 2002 services and 12001 nodes: {} bytes in {elapsed:?}", r.body.len());
}

// ---- in a browser ------------------------------------------------------------------------------

/// Cargo's target directory (where the screenshots go, so a test run leaves the tree as it was).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp is in the target directory").to_path_buf()
}

/// Polls `f` for up to 10 s.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Submits the lookup form as a user would and returns what it shows: the nodes listed, the
/// error message and the raw body.
fn use_form(b: &Browser, service: &str, key: &str, min: &str, max: &str) -> (Vec<String>, String, String) {
    b.script("document.getElementById('lookup-result').hidden = true;", json!([]));
    // ChromeDriver types only characters of the Basic Multilingual Plane: names beyond it are set.
    match service.chars().all(|c| (c as u32) < 0x10000) {
        true => b.type_into("#lookup-service", service),
        false => {
            b.script("document.getElementById('lookup-service').value = arguments[0];", json!([service]));
        }
    }
    b.type_into("#lookup-min", min);
    b.type_into("#lookup-max", max);
    // The key last, ending with Enter: the form works from the keyboard.
    b.type_into("#lookup-key", &format!("{key}\u{E007}"));
    until("the form's answer", || {
        b.script(
            "const r = document.getElementById('lookup-result'); return !r.hidden && !r.hasAttribute('aria-busy');",
            json!([]),
        ) == json!(true)
    });
    let nodes = b.find_all("#lookup-nodes li").iter().map(|e| b.text(e)).collect();
    let error = b.script("return document.getElementById('lookup-error').textContent;", json!([]));
    let body = b.script("return document.getElementById('lookup-body').textContent;", json!([]));
    (nodes, error.as_str().unwrap().to_string(), body.as_str().unwrap().to_string())
}

/// The same lookup straight from the API.
fn api_lookup(kr: &Keyrouter, service: &str, key: &str, min: &str, max: &str) -> Response {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let mut query = format!("key={}", utf8_percent_encode(key, NON_ALPHANUMERIC));
    for (field, value) in [("min", min), ("max", max)] {
        if !value.is_empty() {
            query += &format!("&{field}={value}");
        }
    }
    kr.get(&format!("/service/{}?{query}", utf8_percent_encode(service, NON_ALPHANUMERIC)))
}

#[test]
fn in_a_browser_the_page_shows_the_table_safely_and_its_form_answers_as_the_api_does() {
    let catalog0 = catalog(false);
    let kr = Keyrouter::start(&toml_of(&catalog0));
    let Some(b) = Browser::start() else { return };
    let url = format!("http://127.0.0.1:{}/", kr.port);
    b.goto(&url);
    assert_eq!(b.call("GET", "/title", None), "keyrouter status");

    // Nothing the hostile name carries ran: no flag, no alert.
    assert_eq!(b.script("return window.__pwned === undefined;", json!([])), json!(true));
    let alert = b.try_call("GET", "/alert/text", None).expect_err("an alert is open");
    assert_eq!(alert["error"], "no such alert", "{alert}");

    // Every service and node is on the page as text; the bars' shares are the weights'.
    let table = kr.get("/table").json();
    assert_eq!(b.text_of("#fingerprint"), table["fingerprint"].as_str().unwrap());
    let sections = b.find_all("section.service");
    assert_eq!(sections.len(), catalog0.len());
    for (name, nodes) in &catalog0 {
        let heading = b.find_all("section.service h3").into_iter().find(|h| b.text(h) == *name);
        assert!(heading.is_some(), "no heading reads {name:?}");
        let total: f64 = nodes.iter().map(|(_, w)| w).sum();
        let rows = b.script(
            "return Array.from(document.querySelectorAll('section.service')).filter(s => s.dataset.service === arguments[0])\
             .flatMap(s => Array.from(s.querySelectorAll('tr.node'))).map(r => [r.cells[0].textContent, Number(r.dataset.share), \
             r.querySelector('meter').value, r.cells[2].textContent]);",
            json!([name]),
        );
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), nodes.len(), "{name}: {rows:?}");
        let mut last = f64::INFINITY;
        for row in rows {
            let (node, share, meter) = (row[0].as_str().unwrap(), row[1].as_f64().unwrap(), row[2].as_f64().unwrap());
            let weight = nodes.iter().find(|(n, _)| *n == node).unwrap_or_else(|| panic!("{node:?} not in {name}")).1;
            assert!((share - weight / total).abs() < 1e-12, "{name} {node}: {share} vs {}", weight / total);
            assert!((meter - share).abs() < 1e-9, "{name} {node}: the bar shows {meter}");
            let percent: f64 = row[3].as_str().unwrap().trim_end_matches(" %").parse().unwrap();
            assert!((percent - 100.0 * weight / total).abs() <= 0.005 + 1e-9, "{name} {node}: {percent} %");
            assert!(share <= last, "{name}: not sorted largest first");
            last = share;
        }
        // The node cells' rendered text is each node, exactly.
        let cells: Vec<String> = b.find_all("td.name").iter().map(|c| b.text(c)).collect();
        for (node, _) in nodes {
            assert!(cells.iter().any(|c| c == node), "no cell reads {node:?}: {cells:?}");
        }
    }

    // Every input has a label, and the page fits a phone's width.
    let unlabelled = b.script(
        "return Array.from(document.querySelectorAll('input')).filter(i => i.labels.length === 0).length;",
        json!([]),
    );
    assert_eq!(unlabelled, json!(0));
    b.call("POST", "/window/rect", Some(json!({"width": 390, "height": 844})));
    let fits =
        b.script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth;", json!([]));
    assert_eq!(fits, json!(true), "the page scrolls sideways at 390 px");
    std::fs::write(target_dir().join("status-page-phone.png"), b.screenshot()).unwrap();
    b.call("POST", "/window/rect", Some(json!({"width": 1100, "height": 1000})));

    // The form's answer is the API's, for answers and for errors.
    let cases = [
        ("bar", "ryans", "1", "3"),
        ("bar", "alice", "", "2"),
        ("cache", "user:42", "2", "4"),
        ("cache", "session 13", "", ""),
        (HOSTILE, "k", "1", "2"),
    ];
    for (service, key, min, max) in cases {
        let (nodes, error, body) = use_form(&b, service, key, min, max);
        let api = api_lookup(&kr, service, key, min, max);
        assert_eq!(api.status, 200);
        assert_eq!(body, api.text(), "{service:?} {key:?}");
        assert_eq!(json!(nodes), api.json(), "{service:?} {key:?}");
        assert!(error.is_empty());
    }
    for (service, key, min, max) in [("nope", "k", "", ""), ("bar", "k", "3", "1")] {
        let (nodes, error, body) = use_form(&b, service, key, min, max);
        let api = api_lookup(&kr, service, key, min, max);
        assert!(api.status >= 400);
        assert_eq!(body, api.text());
        assert_eq!(error, api.json()["error"].as_str().unwrap());
        assert!(nodes.is_empty());
    }
    assert_eq!(b.script("return window.__pwned === undefined;", json!([])), json!(true));

    // A SIGHUP with a changed file: after a refresh, the new fingerprint and what moved.
    let before = table["fingerprint"].clone();
    kr.write_services(&toml_of(&catalog(true)));
    kr.signal(libc::SIGHUP);
    let mut after = Value::Null;
    until("the reload", || {
        after = kr.get("/table").json()["fingerprint"].clone();
        after != before
    });
    b.call("POST", "/refresh", Some(json!({})));
    assert_eq!(b.text_of("#fingerprint"), after.as_str().unwrap());
    assert!(b.text_of("#reload-result").starts_with("OK at "), "{}", b.text_of("#reload-result"));
    // cache-e (weight 2) joins 8: 2/10 of first choices move, exactly.
    let moved = b.text_of("#reload-moved tbody");
    assert_eq!(moved, "cache 20.0 %");

    // A screenshot for review, with an answer in the form.
    use_form(&b, "cache", "user:42", "", "3");
    let height = b.script("return document.documentElement.scrollHeight;", json!([])).as_u64().unwrap();
    b.call("POST", "/window/rect", Some(json!({"width": 1100, "height": height.clamp(600, 4000) + 120})));
    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let target = target_dir().join("status-page.png");
    std::fs::write(&target, &png).unwrap();
    eprintln!("screenshot: {} ({} bytes)", target.display(), png.len());

    screenshot_of_the_example(&b);
}

/// The documentation's screenshot: the page for the shipped example file, as a newcomer sees it
/// after the quick start, with an answer in the form. Written to `target/status-page-example.png`,
/// and with `KEYROUTER_UPDATE_SCREENSHOT=1` to `deploy/status-page.png`.
fn screenshot_of_the_example(b: &Browser) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/services.example.toml");
    let kr = Keyrouter::start(&std::fs::read_to_string(example).unwrap());
    b.call("POST", "/window/rect", Some(json!({"width": 1100, "height": 1000})));
    b.goto(&format!("http://127.0.0.1:{}/", kr.port));
    let (nodes, error, _) = use_form(b, "bar", "alice", "", "2");
    assert!(error.is_empty(), "{error}");
    assert_eq!(json!(nodes), api_lookup(&kr, "bar", "alice", "", "2").json());
    let height = b.script("return document.documentElement.scrollHeight;", json!([])).as_u64().unwrap();
    b.call("POST", "/window/rect", Some(json!({"width": 1100, "height": height.clamp(600, 4000) + 120})));
    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let target = target_dir().join("status-page-example.png");
    std::fs::write(&target, &png).unwrap();
    eprintln!("screenshot: {} ({} bytes)", target.display(), png.len());
    if std::env::var("KEYROUTER_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/status-page.png");
        std::fs::write(&committed, &png).unwrap();
        eprintln!("screenshot: also {}", committed.display());
    }
}

/// The traffic view's rows as the browser shows them: service -> [lookups/s, 4xx, 5xx, shed, p99].
fn traffic_rows(b: &Browser) -> std::collections::BTreeMap<String, Vec<String>> {
    let rows = b.script(
        "return Array.from(document.querySelectorAll('#traffic-rows tr')).map(r => [r.dataset.service, \
         ...['.rate', '.c4xx', '.c5xx', '.shed', '.p99'].map(c => r.querySelector(c).textContent)]);",
        json!([]),
    );
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let cells: Vec<String> = r.as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
            (cells[0].clone(), cells[1..].to_vec())
        })
        .collect()
}

#[test]
fn traffic_json_is_bounded_and_locked_down() {
    let kr = Keyrouter::start(&toml_of(&catalog(false)));
    assert_eq!(kr.get("/service/bar?key=k").status, 200);
    let r = kr.get("/status/traffic.json");
    assert_eq!(r.status, 200);
    assert_hardened(&r);
    let json = r.json();
    assert_eq!(json["services"][0]["name"], "bar");
    assert_eq!(json["services"][0]["counts"], json!([1, 0, 0, 0]));
    assert_eq!(json["services"].as_array().unwrap().len(), 1, "services without lookups are left out: {json}");
    assert_eq!(json["reloads"], json!([]));
    let script = kr.get("/status/traffic.js");
    assert_hardened(&script);
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(kr.request("POST", "/status/traffic.json", &[], b"").status, 405);
}

#[test]
fn in_a_browser_the_traffic_view_follows_a_burst_of_lookups_and_reloads() {
    let kr = Keyrouter::start(&toml_of(&catalog(false)));
    let Some(b) = Browser::start() else { return };
    b.goto(&format!("http://127.0.0.1:{}/status", kr.port));
    // The first sample: counts since start, no lookups yet.
    until("the first traffic sample", || b.text_of("#traffic-note").contains("No lookups yet"));
    assert!(traffic_rows(&b).is_empty());

    // A burst: answered, refused for a bad count, of unknown services, and of the hostile name.
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    for i in 0..40 {
        assert_eq!(kr.get(&format!("/service/bar?key=k{i}")).status, 200);
    }
    for _ in 0..5 {
        assert_eq!(kr.get("/service/bar?key=k&min=3&max=1").status, 400);
    }
    for _ in 0..3 {
        assert_eq!(kr.get("/service/nope?key=k").status, 404);
    }
    let hostile = utf8_percent_encode(HOSTILE, NON_ALPHANUMERIC).to_string();
    assert_eq!(kr.get(&format!("/service/{hostile}?key=k")).status, 200);

    // The numbers move: over the window, bar had 45 lookups, 5 of them 4xx, none 5xx or shed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = traffic_rows(&b);
        if rows.get("bar").is_some_and(|r| r[0] != "—" && r[0].parse::<f64>().unwrap() > 0.0 && r[1] == "5") {
            break rows;
        }
        assert!(Instant::now() < deadline, "the traffic view never showed the burst: {rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let bar = &rows["bar"];
    assert_eq!((bar[2].as_str(), bar[3].as_str()), ("0", "0"), "{rows:?}");
    assert!(bar[4].starts_with("≤ ") && bar[4].ends_with(" ms"), "p99 {rows:?}");
    assert_eq!(rows["(unknown services)"][1], "3", "{rows:?}");
    // The hostile name is text, and nothing it carries ran.
    assert_eq!(rows[HOSTILE][1], "0", "{rows:?}");
    assert_eq!(b.script("return window.__pwned === undefined;", json!([])), json!(true));

    // A reload shows in the list, newest first, with what moved.
    kr.write_services(&toml_of(&catalog(true)));
    let mark = kr.log().len();
    kr.signal(libc::SIGHUP);
    kr.wait_for_log("reloaded", mark);
    let reloads = || {
        b.script(
            "return Array.from(document.querySelectorAll('#traffic-reloads li')).map(l => l.textContent);",
            json!([]),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = reloads();
        let first = list[0].as_str().unwrap_or("").to_string();
        if first.contains("SIGHUP · changed") {
            assert!(first.contains("cache ") && first.contains("% moved"), "{list}");
            break;
        }
        assert!(Instant::now() < deadline, "the reload never showed: {list}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A service with zones gets a zone column (escaped, "none" for a node without one); one
/// without zones does not.
#[test]
fn the_table_shows_zones() {
    let toml = "[[Services]]\nName = \"z\"\nNodes = [{ Node = \"a:1\", Zone = \"eu-<1a>\" }, \"b:1\"]\n\
                [[Services]]\nName = \"p\"\nNodes = [\"c:1\"]\n";
    let kr = Keyrouter::start(toml);
    let html = accept(&kr, "/", "text/html").text();
    let section = |name: &str| {
        let start = html.find(&format!("<section class=\"service\" data-service=\"{name}\"")).unwrap();
        html[start..start + html[start..].find("</section>").unwrap()].to_string()
    };
    let z = section("z");
    assert!(z.contains(r#"<th scope="col">zone</th>"#), "{z}");
    assert!(z.contains(r#"<td class="zone">eu-&lt;1a&gt;</td>"#), "{z}");
    assert!(z.contains(r#"<td class="zone"><span class="none">none</span></td>"#), "{z}");
    assert!(!section("p").contains("zone"));
}

/// The form sends `exclude` (comma-separated Ids) and `spread`, and shows what the API answers.
#[test]
fn in_a_browser_the_form_sends_exclude_and_spread() {
    let toml = "Algorithm = 2\n[[Services]]\nName = \"web\"\nNodes = [\n\
                { Node = \"a:1\", Id = \"web-a\", Zone = \"eu-1a\" }, { Node = \"b:1\", Zone = \"eu-1a\" },\n\
                { Node = \"c:1\", Zone = \"eu-1b\" }, { Node = \"d:1\", Zone = \"eu-1b\" }, \"e:1\", \"f:1\"]\n";
    let kr = Keyrouter::start(toml);
    let Some(b) = Browser::start() else { return };
    b.goto(&format!("http://127.0.0.1:{}/", kr.port));
    for key in ["user:1", "user:2", "user:3"] {
        let plain = api_lookup(&kr, "web", key, "", "6").json();
        let first = plain[0].as_str().unwrap();
        let first_id = if first == "a:1" { "web-a" } else { first };
        b.script(
            "document.getElementById('lookup-exclude').value = arguments[0];",
            json!([format!(" {first_id} , gone:1")]),
        );
        b.script("document.getElementById('lookup-spread').value = 'zone';", json!([]));
        let (nodes, error, _) = use_form(&b, "web", key, "", "3");
        assert!(error.is_empty(), "{error}");
        let query = format!("/service/web?key={key}&max=3&exclude={first_id}&exclude=gone:1&spread=zone");
        let api = kr.get(&query).json();
        assert_eq!(json!(nodes), api, "{key}");
        assert!(!nodes.iter().any(|n| n == first), "{key}: {first} was excluded");
        b.script("document.getElementById('lookup-exclude').value = '';", json!([]));
        b.script("document.getElementById('lookup-spread').value = '';", json!([]));
    }
}
