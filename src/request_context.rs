//! Per-request context: a request id (taken from `X-Request-Id` when sane, else generated), a
//! tracing span carrying it, HTTP metrics by route, and the access log. The access log records
//! the path without its query string, so no ticket or token ever reaches it.

use std::sync::LazyLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use aisocial_actors::meter;
use prometheus::{HistogramVec, IntCounterVec};
use tracing::Instrument;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_http_requests_total",
        "HTTP requests by route and status.",
        &["method", "route", "status"],
    )
});
static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    meter::labelled_histogram(
        "aisocial_http_request_duration_seconds",
        "HTTP request latency by route.",
        &["method", "route"],
        meter::exponential(0.000_1, 2.0, 18),
    )
});

fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| s.to_owned())
}

/// Only known methods become label values, so the label set stays bounded.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The request id of these headers (`X-Request-Id` when sane), else a new one.
pub fn request_id(headers: &actix_web::http::header::HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Counts a finished request and writes its access-log line (in the current span).
pub fn record(
    method: &'static str,
    route: &str,
    path: &str,
    status: u16,
    elapsed: std::time::Duration,
    peer: Option<std::net::IpAddr>,
) {
    REQUESTS
        .with_label_values(&[method, route, &status.to_string()])
        .inc();
    DURATION
        .with_label_values(&[method, route])
        .observe(elapsed.as_secs_f64());
    let peer = peer.map(|p| p.to_string()).unwrap_or_default();
    tracing::info!(
        target: "access",
        path = %path,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        peer = %peer,
        "request"
    );
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request_id(req.headers());
    let method = method_label(req.method());
    let path = req.path().to_owned();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let peer = req.peer_addr().map(|a| a.ip());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method,
        route = %route,
        user_id = tracing::field::Empty
    );
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = match &result {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    span.in_scope(|| record(method, &route, &path, status, elapsed, peer));
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    Ok(res)
}
