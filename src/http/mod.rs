//! The HTTP side, actix only: the app and its routes, and the server built on a listener the
//! caller has bound (so tests can use port 0).
//!
//! - [`body`]: reading a lookup's body (limits, content types, multipart).
//! - [`lookup`]: the `/service/{name}` handler, which answers through [`crate::request`].
//! - [`endpoints`]: health, readiness, metrics, table, service list, OpenAPI, 404 and 405.
//! - [`error`]: `RequestError` → status and JSON body.

pub mod body;
pub mod endpoints;
pub mod error;
pub mod lookup;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpRequest, HttpServer};

pub use body::MAX_BODY_BYTES;
pub use endpoints::OPENAPI;
pub use lookup::{FINGERPRINT_HEADER, MAX_QUERY_BYTES};

use crate::state::AppState;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Worker threads; 0 means actix's default.
    pub workers: usize,
    /// Grace period for in-flight requests on shutdown.
    pub shutdown_timeout: Duration,
    /// Time between readiness going to 503 and the listener closing, so that load balancers
    /// stop sending before keyrouter stops accepting.
    pub shutdown_delay: Duration,
    /// Emit a span and a log line per request (only worth it at DEBUG).
    pub log_requests: bool,
    /// Time for a request head to arrive (the body's deadline is in [`crate::state::Limits`]).
    pub request_timeout: Duration,
    /// Most connections per worker; 0 means actix's default (25 000).
    pub max_connections_per_worker: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            workers: 0,
            shutdown_timeout: Duration::from_secs(5),
            shutdown_delay: Duration::ZERO,
            log_requests: false,
            request_timeout: Duration::from_secs(10),
            max_connections_per_worker: 0,
        }
    }
}

/// Registers keyrouter's routes. The caller provides `web::Data<AppState>`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use endpoints::*;
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
                .route(web::post().to(lookup::lookup))
                .route(web::get().to(lookup::lookup))
                .route(web::head().to(lookup::lookup))
                .default_service(web::to(|req: HttpRequest| method_not_allowed(req, "GET, HEAD, POST"))),
        );
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
        .default_service(web::to(endpoints::not_found))
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
        .shutdown_timeout(opts.shutdown_timeout.as_secs().max(1))
        .client_request_timeout(opts.request_timeout)
        .on_connect(body::record_socket);
    if opts.workers > 0 {
        server = server.workers(opts.workers);
    }
    if opts.max_connections_per_worker > 0 {
        server = server.max_connections(opts.max_connections_per_worker);
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
