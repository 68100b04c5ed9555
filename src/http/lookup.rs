//! `/service/{name}`: read the body, load the table once, answer through
//! [`crate::request::answer`], count the outcome.

use std::time::Instant;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::body::{read_input, Input};
use crate::request::{self, Fields, RequestError};
use crate::state::{AppState, Served};

/// Longest query string: lookups in the URL are small; batches go in the body. Far below the
/// HTTP layer's own limits, whose rejections cannot carry a JSON error.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// Response header carrying the fingerprint of the service that answered.
pub const FINGERPRINT_HEADER: &str = "Keyrouter-Fingerprint";

pub async fn lookup(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let input = read_input(&req, payload).await;
    let live = state.live();
    let name = req.match_info().query("name");
    let served = live.service(name);
    let response = input.and_then(|input| answer(&req, &input, name, served)).unwrap_or_else(|e| e.error_response());
    let counters = served.map_or(state.metrics().unknown(), |s| s.counters);
    counters.count(response.status().as_u16());
    state.metrics().observe_latency(started.elapsed());
    response
}

fn answer(req: &HttpRequest, input: &Input, name: &str, served: Option<Served>) -> Result<HttpResponse, RequestError> {
    if req.query_string().len() > MAX_QUERY_BYTES {
        return Err(RequestError::QueryTooLong { limit: MAX_QUERY_BYTES });
    }
    let served = served.ok_or_else(|| RequestError::UnknownService(name.to_string()))?;
    let fields = Fields::from_request(req.query_string().as_bytes(), input.body())?;
    let body = request::answer(served.service, fields)?;
    tracing::debug!(service = name, "lookup");
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .insert_header((FINGERPRINT_HEADER, served.fingerprint.clone()))
        .body(body))
}
