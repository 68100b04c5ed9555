//! How a [`RequestError`] reaches the client: a status and a JSON `{"error": "..."}` body.

use actix_web::http::header::{self, ContentType};
use actix_web::http::ConnectionType;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::request::RequestError;

impl ResponseError for RequestError {
    fn status_code(&self) -> StatusCode {
        match self {
            RequestError::UnknownService(_) | RequestError::NotFound(_) => StatusCode::NOT_FOUND,
            RequestError::Invalid(_) | RequestError::Lookup(_) | RequestError::AnswerTooLarge { .. } => {
                StatusCode::BAD_REQUEST
            }
            RequestError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            RequestError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::QueryTooLong { .. } => StatusCode::URI_TOO_LONG,
            RequestError::UnsupportedMediaType(_) | RequestError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            RequestError::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = error_body(self.status_code(), &self.to_string());
        match self {
            // The client stalled mid-request: what it sends next cannot be trusted to start a
            // new request, so the connection closes after this answer.
            RequestError::Timeout { .. } => response.head_mut().set_connection_type(ConnectionType::Close),
            RequestError::Overloaded => {
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
