//! `GET /metrics`: every registered metric in the Prometheus text format.

use actix_web::HttpResponse;
use prometheus::{Encoder, TextEncoder};

use crate::problem::ApiError;

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
