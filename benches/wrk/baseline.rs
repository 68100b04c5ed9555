//! The baseline for the wrk harness: the least an actix-web service can do for a lookup. It
//! parses the same JSON body as keyrouter and answers a fixed 3-node array, so keyrouter's
//! throughput divided by this one's is the cost of keyrouter's own work, measured in the same
//! run on the same (noisy, shared) machine.
//!
//! `cargo run --release --example baseline -- 127.0.0.1:PORT [WORKERS]` (WORKERS 0: actix's default)

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Lookup {
    key: String,
    min: Option<u64>,
    max: Option<u64>,
}

async fn lookup(_name: web::Path<String>, body: web::Json<Lookup>) -> HttpResponse {
    std::hint::black_box(&body.key);
    HttpResponse::Ok().content_type("application/json").body(r#"["node1:8080","node2:8080","node3:8080"]"#)
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8081".into());
    // WORKERS: a number, or 0 for actix-web's default (one per CPU), as keyrouter's default is.
    let workers: usize = std::env::args().nth(2).and_then(|w| w.parse().ok()).unwrap_or(1);
    actix_rt::System::new().block_on(async move {
        let server = HttpServer::new(|| App::new().route("/service/{name}", web::post().to(lookup)));
        let server = if workers > 0 { server.workers(workers) } else { server };
        server.bind(&addr)?.run().await
    })
}
