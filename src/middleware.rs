//! The actix middleware of every request: per-IP rate limits (request ids and logs are
//! `request_context`'s).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::problem::ApiError;
use crate::rate_limit::RateLimiting;

/// Every request except health and metrics counts against its client IP, and sign-in and token
/// routes against a stricter per-IP limit.
pub async fn per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path();
    let exempt = path.starts_with("/health/") || path == "/metrics";
    if !exempt {
        let limits = req
            .app_data::<web::Data<RateLimiting>>()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("rate limits not registered")))?;
        limits.charge_ip(
            req.peer_addr().map(|a| a.ip()),
            req.headers(),
            path.starts_with("/api/v1/auth/"),
        )?;
    }
    next.call(req).await
}
