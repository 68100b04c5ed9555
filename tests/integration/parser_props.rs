//! Property tests for every parser a client reaches: the query string, urlencoded and
//! multipart forms, JSON bodies and the service name in the path. Arbitrary bytes and arbitrary
//! structured values never panic and always get an answer or a 4xx with a JSON error, both in
//! the request layer directly and through the actix app (in process, no sockets).

use std::sync::Arc;

use actix_web::{test as actix_test, web};
use keyrouter::http as server;
use keyrouter::limits::RequestLimits;
use keyrouter::ranking::{ServiceSpec, Table};
use keyrouter::request::{self, Body, Fields, RequestError};
use keyrouter::table::state::{AppState, StateOptions};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

fn table() -> Table {
    let nodes: Vec<String> = (0..50).map(|i| format!("n{i}:80")).collect();
    Table::build([
        ServiceSpec::new("bar", nodes),
        ServiceSpec::new("a/b", ["x:1", "y:1"]),
        ServiceSpec::new("é", ["z:1"]),
        ServiceSpec::new("empty", Vec::<String>::new()),
    ])
    .unwrap()
    .0
}

/// A request-layer outcome is an answer (valid JSON) or a client error with a message; the
/// request layer has no error of its own to give.
fn client_outcome(r: Result<Vec<u8>, RequestError>) -> Result<(), TestCaseError> {
    match r {
        Ok(body) => {
            serde_json::from_slice::<serde_json::Value>(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

/// Text that percent-encodes arbitrary bytes, mixed with plain characters, separators and
/// malformed escapes: always a valid URI component, not always valid once decoded.
fn encoded() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<u8>().prop_map(|b| format!("%{b:02X}")),
        "[a-zA-Z0-9._~+-]{1,4}",
        Just("&".to_string()),
        Just("=".to_string()),
        Just("key=".to_string()),
        Just("keys=".to_string()),
        Just("max=".to_string()),
        Just("min=".to_string()),
        Just("exclude=".to_string()),
        Just("spread=zone".to_string()),
        Just("%".to_string()),
        Just("%G1".to_string()),
        "[0-9]{1,22}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// Arbitrary JSON values, nested a little.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A lookup-shaped JSON object: the real field names with arbitrary values, and sometimes others.
fn json_lookup() -> impl Strategy<Value = serde_json::Value> {
    let name = prop_oneof![
        Just("key".to_string()),
        Just("keys".to_string()),
        Just("min".to_string()),
        Just("max".to_string()),
        Just("exclude".to_string()),
        Just("spread".to_string()),
        ".{0,5}"
    ];
    prop::collection::vec((name, json_value()), 0..5)
        .prop_map(|fields| serde_json::Value::Object(fields.into_iter().collect()))
}

fn multipart_body(fields: &[(String, Vec<u8>)], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// The answer budget `limit`, and a few `exclude` entries at most.
fn budget(limit: u64) -> request::Budget {
    request::Budget { max_answer_nodes: limit, max_exclude: 3 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn request_layer_takes_any_bytes(query in prop::collection::vec(any::<u8>(), 0..200),
                                     body in prop::collection::vec(any::<u8>(), 0..200),
                                     name in ".{0,8}", limit in 0u64..200) {
        let table = table();
        for body in [Body::Empty, Body::Json(&body), Body::Form(&body)] {
            let answer = Fields::from_request(&query, body)
                .and_then(|f| request::answer_in(&table, &name, f, &budget(limit)));
            client_outcome(answer)?;
        }
    }

    #[test]
    fn request_layer_takes_any_encoded_text(query in encoded(), form in encoded(), limit in 0u64..200) {
        let table = table();
        let answer = Fields::from_request(query.as_bytes(), Body::Form(form.as_bytes()))
            .and_then(|f| request::answer_in(&table, "bar", f, &budget(limit)));
        client_outcome(answer)?;
        let _ = request::decode_path_segment(&query);
    }

    #[test]
    fn request_layer_takes_any_json(value in json_lookup(), limit in 0u64..200) {
        let table = table();
        let body = serde_json::to_vec(&value).unwrap();
        client_outcome(Fields::from_json(&body).and_then(|f| request::answer_in(&table, "bar", f, &budget(limit))))?;
    }

    #[test]
    fn multipart_fields_take_any_text(fields in prop::collection::vec(
            (prop_oneof![Just("key".to_string()), Just("keys".to_string()), Just("max".to_string()),
                         Just("exclude".to_string()), Just("spread".to_string()), "[a-z]{0,4}"],
             ".{0,10}"), 0..5)) {
        let table = table();
        let pairs: Vec<(String, String)> = fields;
        client_outcome(Fields::from_request(b"", Body::Pairs(&pairs)).and_then(|f| request::answer_in(&table, "bar", f, &budget(1000))))?;
    }
}

/// Runs `cases` cases of `strategy` against the actix app (one runtime, one app for all).
fn with_app<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> (actix_http::Request, bool)) {
    let rt = actix_rt::System::new();
    let limits = RequestLimits { max_answer_nodes: 500, ..RequestLimits::default() };
    let state: Arc<AppState> =
        AppState::new(table(), "unused.toml", StateOptions { limits, ..StateOptions::default() });
    let app = rt.block_on(actix_test::init_service(server::app(web::Data::from(state), false)));
    let mut runner = TestRunner::new(ProptestConfig { cases: 512, ..ProptestConfig::default() });
    let result = runner.run(&strategy, |value| {
        let (req, head) = test(value);
        let res = rt.block_on(actix_test::call_service(&app, req));
        let status = res.status().as_u16();
        let body = rt.block_on(actix_test::read_body(res));
        prop_assert!(status == 200 || (400..500).contains(&status), "status {}: {:?}", status, body);
        if status != 200 && !head {
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(format!("{e}: {body:?}")))?;
            prop_assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()), "{}", v);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("application/json".to_string()),
        Just("application/x-www-form-urlencoded".to_string()),
        Just("multipart/form-data; boundary=XyZ".to_string()),
        Just("multipart/form-data".to_string()),
        Just("text/plain".to_string()),
        Just("application/vnd.api+json; charset=utf-8".to_string()),
        "[ -~]{0,30}",
    ]
}

#[test]
fn the_app_answers_any_path_query_and_body() {
    let strategy = (encoded(), encoded(), content_type(), prop::collection::vec(any::<u8>(), 0..300), 0..3usize)
        .prop_filter("a valid URI", |(name, query, ..)| {
            !name.is_empty() && format!("/service/{name}?{query}").parse::<actix_web::http::Uri>().is_ok()
        });
    with_app(strategy, |(name, query, ct, body, method)| {
        let req = match method {
            0 => actix_test::TestRequest::post(),
            1 => actix_test::TestRequest::get(),
            _ => actix_test::TestRequest::default().method(actix_web::http::Method::HEAD),
        };
        let uri = format!("/service/{name}?{query}");
        (req.uri(&uri).insert_header(("Content-Type", ct)).set_payload(body).to_request(), method == 2)
    });
}

#[test]
fn the_app_answers_any_json() {
    with_app(json_lookup(), |value| {
        let req = actix_test::TestRequest::post()
            .uri("/service/bar")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(serde_json::to_vec(&value).unwrap())
            .to_request();
        (req, false)
    });
}

#[test]
fn the_app_answers_any_multipart() {
    let name = prop_oneof![
        Just("key".to_string()),
        Just("keys".to_string()),
        Just("min".to_string()),
        Just("max".to_string()),
        "[a-z]{0,4}"
    ];
    let fields = prop::collection::vec((name, prop::collection::vec(any::<u8>(), 0..12)), 0..5);
    with_app((fields, any::<prop::sample::Index>(), any::<bool>()), |(fields, cut, truncate)| {
        let mut body = multipart_body(&fields, "XyZ");
        if truncate {
            body.truncate(cut.index(body.len() + 1));
        }
        let req = actix_test::TestRequest::post()
            .uri("/service/bar")
            .insert_header(("Content-Type", "multipart/form-data; boundary=XyZ"))
            .set_payload(body)
            .to_request();
        (req, false)
    });
}
