//! Redis, a single server or a cluster, behind one handle: [`RedisConn`] for commands and
//! scripts, [`Subscriber`] for pub/sub; checked at start-up and by readiness.
//!
//! Layout: `config::redis` reads `REDIS_URL`; [`conn`] is the handle, [`Keyspace`] the
//! handle with this deployment's key prefix; [`cluster`] finds out whether a
//! URL names a cluster node, connects to clusters and builds the hash-tagged key prefixes;
//! [`pubsub`] keeps one channel's subscription standing.

pub mod cluster;
pub mod conn;
pub mod pubsub;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use aisocial_actors::meter;
use anyhow::anyhow;
use prometheus::{HistogramVec, IntCounterVec};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use crate::config::redis::RedisUrls;
pub use cluster::tagged;
pub use conn::RedisConn;
pub use pubsub::{ChannelListener, Notice, Subscriber, Subscription, keep_listening};

use crate::health::Check;
use crate::problem::ApiError;

/// This deployment's Redis: the command handle and the prefix every key of ours carries (so
/// several deployments, or tests, share one Redis without meeting).
#[derive(Clone)]
pub struct Keyspace {
    conn: RedisConn,
    prefix: std::sync::Arc<str>,
}

impl Keyspace {
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }

    /// The command handle.
    pub fn conn(&self) -> &RedisConn {
        &self.conn
    }

    /// The prefix of every key of this deployment.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A key under this deployment's prefix.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }
}

/// A connected deployment Redis: the command handle and the subscription maker.
pub struct Connected {
    pub conn: RedisConn,
    pub subscriber: Subscriber,
}

/// Connects (failing fast at start-up with a message that says where and how to start Redis).
/// One URL is a single server unless the server says it is a cluster node (`INFO cluster`), in
/// which case it seeds the cluster; several comma-separated URLs are cluster seeds. Afterwards
/// the connection reconnects (and, on a cluster, follows the topology) by itself.
pub async fn connect(url: &str, display: &str) -> anyhow::Result<Connected> {
    let hint = |e: &dyn std::fmt::Display| {
        anyhow!(
            "cannot reach Redis at {display} (REDIS_URL): {e}. Is it running? Start it with \
             `scripts/services.sh` (or `redis-server --daemonize yes`), or point REDIS_URL at a \
             running server."
        )
    };
    let urls = RedisUrls::parse(url).map_err(|e| hint(&e))?;
    let connecting = async {
        let seeds = match urls {
            RedisUrls::One(info) => {
                let cluster_enabled = match cluster::server_facts(&info).await {
                    Ok(facts) => facts.cluster_enabled,
                    Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() => {
                        return Err(hint(&e));
                    }
                    Err(e) => {
                        // A server that refuses INFO (renamed or denied by ACL) is taken as
                        // a single server, as before clusters were supported.
                        tracing::warn!(error = %e, "INFO refused; taking REDIS_URL as a single server");
                        false
                    }
                };
                if !cluster_enabled {
                    return connect_single(info).await.map_err(|e| hint(&e));
                }
                tracing::info!(
                    "REDIS_URL names a cluster node: using it as the seed of the cluster"
                );
                vec![info]
            }
            RedisUrls::Seeds(seeds) => seeds,
        };
        connect_cluster(seeds).await.map_err(|e| hint(&e))
    };
    let mut connected = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| hint(&"no answer within 5s"))??;
    redis::cmd("PING")
        .query_async::<String>(&mut connected.conn)
        .await
        .map_err(|e| hint(&e))?;
    Ok(connected)
}

async fn connect_single(info: redis::ConnectionInfo) -> redis::RedisResult<Connected> {
    let client = redis::Client::open(info)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    let manager = ConnectionManager::new_with_config(client.clone(), config).await?;
    Ok(Connected {
        conn: RedisConn::Single(manager),
        subscriber: Subscriber::single(client),
    })
}

async fn connect_cluster(seeds: Vec<redis::ConnectionInfo>) -> redis::RedisResult<Connected> {
    // Every node of a cluster runs one version; ask the first seed that answers.
    let mut facts = None;
    let mut last_error = None;
    for seed in &seeds {
        match cluster::server_facts(seed).await {
            Ok(f) => {
                facts = Some(f);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let facts = match (facts, last_error) {
        (Some(f), _) => f,
        (None, Some(e)) => return Err(e),
        (None, None) => {
            return Err(redis::RedisError::from(std::io::Error::other(
                "no cluster seed given",
            )));
        }
    };
    if !facts.cluster_enabled {
        return Err(redis::RedisError::from(std::io::Error::other(
            "REDIS_URL lists several servers, but they are not Redis Cluster nodes \
             (INFO cluster says cluster_enabled:0); give one URL for a single server",
        )));
    }
    let sharded = facts.has_sharded_pubsub();
    let conn = cluster::connect(&seeds, sharded).await?;
    tracing::info!(sharded_pubsub = sharded, "connected to the Redis cluster");
    Ok(Connected {
        conn: RedisConn::Cluster(conn),
        subscriber: Subscriber::cluster(seeds, sharded),
    })
}

static ROUND_TRIP: LazyLock<HistogramVec> = LazyLock::new(|| {
    meter::labelled_histogram(
        "aisocial_redis_command_seconds",
        "Redis round trips, by command (or script / pipeline name).",
        &["op"],
        meter::exponential(0.000_05, 2.0, 17),
    )
});
static FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_redis_failures_total",
        "Redis round trips that failed or timed out, by command.",
        &["op"],
    )
});

/// Records one round trip to Redis under `op` (a fixed name, never data).
pub fn observe(op: &'static str, started: Instant, ok: bool) {
    ROUND_TRIP
        .with_label_values(&[op])
        .observe(started.elapsed().as_secs_f64());
    if !ok {
        FAILURES.with_label_values(&[op]).inc();
    }
}

/// The metric name of a command: its verb from a fixed list, so a label never holds data.
fn op_of(cmd: &redis::Cmd) -> &'static str {
    const KNOWN: &[&str] = &[
        "GET", "SET", "DEL", "GETDEL", "INCR", "INCRBY", "EXPIRE", "PUBLISH", "SPUBLISH", "PING",
        "PUBSUB", "EVAL", "EVALSHA", "INFO", "CLUSTER",
    ];
    let verb = cmd.args_iter().next().and_then(|arg| match arg {
        redis::Arg::Simple(bytes) => std::str::from_utf8(bytes).ok(),
        _ => None,
    });
    verb.and_then(|v| KNOWN.iter().find(|k| k.eq_ignore_ascii_case(v)))
        .copied()
        .unwrap_or("other")
}

/// `PING` within `timeout`; on a cluster, to the masters the client reaches (one master down
/// while its replica takes over does not fail it; no master answering does).
pub async fn check(redis: &RedisConn, timeout: Duration) -> Check {
    let started = Instant::now();
    let result = run::<String>(redis, redis::cmd("PING"), timeout)
        .await
        .map(|_| ());
    Check::from_result(started, result)
}

/// Why one command to Redis failed; Redis's own error stays the source.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Redis answered with an error, or the connection failed.
    #[error("a Redis command failed")]
    Redis(#[source] redis::RedisError),
    /// No answer within the command's deadline.
    #[error("Redis did not answer within {0:?}")]
    TimedOut(Duration),
}

impl From<CommandError> for ApiError {
    /// Redis (tickets, sign-in flow state, counters) did not answer: `unavailable` with the
    /// fixed detail; Redis's text goes to the log only.
    fn from(e: CommandError) -> Self {
        ApiError::dependency("Redis", e, 2)
    }
}

/// Redis (tickets, sign-in flow state) did not answer.
pub fn redis_error(e: CommandError) -> ApiError {
    ApiError::from(e)
}

/// Runs one command with a deadline.
pub async fn run<T: redis::FromRedisValue>(
    redis: &RedisConn,
    cmd: redis::Cmd,
    timeout: Duration,
) -> Result<T, CommandError> {
    let mut conn = redis.clone();
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, cmd.query_async::<T>(&mut conn)).await {
        Ok(result) => result.map_err(CommandError::Redis),
        Err(_) => Err(CommandError::TimedOut(timeout)),
    };
    observe(op_of(&cmd), started, result.is_ok());
    result
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;

    use super::*;
    use crate::problem::UNAVAILABLE_DETAIL;

    /// A Redis failure answers `unavailable` with the fixed detail, never Redis's text.
    #[actix_web::test]
    async fn a_failed_command_answers_the_fixed_detail() {
        let refused = CommandError::Redis(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "secret-redis-host:6379 refused",
        )));
        for failure in [refused, CommandError::TimedOut(Duration::from_secs(1))] {
            let response = ApiError::from(failure).error_response();
            assert_eq!(response.status(), 503);
            assert_eq!(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some("2")
            );
            let bytes = actix_web::body::to_bytes(response.into_body())
                .await
                .expect("a body");
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("a problem");
            assert_eq!(body["code"], "unavailable");
            assert_eq!(body["detail"], UNAVAILABLE_DETAIL);
            assert!(!String::from_utf8_lossy(&bytes).contains("secret"));
        }
    }
}
