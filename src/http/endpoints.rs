//! The small endpoints: health, readiness, metrics, the table, the service list, the API
//! description, and the answers for unknown routes and methods.

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::error::error_body;
use crate::ranking::fingerprint_hex;
use crate::request::RequestError;
use crate::state::AppState;

/// The API description, shipped inside the binary.
pub const OPENAPI: &str = include_str!("../openapi.yaml");

pub async fn method_not_allowed(req: HttpRequest, allow: &'static str) -> HttpResponse {
    let mut response = RequestError::MethodNotAllowed(req.method().to_string()).error_response();
    response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    RequestError::NotFound(req.path().to_string()).error_response()
}

/// Liveness: the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(r#"{"status":"ok"}"#)
}

/// Readiness: a non-empty table is loaded (or `--allow-empty`) and the server is not shutting
/// down.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.readiness() {
        Ok(()) => HttpResponse::Ok().content_type(ContentType::json()).body(r#"{"status":"ready"}"#),
        Err(why) => error_body(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

pub async fn list_services(state: web::Data<AppState>) -> HttpResponse {
    let live = state.live();
    json(serde_json::to_vec(live.table.names()))
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/yaml").body(OPENAPI)
}

/// The whole table with fingerprints, for comparing replicas.
pub async fn table(state: web::Data<AppState>) -> HttpResponse {
    let live = state.live();
    let t = &live.table;
    let services: Vec<serde_json::Value> = t
        .services()
        .iter()
        .map(|s| {
            let mut v = serde_json::json!({
                "name": s.name(),
                "nodes": s.nodes(),
                "fingerprint": fingerprint_hex(s.fingerprint()),
            });
            if s.is_weighted() {
                v["weights"] = serde_json::json!(s.weights());
            }
            v
        })
        .collect();
    let body = serde_json::json!({
        "fingerprint": fingerprint_hex(t.fingerprint()),
        "algorithm": crate::ranking::ALGORITHM_VERSION,
        "services": services,
    });
    json(serde_json::to_vec(&body))
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type(crate::metrics::CONTENT_TYPE).body(state.metrics().render())
}

/// A JSON answer, or a 500 if it could not be encoded.
fn json(body: serde_json::Result<Vec<u8>>) -> HttpResponse {
    match body {
        Ok(body) => HttpResponse::Ok().content_type(ContentType::json()).body(body),
        Err(e) => RequestError::Encode(e.to_string()).error_response(),
    }
}
