//! The HTTP side, actix only: the app and its routes, and the server built on a listener the
//! caller has bound (so tests can use port 0).
//!
//! - [`body`]: reading a lookup's body (limits, content types, multipart).
//! - [`connection`]: deadlines between a connection's requests, and the request-line cap.
//! - [`lookup`]: the `/service/{name}` handler, which answers through [`crate::request`].
//! - [`endpoints`]: health, readiness, metrics, table, service list, OpenAPI, 404 and 405.
//! - [`error`]: `HttpError` (a `RequestError`, or what only HTTP can get wrong) → status and
//!   JSON body.
//! - [`status`]: the status page (`/`, `/status`) and its script and style sheet.

pub mod body;
pub mod connection;
pub mod endpoints;
pub mod error;
pub mod lookup;
pub mod status;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_http::HttpMessage as _;
use actix_service::{IntoServiceFactory as _, ServiceFactoryExt as _};
use actix_web::dev::Server;
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpRequest};

pub use body::MAX_BODY_BYTES;
pub use endpoints::OPENAPI;
pub use lookup::{FINGERPRINT_HEADER, MAX_QUERY_BYTES};

use crate::table::state::AppState;

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
    /// Time for a request head to arrive (the body's deadline is in [`crate::limits::RequestLimits`]).
    pub request_timeout: Duration,
    /// Time an idle connection is kept open between requests.
    pub keep_alive: Duration,
    /// Most connections served at once, exactly (whatever the worker count); 0 means actix's
    /// default (25 000 per worker).
    pub max_connections: u64,
    /// actix's cap per worker; 0 means actix's default. At least `max_connections` over the
    /// workers, so that the total cap is reachable.
    pub max_connections_per_worker: usize,
    /// Lingering closes at once (see [`body::stop_reading`]).
    pub max_lingering: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            workers: 0,
            shutdown_timeout: Duration::from_secs(5),
            shutdown_delay: Duration::ZERO,
            log_requests: false,
            request_timeout: Duration::from_secs(10),
            keep_alive: DEFAULT_KEEP_ALIVE,
            max_connections: 0,
            max_connections_per_worker: 0,
            max_lingering: 32,
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
    // Lookups first: actix tries the routes in order, and every route tried before costs a lookup.
    // `/service/{name}` is the scope's default service (see `lookup::route` for why it is not
    // a resource of its own).
    cfg.service(web::scope("/service").service(read_only("", list_services)).default_service(web::to(lookup::route)))
        .service(read_only("/", status::root))
        .service(read_only("/status", status::page))
        .service(read_only("/status.js", status::script))
        .service(read_only("/status.css", status::style))
        .service(read_only("/status/traffic.json", status::traffic))
        .service(read_only("/status/traffic.js", status::traffic_script))
        .service(read_only("/healthz", healthz))
        .service(read_only("/readyz", readyz))
        .service(read_only("/metrics", metrics))
        .service(read_only("/table", table))
        .service(read_only("/openapi.yaml", openapi));
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

/// Default `--keep-alive`, actix-web's `HttpServer` default: idle connections close after this.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// actix-web's `HttpServer` default: time a closing connection gets to shut down.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Builds the HTTP server on an already bound listener. Signals are not handled here: the
/// caller owns them (see [`run`]).
///
/// The server is assembled as actix-web's `HttpServer` does it (an `actix_server` of
/// `HttpService`s over the app), with what `HttpServer` does not expose: an
/// `Expect: 100-continue` handler (`expect`), the connection's socket recorded for
/// [`body::stop_reading`], each stream wrapped in [`connection::Guarded`] (a deadline for every
/// head, not only the first), and a process-wide gate that keeps `max_connections` exact
/// (actix's own cap is per worker).
pub fn build(listener: TcpListener, state: Arc<AppState>, opts: &ServerOptions) -> std::io::Result<Server> {
    let data = web::Data::from(state);
    let log_requests = opts.log_requests;
    let timeouts = connection::Timeouts { request: opts.request_timeout, keep_alive: opts.keep_alive };
    let keep_alive = connection::capped(opts.keep_alive);
    let lingering = Arc::new(body::LingerBudget::new(opts.max_lingering));
    // Connections wait here (accepted, not read) while `max_connections` are served: exact
    // whatever the worker count. Unset, actix's per-worker cap is the only one.
    let gate = (opts.max_connections > 0).then(|| {
        Arc::new(tokio::sync::Semaphore::new(
            usize::try_from(opts.max_connections).unwrap_or(usize::MAX).min(tokio::sync::Semaphore::MAX_PERMITS),
        ))
    });
    let local = listener.local_addr()?;
    let mut builder =
        actix_server::Server::build().disable_signals().shutdown_timeout(opts.shutdown_timeout.as_secs().max(1));
    if opts.workers > 0 {
        builder = builder.workers(opts.workers);
    }
    if opts.max_connections_per_worker > 0 {
        builder = builder.max_concurrent_connections(opts.max_connections_per_worker);
    }
    // Graceful shutdown closes idle keep-alive connections at once instead of waiting for them.
    let shutdown = builder.graceful_shutdown_signal();
    let server = builder
        .listen("keyrouter", listener, move || {
            let shutdown = shutdown.clone();
            let lingering = lingering.clone();
            let gate = gate.clone();
            let app = app(data.clone(), log_requests)
                .into_factory()
                .map_err(|err: actix_web::Error| actix_web::ResponseError::error_response(err.as_response_error()));
            let app = actix_service::map_config(app, |_| actix_web::dev::AppConfig::default());
            let http = actix_http::HttpService::build()
                .keep_alive(keep_alive)
                // Every head's deadline, the first's included, is `connection::Guarded`'s (a
                // JSON 408); actix's would apply to the first head only.
                .client_request_timeout(Duration::ZERO)
                .client_disconnect_timeout(DISCONNECT_TIMEOUT)
                .local_addr(local)
                .graceful_shutdown_signal(move || {
                    let shutdown = shutdown.clone();
                    async move { shutdown.notified().await }
                })
                .on_connect_ext(move |io: &connection::Guarded, ext| {
                    ext.insert(io.clock());
                    body::record_socket(io, &lingering, ext);
                })
                .expect(actix_service::fn_service(expect))
                .finish(connection::counted(app));
            actix_service::fn_service(move |io: actix_web::rt::net::TcpStream| {
                let gate = gate.clone();
                async move {
                    let permit =
                        match gate {
                            Some(gate) => Some(gate.acquire_owned().await.map_err(|e| {
                                actix_http::error::DispatchError::Io(std::io::Error::other(e.to_string()))
                            })?),
                            None => None,
                        };
                    let peer = io.peer_addr().ok();
                    Ok((connection::Guarded::new(io, timeouts, permit), actix_http::Protocol::Http1, peer))
                }
            })
            .and_then(http)
        })?
        .run();
    Ok(server)
}

/// `Expect: 100-continue`: a body announced over [`MAX_BODY_BYTES`] gets its 413 now, before
/// the client is told to send it (actix's own handler always says continue).
async fn expect(
    req: actix_http::Request,
) -> Result<actix_http::Request, actix_http::Response<actix_web::body::BoxBody>> {
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        use actix_web::ResponseError;
        let mut response = error::HttpError::PayloadTooLarge { limit: MAX_BODY_BYTES }.error_response();
        response.head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
        return Err(response.into());
    }
    Ok(req)
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
