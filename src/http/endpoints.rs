//! The small endpoints: health, readiness, metrics, the table, the service list, the API
//! description, and the answers for unknown routes and methods.

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use super::error::{error_body, HttpError};
use crate::table::state::AppState;

/// The API description, shipped inside the binary.
pub const OPENAPI: &str = include_str!("../openapi.yaml");

pub async fn method_not_allowed(req: HttpRequest, allow: &'static str) -> HttpResponse {
    let mut response = HttpError::MethodNotAllowed(req.method().to_string()).error_response();
    response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    HttpError::NotFound(req.path().to_string()).error_response()
}

/// Liveness: the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(r#"{"status":"ok"}"#)
}

/// Readiness: a non-empty table is loaded (or `--allow-empty`) and the server is not shutting
/// down.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.readiness() {
        Ok(()) => HttpResponse::Ok().content_type(ContentType::json()).body(r#"{"status":"ready"}"#),
        Err(why) => error_body(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// The service names, rendered when the table was built.
pub async fn list_services(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(state.live().names_json().clone())
}

pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/yaml").body(OPENAPI)
}

/// The whole table with fingerprints, for comparing replicas and for clients that rank locally:
/// rendered when the table was built, so a large catalog costs a pointer copy here. Its `ETag`
/// is the table fingerprint, so a client polls with `If-None-Match` and gets a bodiless 304
/// while the table is the one it has.
pub async fn table(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let live = state.live();
    let etag = live.table_etag().clone();
    // `no-cache`: a cache may keep the table but must ask again before each use, since a
    // reload can change it at any moment.
    let cache_control = (header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    let if_none_match = req.headers().get_all(header::IF_NONE_MATCH).filter_map(|v| v.to_str().ok());
    if none_match_fails(if_none_match, etag.to_str().unwrap_or_default()) {
        return HttpResponse::NotModified().insert_header((header::ETAG, etag)).insert_header(cache_control).finish();
    }
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .insert_header((header::ETAG, etag))
        .insert_header(cache_control)
        .body(live.table_json().clone())
}

/// Whether `If-None-Match` (all its field lines, `values`) makes a GET or HEAD answer 304: it
/// is `*` or lists a tag that matches `etag` by the weak comparison of RFC 9110 section 8.8.3.2
/// (the opaque tags are equal, `W/` ignored on both sides). A member that is not an entity tag
/// is skipped; no header, or one without a valid member, matches nothing.
fn none_match_fails<'a>(values: impl Iterator<Item = &'a str>, etag: &str) -> bool {
    fn opaque(tag: &str) -> &str {
        tag.strip_prefix("W/").unwrap_or(tag)
    }
    let ours = opaque(etag);
    values.flat_map(entity_tags).any(|tag| tag == "*" || opaque(tag) == ours)
}

/// The members of one `If-None-Match` field line: `*`, or entity tags (`"x"`, `W/"x"`) as
/// written, separated by commas. Quoted tags may contain commas, so this scans rather than
/// splits.
fn entity_tags(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = line;
    std::iter::from_fn(move || loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return None;
        }
        if let Some(after) = rest.strip_prefix('*') {
            rest = after;
            return Some("*");
        }
        let quote = usize::from(rest.starts_with("W/")) * 2;
        let tag_end = match rest[quote..].strip_prefix('"').and_then(|t| t.find('"')) {
            Some(close) => quote + close + 2,
            None => {
                // Not an entity tag: skip to the next comma.
                rest = rest.find(',').map_or("", |c| &rest[c..]);
                continue;
            }
        };
        let (tag, after) = rest.split_at(tag_end);
        rest = after;
        return Some(tag);
    })
}

/// The Prometheus exposition, rendered on the blocking pool: with a large table it is
/// megabytes of text, which must not hold up the lookups queued on this worker.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let state = state.into_inner();
    match web::block(move || state.render_metrics()).await {
        Ok(body) => HttpResponse::Ok().content_type(crate::metrics::CONTENT_TYPE).body(body),
        Err(e) => HttpError::Internal { what: "rendering /metrics", cause: e.to_string() }.error_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(lines: &[&str], etag: &str) -> bool {
        none_match_fails(lines.iter().copied(), etag)
    }

    #[test]
    fn if_none_match_compares_weakly_in_lists_and_across_lines() {
        let etag = r#"W/"0123456789abcdef""#;
        assert!(fails(&[r#""0123456789abcdef""#], etag));
        assert!(fails(&[r#"W/"0123456789abcdef""#], etag));
        assert!(fails(&[r#""x", W/"0123456789abcdef""#], etag));
        assert!(fails(&[r#""x""#, r#""0123456789abcdef""#], etag));
        assert!(fails(&["*"], etag));
        assert!(fails(&[r#""a,b" , "0123456789abcdef""#], etag));
        assert!(!fails(&[], etag));
        assert!(!fails(&[r#""0123456789abcdee""#], etag));
        assert!(!fails(&["0123456789abcdef"], etag), "an unquoted tag is no entity tag");
        assert!(!fails(&[r#"w/"0123456789abcdef""#], etag), "W/ is case-sensitive");
        assert!(!fails(&[r#""0123456789abcdef"#], etag), "an unterminated tag matches nothing");
        assert!(!fails(&["", " , ", "garbage, more"], etag));
        assert!(fails(&["garbage, \"0123456789abcdef\""], etag), "a bad member does not hide a good one");
    }
}
