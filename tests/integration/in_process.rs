//! The same service in process: the actix app on an `AppState` (no sockets), and `server::run`
//! on a listener bound to port 0 with a shutdown future, as an embedding program would use it.

use crate::common;

use std::sync::Arc;

use actix_web::{test as actix_test, web};
use keyrouter::http::{self as server, ServerOptions};
use keyrouter::table::config;
use keyrouter::table::reload::{self, When};
use keyrouter::table::state::{AppState, StateOptions};

const BAR: &[&str] = &["bar1:8080", "bar2:8080", "bar3:8080", "bar4:8080"];

fn file() -> String {
    common::services(&[("bar", BAR)])
}

fn state(dir: &tempfile::TempDir) -> Arc<AppState> {
    let path = dir.path().join("services.toml");
    std::fs::write(&path, file()).unwrap();
    AppState::new(config::load(&path).unwrap().table, path, StateOptions::default())
}

#[actix_web::test]
async fn every_input_form_agrees_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let app = actix_test::init_service(server::app(web::Data::from(state(&dir)), false)).await;
    let requests = [
        actix_test::TestRequest::post().uri("/service/bar?key=ryans&min=1&max=3").to_request(),
        actix_test::TestRequest::get().uri("/service/bar?key=ryans&min=1&max=3").to_request(),
        actix_test::TestRequest::post()
            .uri("/service/bar")
            .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
            .set_payload("key=ryans&min=1&max=3")
            .to_request(),
        actix_test::TestRequest::post()
            .uri("/service/bar")
            .insert_header(("Content-Type", "application/json; charset=utf-8"))
            .set_payload(r#"{"key":"ryans","min":1,"max":3}"#)
            .to_request(),
    ];
    let mut answers = Vec::new();
    for req in requests {
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), 200);
        answers.push(actix_test::read_body_json::<serde_json::Value, _>(resp).await);
    }
    // The answer is the library's, and every form agrees.
    let expected = common::expected_json(BAR, "ryans", 1, 3);
    assert_eq!(expected.as_array().unwrap().len(), 3);
    for a in &answers {
        assert_eq!(*a, expected);
    }
}

#[actix_web::test]
async fn errors_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let app = actix_test::init_service(server::app(web::Data::from(state(&dir)), false)).await;
    for (req, status) in [
        (actix_test::TestRequest::get().uri("/service/nope?key=a").to_request(), 404),
        (actix_test::TestRequest::get().uri("/service/bar?key=a&min=2&max=1").to_request(), 400),
        (actix_test::TestRequest::get().uri("/service/bar?key=a&min=5&max=5").to_request(), 400),
        (actix_test::TestRequest::delete().uri("/service/bar").to_request(), 405),
        // Lookups are routed by hand (src/http/lookup.rs, `route`): the edges of
        // `/service/{name}` behave as the resource pattern did.
        (actix_test::TestRequest::delete().uri("/service/nope").to_request(), 405),
        (actix_test::TestRequest::get().uri("/service/").to_request(), 404),
        (actix_test::TestRequest::get().uri("/service/bar/").to_request(), 404),
        (actix_test::TestRequest::get().uri("/service/bar/x?key=a").to_request(), 404),
        (actix_test::TestRequest::get().uri("/service//bar?key=a").to_request(), 404),
        (actix_test::TestRequest::get().uri("/servicebar?key=a").to_request(), 404),
        (actix_test::TestRequest::put().uri("/service/bar/x").to_request(), 404),
        (actix_test::TestRequest::post().uri("/service").to_request(), 405),
        (
            actix_test::TestRequest::post()
                .uri("/service/bar")
                .insert_header(("Content-Type", "text/plain"))
                .set_payload("key=a")
                .to_request(),
            415,
        ),
    ] {
        let (method, path) = (req.method().clone(), req.path().to_string());
        let resp = actix_test::call_service(&app, req).await;
        assert_eq!(resp.status(), status, "{method} {path}");
        if status == 405 {
            let allow = resp.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let want = if path == "/service" { "GET, HEAD" } else { "GET, HEAD, POST" };
            assert_eq!(allow, want, "{method} {path}");
        }
        let body: serde_json::Value = actix_test::read_body_json(resp).await;
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
}

#[actix_web::test]
async fn a_reload_swaps_the_table_for_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir);
    let app = actix_test::init_service(server::app(web::Data::from(st.clone()), false)).await;
    std::fs::write(st.services_path(), "[[Services]]\nName = \"new\"\nNodes = [\"n1\"]\n").unwrap();
    let summary = reload::reload(&st, When::Always).unwrap().unwrap();
    assert_eq!((summary.added.clone(), summary.removed.clone()), (vec!["new".to_string()], vec!["bar".to_string()]));
    let resp = actix_test::call_service(&app, actix_test::TestRequest::get().uri("/service").to_request()).await;
    assert_eq!(actix_test::read_body_json::<serde_json::Value, _>(resp).await, serde_json::json!(["new"]));
    // A bad file keeps the table; the same file again is not a change.
    std::fs::write(st.services_path(), "[[Services]\n").unwrap();
    assert!(reload::reload(&st, When::Always).is_err());
    std::fs::write(st.services_path(), "[[Services]]\nName = \"new\"\nNodes = [\"n1\"]\n").unwrap();
    assert!(reload::reload(&st, When::IfChanged).unwrap().is_none());
    let resp =
        actix_test::call_service(&app, actix_test::TestRequest::get().uri("/service/new?key=k").to_request()).await;
    assert_eq!(resp.status(), 200);
}

#[test]
fn run_serves_on_a_bound_listener_until_the_shutdown_future_completes() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_state = st.clone();
    let server = std::thread::spawn(move || {
        actix_rt::System::new().block_on(server::run(
            listener,
            server_state,
            ServerOptions { workers: 1, ..Default::default() },
            async move {
                let _ = stop_rx.await;
            },
        ))
    });
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(get("/service").ends_with(r#"["bar"]"#));
    assert!(get("/readyz").starts_with("HTTP/1.1 200"));
    stop_tx.send(()).unwrap();
    server.join().unwrap().unwrap();
    assert!(!st.is_ready(), "readiness turns off on shutdown");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening after shutdown");
}

#[test]
fn every_reload_attempt_is_recorded_for_the_status_page() {
    use keyrouter::table::state::ReloadOutcome;
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir);
    assert!(st.last_reload().is_none(), "nothing before the first reload");
    // The same file: unchanged.
    reload::reload_and_log(&st, "file change", When::IfChanged);
    let record = st.last_reload().unwrap();
    assert_eq!((record.cause.as_str(), &record.outcome), ("file change", &ReloadOutcome::Unchanged));
    // One node of four removed: exactly a quarter of first choices move.
    std::fs::write(st.services_path(), common::services(&[("bar", &BAR[..3]), ("new", &["n1"])])).unwrap();
    reload::reload_and_log(&st, "SIGHUP", When::Always);
    let record = st.last_reload().unwrap();
    let ReloadOutcome::Changed { added, removed, moved } = &record.outcome else { panic!("{record:?}") };
    assert_eq!((added.as_slice(), removed.len()), (&["new".to_string()][..], 0));
    assert_eq!(moved.len(), 1);
    assert_eq!((moved[0].0.as_str(), moved[0].1.value, moved[0].1.is_exact()), ("bar", 0.25, true));
    assert!(record.at > 1e9, "a Unix time");
    // A bad file: the reason, and the table kept.
    std::fs::write(st.services_path(), "[[Services]\n").unwrap();
    reload::reload_and_log(&st, "SIGHUP", When::Always);
    let record = st.last_reload().unwrap();
    let ReloadOutcome::Failed(reason) = &record.outcome else { panic!("{record:?}") };
    assert!(reason.contains("services.toml:1:"), "{reason}");
    assert_eq!(st.live().table.len(), 2);
}
