//! The small endpoints: health, readiness, metrics, the table, the service list, the API
//! description, and the answers for unknown routes and methods.

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::error::{error_body, HttpError};
use crate::table::state::AppState;

/// The API description, shipped inside the binary.
pub const OPENAPI: &str = include_str!("../openapi.yaml");

pub async fn method_not_allowed(req: HttpRequest, allow: &'static str) -> HttpResponse {
    let mut response = HttpError::MethodNotAllowed(req.method().to_string()).error_response();
    response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    HttpError::NotFound(req.path().to_string()).error_response()
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

/// The service names, rendered when the table was built.
pub async fn list_services(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(state.live().names_json().clone())
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/yaml").body(OPENAPI)
}

/// The whole table with fingerprints, for comparing replicas: rendered when the table was
/// built, so a large catalog costs a pointer copy here.
pub async fn table(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(state.live().table_json().clone())
}

/// The Prometheus exposition, rendered on the blocking pool: with a large table it is
/// megabytes of text, which must not hold up the lookups queued on this worker.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let state = state.into_inner();
    match web::block(move || state.render_metrics()).await {
        Ok(body) => HttpResponse::Ok().content_type(crate::metrics::CONTENT_TYPE).body(body),
        Err(e) => HttpError::Internal { what: "rendering /metrics", cause: e.to_string() }.error_response(),
    }
}
