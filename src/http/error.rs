//! The HTTP boundary's one error type: what a request can get wrong ([`RequestError`]), what
//! only an HTTP request can get wrong (method, route, size, time, content type), and what the
//! server itself failed to do; each with its status and a JSON `{"error": "..."}` body.

use actix_web::http::header::{self, ContentType};
use actix_web::http::ConnectionType;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::request::RequestError;

/// Everything that can go wrong with an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The lookup itself is wrong, as it would be for `keyrouter lookup`.
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("unsupported Content-Type {0:?}: send application/json, application/x-www-form-urlencoded, multipart/form-data or a query string")]
    UnsupportedMediaType(String),
    #[error("unsupported Content-Encoding {0:?}: send the body uncompressed")]
    UnsupportedEncoding(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("query string is longer than {limit} bytes; send large lookups as a body")]
    QueryTooLong { limit: usize },
    /// The request did not arrive whole within `--request-timeout`.
    #[error("request not received within {secs} s (--request-timeout)")]
    Timeout { secs: u64 },
    /// Every slot for heavy lookups is taken.
    #[error("too many large lookups in progress; retry shortly (--heavy-lookups)")]
    Overloaded,
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("no such route: {0}")]
    NotFound(String),
    /// A job of the server's own failed (a ranking or a page rendered on the blocking pool):
    /// our fault, not the client's. `what` says which job.
    #[error("internal error: {what} failed: {cause}")]
    Internal { what: &'static str, cause: String },
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            HttpError::Request(RequestError::UnknownService(_)) | HttpError::NotFound(_) => StatusCode::NOT_FOUND,
            HttpError::Request(
                RequestError::Invalid(_)
                | RequestError::Lookup(_)
                | RequestError::AnswerTooLarge { .. }
                | RequestError::TooManyExcluded { .. },
            ) => StatusCode::BAD_REQUEST,
            HttpError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            HttpError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::QueryTooLong { .. } => StatusCode::URI_TOO_LONG,
            HttpError::UnsupportedMediaType(_) | HttpError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            HttpError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = error_body(self.status_code(), &self.to_string());
        match self {
            // The client stalled mid-request: what it sends next cannot be trusted to start a
            // new request, so the connection closes after this answer.
            HttpError::Timeout { .. } => response.head_mut().set_connection_type(ConnectionType::Close),
            HttpError::Overloaded => {
                response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// A JSON error answer: `{"error": message}`.
pub fn error_body(status: StatusCode, message: &str) -> HttpResponse {
    let body = serde_json::json!({ "error": message });
    HttpResponse::build(status).content_type(ContentType::json()).body(body.to_string())
}
