//! The follow lists the FeedBroker loads when a user comes online, cached in Redis.
//!
//! Entries are versioned per user: `followees:{user}:v` holds a counter that every committed
//! follow change increments, and the list lives at `followees:{user}:{version}`. A reader that
//! raced a change can only have stored its (older) list under the old version, which nobody
//! reads again, so a stale list is never served. Redis failures fall back to PostgreSQL.

use std::time::Duration;

use crate::redis_store::RedisConn;
use aisocial_actors::follow_graph::{FollowGraph, followees_from_pg};
use aisocial_actors::ids::UserId;
use aisocial_actors::store::ReadPool;
use futures_util::future::BoxFuture;

use crate::redis_store;

const TIMEOUT: Duration = Duration::from_millis(200);
/// A cached list lives this long unless its version moves on first.
const TTL_SECS: u64 = 600;

#[derive(Clone)]
pub struct CachedFollowGraph {
    pool: ReadPool,
    redis: RedisConn,
    prefix: String,
}

fn version_key(prefix: &str, user: UserId) -> String {
    format!("{prefix}followees:{user}:v")
}

impl CachedFollowGraph {
    pub fn new(pool: ReadPool, redis: RedisConn, prefix: String) -> Self {
        Self {
            pool,
            redis,
            prefix,
        }
    }

    async fn load(self, user: UserId) -> Result<Vec<UserId>, String> {
        let mut get_version = redis::cmd("GET");
        get_version.arg(version_key(&self.prefix, user));
        let version = redis_store::run::<Option<u64>>(&self.redis, get_version, TIMEOUT).await;
        let Ok(version) = version.map(Option::unwrap_or_default) else {
            return followees_from_pg(&self.pool, user).await;
        };
        let list_key = format!("{}followees:{user}:{version}", self.prefix);
        let mut get_list = redis::cmd("GET");
        get_list.arg(&list_key);
        if let Ok(Some(cached)) =
            redis_store::run::<Option<String>>(&self.redis, get_list, TIMEOUT).await
            && let Ok(ids) = serde_json::from_str::<Vec<i64>>(&cached)
        {
            return Ok(ids.into_iter().map(UserId).collect());
        }
        let followees = followees_from_pg(&self.pool, user).await?;
        let ids: Vec<i64> = followees.iter().map(|u| u.0).collect();
        if let Ok(text) = serde_json::to_string(&ids) {
            let mut set = redis::cmd("SET");
            set.arg(&list_key).arg(text).arg("EX").arg(TTL_SECS);
            let _ = redis_store::run::<()>(&self.redis, set, TIMEOUT).await;
        }
        Ok(followees)
    }
}

impl FollowGraph for CachedFollowGraph {
    fn followees(&self, user: UserId) -> BoxFuture<'static, Result<Vec<UserId>, String>> {
        Box::pin(self.clone().load(user))
    }
}

/// After a committed follow change by `user`: move their list to a new version.
pub async fn changed(redis: &RedisConn, prefix: &str, user: UserId) {
    let mut incr = redis::cmd("INCR");
    incr.arg(version_key(prefix, user));
    if let Err(e) = redis_store::run::<u64>(redis, incr, TIMEOUT).await {
        // The old list may be served until it expires; the broker still applies the change
        // live, and resume reads the graph from PostgreSQL.
        tracing::warn!(error = %e, %user, "could not invalidate a cached follow list");
    }
}
