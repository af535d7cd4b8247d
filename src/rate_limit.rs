//! Rate limits shared by every node through Redis, without a Redis round trip per request.
//!
//! Each node counts requests per key in one-minute windows in memory and decides at once with a
//! sliding-window estimate: the previous window's count, weighted by how much of it still lies
//! within the last minute, plus the current window's global count as last seen in Redis, plus
//! what this node counted since. (A plain fixed window would let a client send twice the limit
//! across a window boundary.) Every 50 ms a background task adds what it
//! counted to Redis (`INCRBY` + `EXPIRE`, pipelined) and learns the global counts back, the
//! previous window's included (a node that saw none of a key's traffic before a window ended
//! would otherwise weigh only its own part of it). Other nodes' traffic is thus seen within one
//! flush; a burst across N nodes can exceed a limit by
//! at most what N−1 nodes admit in one flush interval. When Redis cannot answer, each node
//! still enforces the limit on its own traffic.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderMap;
use aisocial_actors::ids::UserId;
use std::net::IpAddr;

use crate::config::RateLimits;
use crate::problem::ApiError;
use crate::redis_store::RedisConn;
use aisocial_actors::meter;
use prometheus::IntCounterVec;

const WINDOW_SECS: u64 = 60;
const FLUSH_EVERY: Duration = Duration::from_millis(50);
const FLUSH_TIMEOUT: Duration = Duration::from_millis(500);

static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_rate_limit_decisions_total",
        "Rate-limit decisions by scope and result (allowed, limited).",
        &["scope", "result"],
    )
});
static FLUSH_FAILURES: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_rate_limit_flush_failures_total",
        "Flushes of local rate-limit counts to Redis that failed (limits then hold per node).",
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

#[derive(Default)]
struct Count {
    /// The global count Redis last reported for this window.
    global: u64,
    /// Counted here and not yet added to Redis.
    pending: u64,
    /// Taken by a flush whose answer has not come back yet: still counted, or a request
    /// checked during the round trip would not see them.
    in_flight: u64,
}

impl Count {
    fn total(&self) -> u64 {
        self.global + self.in_flight + self.pending
    }
}

#[derive(Default)]
struct Counts {
    window: u64,
    by_key: HashMap<String, Count>,
    /// The previous window's final counts.
    previous: HashMap<String, u64>,
}

#[derive(Clone)]
pub struct RateLimiter {
    counts: Arc<Mutex<Counts>>,
    prefix: String,
}

impl RateLimiter {
    /// Starts the flush task on the current runtime.
    pub fn new(redis: RedisConn, prefix: String) -> Self {
        let limiter = Self {
            counts: Arc::new(Mutex::new(Counts::default())),
            prefix,
        };
        let flusher = limiter.clone();
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                flusher.flush(&redis).await;
            }
        });
        limiter
    }

    /// Counts one request for `key` in `scope` against `limit` per minute.
    pub fn check(&self, scope: &'static str, key: &str, limit: u32) -> Decision {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.check_at(now, scope, key, limit)
    }

    /// [`Self::check`] at `now`, in seconds since the epoch.
    fn check_at(&self, now: f64, scope: &'static str, key: &str, limit: u32) -> Decision {
        let window = now as u64 / WINDOW_SECS;
        let into_window = (now % WINDOW_SECS as f64) / WINDOW_SECS as f64;
        let reset_secs = (WINDOW_SECS as f64 * (1.0 - into_window)).ceil().max(1.0) as u64;
        let name = format!("{scope}:{key}");
        let seen = {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            if counts.window != window {
                let follows_directly = counts.window + 1 == window;
                let finished: HashMap<String, u64> =
                    counts.by_key.drain().map(|(k, c)| (k, c.total())).collect();
                counts.previous = if follows_directly {
                    finished
                } else {
                    HashMap::new()
                };
                counts.window = window;
            }
            let previous = counts.previous.get(&name).copied().unwrap_or(0) as f64;
            let count = counts.by_key.entry(name).or_default();
            count.pending += 1;
            previous * (1.0 - into_window) + count.total() as f64
        };
        let allowed = seen <= f64::from(limit);
        DECISIONS
            .with_label_values(&[scope, if allowed { "allowed" } else { "limited" }])
            .inc();
        Decision {
            allowed,
            limit,
            remaining: (f64::from(limit) - seen).max(0.0) as u32,
            reset_secs,
        }
    }

    /// Adds the pending counts to Redis and learns the global ones.
    async fn flush(&self, redis: &RedisConn) {
        let Some(batch) = self.take_batch() else {
            return;
        };
        let keys: Vec<(String, String)> = batch
            .deltas
            .iter()
            .map(|(key, _)| {
                (
                    counter_key(&self.prefix, key, batch.window),
                    counter_key(&self.prefix, key, batch.window.saturating_sub(1)),
                )
            })
            .collect();
        let counts: Vec<Counter<'_>> = keys
            .iter()
            .zip(&batch.deltas)
            .map(|((current, previous), (_, delta))| Counter {
                current,
                previous,
                delta: *delta,
            })
            .collect();
        let started = std::time::Instant::now();
        let globals = if redis.is_cluster() {
            per_slot_round_trips(redis, &counts).await
        } else {
            counter_round_trip(redis, &counts).await
        };
        crate::redis_store::observe("rate_limit_flush", started, globals.is_some());
        self.settle(batch, globals);
    }

    /// Takes what was counted here since the last flush; it stays counted as in flight.
    fn take_batch(&self) -> Option<Batch> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let window = counts.window;
        let deltas: Vec<(String, u64)> = counts
            .by_key
            .iter_mut()
            .filter(|(_, c)| c.pending > 0)
            .map(|(k, c)| {
                let delta = std::mem::take(&mut c.pending);
                c.in_flight = delta;
                (k.clone(), delta)
            })
            .collect();
        (!deltas.is_empty()).then_some(Batch { window, deltas })
    }

    /// Learns Redis's global counts (which include the batch) and the previous window's
    /// final ones, or on failure keeps the batch counted locally so each node still enforces
    /// the limit on its own traffic.
    fn settle(&self, batch: Batch, globals: Option<Vec<Global>>) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if globals.is_none() {
            FLUSH_FAILURES.inc();
        }
        if counts.window != batch.window {
            return;
        }
        for (n, (key, delta)) in batch.deltas.into_iter().enumerate() {
            let global = globals.as_ref().and_then(|g| g.get(n).copied());
            if let Some(previous) = global.map(|g| g.previous).filter(|p| *p > 0) {
                let known = counts.previous.entry(key.clone()).or_default();
                *known = previous.max(*known);
            }
            if let Some(count) = counts.by_key.get_mut(&key) {
                match global {
                    Some(global) => count.global = global.current.max(count.global + delta),
                    None => count.global += delta,
                }
                count.in_flight = 0;
            }
        }
    }
}

/// The Redis counter of `bucket` (`scope:key`) in `window`. The bucket is the hash tag: a
/// bucket's keys stay together and buckets spread over a cluster's nodes.
fn counter_key(prefix: &str, bucket: &str, window: u64) -> String {
    format!(
        "{}{window}",
        crate::redis_store::tagged(prefix, &format!("rl:{bucket}"))
    )
}

/// One bucket's counters in a flush: what to add to this window's, and the previous window's
/// to read (both carry the bucket's hash tag, so they share a slot).
#[derive(Clone, Copy)]
struct Counter<'a> {
    current: &'a str,
    previous: &'a str,
    delta: u64,
}

/// What Redis holds for a bucket after a flush: this window's total and the previous one's.
#[derive(Debug, Clone, Copy, Default)]
struct Global {
    current: u64,
    previous: u64,
}

/// [`counter_round_trip`] on a cluster, which answers a pipeline from one slot's node: one
/// pipeline per slot, at once; the totals in `counts`' order, or `None` if any failed.
async fn per_slot_round_trips(redis: &RedisConn, counts: &[Counter<'_>]) -> Option<Vec<Global>> {
    let groups = crate::redis_store::cluster::group_by_slot(counts.iter().copied(), |c| c.current);
    let answers = futures_util::future::join_all(groups.into_iter().map(|group| async {
        let counts: Vec<Counter<'_>> = group.iter().map(|(_, item)| *item).collect();
        let globals = counter_round_trip(redis, &counts).await;
        (group, globals)
    }))
    .await;
    let mut globals = vec![Global::default(); counts.len()];
    for (group, answer) in answers {
        for ((n, _), value) in group.iter().zip(answer?) {
            globals[*n] = value;
        }
    }
    Some(globals)
}

/// Adds each count to its counter (`INCRBY` + `EXPIRE`, one pipeline), reads the previous
/// window's counter beside it, and returns both totals, or `None` on failure or timeout.
async fn counter_round_trip(redis: &RedisConn, counts: &[Counter<'_>]) -> Option<Vec<Global>> {
    let mut pipe = redis::pipe();
    for counter in counts {
        pipe.incr(counter.current, counter.delta)
            .expire(counter.current, (WINDOW_SECS * 2) as i64)
            .ignore()
            .get(counter.previous);
    }
    let mut conn = redis.clone();
    let answer = pipe.query_async::<Vec<Option<u64>>>(&mut conn);
    match tokio::time::timeout(FLUSH_TIMEOUT, answer).await {
        Ok(Ok(values)) if values.len() == counts.len() * 2 => Some(
            values
                .chunks(2)
                .map(|pair| Global {
                    current: pair[0].unwrap_or(0),
                    previous: pair.get(1).copied().flatten().unwrap_or(0),
                })
                .collect(),
        ),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "rate-limit flush failed");
            None
        }
        _ => None,
    }
}

/// Counts taken from one window by a flush.
struct Batch {
    window: u64,
    deltas: Vec<(String, u64)>,
}

/// Which per-IP limits a route counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// The API, the pages and everything else.
    Api,
    /// Sign-in and token routes (not logout, which needs a token, nor the list of methods):
    /// the API's limit and a stricter one.
    SignIn,
    /// Health checks and metrics: a limit of their own.
    Operations,
}

impl RouteClass {
    pub fn of(path: &str) -> Self {
        if path.starts_with("/health/") || path == "/metrics" {
            Self::Operations
        } else if path.starts_with("/api/v1/auth/")
            && !matches!(path, "/api/v1/auth/logout" | "/api/v1/auth/methods")
        {
            Self::SignIn
        } else {
            Self::Api
        }
    }
}

/// What a request is charged against: the shared limiter, the configured limits, and whose
/// `X-Forwarded-For` to believe when finding the client's address.
pub struct RateLimiting {
    limiter: RateLimiter,
    limits: RateLimits,
    trusted_proxies: Vec<ipnet::IpNet>,
}

impl RateLimiting {
    pub fn new(
        limiter: RateLimiter,
        limits: RateLimits,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> Self {
        Self {
            limiter,
            limits,
            trusted_proxies,
        }
    }

    /// Counts one request against `scope`'s `limit` for `key`; 429 when it is spent.
    pub fn charge(&self, scope: &'static str, key: &str, limit: u32) -> Result<(), ApiError> {
        let decision = self.limiter.check(scope, key, limit);
        if decision.allowed {
            Ok(())
        } else {
            Err(ApiError::RateLimited {
                retry_after_secs: decision.reset_secs,
                limit,
            })
        }
    }

    /// Counts a request against the signed-in user's limit.
    pub fn charge_user(&self, user: UserId) -> Result<(), ApiError> {
        self.charge("user", &user.to_string(), self.limits.user_per_min)
    }

    /// Counts a request against its client address: API routes against the API's limit, and
    /// sign-in and token routes against a stricter one too; health and metrics against their
    /// own. A request whose address is unknown is not counted.
    pub fn charge_ip(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        route: RouteClass,
    ) -> Result<(), ApiError> {
        let Some(ip) = self.client_key(peer, headers) else {
            return Ok(());
        };
        let key = ip.to_string();
        match route {
            RouteClass::Api => self.charge("ip", &key, self.limits.ip_per_min),
            RouteClass::SignIn => {
                self.charge("ip", &key, self.limits.ip_per_min)?;
                self.charge("auth", &key, self.limits.auth_per_min)
            }
            RouteClass::Operations => self.charge("ops", &key, self.limits.ops_per_min),
        }
    }

    /// The client as per-IP limits and caps count it: its address (the peer, or what
    /// trusted proxies say it is), an IPv6 one as its network (`RATE_LIMIT_IPV6_PREFIX`).
    pub fn client_key(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        crate::client_ip::client_ip(peer, headers, &self.trusted_proxies)
            .map(|ip| crate::client_ip::limit_key(ip, self.limits.ipv6_prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> RateLimiter {
        RateLimiter {
            counts: Arc::new(Mutex::new(Counts::default())),
            prefix: "test:".into(),
        }
    }

    fn global(current: u64, previous: u64) -> Global {
        Global { current, previous }
    }

    fn admitted(limiter: &RateLimiter, n: u32, limit: u32) -> u32 {
        (0..n)
            .filter(|_| limiter.check("ip", "192.0.2.1", limit).allowed)
            .count() as u32
    }

    #[test]
    fn routes_are_classed_for_their_per_ip_limits() {
        assert_eq!(RouteClass::of("/api/v1/auth/dev"), RouteClass::SignIn);
        assert_eq!(RouteClass::of("/api/v1/auth/refresh"), RouteClass::SignIn);
        assert_eq!(
            RouteClass::of("/api/v1/auth/google/callback"),
            RouteClass::SignIn
        );
        assert_eq!(RouteClass::of("/api/v1/auth/logout"), RouteClass::Api);
        assert_eq!(RouteClass::of("/api/v1/auth/methods"), RouteClass::Api);
        assert_eq!(RouteClass::of("/api/v1/posts"), RouteClass::Api);
        assert_eq!(RouteClass::of("/health/ready"), RouteClass::Operations);
        assert_eq!(RouteClass::of("/metrics"), RouteClass::Operations);
        assert_eq!(RouteClass::of("/metrics/x"), RouteClass::Api);
    }

    #[test]
    fn a_buckets_counters_are_hash_tagged_by_the_bucket() {
        use crate::redis_store::cluster::slot_of;
        let key = counter_key("aisocial:", "ip:2001:db8::1", 29_000_000);
        assert_eq!(key, "aisocial:{rl:ip:2001:db8::1}:29000000");
        assert_eq!(
            slot_of(&key),
            slot_of(&counter_key("other:", "ip:2001:db8::1", 29_000_001))
        );
    }

    #[test]
    fn requests_checked_while_a_flush_is_in_flight_still_count() {
        let limiter = limiter();
        assert_eq!(admitted(&limiter, 30, 40), 30);
        let Some(batch) = limiter.take_batch() else {
            panic!("30 requests were counted and nothing was taken");
        };
        // The round trip to Redis has not come back: the 30 must still count.
        assert_eq!(admitted(&limiter, 20, 40), 10);
        limiter.settle(batch, Some(vec![global(30, 0)]));
        assert_eq!(admitted(&limiter, 5, 40), 0);
    }

    #[test]
    fn a_failed_flush_keeps_the_counts_locally() {
        let limiter = limiter();
        assert_eq!(admitted(&limiter, 30, 40), 30);
        let Some(batch) = limiter.take_batch() else {
            panic!("nothing was taken");
        };
        limiter.settle(batch, None);
        assert_eq!(admitted(&limiter, 20, 40), 10);
    }

    #[test]
    fn other_nodes_counts_learned_from_redis_are_enforced() {
        let limiter = limiter();
        assert_eq!(admitted(&limiter, 5, 40), 5);
        let Some(batch) = limiter.take_batch() else {
            panic!("nothing was taken");
        };
        // Redis says 35 in all: 30 came through other nodes.
        limiter.settle(batch, Some(vec![global(35, 0)]));
        assert_eq!(admitted(&limiter, 10, 40), 5);
    }

    #[test]
    fn the_last_windows_traffic_through_other_nodes_counts_after_a_rollover() {
        let limiter = limiter();
        let window_start = 29_000_000.0 * WINDOW_SECS as f64;
        let at = |secs: f64| limiter.check_at(window_start + secs, "auth", "192.0.2.1", 12);
        // This node saw none of the key's traffic in the window that just ended.
        assert!(at(0.5).allowed);
        let Some(batch) = limiter.take_batch() else {
            panic!("nothing was taken");
        };
        // Redis: 1 in this window, and 10 in the last one, through other nodes.
        limiter.settle(batch, Some(vec![global(1, 10)]));
        // 10 × (1 − 0.01) + 1 leaves room for one more under 12, not for five.
        let admitted = (0..5).filter(|_| at(0.6).allowed).count();
        assert_eq!(admitted, 1);
    }
}
