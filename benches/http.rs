//! The HTTP layer in process (no sockets): one lookup per request against the wrk harness's
//! baseline handler, and a batch of 1 000 keys in one request, so the per-key cost of batching
//! can be compared with a request's.
//!
//! `cargo bench --bench http`
//!
//! Timings on a shared machine move by ±15 %; instruction counts do not. With
//! `HTTP_BENCH_COUNT=N` the bench skips criterion and makes N requests of one kind (`baseline`,
//! `single` or `batch`, the first argument), so that callgrind can count the instructions per
//! request, the same whatever else the machine is doing:
//!
//! ```sh
//! bin=$(cargo bench --bench http --no-run --message-format=json | jq -r 'select(.executable) | .executable')
//! for n in 0 1000; do HTTP_BENCH_COUNT=$n valgrind --tool=callgrind --callgrind-out-file=/dev/null $bin single; done
//! ```
//! (instructions per request = the difference of the two totals / 1000).

use std::hint::black_box;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{test, web};
use criterion::{Criterion, Throughput};
use keyrouter::http as server;
use keyrouter::ranking::{ServiceSpec, Table};
use keyrouter::table::state::{AppState, StateOptions};

/// The wrk harness's baseline handler: parse the same JSON, answer a fixed array.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Lookup {
    key: String,
    min: Option<u64>,
    max: Option<u64>,
}

async fn fixed(_name: web::Path<String>, body: web::Json<Lookup>) -> actix_web::HttpResponse {
    black_box(&body.key);
    actix_web::HttpResponse::Ok().content_type("application/json").body(r#"["node1:8080","node2:8080","node3:8080"]"#)
}

fn post(body: &str) -> actix_http::Request {
    test::TestRequest::post()
        .uri("/service/bar")
        .insert_header(("Content-Type", "application/json"))
        .set_payload(body.to_string())
        .to_request()
}

/// Makes one request and reads the whole answer.
fn call<S, B>(rt: &actix_rt::SystemRunner, app: &S, body: &str) -> web::Bytes
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    rt.block_on(async {
        let resp = test::call_service(app, post(body)).await;
        assert!(resp.status().is_success());
        test::read_body(resp).await
    })
}

fn main() {
    // The allocator set up as the binary sets it up (src/memory.rs). BENCH_MALLOC_DEFAULTS=1
    // leaves glibc's defaults, to measure what that setup costs.
    if std::env::var_os("BENCH_MALLOC_DEFAULTS").is_none() {
        keyrouter::memory::configure();
    }
    let nodes: Vec<String> = (0..100).map(|i| format!("10.0.0.{i}:8080")).collect();
    let (table, _) = Table::build([ServiceSpec::new("bar", nodes)]).expect("a valid table");
    let state = AppState::new(table, "unused.toml", StateOptions::default());
    let rt = actix_rt::System::new();
    let app = rt.block_on(test::init_service(server::app(web::Data::from(state), false)));
    let baseline =
        rt.block_on(test::init_service(actix_web::App::new().route("/service/{name}", web::post().to(fixed))));

    let keys: Vec<String> = (0..1000).map(|i| format!("user:{i}")).collect();
    let single: Vec<String> = keys.iter().map(|k| format!(r#"{{"key":"{k}","min":1,"max":3}}"#)).collect();
    let batch = serde_json::json!({ "keys": keys, "min": 1, "max": 3 }).to_string();

    if let Some(count) = std::env::var("HTTP_BENCH_COUNT").ok().and_then(|n| n.parse::<usize>().ok()) {
        let kind = std::env::args().nth(1).unwrap_or_default();
        for i in 0..count {
            let body = match kind.as_str() {
                "baseline" => call(&rt, &baseline, &single[i % single.len()]),
                "single" => call(&rt, &app, &single[i % single.len()]),
                "batch" => call(&rt, &app, &batch),
                other => panic!("HTTP_BENCH_COUNT: unknown kind {other:?} (baseline, single or batch)"),
            };
            black_box(body);
        }
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("http in process, 100 nodes, top 3");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("baseline handler (fixed answer)", |b| {
        b.iter(|| {
            i = (i + 1) % single.len();
            call(&rt, &baseline, &single[i])
        })
    });
    group.bench_function("one key per request", |b| {
        b.iter(|| {
            i = (i + 1) % single.len();
            call(&rt, &app, &single[i])
        })
    });
    group.throughput(Throughput::Elements(1000));
    group.bench_function("batch of 1000 keys", |b| b.iter(|| call(&rt, &app, &batch)));
    group.finish();
    c.final_summary();

    // Criterion measures one function after the other, minutes apart on a machine whose speed
    // drifts; the ratio the issue asks for comes from rounds that alternate the two instead.
    let rounds = std::env::var("HTTP_BENCH_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(15);
    let per_round = 20_000;
    let timed = |f: &dyn Fn(usize)| {
        let start = std::time::Instant::now();
        (0..per_round).for_each(f);
        start.elapsed().as_secs_f64() * 1e9 / per_round as f64
    };
    let (mut base, mut ours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let b = || timed(&|i| drop(black_box(call(&rt, &baseline, &single[i % single.len()]))));
        let o = || timed(&|i| drop(black_box(call(&rt, &app, &single[i % single.len()]))));
        // Swap the order every round, so that neither always runs first.
        let (b, o) = if round % 2 == 0 {
            let b = b();
            (b, o())
        } else {
            let o = o();
            (b(), o)
        };
        base.push(b);
        ours.push(o);
        ratios.push(o / b);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "one key per request / baseline handler, median of {rounds} alternating rounds of {per_round}: \
         {:.2}x ({:.0} ns / {:.0} ns)",
        median(&mut ratios),
        median(&mut ours),
        median(&mut base)
    );
}
