//! `/service/{name}`: read the body, load the table once, answer through
//! [`crate::request::plan`] and [`crate::request::render`], count the outcome.
//!
//! A lookup whose work (keys × nodes of the service) is above `--heavy-lookup-work` is ranked
//! on the blocking pool, at most `--heavy-lookups` at once, so that it never holds up the small
//! lookups that share its I/O thread; when every slot is taken it gets a 503 with Retry-After.
//! Small lookups pay one comparison for this.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::body::{read_input, stop_reading, Input};
use super::error::HttpError;
use crate::limits::RequestLimits;
use crate::request::{self, Fields, Plan, RequestError};
use crate::table::state::{AppState, Live, Served};

/// Longest query string: lookups in the URL are small; batches go in the body. Far below the
/// HTTP layer's own limits, whose rejections cannot carry a JSON error.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// Response header carrying the fingerprint of the service that answered.
pub const FINGERPRINT_HEADER: &str = "Keyrouter-Fingerprint";

/// [`FINGERPRINT_HEADER`] as a header name (lowercase, as HTTP/1 writes it), checked at
/// compile time rather than parsed on every answer.
const FINGERPRINT_HEADER_NAME: HeaderName = HeaderName::from_static("keyrouter-fingerprint");

/// The `/service` scope's default service: `/service/{name}` (one non-empty segment) is a
/// lookup for GET, HEAD and POST and a 405 for other methods; any deeper path is a 404.
///
/// Lookups are recognized here by hand instead of by a `/service/{name}` resource: actix
/// matches a dynamic segment with a regex and allocates path items for it, a large share of the
/// HTTP layer's own work per lookup (figures in benches/wrk/README.md).
pub async fn route(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    if name_segment(req.uri().path()).is_none() {
        return super::endpoints::not_found(req).await;
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::POST) {
        return super::endpoints::method_not_allowed(req, "GET, HEAD, POST").await;
    }
    lookup(req, payload, state).await
}

/// A lookup on `/service/{name}`.
pub async fn lookup(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let limits = state.limits();
    let input = read_input(&req, payload, limits.request_timeout).await;
    match &input {
        Err(HttpError::Timeout { .. }) => stop_reading(&req, Duration::ZERO),
        Err(HttpError::PayloadTooLarge { .. }) => stop_reading(&req, limits.request_timeout),
        _ => {}
    }
    let name = service_name(&req);
    let live = state.live();
    let served = name.as_deref().ok().and_then(|n| live.service(n));
    let planned = match (&input, &name) {
        (Ok(input), Ok(name)) => plan(&req, input, name, served, limits),
        (Err(e), _) => Err(e.clone()),
        (_, Err(e)) => Err(e.clone().into()),
    };
    let response = match planned {
        Ok((served, plan)) if plan.work(served.service) > limits.heavy_work => {
            // Off the I/O thread: the job owns the table it ranks and its keys.
            let live = Arc::clone(&live);
            let name = served.service.name().to_string();
            let plan = plan.into_owned();
            drop(input);
            // Boxed: the pool's join handle and permit would otherwise enlarge every lookup's
            // future, small ones included.
            return Box::pin(heavy(&state, live, name, plan, started)).await;
        }
        Ok((served, plan)) => ok(served, request::render(served.service, &plan)),
        Err(e) => e.error_response(),
    };
    finish(&state, served, response, started, false)
}

/// The `{name}` of a raw `/service/{name}` path: one non-empty segment, still percent-encoded.
fn name_segment(path: &str) -> Option<&str> {
    path.strip_prefix("/service/").filter(|name| !name.is_empty() && !name.contains('/'))
}

/// The service name from the raw path, percent-decoded completely (`%2F` included, which the
/// router keeps encoded); not UTF-8 once decoded is a 400.
fn service_name(req: &HttpRequest) -> Result<Cow<'_, str>, RequestError> {
    // `route` let only such paths through.
    let raw = name_segment(req.uri().path()).unwrap_or_default();
    request::decode_path_segment(raw)
        .ok_or_else(|| RequestError::Invalid("service name is not valid UTF-8 once percent-decoded".into()))
}

fn plan<'a>(
    req: &'a HttpRequest,
    input: &'a Input,
    name: &str,
    served: Option<Served<'a>>,
    limits: &RequestLimits,
) -> Result<(Served<'a>, Plan<'a>), HttpError> {
    if req.query_string().len() > MAX_QUERY_BYTES {
        return Err(HttpError::QueryTooLong { limit: MAX_QUERY_BYTES });
    }
    let served = served.ok_or_else(|| RequestError::UnknownService(name.to_string()))?;
    let fields = Fields::from_request(req.query_string().as_bytes(), input.body())?;
    let plan = request::plan(served.service, fields, &limits.budget())?;
    Ok((served, plan))
}

/// Ranks a heavy lookup on the blocking pool if a slot is free, else answers 503.
async fn heavy(state: &AppState, live: Arc<Live>, name: String, plan: Plan<'static>, started: Instant) -> HttpResponse {
    let Some(served) = live.service(&name) else {
        // Unreachable: the name was found in this very table.
        return finish(
            state,
            None,
            HttpError::from(RequestError::UnknownService(name)).error_response(),
            started,
            false,
        );
    };
    let permit = Arc::clone(state.heavy_slots()).try_acquire_owned();
    let shed = permit.is_err();
    let response = match permit {
        Err(_) => HttpError::Overloaded.error_response(),
        Ok(permit) => {
            let job = Arc::clone(&live);
            let job_name = name.clone();
            // The permit goes with the job: if the client leaves, the slot stays taken until the
            // ranking is done, so the pool's bound holds.
            let ranked = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                match job.service(&job_name) {
                    Some(served) => Ok(request::render(served.service, &plan)),
                    None => Err(RequestError::UnknownService(job_name)),
                }
            })
            .await;
            match ranked {
                Ok(Ok(body)) => ok(served, body),
                Ok(Err(e)) => HttpError::from(e).error_response(),
                Err(e) => HttpError::Internal { what: "ranking a large lookup", cause: e.to_string() }.error_response(),
            }
        }
    };
    finish(state, Some(served), response, started, shed)
}

/// The answer, built directly rather than through `HttpResponse::Ok()`'s builder, which parses
/// every header name it is given, on every lookup (figures in benches/wrk/README.md).
fn ok(served: Served, body: Vec<u8>) -> HttpResponse {
    tracing::debug!(service = served.service.name(), "lookup");
    let mut response = HttpResponse::with_body(StatusCode::OK, body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(FINGERPRINT_HEADER_NAME, served.fingerprint.clone());
    response.map_into_boxed_body()
}

/// Counts the outcome for the service (or for unknown services) and the latency, overall and
/// for the service. `shed`: the lookup was refused for want of a `--heavy-lookups` slot.
fn finish(
    state: &AppState,
    served: Option<Served>,
    response: HttpResponse,
    started: Instant,
    shed: bool,
) -> HttpResponse {
    let counters = served.map_or(state.metrics().unknown(), |s| s.counters);
    let elapsed = started.elapsed();
    counters.count(response.status().as_u16(), shed);
    counters.observe(elapsed);
    state.metrics().observe_latency(elapsed);
    response
}
