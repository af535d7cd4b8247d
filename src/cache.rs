//! Hot reads cached in Redis (public profiles), dropped on every write that changes them. A
//! cache failure is never an error: the read goes to PostgreSQL.

use std::sync::LazyLock;
use std::time::Duration;

use aisocial_actors::meter;
use prometheus::IntCounterVec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::redis_store::{self, Keyspace};

const TIMEOUT: Duration = Duration::from_millis(200);
/// How long a cached profile may live even if an invalidation was lost.
pub const PROFILE_TTL_SECS: u64 = 30;

static LOOKUPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_cache_lookups_total",
        "Redis cache lookups by result (hit, miss, error).",
        &["result"],
    )
});

/// The profile cache: this deployment's Redis keys, and a queue of invalidations that may land
/// a moment after the response.
#[derive(Clone)]
pub struct Cache {
    keys: Keyspace,
    invalidator: Invalidator,
}

impl Cache {
    /// Starts the batched invalidations' task.
    pub fn start(keys: Keyspace) -> Self {
        let invalidator = Invalidator::start(keys.conn().clone());
        Self { keys, invalidator }
    }

    pub fn profile_key(&self, handle: &str) -> String {
        self.keys.key(&format!("profile:{handle}"))
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        match redis_store::run::<Option<String>>(self.keys.conn(), cmd, TIMEOUT).await {
            Ok(Some(text)) => {
                let value = serde_json::from_str(&text).ok();
                LOOKUPS
                    .with_label_values(&[if value.is_some() { "hit" } else { "error" }])
                    .inc();
                value
            }
            Ok(None) => {
                LOOKUPS.with_label_values(&["miss"]).inc();
                None
            }
            Err(_) => {
                LOOKUPS.with_label_values(&["error"]).inc();
                None
            }
        }
    }

    pub async fn put<T: Serialize>(&self, key: &str, value: &T, ttl_secs: u64) {
        let Ok(text) = serde_json::to_string(value) else {
            return;
        };
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(text).arg("EX").arg(ttl_secs);
        let _ = redis_store::run::<()>(self.keys.conn(), cmd, TIMEOUT).await;
    }

    /// Drops `keys`; a failure is logged (the entries expire on their own).
    pub async fn invalidate(&self, keys: &[String]) {
        if keys.is_empty() {
            return;
        }
        let mut cmd = redis::cmd("DEL");
        for key in keys {
            cmd.arg(key);
        }
        if let Err(e) = redis_store::run::<i64>(self.keys.conn(), cmd, TIMEOUT).await {
            tracing::warn!(error = %e, "a cache invalidation failed; entries expire within their TTL");
        }
    }

    /// Drops the cached profiles of these handles.
    pub async fn invalidate_profiles(&self, handles: &[&str]) {
        let keys: Vec<String> = handles.iter().map(|h| self.profile_key(h)).collect();
        self.invalidate(&keys).await;
    }

    /// Drops the cached profile of `handle` with the next batch, without waiting.
    pub fn invalidate_profile_later(&self, handle: &str) {
        self.invalidator.later(self.profile_key(handle));
    }
}

/// Invalidations that may land a few milliseconds after the response (a post's effect on its
/// author's `posts_count`): queued without waiting and sent as one `DEL` per tick.
#[derive(Clone)]
struct Invalidator {
    queue: tokio::sync::mpsc::UnboundedSender<String>,
}

impl Invalidator {
    fn start(redis: crate::redis_store::RedisConn) -> Self {
        let (queue, mut keys) = tokio::sync::mpsc::unbounded_channel::<String>();
        actix_rt::spawn(async move {
            let mut batch = std::collections::HashSet::new();
            while let Some(key) = keys.recv().await {
                batch.insert(key);
                while let Ok(key) = keys.try_recv() {
                    batch.insert(key);
                }
                let mut cmd = redis::cmd("DEL");
                for key in batch.drain() {
                    cmd.arg(key);
                }
                if let Err(e) = redis_store::run::<i64>(&redis, cmd, TIMEOUT).await {
                    tracing::warn!(error = %e, "a batched cache invalidation failed; entries expire within their TTL");
                }
            }
        });
        Self { queue }
    }

    fn later(&self, key: String) {
        let _ = self.queue.send(key);
    }
}
