//! The HTTP layer in process (no sockets): one lookup per request against a batch of 1 000
//! keys in one request, so the per-key cost of batching can be compared with a request's.
//!
//! `cargo bench --bench http`

use std::hint::black_box;

use actix_web::{test, web};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyrouter::http as server;
use keyrouter::ranking::{ServiceSpec, Table};
use keyrouter::state::AppState;

fn requests(c: &mut Criterion) {
    // The allocator set up as the binary sets it up (src/memory.rs). BENCH_MALLOC_DEFAULTS=1
    // leaves glibc's defaults, to measure what that setup costs.
    if std::env::var_os("BENCH_MALLOC_DEFAULTS").is_none() {
        keyrouter::memory::configure();
    }
    let nodes: Vec<String> = (0..100).map(|i| format!("10.0.0.{i}:8080")).collect();
    let (table, _) = Table::build([ServiceSpec::new("bar", nodes)]).unwrap();
    let state = AppState::new(table, "unused.toml");
    let rt = actix_rt::System::new();
    let app = rt.block_on(test::init_service(server::app(web::Data::from(state), false)));

    let keys: Vec<String> = (0..1000).map(|i| format!("user:{i}")).collect();
    let single: Vec<String> = keys.iter().map(|k| format!(r#"{{"key":"{k}","min":1,"max":3}}"#)).collect();
    let batch = serde_json::json!({ "keys": keys, "min": 1, "max": 3 }).to_string();
    let post = |body: String| {
        test::TestRequest::post()
            .uri("/service/bar")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body)
            .to_request()
    };

    // The wrk harness's baseline handler: parse the same JSON, answer a fixed array.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Lookup {
        key: String,
        min: Option<u64>,
        max: Option<u64>,
    }
    async fn fixed(_name: web::Path<String>, body: web::Json<Lookup>) -> actix_web::HttpResponse {
        black_box(&body.key);
        actix_web::HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"["node1:8080","node2:8080","node3:8080"]"#)
    }
    let baseline =
        rt.block_on(test::init_service(actix_web::App::new().route("/service/{name}", web::post().to(fixed))));

    let mut group = c.benchmark_group("http in process, 100 nodes, top 3");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("baseline handler (fixed answer)", |b| {
        b.iter(|| {
            i = (i + 1) % single.len();
            let resp = rt.block_on(test::call_service(&baseline, post(single[i].clone())));
            assert!(resp.status().is_success());
            black_box(resp)
        })
    });
    group.bench_function("one key per request", |b| {
        b.iter(|| {
            i = (i + 1) % single.len();
            let resp = rt.block_on(test::call_service(&app, post(single[i].clone())));
            assert!(resp.status().is_success());
            black_box(resp)
        })
    });
    group.throughput(Throughput::Elements(1000));
    group.bench_function("batch of 1000 keys", |b| {
        b.iter(|| {
            let resp = rt.block_on(test::call_service(&app, post(batch.clone())));
            assert!(resp.status().is_success());
            black_box(rt.block_on(test::read_body(resp)))
        })
    });
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
