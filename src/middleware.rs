//! The actix middleware of every request: per-IP rate limits (request ids and logs are
//! `request_context`'s).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::problem::ApiError;
use crate::rate_limit::{RateLimiting, RouteClass};

/// Every request counts against its client IP: sign-in and token routes against a stricter
/// limit too, health and metrics against a limit of their own (`RouteClass`).
pub async fn per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limits = req
        .app_data::<web::Data<RateLimiting>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("rate limits not registered")))?;
    limits.charge_ip(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        RouteClass::of(req.path()),
    )?;
    next.call(req).await
}
