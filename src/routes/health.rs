//! `/health/live`, `/health/ready` (each dependency with its latency; 503 when one is down or
//! while draining) and `/health/system` (CPU, memory, disk, uptime, connections).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use aisocial_actors::ai_pool::{AiStatus, GetAiStatus};
use aisocial_actors::feed_broker::GetOnline;
use serde::Serialize;

use crate::database::{self, Check};
use crate::redis_store;
use crate::state::AppState;
use crate::system;

const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

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

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    status: &'static str,
    node_id: String,
    checks: Checks,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Checks {
    postgres: Check,
    redis: Check,
    /// The AI does not decide readiness (the rest of the service works without it); it shows
    /// `degraded` while Gemini keeps failing, `misconfigured` after a 403, `exhausted` when
    /// the day's quota is used up. Absent when the pool did not answer in time.
    ai: Option<AiStatus>,
    actors: ActorsAlive,
    /// Read replicas (absent without `DATABASE_READ_URLS`): whether each takes reads and how
    /// far behind it is. They do not decide readiness: the primary serves when none does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    replicas: Vec<crate::replicas::ReplicaState>,
}

/// Whether the actors every request needs are running (a stopped one fails readiness).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActorsAlive {
    feed_broker: bool,
    db_writer: bool,
}

#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    summary = "Readiness: PostgreSQL and Redis with latency; the AI pool's health",
    responses((status = 200, body = Readiness), (status = 503, description = "a dependency is down, or the node is draining", body = Readiness))
)]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let body = readiness(&state).await;
    crate::live::record_readiness(body.is_ready());
    if body.is_ready() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "2"))
            .json(body)
    }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// Every dependency checked (each within a second) and whether the node is draining.
pub async fn readiness(state: &AppState) -> Readiness {
    let (postgres, redis, ai) = tokio::join!(
        database::check(&state.pool, CHECK_TIMEOUT),
        redis_store::check(&state.redis, CHECK_TIMEOUT),
        tokio::time::timeout(CHECK_TIMEOUT, state.ai.pool.send(GetAiStatus))
    );
    let ai = ai.ok().and_then(Result::ok);
    let draining = state.lifecycle.is_draining();
    let actors = ActorsAlive {
        feed_broker: state.broker.connected(),
        db_writer: state.writer.connected(),
    };
    let status = if draining {
        "draining"
    } else if postgres.up && redis.up && actors.feed_broker && actors.db_writer {
        "ready"
    } else {
        "not_ready"
    };
    Readiness {
        status,
        node_id: state.node_id.clone(),
        checks: Checks {
            postgres,
            redis,
            ai,
            actors,
            replicas: state.reads.states(),
        },
    }
}

#[utoipa::path(
    get,
    path = "/health/system",
    tag = "operations",
    summary = "CPU, memory, disk, uptime, connections",
    responses((status = 200, body = system::SystemSnapshot))
)]
pub async fn system(state: web::Data<AppState>) -> HttpResponse {
    let online = state.broker.send(GetOnline).await.unwrap_or_default();
    HttpResponse::Ok().json(system::snapshot(state.started_at, online))
}
