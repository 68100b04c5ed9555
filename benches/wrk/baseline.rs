//! The baseline for the wrk harness: the least an actix-web service can do for a lookup. It
//! parses the same JSON body as keyrouter and answers a fixed 3-node array, so keyrouter's
//! throughput divided by this one's is the cost of keyrouter's own work, measured in the same
//! run on the same (noisy, shared) machine.
//!
//! `cargo run --release --example baseline -- 127.0.0.1:PORT [WORKERS]`

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
    let workers = std::env::args().nth(2).and_then(|w| w.parse().ok()).unwrap_or(1);
    actix_rt::System::new().block_on(async move {
        HttpServer::new(|| App::new().route("/service/{name}", web::post().to(lookup)))
            .workers(workers)
            .bind(&addr)?
            .run()
            .await
    })
}
