//! What every request handler can reach: pools, actor addresses, token issuer, settings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aisocial_actors::db_writer::DbWriter;
use aisocial_actors::feed_broker::FeedBroker;
use aisocial_actors::ids::SessionId;
use aisocial_actors::meter::MeteredAddr;
use aisocial_actors::session::SessionConfig;
use aisocial_actors::store::ReadPool;

use crate::auth::TokenIssuer;
use crate::auth::google::GoogleVerifier;
use crate::config::{GoogleSettings, RateLimits};
use crate::rate_limit::RateLimiter;
use crate::revocation::Revocations;

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

/// Google sign-in, when configured: the settings and the verifier with its key cache.
pub struct Google {
    pub settings: GoogleSettings,
    pub verifier: GoogleVerifier,
    pub http: reqwest::Client,
}

/// Shared application state (behind `web::Data`).
pub struct AppState {
    /// The primary's read pool: reads that must see the latest commit.
    pub pool: ReadPool,
    /// Reads that may go to a replica (with read-your-writes and the fallback to the primary).
    pub reads: Arc<crate::replicas::ReadRouting>,
    pub redis: crate::redis_store::RedisConn,
    pub redis_prefix: String,
    pub writer: MeteredAddr<DbWriter>,
    pub broker: MeteredAddr<FeedBroker>,
    pub tokens: TokenIssuer,
    pub refresh_lifetime: Duration,
    /// The successor of a refresh token rotated with an `Idempotency-Key` (retries).
    pub refresh_successors: crate::auth::successor::Successors,
    pub admin_handles: Arc<[String]>,
    pub google: Option<Google>,
    pub revocations: Arc<Revocations>,
    pub rate_limiter: RateLimiter,
    pub invalidator: crate::cache::Invalidator,
    pub rate_limits: RateLimits,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub dev_login: bool,
    pub allowed_origins: Vec<String>,
    pub session_config: Arc<SessionConfig>,
    pub lifecycle: Arc<Lifecycle>,
    pub started_at: Instant,
    pub node_id: String,
    pub next_session: AtomicU64,
    pub ai: crate::ai::Ai,
    /// The operator's live view (the sampler's last reading).
    pub live: Arc<crate::live::Live>,
    /// Websockets held by this node (for shutdown).
    pub sockets: Arc<crate::upgrade::OpenSockets>,
    /// Which upgrades this node takes now.
    pub admission: Arc<crate::admission::Admission>,
}

impl AppState {
    pub fn next_session_id(&self) -> SessionId {
        SessionId(self.next_session.fetch_add(1, Ordering::Relaxed))
    }

    /// A Redis key under this deployment's prefix.
    pub fn redis_key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.redis_prefix)
    }
}
