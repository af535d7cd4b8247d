//! Whether this node can serve: each dependency checked with its latency, the actors every
//! request needs, read replicas, and draining.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aisocial_actors::ai_pool::AiStatus;
use aisocial_actors::db_writer::DbWriter;
use aisocial_actors::feed_broker::FeedBroker;
use aisocial_actors::meter::MeteredAddr;
use aisocial_actors::store::ReadPool;
use serde::Serialize;

use crate::ai::Ai;
use crate::database;
use crate::health::Check;
use crate::lifecycle::Lifecycle;
use crate::redis_store::{self, RedisConn};
use crate::replicas::ReadRouting;

const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// What readiness looks at, and the node's own facts.
pub struct NodeHealth {
    pub node_id: String,
    pub started_at: Instant,
    pub pool: ReadPool,
    pub redis: RedisConn,
    pub ai: Arc<Ai>,
    pub broker: MeteredAddr<FeedBroker>,
    pub writer: MeteredAddr<DbWriter>,
    pub reads: Arc<ReadRouting>,
    pub lifecycle: Arc<Lifecycle>,
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
    /// the day's quota is used up, `not_configured` on a node with no AI (no Gemini key, no
    /// emulator). Absent when the pool did not answer in time.
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

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// Every dependency checked (each within a second) and whether the node is draining.
pub async fn readiness(node: &NodeHealth) -> Readiness {
    let (postgres, redis, ai) = tokio::join!(
        database::check(&node.pool, CHECK_TIMEOUT),
        redis_store::check(&node.redis, CHECK_TIMEOUT),
        node.ai.status(CHECK_TIMEOUT)
    );
    let draining = node.lifecycle.is_draining();
    let actors = ActorsAlive {
        feed_broker: node.broker.connected(),
        db_writer: node.writer.connected(),
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
        node_id: node.node_id.clone(),
        checks: Checks {
            postgres,
            redis,
            ai,
            actors,
            replicas: node.reads.states(),
        },
    }
}
