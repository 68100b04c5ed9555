//! Deadlines on a connection between its requests, and the request-line cap, in an I/O wrapper
//! around the TCP stream ([`Guarded`]).
//!
//! actix-http's HTTP/1 dispatcher arms its head timer (`client_request_timeout`) for the first
//! request of a connection only, and clears its keep-alive timer as soon as one byte of the
//! next head arrives. A client that sends a request, then one byte of the next head, then
//! nothing, held its connection (and its slot of `--max-connections`) for ever. The dispatcher
//! cannot be configured otherwise, so the deadline lives below it, in the stream it reads:
//!
//! - Requests in flight (a head decoded, its answer not yet produced) are counted by a service
//!   wrapper ([`counted`]) in a per-connection [`Clock`] the stream shares through the
//!   connection's data. While one is in flight there is no deadline here: the body has its own
//!   (`crate::http::body`), and a lookup's work is bounded elsewhere.
//! - With none in flight, the first bytes read start a head: it must be decoded within
//!   `--request-timeout`, or the stream answers 408 itself and ends (the dispatcher sees the end
//!   of the stream and closes).
//! - After a request, until bytes arrive, the connection may idle for `--keep-alive` (actix's
//!   own keep-alive timer closes it gracefully then); if the dispatcher still holds bytes it
//!   read with the previous request (a pipelined, partial head), no byte will arrive to start a
//!   deadline, so the stream ends anyway after the longer of the two timeouts.
//! - The request line of a head started here (not after a request with a body, whose unread
//!   rest actix drains and which may have no line breaks) is measured as it arrives: past
//!   [`MAX_REQUEST_LINE_BYTES`] the stream answers a JSON 414 itself. The `http` crate refuses
//!   URIs of 65 535 bytes and more, and actix then answers a bare 400. A head pipelined behind
//!   a request still in flight is not measured (its bytes cannot be told from a body): such a
//!   URI over 65 534 bytes still gets actix's 400.
//! - The first head of a connection is timed here too (actix's own head timer is off), so every
//!   late head gets the same JSON 408.
//!
//! Why a stream wrapper and not a timer in a service: a service runs only once a whole head is
//! decoded, which is exactly what a stalled client never sends. The wrapper costs a clock read
//! per request; its timer is re-armed lazily (only when it fires early), not once per request.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Longest request line (method, URI, version) accepted: longer ones get a JSON 414. Far above
/// any lookup's (the query string is capped at [`crate::http::MAX_QUERY_BYTES`]), below the
/// `http` crate's URI cap (65 534 bytes).
pub const MAX_REQUEST_LINE_BYTES: usize = 32 * 1024;

/// A deadline this far away stands for "never" (a huge `--request-timeout` must not overflow).
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d`, saturating at a far-future instant instead of panicking.
pub fn deadline_after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(FAR_FUTURE)).unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// `d`, capped so that actix's own `Instant + d` cannot overflow.
pub fn capped(d: Duration) -> Duration {
    d.min(FAR_FUTURE)
}

/// The timeouts a connection lives by.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A head, from its first byte to its last (`--request-timeout`).
    pub request: Duration,
    /// An idle connection between requests (`--keep-alive`).
    pub keep_alive: Duration,
}

/// What the stream and the service wrapper of one connection share.
#[derive(Debug, Default)]
pub struct Clock {
    /// Heads decoded so far.
    heads: Cell<u64>,
    /// Requests whose answer is not produced yet.
    in_flight: Cell<u32>,
    /// The last request came with a body, which its handler may have left unread: actix then
    /// drains the rest after the answer, so the bytes that follow may not be a head.
    had_body: Cell<bool>,
}

/// One request in flight, counted in its connection's [`Clock`] until dropped.
pub struct InFlight(Rc<Clock>);

impl Clock {
    /// A head was decoded: its request is in flight until the guard drops.
    pub fn begin(self: Rc<Self>, req: &mut actix_http::Request) -> InFlight {
        use actix_http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
        // actix decodes a head without Content-Length or Transfer-Encoding to no payload at all:
        // the common GET needs no header lookup.
        let body = !matches!(req.payload(), actix_http::Payload::None) && {
            let headers = &req.head().headers;
            headers.contains_key(TRANSFER_ENCODING) || headers.get(CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        };
        self.had_body.set(body);
        self.heads.set(self.heads.get() + 1);
        self.in_flight.set(self.in_flight.get() + 1);
        InFlight(self)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.set(self.0.in_flight.get().saturating_sub(1));
    }
}

/// Wraps the app's service factory so that each request is counted in its connection's
/// [`Clock`] (found in the connection data) from its call until its answer is produced.
pub fn counted<SF>(
    factory: SF,
) -> impl actix_service::ServiceFactory<
    actix_http::Request,
    Config = (),
    Response = SF::Response,
    Error = SF::Error,
    InitError = SF::InitError,
>
where
    SF: actix_service::ServiceFactory<actix_http::Request, Config = ()>,
    SF::Service: 'static,
{
    actix_service::apply_fn_factory(factory, |mut req: actix_http::Request, service: &SF::Service| {
        let guard = req.conn_data::<Rc<Clock>>().cloned().map(|clock| clock.begin(&mut req));
        let answer = actix_service::Service::call(service, req);
        async move {
            let answer = answer.await;
            drop(guard);
            answer
        }
    })
}

/// Where the connection stands, as the stream last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No head in progress, none in flight: waiting for the next request.
    Between,
    /// Bytes of a head arrived with no request in flight: it must be whole by the deadline.
    Head,
    /// A request is in flight: no deadline here.
    Busy,
}

/// The connection's TCP stream, with the deadlines and the request-line cap described in the
/// module docs.
pub struct Guarded {
    stream: TcpStream,
    clock: Rc<Clock>,
    timeouts: Timeouts,
    phase: Phase,
    /// When the current phase's time is up (meaningless while `Busy`).
    deadline: Instant,
    /// `clock.heads` when last seen: a change means a head was decoded since.
    heads_seen: u64,
    /// Bytes of the current head's request line seen so far; `None` once its end was seen (or
    /// when the head began while a request was in flight, where bytes may be a body).
    line: Option<usize>,
    /// The last write did not go through whole: the dispatcher still has an answer to send, so
    /// the stream must not write one of its own.
    write_blocked: bool,
    /// The timer, armed lazily: it may fire before `deadline`, and is then re-armed.
    timer: Option<Pin<Box<Sleep>>>,
    /// The waker the timer was last polled with (and will wake when it fires).
    timer_waker: Option<Waker>,
    /// The stream answered or timed out itself: every read from now on is the end.
    ended: bool,
    /// This connection's place under `--max-connections`, held for its life.
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Guarded {
    /// The first head's deadline runs from now: a connection that sends nothing gets its 408
    /// after `--request-timeout`, as one that stalls mid-head does.
    pub fn new(stream: TcpStream, timeouts: Timeouts, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Guarded {
        Guarded {
            stream,
            clock: Rc::new(Clock::default()),
            timeouts,
            phase: Phase::Head,
            deadline: deadline_after(Instant::now(), timeouts.request),
            heads_seen: 0,
            line: Some(0),
            write_blocked: false,
            timer: None,
            timer_waker: None,
            ended: false,
            _permit: permit,
        }
    }

    /// The clock the service wrapper counts requests in (put in the connection data).
    pub fn clock(&self) -> Rc<Clock> {
        self.clock.clone()
    }

    /// Writes a whole small answer if the socket takes it now; best effort, as the connection
    /// closes right after.
    fn answer_and_end(&self, status: &str, message: &str) {
        if self.write_blocked {
            return;
        }
        let body = serde_json::json!({ "error": message }).to_string();
        let raw = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = self.stream.try_write(raw.as_bytes());
    }

    /// Polls the timer for `self.deadline`: ready when it has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // A timer that is not due before the deadline and was last polled with this task's waker
        // will wake the task when it fires: polling it again would only re-register the same
        // waker, which the wrk profile showed on every request of a kept-alive connection.
        if let (Some(timer), Some(waker)) = (&self.timer, &self.timer_waker) {
            if timer.deadline() <= self.deadline && !timer.is_elapsed() && waker.will_wake(cx.waker()) {
                return Poll::Pending;
            }
        }
        loop {
            let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(self.deadline)));
            // Re-arm only when the timer would fire late; one that fires early is re-armed then.
            if timer.deadline() > self.deadline {
                timer.as_mut().reset(self.deadline);
            }
            match timer.as_mut().poll(cx) {
                Poll::Pending => {
                    if !self.timer_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        self.timer_waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(()) if Instant::now() >= self.deadline => return Poll::Ready(()),
                Poll::Ready(()) => timer.as_mut().reset(self.deadline),
            }
        }
    }

    /// Follows the requests the service wrapper counted since the last read.
    fn observe(&mut self) {
        let heads = self.clock.heads.get();
        if self.clock.in_flight.get() > 0 {
            self.phase = Phase::Busy;
            self.heads_seen = heads;
            self.line = None;
        } else if heads != self.heads_seen || self.phase == Phase::Busy {
            // A request ended since the last read: the connection is between requests, unless
            // the dispatcher holds the start of the next head already (then no byte may come).
            self.heads_seen = heads;
            self.phase = Phase::Between;
            self.line = None;
            self.deadline = deadline_after(Instant::now(), self.timeouts.request.max(self.timeouts.keep_alive));
        }
    }

    /// Bytes `fresh` arrived: starts a head's deadline if none is in progress, and measures its
    /// request line. `Err` with the answer when the line is too long.
    fn arrived(&mut self, fresh: &[u8]) -> Result<(), ()> {
        if fresh.is_empty() || self.phase == Phase::Busy {
            return Ok(());
        }
        if self.phase == Phase::Between {
            self.phase = Phase::Head;
            self.deadline = deadline_after(Instant::now(), self.timeouts.request);
            // After a request with a body, these bytes may be the rest of it (drained by
            // actix): under the deadline, but not measured as a request line.
            self.line = (!self.clock.had_body.get()).then_some(0);
        }
        if let Some(seen) = self.line {
            // Leading empty lines before a request line are allowed (RFC 9112 2.2): counted, as
            // they are few in practice and the cap is far above any real line.
            match fresh.iter().position(|&b| b == b'\n') {
                Some(end) if seen + end <= MAX_REQUEST_LINE_BYTES => self.line = None,
                None if seen + fresh.len() <= MAX_REQUEST_LINE_BYTES => self.line = Some(seen + fresh.len()),
                _ => return Err(()),
            }
        }
        Ok(())
    }
}

impl AsRawFd for Guarded {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(Ok(()));
        }
        this.observe();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        match read {
            Poll::Ready(Ok(())) => {
                if this.arrived(&buf.filled()[before..]).is_err() {
                    buf.set_filled(before);
                    this.ended = true;
                    this.answer_and_end(
                        "414 URI Too Long",
                        &format!("request line is longer than {MAX_REQUEST_LINE_BYTES} bytes"),
                    );
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.phase != Phase::Busy => match this.poll_deadline(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    this.ended = true;
                    if this.phase == Phase::Head {
                        let secs = this.timeouts.request.as_secs();
                        this.answer_and_end(
                            "408 Request Timeout",
                            &format!("request not received within {secs} s (--request-timeout)"),
                        );
                    }
                    // The end of the stream: the dispatcher closes the connection.
                    Poll::Ready(Ok(()))
                }
            },
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.write_blocked = !matches!(written, Poll::Ready(Ok(n)) if n == buf.len());
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.write_blocked = !matches!(written, Poll::Ready(Ok(n)) if n == total);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate_instead_of_overflowing() {
        let now = Instant::now();
        let far = deadline_after(now, Duration::from_secs(u64::MAX));
        assert!(far > now + Duration::from_secs(3600));
        assert_eq!(capped(Duration::MAX), FAR_FUTURE);
    }
}
