//! `GET /metrics`: every registered metric in the Prometheus text format, to whoever may read
//! them: on the main listener unless `METRICS_BIND` gives metrics one of their own, and only
//! with the bearer `METRICS_TOKEN` when one is set.

use actix_web::{HttpRequest, HttpResponse, web};
use prometheus::{Encoder, TextEncoder};
use sha2::{Digest, Sha256};

use super::problems;
use crate::auth::extract::bearer_token;
use crate::problem::{ApiError, PROBLEM_JSON, Problem};

/// Who may read metrics on a listener.
pub struct MetricsAccess {
    /// Whether this listener serves metrics at all (not when they have a listener of their
    /// own).
    pub served_here: bool,
    /// SHA-256 of the bearer token required, when one is set.
    pub token_digest: Option<[u8; 32]>,
}

impl MetricsAccess {
    pub fn new(served_here: bool, token: Option<&str>) -> Self {
        Self {
            served_here,
            token_digest: token.map(|t| Sha256::digest(t.as_bytes()).into()),
        }
    }

    fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        if !self.served_here {
            return Err(ApiError::NotFound("no such resource".into()));
        }
        let Some(expected) = &self.token_digest else {
            return Ok(());
        };
        // Digests compared, so the comparison's time tells nothing about the token.
        let presented: Option<[u8; 32]> =
            bearer_token(req).map(|t| Sha256::digest(t.as_bytes()).into());
        if presented.as_ref() == Some(expected) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized(
                "send Authorization: Bearer <METRICS_TOKEN>".into(),
            ))
        }
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text format)",
    responses(
        (status = 200, description = "Prometheus text exposition format",
         content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "METRICS_TOKEN is set and was not presented",
         body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "metrics are served on METRICS_BIND instead",
         body = Problem, content_type = PROBLEM_JSON),
        problems::Busy,
    ),
    security((), ("metrics_token" = []))
)]
pub async fn export(
    access: web::Data<MetricsAccess>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    access.check(&req)?;
    let encoder = TextEncoder::new();
    let mut buffer = Vec::with_capacity(16 * 1024);
    encoder
        .encode(&prometheus::gather(), &mut buffer)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(buffer))
}
