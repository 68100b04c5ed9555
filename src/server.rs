//! The HTTP service: routes, request reading, error bodies, and the server built on a listener
//! the caller has bound (so tests can use port 0).

use std::collections::HashSet;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer, ResponseError};
use futures_util::StreamExt;
use serde::ser::{SerializeMap, Serializer};

use crate::lookup::{Fields, Keys, RequestError};
use crate::ranking::{fingerprint_hex, Service, Table};
use crate::state::AppState;

/// Largest request body: enough for a batch of 10 000 ordinary keys, small enough that a
/// client cannot make a worker buffer much.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Longest query string: lookups in the URL are small; batches go in the body. Far below the
/// HTTP layer's own limits, whose rejections cannot carry a JSON error.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;

/// Response header carrying the fingerprint of the service that answered.
pub const FINGERPRINT_HEADER: &str = "Keyrouter-Fingerprint";

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Worker threads; 0 means one per CPU.
    pub workers: usize,
    /// Grace period for in-flight requests on shutdown.
    pub shutdown_timeout: Duration,
    /// Time between readiness going to 503 and the listener closing, so that load balancers
    /// stop sending before keyrouter stops accepting.
    pub shutdown_delay: Duration,
    /// Emit a span and a log line per request (only worth it at DEBUG).
    pub log_requests: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            workers: 0,
            shutdown_timeout: Duration::from_secs(5),
            shutdown_delay: Duration::ZERO,
            log_requests: false,
        }
    }
}

impl ResponseError for RequestError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        error_body(self.status_code(), &self.to_string())
    }
}

fn error_body(status: StatusCode, message: &str) -> HttpResponse {
    let body = serde_json::json!({ "error": message });
    HttpResponse::build(status).content_type(ContentType::json()).body(body.to_string())
}

/// Registers keyrouter's routes. The caller provides `web::Data<AppState>`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    /// A resource answering GET (and HEAD) with `handler`, 405 with `Allow` otherwise.
    fn read_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
    where
        F: actix_web::Handler<Args> + Clone,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        web::resource(path)
            .route(web::get().to(handler.clone()))
            .route(web::head().to(handler))
            .default_service(web::to(|req: HttpRequest| method_not_allowed(req, "GET, HEAD")))
    }
    cfg.service(read_only("/healthz", healthz))
        .service(read_only("/readyz", readyz))
        .service(read_only("/metrics", metrics))
        .service(read_only("/table", table))
        .service(read_only("/openapi.yaml", openapi))
        .service(read_only("/service", list_services))
        .service(
            web::resource("/service/{name}")
                .route(web::post().to(lookup))
                .route(web::get().to(lookup))
                .route(web::head().to(lookup))
                .default_service(web::to(|req: HttpRequest| method_not_allowed(req, "GET, HEAD, POST"))),
        );
}

async fn method_not_allowed(req: HttpRequest, allow: &'static str) -> HttpResponse {
    let mut response = RequestError::MethodNotAllowed(req.method().to_string()).error_response();
    response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    RequestError::NotFound(req.path().to_string()).error_response()
}

/// Liveness: the process serves HTTP.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(r#"{"status":"ok"}"#)
}

/// Readiness: a table is loaded and the server is not shutting down.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_ready() {
        HttpResponse::Ok().content_type(ContentType::json()).body(r#"{"status":"ready"}"#)
    } else {
        error_body(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    }
}

async fn list_services(state: web::Data<AppState>) -> HttpResponse {
    let live = state.live();
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(serde_json::to_vec(live.table.names()).unwrap_or_default())
}

/// The API description, shipped inside the binary.
pub const OPENAPI: &str = include_str!("openapi.yaml");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/yaml").body(OPENAPI)
}

/// The whole table with fingerprints, for comparing replicas.
async fn table(state: web::Data<AppState>) -> HttpResponse {
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
    HttpResponse::Ok().content_type(ContentType::json()).body(body.to_string())
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type(crate::metrics::CONTENT_TYPE).body(state.metrics().render())
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] (before reading, when the client
/// announced its length).
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<web::Bytes, RequestError> {
    let too_large = RequestError::PayloadTooLarge { limit: MAX_BODY_BYTES };
    let announced =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large);
    }
    let unreadable =
        |e: actix_web::error::PayloadError| RequestError::Invalid(format!("cannot read request body: {e}"));
    // A small body usually arrives as one chunk: keep it as it is, without copying.
    let first = match payload.next().await {
        None => return Ok(web::Bytes::new()),
        Some(chunk) => chunk.map_err(unreadable)?,
    };
    if first.len() > MAX_BODY_BYTES {
        return Err(too_large);
    }
    let Some(second) = payload.next().await else { return Ok(first) };
    let mut body = web::BytesMut::with_capacity(announced.unwrap_or(0).max(first.len()));
    body.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        let chunk = chunk.map_err(unreadable)?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
        next = payload.next().await;
    }
    Ok(body.freeze())
}

/// The kinds of body a lookup accepts.
enum BodyKind {
    Json,
    Form,
    Multipart,
}

fn body_kind(req: &HttpRequest) -> Result<BodyKind, RequestError> {
    let raw = || {
        req.headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    // The usual spellings without parameters, without parsing a media type.
    if let Some(v) = req.headers().get(header::CONTENT_TYPE) {
        let v = v.as_bytes();
        if v.eq_ignore_ascii_case(b"application/json") {
            return Ok(BodyKind::Json);
        }
        if v.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
            return Ok(BodyKind::Form);
        }
    }
    let mime = match req.mime_type() {
        Ok(Some(m)) => m,
        Ok(None) => return Err(RequestError::UnsupportedMediaType(String::new())),
        Err(_) => return Err(RequestError::UnsupportedMediaType(raw())),
    };
    match (mime.type_().as_str(), mime.subtype().as_str(), mime.suffix().map(|s| s.as_str())) {
        ("application", "json", _) | ("application", _, Some("json")) => Ok(BodyKind::Json),
        ("application", "x-www-form-urlencoded", _) => Ok(BodyKind::Form),
        ("multipart", "form-data", _) => Ok(BodyKind::Multipart),
        _ => Err(RequestError::UnsupportedMediaType(raw())),
    }
}

/// Collects the text fields of a multipart body.
async fn multipart_pairs(req: &HttpRequest, body: web::Bytes) -> Result<Vec<(String, String)>, RequestError> {
    let bad = |e: &dyn std::fmt::Display| RequestError::Invalid(format!("invalid multipart body: {e}"));
    let stream = futures_util::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let mut form = actix_multipart::Multipart::new(req.headers(), stream);
    let mut pairs = Vec::new();
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| bad(&e))?;
        let name = field.name().unwrap_or_default().to_string();
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            value.extend_from_slice(&chunk.map_err(|e| bad(&e))?);
        }
        let value = String::from_utf8(value)
            .map_err(|_| RequestError::Invalid(format!("multipart field `{name}` is not UTF-8 text")))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// A request body, read and classified; multipart forms already split into fields.
struct Input {
    body: web::Bytes,
    kind: Option<BodyKind>,
    multipart: Vec<(String, String)>,
}

/// Everything that needs to wait for the client, done before the table is loaded so that no
/// table guard is held across an await.
async fn read_input(req: &HttpRequest, payload: web::Payload) -> Result<Input, RequestError> {
    let body = read_body(req, payload).await?;
    let kind = if body.is_empty() { None } else { Some(body_kind(req)?) };
    let multipart = match kind {
        // Boxed: the multipart parser's state would otherwise make every lookup's future larger.
        Some(BodyKind::Multipart) => Box::pin(multipart_pairs(req, body.clone())).await?,
        _ => Vec::new(),
    };
    Ok(Input { body, kind, multipart })
}

async fn lookup(req: HttpRequest, payload: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let input = read_input(&req, payload).await;
    let live = state.live();
    let name = req.match_info().query("name");
    let found = live.table.find(name);
    let response = input
        .and_then(|input| answer(&req, &input, name, found.map(|(i, s)| (s, &live.fingerprints[i]))))
        .unwrap_or_else(|e| e.error_response());
    let counters = found.map_or(state.metrics().unknown(), |(i, _)| &live.counters[i]);
    counters.count(response.status().as_u16());
    state.metrics().observe_latency(started.elapsed());
    response
}

/// Merges the body's fields over the query string's and answers.
fn answer(
    req: &HttpRequest,
    input: &Input,
    name: &str,
    service: Option<(&Service, &header::HeaderValue)>,
) -> Result<HttpResponse, RequestError> {
    if req.query_string().len() > MAX_QUERY_BYTES {
        return Err(RequestError::QueryTooLong { limit: MAX_QUERY_BYTES });
    }
    let (service, fingerprint) = service.ok_or_else(|| RequestError::UnknownService(name.to_string()))?;
    let query = Fields::from_urlencoded(req.query_string().as_bytes())?;
    let fields = match input.kind {
        None => query,
        Some(BodyKind::Json) => Fields::from_json(&input.body)?.or(query),
        Some(BodyKind::Form) => Fields::from_urlencoded(&input.body)?.or(query),
        Some(BodyKind::Multipart) => {
            Fields::from_pairs(input.multipart.iter().map(|(n, v)| (n.as_str(), v.as_str())))?.or(query)
        }
    };
    let body = rank(service, fields)?;
    tracing::debug!(service = name, "lookup");
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, header::HeaderValue::from_static("application/json")))
        .insert_header((FINGERPRINT_HEADER, fingerprint.clone()))
        .body(body))
}

/// Answers a lookup in `table` as the server would (the JSON body), for `keyrouter lookup`.
pub fn answer_lookup(table: &Table, name: &str, fields: Result<Fields, RequestError>) -> Result<Vec<u8>, RequestError> {
    let service = table.get(name).ok_or_else(|| RequestError::UnknownService(name.to_string()))?;
    rank(service, fields?)
}

/// Validates the lookup and ranks: the one path from any input form to an answer's JSON.
fn rank(service: &Service, fields: Fields) -> Result<Vec<u8>, RequestError> {
    let lookup = fields.into_lookup()?;
    let k = service.answer_len(lookup.min, lookup.max)?;
    let mut nodes = Vec::with_capacity(k);
    match &lookup.keys {
        Keys::One(key) => {
            service.rank_into(key, k, &mut nodes);
            serde_json::to_vec(&nodes)
        }
        Keys::Batch(keys) => {
            let mut out = Vec::with_capacity(keys.len() * (16 + 24 * k));
            let mut ser = serde_json::Serializer::new(&mut out);
            let mut seen = HashSet::with_capacity(keys.len());
            (|| {
                let mut map = ser.serialize_map(None)?;
                for key in keys.iter().map(|k| k.as_ref()).filter(|k| seen.insert(*k)) {
                    nodes.clear();
                    service.rank_into(key, k, &mut nodes);
                    map.serialize_entry(key, &nodes)?;
                }
                map.end()
            })()
            .map(|()| out)
        }
    }
    .map_err(|e| RequestError::Invalid(format!("cannot encode answer: {e}")))
}

/// Builds the app on `state` (used by the server and by in-process tests).
pub fn app(
    state: web::Data<AppState>,
    log_requests: bool,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .wrap(Condition::new(log_requests, tracing_actix_web::TracingLogger::<DebugSpans>::new()))
        .configure(routes)
        .default_service(web::to(not_found))
}

/// Request spans at DEBUG, so that at the default level requests cost no logging.
pub struct DebugSpans;

impl tracing_actix_web::RootSpanBuilder for DebugSpans {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        tracing_actix_web::root_span!(level = tracing::Level::DEBUG, request)
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        if let Ok(response) = outcome {
            tracing::debug!(parent: &span, status = response.status().as_u16(), "request");
        }
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Builds the HTTP server on an already bound listener. Signals are not handled here: the
/// caller owns them (see [`run`]).
pub fn build(listener: TcpListener, state: Arc<AppState>, opts: &ServerOptions) -> std::io::Result<Server> {
    let data = web::Data::from(state);
    let log_requests = opts.log_requests;
    let mut server = HttpServer::new(move || app(data.clone(), log_requests))
        .disable_signals()
        .shutdown_timeout(opts.shutdown_timeout.as_secs().max(1));
    if opts.workers > 0 {
        server = server.workers(opts.workers);
    }
    Ok(server.listen(listener)?.run())
}

/// Serves until `shutdown` completes, then stops gracefully: readiness goes to 503, the
/// listener stays open for `shutdown_delay`, then in-flight requests get up to
/// `shutdown_timeout` to finish.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let server = build(listener, state.clone(), &opts)?;
    let handle = server.handle();
    actix_rt::spawn(async move {
        shutdown.await;
        state.set_ready(false);
        tokio::time::sleep(opts.shutdown_delay).await;
        handle.stop(true).await;
    });
    server.await
}
