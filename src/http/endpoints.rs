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

/// Readiness: a table is loaded and the server is not shutting down.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_ready() {
        HttpResponse::Ok().content_type(ContentType::json()).body(r#"{"status":"ready"}"#)
    } else {
        error_body(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
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
///
/// Serialized straight from the table: a tree of JSON values would allocate a copy of every node
/// string (millions of small blocks for a big table, left in the worker's malloc arena). Fields
/// are in alphabetical order, as the `serde_json::Value` this replaced wrote them.
pub async fn table(state: web::Data<AppState>) -> HttpResponse {
    #[derive(serde::Serialize)]
    struct TableBody<'a> {
        algorithm: u32,
        fingerprint: String,
        services: Vec<ServiceBody<'a>>,
    }
    #[derive(serde::Serialize)]
    struct ServiceBody<'a> {
        fingerprint: String,
        name: &'a str,
        nodes: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        weights: Option<&'a [f64]>,
    }
    let live = state.live();
    let t = &live.table;
    let body = TableBody {
        algorithm: crate::ranking::ALGORITHM_VERSION,
        fingerprint: fingerprint_hex(t.fingerprint()),
        services: t
            .services()
            .iter()
            .map(|s| ServiceBody {
                fingerprint: fingerprint_hex(s.fingerprint()),
                name: s.name(),
                nodes: s.nodes(),
                weights: s.is_weighted().then(|| s.weights()),
            })
            .collect(),
    };
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
