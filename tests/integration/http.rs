//! The HTTP API through the real binary: every input form, every error, listing.

use crate::common;

use common::{expected_json, multipart, services, Keyrouter};

const BAR: &[&str] = &["bar1:8080", "bar2:8080", "bar3:8080", "bar4:8080"];

fn server() -> Keyrouter {
    Keyrouter::start(&services(&[("bar", BAR), ("a b", &["x:1", "y:1"]), ("empty", &[]), ("foo", &["f:1"])]))
}

#[test]
fn every_input_form_gives_the_same_answer() {
    let kr = server();
    let want = expected_json(BAR, "ryans", 1, 3);
    assert_eq!(want.as_array().unwrap().len(), 3);

    let query = kr.request("POST", "/service/bar?key=ryans&min=1&max=3", &[], b"");
    let get = kr.get("/service/bar?key=ryans&min=1&max=3");
    let form = kr.request(
        "POST",
        "/service/bar",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"key=ryans&min=1&max=3",
    );
    let (ct, body) = multipart(&[("key", "ryans"), ("min", "1"), ("max", "3")]);
    let multi = kr.request("POST", "/service/bar", &[("Content-Type", &ct)], &body);
    let json = kr.post_json("/service/bar", r#"{"key":"ryans","min":1,"max":3}"#);
    let json_charset = kr.request(
        "POST",
        "/service/bar",
        &[("Content-Type", "application/json; charset=utf-8")],
        br#"{"key":"ryans","min":1,"max":3}"#,
    );
    for (form, r) in [
        ("query", query),
        ("get", get),
        ("form", form),
        ("multipart", multi),
        ("json", json),
        ("json charset", json_charset),
    ] {
        assert_eq!(r.status, 200, "{form}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"), "{form}");
        assert_eq!(r.json(), want, "{form}");
        assert_eq!(r.header("keyrouter-fingerprint").map(str::len), Some(16), "{form}");
    }
}

#[test]
fn the_readme_curls_agree() {
    if !common::require_tool("curl") {
        return;
    }
    let kr = server();
    let base = format!("http://127.0.0.1:{}/service/bar", kr.port);
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl").arg("-sS").args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let a = curl(&[&format!("{base}?key=ryans&min=1&max=3")]);
    let b = curl(&[&base, "-F", "key=ryans", "-F", "min=1", "-F", "max=3"]);
    let c = curl(&[&base, "-H", "Content-Type: application/json", "--data", r#"{"key":"ryans","min":1,"max":3}"#]);
    assert_eq!(a, expected_json(BAR, "ryans", 1, 3));
    assert_eq!(a, b);
    assert_eq!(a, c);
}

#[test]
fn body_wins_over_query_and_defaults_apply() {
    let kr = server();
    let r = kr.post_json("/service/bar?key=other&min=1&max=4", r#"{"key":"ryans","max":2}"#);
    assert_eq!(r.json(), expected_json(BAR, "ryans", 1, 2));
    // min defaults to 1, max to min.
    assert_eq!(kr.get("/service/bar?key=ryans").json(), expected_json(BAR, "ryans", 1, 1));
    assert_eq!(kr.get("/service/bar?key=ryans&min=2").json(), expected_json(BAR, "ryans", 2, 2));
    // As many as the service has, no more.
    assert_eq!(kr.get("/service/bar?key=ryans&min=0&max=100").json(), expected_json(BAR, "ryans", 0, 100));
    assert_eq!(kr.get("/service/empty?key=ryans&min=0&max=3").json(), serde_json::json!([]));
}

#[test]
fn listing_services() {
    let kr = server();
    let r = kr.get("/service");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!(["a b", "bar", "empty", "foo"]));
    kr.request("POST", "/service", &[], b"").assert_error(405, "POST");
}

#[test]
fn service_names_are_percent_decoded() {
    let kr = server();
    let r = kr.get("/service/a%20b?key=k&max=2");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().as_array().unwrap().len(), 2);
}

#[test]
fn errors_have_status_and_json_body() {
    let kr = server();
    kr.get("/service/nope?key=a").assert_error(404, "unknown service \"nope\"");
    kr.get("/nowhere").assert_error(404, "no such route");
    kr.post_json("/service/bar", r#"{"key":"a""#).assert_error(400, "invalid JSON body");
    kr.post_json("/service/bar", r#"{"key":5}"#).assert_error(400, "`key` must be a string, got integer `5`");
    kr.post_json("/service/bar", r#"{"key":"a","min":"1"}"#).assert_error(400, "non-negative integer");
    kr.post_json("/service/bar", r#"{"key":"a","min":-1}"#).assert_error(400, "non-negative integer");
    kr.post_json("/service/bar", r#"{"key":"a","max":18446744073709551616}"#).assert_error(400, "too large");
    kr.get("/service/bar?key=a&max=18446744073709551616").assert_error(400, "too large");
    kr.get("/service/bar?key=a&min=-2").assert_error(400, "non-negative integer");
    kr.get("/service/bar?min=1").assert_error(400, "missing field `key`");
    kr.get("/service/bar?key=").assert_error(400, "must not be empty");
    kr.post_json("/service/bar", r#"{"min":1}"#).assert_error(400, "missing field `key`");
    kr.get("/service/bar?key=a&min=3&max=2").assert_error(400, "min (3) is greater than max (2)");
    kr.get("/service/bar?key=a&min=5&max=6").assert_error(400, "has 4 node(s), fewer than min (5)");
    kr.get("/service/empty?key=a").assert_error(400, "has 0 node(s)");
    kr.get("/service/bar?key=a&color=red").assert_error(400, "unknown field `color`");
    kr.request("POST", "/service/bar", &[("Content-Type", "text/plain")], b"key=a").assert_error(415, "text/plain");
    kr.request("POST", "/service/bar", &[], b"key=a").assert_error(415, "Content-Type");
    let (ct, _) = multipart(&[]);
    kr.request("POST", "/service/bar", &[("Content-Type", &ct)], b"garbage").assert_error(400, "multipart");
    for method in ["PUT", "DELETE", "PATCH"] {
        kr.request(method, "/service/bar", &[], b"").assert_error(405, method);
    }
}

/// A JSON field of the wrong type gets a message that names the field and says what it must be
/// (it was serde's "invalid type: integer `5`, expected a string", which named neither).
#[test]
fn a_json_field_of_the_wrong_type_is_named() {
    let kr = server();
    for (body, want) in [
        (r#"{"key":5}"#, "`key` must be a string, got integer `5`"),
        (r#"{"key":["a"]}"#, "`key` must be a string, got an array"),
        (r#"{"keys":"a"}"#, "`keys` must be an array of strings, got string \"a\""),
        (r#"{"keys":["a",{}]}"#, "`keys` must be an array of strings; item 1 is an object"),
        (r#"{"key":"a","min":"1"}"#, "`min` must be a non-negative integer, got string \"1\""),
        (r#"{"key":"a","max":true}"#, "`max` must be a non-negative integer, got boolean `true`"),
        (r#"{"key":"a","max":{"n":1}}"#, "`max` must be a non-negative integer, got an object"),
    ] {
        let r = kr.post_json("/service/bar", body);
        r.assert_error(400, want);
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(!msg.contains("invalid JSON body"), "{body}: {msg}");
    }
    // Null is no value at all: the field's default.
    assert_eq!(kr.post_json("/service/bar", r#"{"key":"ryans","min":null,"max":null}"#).status, 200);
}

/// Counts are read exactly: `+2` and `%2B2` were read as 2 (Rust's integer parser takes a
/// sign), and JSON `2.0000000000000001` as 2 and `1e-400` as 0 (rounded to a float first).
#[test]
fn counts_that_are_not_whole_numbers_are_refused() {
    let kr = server();
    for query in ["max=%2B2", "max=+2", "max=%202", "max=2%20", "max=0x2", "max=%D9%A2", "max=", "max=2.0"] {
        kr.get(&format!("/service/bar?key=ryans&{query}")).assert_error(400, "`max` must be a non-negative integer");
        let form = kr.request(
            "POST",
            "/service/bar",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            format!("key=ryans&{query}").as_bytes(),
        );
        form.assert_error(400, "`max` must be a non-negative integer");
    }
    let (ct, body) = multipart(&[("key", "ryans"), ("max", "+2")]);
    kr.request("POST", "/service/bar", &[("Content-Type", &ct)], &body)
        .assert_error(400, "`max` must be a non-negative integer, got \"+2\"");
    let two = kr.get("/service/bar?key=ryans&max=2").json();
    assert_eq!(kr.get("/service/bar?key=ryans&max=02").json(), two);
    for token in ["2.0000000000000001", "1e-400", "1.5", "-1", "-2.0"] {
        kr.post_json("/service/bar", &format!(r#"{{"key":"ryans","max":{token}}}"#))
            .assert_error(400, &format!("`max` must be a non-negative integer, got {token}"));
    }
    for token in ["1e400", "18446744073709551616", "1.8446744073709552e19"] {
        kr.post_json("/service/bar", &format!(r#"{{"key":"ryans","max":{token}}}"#))
            .assert_error(400, &format!("`max` is too large, got {token}"));
    }
    for token in ["2", "2.0", "2e0", "0.2e1", "200e-2", "2.000000000000000000000000000000"] {
        let r = kr.post_json("/service/bar", &format!(r#"{{"key":"ryans","max":{token}}}"#));
        assert_eq!(r.status, 200, "{token}: {}", r.text());
        assert_eq!(r.json(), two, "{token}");
    }
    // `-0` is zero: a count of 0, which `min` may be.
    assert_eq!(kr.post_json("/service/bar", r#"{"key":"ryans","min":-0,"max":2}"#).json(), two);
}

#[test]
fn oversized_body_is_413_and_the_server_keeps_serving() {
    let kr = server();
    let big = format!(r#"{{"key":"{}"}}"#, "k".repeat(keyrouter::http::MAX_BODY_BYTES));
    kr.post_json("/service/bar", &big).assert_error(413, "larger than");
    assert_eq!(kr.get("/service/bar?key=ryans&max=3").json(), expected_json(BAR, "ryans", 1, 3));
}

#[test]
fn garbage_never_causes_a_server_error() {
    let kr = server();
    let bodies: &[&[u8]] =
        &[b"", b"{", b"[]", b"null", b"\xff\xfe", b"{\"key\":null}", b"{\"key\":\"a\",\"max\":1e400}"];
    for ct in [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=x",
    ] {
        for body in bodies {
            let r = kr.request("POST", "/service/bar", &[("Content-Type", ct)], body);
            assert!(r.status < 500, "{ct} {body:?}: {} {}", r.status, r.text());
        }
    }
    assert_eq!(kr.get("/service/bar?key=ryans&max=3").json(), expected_json(BAR, "ryans", 1, 3));
}

#[test]
fn an_overlong_query_string_is_414_with_a_json_error() {
    let kr = server();
    let keys = "keys=0123456789&".repeat(keyrouter::http::MAX_QUERY_BYTES / 16 + 1);
    kr.get(&format!("/service/bar?{keys}max=1")).assert_error(414, "query string is longer than");
    let r = kr.request("OPTIONS", "/service/bar", &[], b"");
    r.assert_error(405, "OPTIONS");
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    assert_eq!(kr.request("DELETE", "/healthz", &[], b"").header("allow"), Some("GET, HEAD"));
    assert_eq!(kr.request("HEAD", "/service/bar?key=a", &[], b"").status, 200);
}

/// `GET /table`'s `ETag` and `If-None-Match`, as clients that rank locally poll it: the tag is
/// the table fingerprint, a matching tag (weakly compared, in a list, or `*`) gets a bodiless
/// 304 for GET and HEAD, and a reload that changes the table changes the tag.
#[test]
fn table_has_the_fingerprint_as_etag_and_answers_if_none_match_with_304() {
    let kr = server();
    let r = kr.get("/table");
    assert_eq!(r.status, 200);
    let fingerprint = r.json()["fingerprint"].as_str().unwrap().to_string();
    let etag = format!("W/\"{fingerprint}\"");
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("cache-control"), Some("no-cache"));

    let strong = format!("\"{fingerprint}\"");
    let listed = format!("\"0000000000000000\", {etag}");
    for tag in [etag.as_str(), strong.as_str(), listed.as_str(), "*"] {
        for method in ["GET", "HEAD"] {
            let r = kr.request(method, "/table", &[("If-None-Match", tag)], b"");
            assert_eq!(r.status, 304, "{method} If-None-Match: {tag}");
            assert!(r.body.is_empty(), "{method} {tag}: a 304 has no body: {}", r.text());
            assert_eq!(r.header("etag"), Some(etag.as_str()), "{method} {tag}");
        }
    }
    // Two field lines count as one list.
    let r = kr.request("GET", "/table", &[("If-None-Match", "\"other\""), ("If-None-Match", &strong)], b"");
    assert_eq!(r.status, 304);

    for tag in ["\"0000000000000000\"", &fingerprint, "W/\"\"", ""] {
        let r = kr.request("GET", "/table", &[("If-None-Match", tag)], b"");
        assert_eq!(r.status, 200, "If-None-Match: {tag}");
        assert_eq!(r.json()["fingerprint"], fingerprint.as_str());
    }
    let head = kr.request("HEAD", "/table", &[("If-None-Match", "\"0000000000000000\"")], b"");
    assert_eq!((head.status, head.body.len(), head.header("etag")), (200, 0, Some(etag.as_str())));

    // A reload that changes the table: the old tag gets the new table, the new tag a 304.
    kr.write_services(&services(&[("bar", &BAR[..3])]));
    kr.signal(libc::SIGHUP);
    common::eventually("the reload", || kr.get("/table").json()["fingerprint"] != fingerprint.as_str());
    let r = kr.request("GET", "/table", &[("If-None-Match", &etag)], b"");
    assert_eq!(r.status, 200);
    let new_etag = format!("W/\"{}\"", r.json()["fingerprint"].as_str().unwrap());
    assert_eq!(r.header("etag"), Some(new_etag.as_str()));
    assert_eq!(kr.request("GET", "/table", &[("If-None-Match", &new_etag)], b"").status, 304);
}

/// `/table` holds everything a client needs to rank and to verify: the algorithm, each
/// service's addresses, Ids and weights in one order, and the fingerprints.
#[test]
fn table_holds_what_a_client_needs_to_rank() {
    let kr = Keyrouter::start(
        "Algorithm = 2\n[[Services]]\nName = \"web\"\nNodes = [{ Node = \"10.0.0.5:8080\", Id = \"web-0\" }, \
         { Node = \"10.0.0.6:8080\", Id = \"web-1\" }, { Node = \"10.0.0.7:8080\", Id = \"web-2\", Weight = 4 }]\n",
    );
    let t = kr.get("/table").json();
    // The worked example of docs/ranking.md, weighted 1, 1, 4.
    assert_eq!(t["algorithm"], 2);
    let web = &t["services"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["nodes"], serde_json::json!(["10.0.0.5:8080", "10.0.0.6:8080", "10.0.0.7:8080"]));
    assert_eq!(web["ids"], serde_json::json!(["web-0", "web-1", "web-2"]));
    assert_eq!(web["weights"], serde_json::json!([1.0, 1.0, 4.0]));
    assert_eq!(web["fingerprint"], "74974792e16a42c3");
    assert_eq!(t["fingerprint"].as_str().map(str::len), Some(16));
}
