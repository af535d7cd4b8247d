//! The AI half of the server: Gemini (or the bundled emulator), the shared budget, the AiPool,
//! and the jobs the HTTP routes and `@ai` mentions hand it. A node with neither a key nor
//! `GEMINI_EMULATOR=true` has no pool: it answers AI requests with 503 `ai_unavailable`.

pub mod budget;
pub mod jobs;

use std::sync::Arc;

use actix::{Actor, Arbiter};
use aisocial_actors::ai_pool::worker::{RetryPolicy, WorkerDeps};
use aisocial_actors::ai_pool::{AiHealth, AiPool, AiPoolConfig, AiStatus, GetAiStatus, StopAi};
use aisocial_actors::db_writer::{AI_HANDLE, DbWriter};
use aisocial_actors::feed_broker::FeedBroker;
use aisocial_actors::ids::UserId;
use aisocial_actors::meter::MeteredAddr;
use aisocial_actors::store::ReadPool;
use aisocial_gemini::emulator::{self, EmulatorConfig, QuotaLimits, RunningEmulator};
use aisocial_gemini::{ClientConfig, GeminiClient};
use anyhow::Context;
use std::time::Duration;

use self::budget::{Limits, RedisBudget};
use crate::config::ai::{AiSettings, Upstream};
use crate::problem::ApiError;

/// The `detail` of every `ai_unavailable` (503): this node has no AI configured.
pub const AI_UNAVAILABLE_DETAIL: &str =
    "the AI is not configured on this server (no GEMINI_API_KEY, and GEMINI_EMULATOR is off)";

/// Everything the routes need to reach the AI.
pub struct Ai {
    /// The running pool; `None` when no AI is configured (see [`Ai::pool`]).
    pool: Option<MeteredAddr<AiPool>>,
    /// The `ai` account.
    pub user: UserId,
    pub user_per_min: u32,
    pub user_per_day: u32,
    /// The in-process emulator, when there is no API key; kept running as long as this.
    pub emulator: Option<RunningEmulator>,
    /// The shared Gemini budget, read by the operator views.
    pub budget: Arc<RedisBudget>,
    _arbiter: Option<Arbiter>,
}

impl Ai {
    /// The pool, or 503 `ai_unavailable` when this node has no AI.
    pub fn pool(&self) -> Result<&MeteredAddr<AiPool>, ApiError> {
        self.pool.as_ref().ok_or_else(|| ApiError::Unavailable {
            code: "ai_unavailable",
            detail: AI_UNAVAILABLE_DETAIL.into(),
            // Nothing changes until the node is restarted with a key.
            retry_after_secs: 3600,
        })
    }

    pub fn is_configured(&self) -> bool {
        self.pool.is_some()
    }

    /// The pool's status within `timeout` (`None` if it did not answer), or `not_configured`.
    pub async fn status(&self, timeout: Duration) -> Option<AiStatus> {
        let Some(pool) = &self.pool else {
            return Some(AiStatus {
                health: AiHealth::NotConfigured,
                queued: 0,
                in_flight: 0,
                users_waiting: 0,
                last_error: None,
            });
        };
        tokio::time::timeout(timeout, pool.send(GetAiStatus))
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Stops the pool (waiting jobs fail, their callers hear `ai.error`).
    pub async fn stop(&self) {
        if let Some(pool) = &self.pool {
            let _ = pool.send(StopAi).await;
        }
    }
}

/// What `start` needs from the rest of the server.
pub struct AiDeps<'a> {
    pub redis: crate::redis_store::RedisConn,
    pub redis_prefix: &'a str,
    pub broker: &'a MeteredAddr<FeedBroker>,
    pub writer: &'a MeteredAddr<DbWriter>,
    pub pool: &'a ReadPool,
}

pub async fn start(settings: &AiSettings, deps: AiDeps<'_>) -> anyhow::Result<Ai> {
    let user = ai_user(deps.pool).await?;
    let budget = Arc::new(RedisBudget::new(
        deps.redis,
        deps.redis_prefix,
        &settings.model,
        Limits {
            rpm: settings.rpm,
            tpm: settings.tpm,
            rpd: settings.rpd,
            window_margin: settings.window_margin,
        },
    ));
    let (client_config, emulator) = match &settings.upstream {
        Upstream::NotConfigured => {
            tracing::warn!(
                "AI is not configured (no GEMINI_API_KEY, GEMINI_EMULATOR is off): the AI routes answer 503 ai_unavailable and @ai mentions are not answered"
            );
            return Ok(Ai {
                pool: None,
                user,
                user_per_min: settings.user_per_min,
                user_per_day: settings.user_per_day,
                emulator: None,
                budget,
                _arbiter: None,
            });
        }
        Upstream::Google { base_url, api_key } => (
            ClientConfig::new(base_url, api_key.expose(), &settings.model),
            None,
        ),
        Upstream::Emulator {
            tokens_per_sec,
            first_chunk_latency,
        } => {
            let key = uuid::Uuid::new_v4().simple().to_string();
            let config = EmulatorConfig {
                api_key: Some(key.clone()),
                models: vec![settings.model.clone()],
                limits: QuotaLimits {
                    rpm: settings.rpm,
                    input_tpm: u64::from(settings.tpm),
                    rpd: settings.rpd,
                },
                tokens_per_second: *tokens_per_sec,
                first_chunk_latency: *first_chunk_latency,
                ..EmulatorConfig::default()
            };
            let running = emulator::start(config, ([127, 0, 0, 1], 0).into())
                .await
                .context("starting the bundled Gemini emulator")?;
            tracing::warn!(
                emulator = %running.base_url(),
                "GEMINI_API_KEY is not set and GEMINI_EMULATOR=true: AI answers come from the bundled Gemini emulator, not Google"
            );
            (
                ClientConfig::new(&running.base_url(), &key, &settings.model),
                Some(running),
            )
        }
    };
    let client = GeminiClient::new(ClientConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: settings.request_timeout,
        stall_timeout: settings.stall_timeout,
        ..client_config
    })
    .context("GEMINI_BASE_URL / GEMINI_API_KEY")?;
    let worker_deps = WorkerDeps {
        client,
        budget: budget.clone(),
        push: deps.broker.recipient(),
        create_post: deps.writer.recipient(),
        record_usage: deps.writer.recipient(),
        ai_user: user,
        retry: RetryPolicy {
            max_attempts: settings.max_attempts,
            base_delay: settings.retry_base,
            max_delay: Duration::from_secs(8),
        },
        job_timeout: settings.job_timeout,
        stopping: Default::default(),
    };
    let pool_config = AiPoolConfig {
        concurrency: settings.concurrency,
        queue: settings.queue,
        per_user_queue: settings.user_queue,
        rpm: settings.rpm,
        degraded_after: 3,
    };
    let arbiter = Arbiter::new();
    let pool = AiPool::start_in_arbiter(&arbiter.handle(), move |_| {
        AiPool::new(pool_config, worker_deps)
    });
    Ok(Ai {
        pool: Some(MeteredAddr::new(pool, AiPool::meter())),
        user,
        user_per_min: settings.user_per_min,
        user_per_day: settings.user_per_day,
        emulator,
        budget,
        _arbiter: Some(arbiter),
    })
}

async fn ai_user(pool: &ReadPool) -> anyhow::Result<UserId> {
    let conn = pool.get().await.context("reading the ai account")?;
    let row = conn
        .query_opt("SELECT id FROM users WHERE handle = $1", &[&AI_HANDLE])
        .await
        .context("reading the ai account")?
        .context("the ai account is missing (migration V3 creates it)")?;
    Ok(UserId(row.get(0)))
}
