//! The status page's HTTP side: `GET /` (HTML, or a JSON index of the endpoints for a client that
//! prefers JSON), `GET /status` (HTML) and the page's own script and style sheet. The page is
//! rendered by [`crate::status_page`] on the blocking pool (a large table must not hold up the
//! lookups queued on this worker), from one load of the live table.

use actix_web::http::header::{self, ContentType, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::error::HttpError;
use crate::status_page;
use crate::table::state::{unix_now, AppState};

/// Nothing from anywhere else: no inline code, no other origin, no framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The headers every response of the page carries.
fn hardened(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `GET /`: the page, or the JSON index for a client whose `Accept` prefers JSON.
pub async fn root(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if status_page::prefers_json(accept) {
        let response = HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(status_page::index_json(state.live().table.algorithm()));
        return hardened(vary(response));
    }
    vary(page(state).await)
}

/// `Vary: Accept`: `/` answers by it.
fn vary(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// `GET /status`: the page.
pub async fn page(state: web::Data<AppState>) -> HttpResponse {
    let state = state.into_inner();
    let rendered = web::block(move || {
        let live = state.live();
        status_page::render(&live, state.last_reload().as_deref(), state.started_at(), unix_now())
    })
    .await;
    match rendered {
        Ok(html) => hardened(HttpResponse::Ok().content_type(ContentType::html()).body(html)),
        Err(e) => HttpError::Internal { what: "rendering the status page", cause: e.to_string() }.error_response(),
    }
}

pub async fn script() -> HttpResponse {
    hardened(HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(status_page::SCRIPT))
}

pub async fn style() -> HttpResponse {
    hardened(HttpResponse::Ok().content_type("text/css; charset=utf-8").body(status_page::STYLE))
}

/// `GET /status/traffic.json`: the counters the traffic view polls (bounded: see
/// [`status_page::traffic`]).
pub async fn traffic(state: web::Data<AppState>) -> HttpResponse {
    let state = state.into_inner();
    let rendered = web::block(move || {
        let live = state.live();
        let metrics = state.metrics();
        status_page::traffic::traffic_json(
            &live,
            metrics.other(),
            metrics.unknown(),
            &state.recent_reloads(),
            unix_now(),
        )
    })
    .await;
    match rendered {
        Ok(json) => hardened(HttpResponse::Ok().content_type(ContentType::json()).body(json)),
        Err(e) => HttpError::Internal { what: "rendering the traffic counters", cause: e.to_string() }.error_response(),
    }
}

pub async fn traffic_script() -> HttpResponse {
    hardened(HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(status_page::traffic::SCRIPT))
}
