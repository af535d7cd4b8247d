//! The operator's live view. Once a second a sampler turns the meters into what the admin
//! views and Prometheus show: messages handled per second, the oldest message of each actor
//! kind, the sessions by mailbox depth, delivery latency over the last second, the AI's status
//! and budget, and readiness. `/admin/actors` and `/admin/live` read mailboxes fresh and take the
//! rates from the last sample.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aisocial_actors::ai_pool::AiHealth;
use aisocial_actors::feed_broker::GetOnline;
use aisocial_actors::meter::{self, KindClocks};
use aisocial_actors::session::{DELIVERY_LATENCY, Session};
use prometheus::{IntGauge, IntGaugeVec};
use serde::Serialize;

use crate::readiness::NodeHealth;
use crate::replicas::ReadRouting;

/// The upper bounds of the session depth buckets (`+Inf` is added).
const DEPTH_BOUNDS: [i64; 7] = [0, 1, 4, 16, 64, 256, 1024];
/// Sessions named on the admin view, deepest first.
const DEEPEST: usize = 20;
/// Readiness is checked every this many samples.
const READINESS_EVERY: u64 = 5;
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

static SESSIONS_BY_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    meter::labelled_gauge(
        "aisocial_sessions_by_mailbox_depth",
        "Sessions whose mailbox holds at most `le` messages right now (cumulative).",
        &["le"],
    )
});
static SESSIONS_SLOW: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_sessions_slow",
        "Sessions whose mailbox is past the slow-consumer threshold (half the outbound limit).",
    )
});
static AI_STATUS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    meter::labelled_gauge(
        "aisocial_ai_status",
        "1 for the AI pool's current status (ok, degraded, misconfigured, exhausted), 0 for the others.",
        &["status"],
    )
});
static AI_BUDGET_USED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    meter::labelled_gauge(
        "aisocial_ai_budget_used",
        "Gemini budget used by every node: requests and input tokens in the sliding minute, requests today.",
        &["limit"],
    )
});
static AI_BUDGET_LIMIT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    meter::labelled_gauge(
        "aisocial_ai_budget_limit",
        "The Gemini budget's limits (AI_RPM, AI_TPM, AI_RPD).",
        &["limit"],
    )
});
static READY: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_ready",
        "1 while the node is ready (PostgreSQL and Redis answer, not draining), 0 otherwise.",
    )
});

static POOL_CONNECTIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    meter::labelled_gauge(
        "aisocial_db_pool_connections",
        "Connections of the read pool (PostgreSQL), idle or in use.",
        &["state"],
    )
});
static POOL_GETS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_db_pool_gets_total",
        "Connections taken from the read pool: at once (direct), after a wait, or timed out.",
        &["outcome"],
    )
});
static POOL_WAIT: LazyLock<prometheus::Counter> = LazyLock::new(|| {
    #[expect(
        clippy::expect_used,
        reason = "metric names and labels are compile-time constants"
    )]
    prometheus::register_counter!(
        "aisocial_db_pool_wait_seconds_total",
        "Time spent waiting for a read-pool connection, summed over every wait."
    )
    .expect("valid metric definition")
});

/// Records the outcome of a readiness check for `aisocial_ready`.
pub fn record_readiness(ready: bool) {
    READY.set(i64::from(ready));
}

/// One actor kind right now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActorKindView {
    pub kind: String,
    /// The actor's name for a kind with one actor; for a kind with many, the kind and how many.
    pub name: String,
    /// Live actors of the kind.
    pub actors: usize,
    pub mailbox_depth: i64,
    /// At most this old: the oldest message waiting in any mailbox of the kind.
    pub oldest_message_age_seconds: f64,
    /// Over the last second sampled.
    pub handled_per_second: f64,
    pub messages_handled_total: f64,
    pub by_message: BTreeMap<String, f64>,
    /// Each actor of a kind with a few (the AI workers), with its own mailbox; sessions are
    /// never listed one by one (see `sessions`).
    pub instances: Vec<ActorInstanceView>,
}

/// One actor of a kind with several.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActorInstanceView {
    pub name: String,
    pub mailbox_depth: i64,
    pub oldest_message_age_seconds: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DepthBucket {
    /// Upper bound (`"+Inf"` for the last).
    pub le: String,
    pub sessions: usize,
}

/// A session with one of the deepest mailboxes.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeepSession {
    pub session_id: u64,
    pub user_id: Option<i64>,
    pub handle: Option<String>,
    pub node: String,
    pub depth: i64,
    pub oldest_message_age_seconds: f64,
}

/// The sessions in aggregate, never a series per connection.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionsView {
    pub open: usize,
    /// Past `slow_threshold` messages waiting.
    pub slow: usize,
    pub slow_threshold: usize,
    /// Cumulative: sessions with at most `le` messages waiting.
    pub by_depth: Vec<DepthBucket>,
    /// The deepest mailboxes, deepest first (at most 20).
    pub deepest: Vec<DeepSession>,
}

/// `GET /admin/actors`: every actor kind of this node right now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActorsView {
    pub node: String,
    /// When this was read (Unix milliseconds).
    pub at_ms: u64,
    pub actors: Vec<ActorKindView>,
    pub sessions: SessionsView,
}

/// Delivery latency (commit to socket write) over the last second sampled; null when nothing
/// was delivered in it.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct LatencyView {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub per_second: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct ConnectionsView {
    pub websockets: usize,
    pub online_users: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetLine {
    /// `requests_per_minute`, `tokens_per_minute` or `requests_per_day`.
    pub limit: &'static str,
    pub used: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AiView {
    /// `ok`, `degraded`, `misconfigured`, `exhausted`; `unknown` when the pool did not answer.
    pub status: &'static str,
    pub queued: usize,
    pub in_flight: usize,
    pub paused_seconds: f64,
    /// Empty when Redis could not be read.
    pub budget: Vec<BudgetLine>,
}

/// `GET /admin/live`: the dashboard's data, once a second.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveView {
    #[serde(flatten)]
    pub actors: ActorsView,
    pub delivery_latency_seconds: LatencyView,
    pub connections: ConnectionsView,
    pub ai: AiView,
}

/// What the last sample left for the views.
#[derive(Default)]
struct Sample {
    at: Option<Instant>,
    handled_totals: HashMap<String, f64>,
    handled_per_second: HashMap<String, f64>,
    latency_buckets: Vec<(f64, f64)>,
    latency: LatencyView,
    online_users: usize,
    ai: AiView,
    pool: PoolTotals,
}

/// The read pool's running totals at the last sample.
#[derive(Default, Clone, Copy)]
struct PoolTotals {
    direct: u64,
    waited: u64,
    timed_out: u64,
    wait: Duration,
}

/// The sampler's state, shared with the admin routes.
pub struct Live {
    node_id: String,
    slow_threshold: usize,
    sample: RwLock<Sample>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Messages handled so far, by kind and by message.
fn handled_by_kind() -> HashMap<String, BTreeMap<String, f64>> {
    let mut kinds: HashMap<String, BTreeMap<String, f64>> = HashMap::new();
    for family in prometheus::core::Collector::collect(&*meter::MESSAGES_HANDLED) {
        for metric in family.get_metric() {
            let label = |name: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_owned())
            };
            if let (Some(kind), Some(message)) = (label("actor"), label("message")) {
                kinds
                    .entry(kind)
                    .or_default()
                    .insert(message, metric.get_counter().value());
            }
        }
    }
    kinds
}

fn latency_buckets() -> Vec<(f64, f64)> {
    let metric = prometheus::core::Metric::metric(&*DELIVERY_LATENCY);
    let histogram = metric.get_histogram();
    let mut buckets: Vec<(f64, f64)> = histogram
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count() as f64))
        .collect();
    buckets.push((f64::INFINITY, histogram.get_sample_count() as f64));
    buckets
}

/// Latency over the window between two cumulative readings of the same histogram.
fn window_latency(before: &[(f64, f64)], now: &[(f64, f64)], seconds: f64) -> LatencyView {
    let window: Vec<(f64, f64)> = now
        .iter()
        .map(|(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| b == bound)
                .map_or(0.0, |(_, c)| *c);
            (*bound, (count - earlier).max(0.0))
        })
        .collect();
    let delivered = window.last().map_or(0.0, |(_, c)| *c);
    if delivered <= 0.0 || seconds <= 0.0 {
        return LatencyView::default();
    }
    // A quantile past the last finite bucket reads as that bucket's bound: "at least".
    let largest = window
        .iter()
        .map(|(bound, _)| *bound)
        .filter(|b| b.is_finite())
        .fold(0.0, f64::max);
    let quantile = |q| meter::bucket_quantile(&window, q).map(|v: f64| v.min(largest));
    LatencyView {
        p50: quantile(0.5),
        p99: quantile(0.99),
        per_second: Some(delivered / seconds),
    }
}

fn health_name(health: AiHealth) -> &'static str {
    match health {
        AiHealth::Ok => "ok",
        AiHealth::Degraded => "degraded",
        AiHealth::Misconfigured => "misconfigured",
        AiHealth::Exhausted => "exhausted",
        AiHealth::NotConfigured => "not_configured",
    }
}

impl Live {
    pub fn new(node_id: String, outbound_limit: usize) -> Self {
        meter::declare_instances(Session::KIND);
        Self {
            node_id,
            slow_threshold: (outbound_limit / 2).max(1),
            sample: RwLock::new(Sample::default()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Sample> {
        // Each writer replaces whole fields, so a poisoned lock still holds a coherent sample.
        self.sample
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Sample> {
        self.sample
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sessions(&self, kinds: &[KindClocks], now: Instant) -> SessionsView {
        let sessions: &[Arc<meter::MailboxClock>] = kinds
            .iter()
            .find(|k| k.kind == Session::KIND)
            .map_or(&[], |k| &k.instances);
        let depths: Vec<i64> = sessions.iter().map(|c| c.depth()).collect();
        let mut by_depth: Vec<DepthBucket> = DEPTH_BOUNDS
            .iter()
            .map(|bound| DepthBucket {
                le: bound.to_string(),
                sessions: depths.iter().filter(|d| *d <= bound).count(),
            })
            .collect();
        by_depth.push(DepthBucket {
            le: "+Inf".into(),
            sessions: depths.len(),
        });
        let threshold = i64::try_from(self.slow_threshold).unwrap_or(i64::MAX);
        let mut deepest: Vec<&Arc<meter::MailboxClock>> =
            sessions.iter().filter(|c| c.depth() > 0).collect();
        deepest.sort_by_key(|c| std::cmp::Reverse((c.depth(), c.oldest_age(now))));
        SessionsView {
            open: sessions.len(),
            slow: depths.iter().filter(|d| **d > threshold).count(),
            slow_threshold: self.slow_threshold,
            by_depth,
            deepest: deepest
                .into_iter()
                .take(DEEPEST)
                .map(|clock| {
                    let instance = clock.instance();
                    DeepSession {
                        session_id: instance.map_or(0, |i| i.id),
                        user_id: instance.and_then(|i| i.user),
                        handle: None,
                        node: self.node_id.clone(),
                        depth: clock.depth(),
                        oldest_message_age_seconds: clock.oldest_age(now).as_secs_f64(),
                    }
                })
                .collect(),
        }
    }

    /// Every actor kind right now, with the rates of the last sample.
    pub fn actors(&self) -> ActorsView {
        let now = Instant::now();
        let kinds = meter::every_kind(now);
        let mut handled = handled_by_kind();
        let sample = self.read();
        let actors = kinds
            .iter()
            .map(|k| {
                let by_message = handled.remove(k.kind).unwrap_or_default();
                let instances = if k.kind == Session::KIND {
                    Vec::new()
                } else {
                    k.instances
                        .iter()
                        .map(|clock| ActorInstanceView {
                            name: format!("{}-{}", k.kind, clock.instance().map_or(0, |i| i.id)),
                            mailbox_depth: clock.depth(),
                            oldest_message_age_seconds: clock.oldest_age(now).as_secs_f64(),
                        })
                        .collect()
                };
                ActorKindView {
                    kind: k.kind.to_owned(),
                    name: if k.instances.is_empty() {
                        k.kind.to_owned()
                    } else {
                        format!("{} ×{}", k.kind, k.actors)
                    },
                    instances,
                    actors: k.actors,
                    mailbox_depth: k.depth,
                    oldest_message_age_seconds: k.oldest_age.as_secs_f64(),
                    handled_per_second: sample
                        .handled_per_second
                        .get(k.kind)
                        .copied()
                        .unwrap_or_default(),
                    messages_handled_total: by_message.values().fold(0.0, |a, b| a + b),
                    by_message,
                }
            })
            .collect();
        ActorsView {
            node: self.node_id.clone(),
            at_ms: unix_ms(),
            actors,
            sessions: self.sessions(&kinds, now),
        }
    }

    /// The dashboard's data.
    pub fn live(&self) -> LiveView {
        let actors = self.actors();
        let sample = self.read();
        LiveView {
            connections: ConnectionsView {
                websockets: actors.sessions.open,
                online_users: sample.online_users,
            },
            actors,
            delivery_latency_seconds: sample.latency,
            ai: sample.ai.clone(),
        }
    }

    /// Names the deepest sessions' users (one lookup; left unnamed when the database does not
    /// answer: the view is for operators in trouble, and must not fail with the database).
    pub async fn name_users(reads: &ReadRouting, sessions: &mut [DeepSession]) {
        let ids: Vec<i64> = sessions.iter().filter_map(|s| s.user_id).collect();
        if ids.is_empty() {
            return;
        }
        let Ok(rows) = crate::reads::query(
            reads,
            "SELECT id, handle FROM users WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        else {
            return;
        };
        let handles: HashMap<i64, String> = rows
            .iter()
            .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
            .collect();
        for session in sessions {
            session.handle = session.user_id.and_then(|id| handles.get(&id).cloned());
        }
    }

    /// One sample: gauges set, rates and windows computed.
    async fn sample(&self, node: &NodeHealth, tick: u64) {
        let now = Instant::now();
        let kinds = meter::every_kind(now);
        for kind in &kinds {
            meter::OLDEST_AGE
                .with_label_values(&[kind.kind])
                .set(kind.oldest_age.as_secs_f64());
        }
        let sessions = self.sessions(&kinds, now);
        for bucket in &sessions.by_depth {
            SESSIONS_BY_DEPTH
                .with_label_values(&[bucket.le.as_str()])
                .set(i64::try_from(bucket.sessions).unwrap_or(i64::MAX));
        }
        SESSIONS_SLOW.set(i64::try_from(sessions.slow).unwrap_or(i64::MAX));

        let totals: HashMap<String, f64> = handled_by_kind()
            .into_iter()
            .map(|(kind, messages)| (kind, messages.values().fold(0.0, |a, b| a + b)))
            .collect();
        let buckets = latency_buckets();
        let (status, usage, online) = tokio::join!(
            node.ai.status(ASK_TIMEOUT),
            tokio::time::timeout(ASK_TIMEOUT, node.ai.budget.usage()),
            tokio::time::timeout(ASK_TIMEOUT, node.broker.send(GetOnline)),
        );
        let mut ai = AiView {
            status: "unknown",
            ..AiView::default()
        };
        if let Some(status) = status {
            ai.status = health_name(status.health);
            ai.queued = status.queued;
            ai.in_flight = status.in_flight;
        }
        for health in [
            AiHealth::Ok,
            AiHealth::Degraded,
            AiHealth::Misconfigured,
            AiHealth::Exhausted,
            AiHealth::NotConfigured,
        ] {
            let name = health_name(health);
            AI_STATUS
                .with_label_values(&[name])
                .set(i64::from(name == ai.status));
        }
        let limits = node.ai.budget.limits();
        if let Ok(Ok(usage)) = usage {
            ai.paused_seconds = usage.paused.as_secs_f64();
            ai.budget = vec![
                BudgetLine {
                    limit: "requests_per_minute",
                    used: usage.requests_in_window,
                    max: limits.rpm.into(),
                },
                BudgetLine {
                    limit: "tokens_per_minute",
                    used: usage.tokens_in_window,
                    max: limits.tpm.into(),
                },
                BudgetLine {
                    limit: "requests_per_day",
                    used: usage.requests_today,
                    max: limits.rpd.into(),
                },
            ];
            for line in &ai.budget {
                AI_BUDGET_USED
                    .with_label_values(&[line.limit])
                    .set(i64::try_from(line.used).unwrap_or(i64::MAX));
                AI_BUDGET_LIMIT
                    .with_label_values(&[line.limit])
                    .set(i64::try_from(line.max).unwrap_or(i64::MAX));
            }
        }
        if tick.is_multiple_of(READINESS_EVERY) {
            let readiness = crate::readiness::readiness(node).await;
            record_readiness(readiness.is_ready());
        }

        let pool = node.pool.state();
        for (name, count) in [
            ("idle", pool.idle_connections),
            (
                "in_use",
                pool.connections - pool.idle_connections.min(pool.connections),
            ),
        ] {
            POOL_CONNECTIONS
                .with_label_values(&[name])
                .set(i64::from(count));
        }
        let stats = &pool.statistics;
        let pool_totals = PoolTotals {
            direct: stats.get_direct,
            waited: stats.get_waited,
            timed_out: stats.get_timed_out,
            wait: stats.get_wait_time,
        };

        let mut sample = self.write();
        let before = sample.pool;
        for (outcome, now_total, then) in [
            ("direct", pool_totals.direct, before.direct),
            ("waited", pool_totals.waited, before.waited),
            ("timed_out", pool_totals.timed_out, before.timed_out),
        ] {
            POOL_GETS
                .with_label_values(&[outcome])
                .inc_by(now_total.saturating_sub(then));
        }
        POOL_WAIT.inc_by(pool_totals.wait.saturating_sub(before.wait).as_secs_f64());
        sample.pool = pool_totals;
        if let Some(previous) = sample.at {
            let seconds = now.duration_since(previous).as_secs_f64();
            if seconds > 0.0 {
                sample.handled_per_second = totals
                    .iter()
                    .map(|(kind, total)| {
                        let before = sample.handled_totals.get(kind).copied().unwrap_or(0.0);
                        (kind.clone(), ((total - before) / seconds).max(0.0))
                    })
                    .collect();
                sample.latency = window_latency(&sample.latency_buckets, &buckets, seconds);
            }
        }
        sample.at = Some(now);
        sample.handled_totals = totals;
        sample.latency_buckets = buckets;
        if let Ok(Ok(online)) = online {
            sample.online_users = online.users;
        }
        sample.ai = ai;
    }
}

/// Samples once a second for as long as the node's handles live.
pub fn spawn_sampler(live: Arc<Live>, node: Weak<NodeHealth>) {
    actix_rt::spawn(async move {
        let mut every_second = tokio::time::interval(Duration::from_secs(1));
        every_second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick: u64 = 0;
        loop {
            every_second.tick().await;
            let Some(node) = node.upgrade() else {
                return;
            };
            live.sample(&node, tick).await;
            tick = tick.wrapping_add(1);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_over_a_window_is_the_difference_of_two_readings() {
        let before = [(0.001, 10.0), (0.01, 20.0), (f64::INFINITY, 20.0)];
        let now = [(0.001, 10.0), (0.01, 118.0), (f64::INFINITY, 120.0)];
        let view = window_latency(&before, &now, 2.0);
        assert_eq!(view.per_second, Some(50.0));
        assert_eq!(view.p50, Some(0.01));
        assert_eq!(
            view.p99,
            Some(0.01),
            "past the last bucket reads as its bound"
        );
        let idle = window_latency(&now, &now, 1.0);
        assert!(idle.p50.is_none() && idle.per_second.is_none());
    }
}
