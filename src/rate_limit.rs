//! Rate limits shared by every node through Redis: fixed one-minute windows per key
//! (`INCR` + `EXPIRE`), answered with 429, `Retry-After` and `RateLimit-*` headers. When Redis
//! cannot answer, requests pass (availability over strictness) and the failure is counted.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aisocial_actors::meter;
use prometheus::IntCounterVec;
use redis::aio::ConnectionManager;

const WINDOW_SECS: u64 = 60;
const TIMEOUT: Duration = Duration::from_millis(250);

static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_rate_limit_decisions_total",
        "Rate-limit checks by scope and result (allowed, limited, unchecked when Redis failed).",
        &["scope", "result"],
    )
});

/// What one check found.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    prefix: String,
}

impl RateLimiter {
    pub fn new(redis: ConnectionManager, prefix: String) -> Self {
        Self { redis, prefix }
    }

    /// Counts one request for `key` in `scope` against `limit` per minute.
    pub async fn check(&self, scope: &'static str, key: &str, limit: u32) -> Decision {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let window = now / WINDOW_SECS;
        let reset_secs = WINDOW_SECS - now % WINDOW_SECS;
        let redis_key = format!("{}rl:{scope}:{key}:{window}", self.prefix);
        let mut conn = self.redis.clone();
        let counting = async move {
            redis::pipe()
                .atomic()
                .incr(&redis_key, 1u32)
                .expire(&redis_key, (WINDOW_SECS * 2) as i64)
                .ignore()
                .query_async::<(u64,)>(&mut conn)
                .await
        };
        match tokio::time::timeout(TIMEOUT, counting).await {
            Ok(Ok((count,))) => {
                let allowed = count <= u64::from(limit);
                DECISIONS
                    .with_label_values(&[scope, if allowed { "allowed" } else { "limited" }])
                    .inc();
                Decision {
                    allowed,
                    limit,
                    remaining: u32::try_from(u64::from(limit).saturating_sub(count)).unwrap_or(0),
                    reset_secs,
                }
            }
            _ => {
                DECISIONS.with_label_values(&[scope, "unchecked"]).inc();
                Decision {
                    allowed: true,
                    limit,
                    remaining: limit,
                    reset_secs,
                }
            }
        }
    }
}

/// Middleware: every request except health and metrics counts against its client IP, and
/// sign-in and token routes against a stricter per-IP limit.
pub async fn per_ip(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use crate::problem::ApiError;
    use crate::state::AppState;

    let path = req.path();
    let exempt = path.starts_with("/health/") || path == "/metrics";
    let state = req.app_data::<actix_web::web::Data<AppState>>().cloned();
    if let (false, Some(state)) = (exempt, state) {
        let ip = crate::client_ip::client_ip(
            req.peer_addr().map(|a| a.ip()),
            req.headers(),
            &state.trusted_proxies,
        );
        if let Some(ip) = ip {
            let key = ip.to_string();
            let mut checks = vec![("ip", state.rate_limits.ip_per_min)];
            if path.starts_with("/api/v1/auth/") {
                checks.push(("auth", state.rate_limits.auth_per_min));
            }
            for (scope, limit) in checks {
                let decision = state.rate_limiter.check(scope, &key, limit).await;
                if !decision.allowed {
                    return Err(ApiError::RateLimited {
                        retry_after_secs: decision.reset_secs,
                        limit,
                    }
                    .into());
                }
            }
        }
    }
    next.call(req).await
}
