//! Reading a lookup's body: the size limit, the content type, and multipart fields.
//!
//! Everything here waits for the client, so the handler does it before it loads the table: no
//! table guard is held across an await.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest};
use futures_util::{FutureExt as _, StreamExt};

use super::error::HttpError;
use crate::request::{Body, RequestError};

/// Largest request body: enough for a batch of 10 000 ordinary keys, small enough that a
/// client cannot make a worker buffer much.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request body, read and classified; multipart forms already split into fields.
pub struct Input {
    body: web::Bytes,
    kind: Option<BodyKind>,
    multipart: Vec<(String, String)>,
}

impl Input {
    /// The body as the request layer takes it.
    pub fn body(&self) -> Body<'_> {
        match self.kind {
            None => Body::Empty,
            Some(BodyKind::Json) => Body::Json(&self.body),
            Some(BodyKind::Form) => Body::Form(&self.body),
            Some(BodyKind::Multipart) => Body::Pairs(&self.multipart),
        }
    }
}

/// The socket of a connection, recorded when actix accepts it (see `crate::http::build`), so
/// that a handler can stop reading a body it refused; with the server's bound on lingering
/// closes.
#[derive(Debug, Clone)]
pub struct Socket {
    fd: RawFd,
    lingering: Arc<LingerBudget>,
}

/// Records the socket of a new connection, and the server's lingering-close budget.
pub fn record_socket(io: &impl AsRawFd, lingering: &Arc<LingerBudget>, ext: &mut actix_web::dev::Extensions) {
    ext.insert(Socket { fd: io.as_raw_fd(), lingering: lingering.clone() });
}

/// After refusing a body it did not read whole, stop reading the connection. actix otherwise
/// drains the rest of the body (a refused one included) for as long as the client sends it,
/// with no deadline, and only then closes.
///
/// - `after` zero (the client stalled, so it sends nothing we would discard): the read side is
///   shut down now; actix sees the end of the stream, writes the answer, and closes.
/// - otherwise (the client may still be sending a body we refused): both sides are shut down
///   after `after`, a lingering close with a deadline. Shutting the read side at once would
///   make the kernel answer the client's next bytes with a reset, which may destroy the answer
///   before the client reads it. A duplicate descriptor keeps the socket itself (not a number
///   the kernel could give to another connection) until then; at most
///   [`LingerBudget::new`]'s bound at once (from the server's options).
pub fn stop_reading(req: &HttpRequest, after: Duration) {
    let Some(socket) = req.conn_data::<Socket>() else { return };
    let fd = socket.fd;
    // Each lingering close holds a descriptor outside the connection cap: past the bound, the
    // read side is shut at once (the client that keeps sending may then get a reset).
    let linger = if after.is_zero() { None } else { socket.lingering.start() };
    let Some(linger) = linger else {
        // SAFETY: shutdown(2) on the descriptor of this request's own connection, which actix
        // keeps open while this request's handler runs.
        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
        return;
    };
    // SAFETY: as above; the duplicate is owned (and closed) by `OwnedFd`.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return;
    }
    // SAFETY: `dup` is a fresh descriptor nobody else owns.
    let dup = unsafe { OwnedFd::from_raw_fd(dup) };
    actix_web::rt::spawn(async move {
        let _linger = linger;
        tokio::time::sleep(after).await;
        // SAFETY: shutdown(2) on a descriptor we own.
        unsafe { libc::shutdown(dup.as_raw_fd(), libc::SHUT_RDWR) };
    });
}

/// The lingering closes of one server: how many are in progress, each holding a duplicate
/// descriptor, and how many may be.
#[derive(Debug)]
pub struct LingerBudget {
    in_progress: AtomicUsize,
    max: usize,
}

impl LingerBudget {
    /// At most `max` lingering closes at once.
    pub fn new(max: usize) -> LingerBudget {
        LingerBudget { in_progress: AtomicUsize::new(0), max }
    }

    fn start(self: &Arc<Self>) -> Option<Lingering> {
        self.in_progress
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| Lingering(self.clone()))
    }
}

/// One lingering close counted in its [`LingerBudget`] until dropped.
struct Lingering(Arc<LingerBudget>);

impl Drop for Lingering {
    fn drop(&mut self) {
        self.0.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reads and classifies the body of `req`, which must arrive whole within `timeout` (the head
/// had its own `--request-timeout` in actix, which bounds only the head).
pub async fn read_input(req: &HttpRequest, payload: web::Payload, timeout: Duration) -> Result<Input, HttpError> {
    if let Some(encoding) = req.headers().get(header::CONTENT_ENCODING) {
        // Nothing here decompresses: a gzip body would otherwise be parsed as garbage.
        if !encoding.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity") {
            return Err(HttpError::UnsupportedEncoding(String::from_utf8_lossy(encoding.as_bytes()).into_owned()));
        }
    }
    // A small body usually came with the head: read it without arming a timer (which costs a
    // clock read and a timer registration per request); only a body still on its way gets one.
    let reading = read_body(req, payload);
    futures_util::pin_mut!(reading);
    let body = match reading.as_mut().now_or_never() {
        Some(body) => body?,
        // Boxed: a body still on its way is the rare case, and the timer is large.
        None => Box::pin(tokio::time::timeout(timeout, reading))
            .await
            .map_err(|_| HttpError::Timeout { secs: timeout.as_secs() })??,
    };
    let kind = if body.is_empty() { None } else { Some(body_kind(req)?) };
    let multipart = match kind {
        // Boxed: the multipart parser's state would otherwise make every lookup's future larger.
        Some(BodyKind::Multipart) => Box::pin(multipart_pairs(req, body.clone())).await?,
        _ => Vec::new(),
    };
    Ok(Input { body, kind, multipart })
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] (before reading, when the client
/// announced its length).
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> Result<web::Bytes, HttpError> {
    let too_large = HttpError::PayloadTooLarge { limit: MAX_BODY_BYTES };
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
#[derive(Clone, Copy)]
enum BodyKind {
    Json,
    Form,
    Multipart,
}

fn body_kind(req: &HttpRequest) -> Result<BodyKind, HttpError> {
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
        Ok(None) => return Err(HttpError::UnsupportedMediaType(String::new())),
        Err(_) => return Err(HttpError::UnsupportedMediaType(raw())),
    };
    match (mime.type_().as_str(), mime.subtype().as_str(), mime.suffix().map(|s| s.as_str())) {
        ("application", "json", _) | ("application", _, Some("json")) => Ok(BodyKind::Json),
        ("application", "x-www-form-urlencoded", _) => Ok(BodyKind::Form),
        ("multipart", "form-data", _) => Ok(BodyKind::Multipart),
        _ => Err(HttpError::UnsupportedMediaType(raw())),
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
