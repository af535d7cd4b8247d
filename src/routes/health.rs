//! `/health/live`, `/health/ready` (each dependency with its latency; 503 when one is down or
//! while draining) and `/health/system` (CPU, memory, disk, uptime, connections).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use aisocial_actors::feed_broker::GetOnline;
use serde::Serialize;

use crate::readiness::{NodeHealth, Readiness, readiness};
use crate::system;

/// The process answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Liveness {
    status: &'static str,
}

#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    summary = "Liveness",
    responses((status = 200, body = Liveness))
)]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Liveness { status: "live" })
}

#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    summary = "Readiness: PostgreSQL and Redis with latency; the AI pool's health",
    responses(
        (status = 200, body = Readiness),
        (status = 503, description = "a dependency is down, or the node is draining",
         body = Readiness),
    )
)]
pub async fn ready(node: web::Data<NodeHealth>) -> HttpResponse {
    let body = readiness(&node).await;
    crate::live::record_readiness(body.is_ready());
    if body.is_ready() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "2"))
            .json(body)
    }
}

#[utoipa::path(
    get,
    path = "/health/system",
    tag = "operations",
    summary = "CPU, memory, disk, uptime, connections",
    responses((status = 200, body = system::SystemSnapshot))
)]
pub async fn system(node: web::Data<NodeHealth>) -> HttpResponse {
    let online = node.broker.send(GetOnline).await.unwrap_or_default();
    HttpResponse::Ok().json(system::snapshot(node.started_at, online))
}
