//! What every request handler can reach: pools, actor addresses, token issuer, settings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use aisocial_actors::db_writer::DbWriter;
use aisocial_actors::feed_broker::FeedBroker;
use aisocial_actors::ids::SessionId;
use aisocial_actors::meter::MeteredAddr;
use aisocial_actors::session::SessionConfig;
use aisocial_actors::store::ReadPool;

use crate::auth::TokenIssuer;

/// Whether the node is serving or draining; shared by readiness, the upgrade route and shutdown.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

/// Shared application state (behind `web::Data`).
pub struct AppState {
    pub pool: ReadPool,
    pub redis: redis::aio::ConnectionManager,
    pub redis_prefix: String,
    pub writer: MeteredAddr<DbWriter>,
    pub broker: MeteredAddr<FeedBroker>,
    pub tokens: TokenIssuer,
    pub dev_login: bool,
    pub allowed_origins: Vec<String>,
    pub session_config: Arc<SessionConfig>,
    pub lifecycle: Arc<Lifecycle>,
    pub started_at: Instant,
    pub node_id: String,
    next_session: AtomicU64,
}

impl AppState {
    #[expect(clippy::too_many_arguments, reason = "built once, at start-up")]
    pub fn new(
        pool: ReadPool,
        redis: redis::aio::ConnectionManager,
        redis_prefix: String,
        writer: MeteredAddr<DbWriter>,
        broker: MeteredAddr<FeedBroker>,
        tokens: TokenIssuer,
        dev_login: bool,
        allowed_origins: Vec<String>,
        session_config: Arc<SessionConfig>,
        lifecycle: Arc<Lifecycle>,
    ) -> Self {
        let node_id = session_config.node_id.clone();
        Self {
            pool,
            redis,
            redis_prefix,
            writer,
            broker,
            tokens,
            dev_login,
            allowed_origins,
            session_config,
            lifecycle,
            started_at: Instant::now(),
            node_id,
            next_session: AtomicU64::new(1),
        }
    }

    pub fn next_session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }
}
