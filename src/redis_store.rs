//! Redis: one auto-reconnecting multiplexed connection, checked at start-up and by readiness.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use aisocial_actors::meter;
use anyhow::anyhow;
use prometheus::{HistogramVec, IntCounterVec};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::database::Check;

/// Connects (failing fast at start-up with a message that says where and how to start Redis).
/// Afterwards the manager reconnects by itself with backoff.
pub async fn connect(url: &str, display: &str) -> anyhow::Result<ConnectionManager> {
    let hint = |e: &dyn std::fmt::Display| {
        anyhow!(
            "cannot reach Redis at {display} (REDIS_URL): {e}. Is it running? Start it with \
             `scripts/services.sh` (or `redis-server --daemonize yes`), or point REDIS_URL at a \
             running server."
        )
    };
    let client = redis::Client::open(url).map_err(|e| hint(&e))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    let connecting = ConnectionManager::new_with_config(client, config);
    let mut manager = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| hint(&"no answer within 5s"))?
        .map_err(|e| hint(&e))?;
    redis::cmd("PING")
        .query_async::<String>(&mut manager)
        .await
        .map_err(|e| hint(&e))?;
    Ok(manager)
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
        "GET", "SET", "DEL", "GETDEL", "INCR", "EXPIRE", "PUBLISH", "PING", "PUBSUB", "EVAL",
    ];
    let verb = cmd.args_iter().next().and_then(|arg| match arg {
        redis::Arg::Simple(bytes) => std::str::from_utf8(bytes).ok(),
        _ => None,
    });
    verb.and_then(|v| KNOWN.iter().find(|k| k.eq_ignore_ascii_case(v)))
        .copied()
        .unwrap_or("other")
}

/// `PING` within `timeout`.
pub async fn check(redis: &ConnectionManager, timeout: Duration) -> Check {
    let started = Instant::now();
    let result = run::<String>(redis, redis::cmd("PING"), timeout)
        .await
        .map(|_| ());
    Check::from_result(started, result)
}

/// Runs one command with a deadline; the error says what went wrong.
pub async fn run<T: redis::FromRedisValue>(
    redis: &ConnectionManager,
    cmd: redis::Cmd,
    timeout: Duration,
) -> Result<T, String> {
    let mut conn = redis.clone();
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, cmd.query_async::<T>(&mut conn)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    };
    observe(op_of(&cmd), started, result.is_ok());
    result
}
