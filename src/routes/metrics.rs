//! `GET /metrics`: every registered metric in the Prometheus text format.

use actix_web::HttpResponse;
use prometheus::{Encoder, TextEncoder};

use crate::problem::ApiError;

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text format)",
    responses(
        (status = 200, description = "Prometheus text exposition format",
         content_type = "text/plain; version=0.0.4"),
    )
)]
pub async fn export() -> Result<HttpResponse, ApiError> {
    let encoder = TextEncoder::new();
    let mut buffer = Vec::with_capacity(16 * 1024);
    encoder
        .encode(&prometheus::gather(), &mut buffer)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(buffer))
}
