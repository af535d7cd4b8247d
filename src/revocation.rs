//! Revoked sign-in sessions (refresh-token families). The truth is in PostgreSQL
//! (`refresh_tokens.revoked_at`); each node keeps the recently revoked families in memory, so
//! every request checks without a round trip, and learns of other nodes' revocations through a
//! Redis channel. Whenever that subscription (re)connects, the node reloads the list from
//! PostgreSQL, so a Redis restart loses nothing. A revocation also closes that session's
//! websockets on every node.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aisocial_actors::db_error::ReadError;
use aisocial_actors::error_chain::Chain;
use aisocial_actors::feed_broker::{CloseFamily, FeedBroker};
use aisocial_actors::ids::UserId;
use aisocial_actors::meter::MeteredAddr;
use aisocial_actors::store::ReadPool;
use serde::{Deserialize, Serialize};

use crate::redis_store::{self, ChannelListener};

/// The Redis payload announcing one revocation (this module is its only reader and writer).
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    user: i64,
    family: i64,
}

pub struct Revocations {
    /// Family → when it may be forgotten (every access token of it has expired by then).
    revoked: RwLock<HashMap<i64, Instant>>,
    remember: Duration,
    broker: MeteredAddr<FeedBroker>,
    redis: crate::redis_store::RedisConn,
    channel: String,
}

impl Revocations {
    /// `remember` must cover an access token's lifetime plus clock leeway.
    pub fn new(
        remember: Duration,
        broker: MeteredAddr<FeedBroker>,
        redis: crate::redis_store::RedisConn,
        prefix: &str,
    ) -> Self {
        Self {
            revoked: RwLock::new(HashMap::new()),
            remember,
            broker,
            redis,
            channel: format!("{prefix}revocations"),
        }
    }

    pub fn is_revoked(&self, family: i64) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&family)
    }

    fn apply(&self, user: UserId, family: i64) {
        let now = Instant::now();
        {
            let mut revoked = self.revoked.write().unwrap_or_else(|e| e.into_inner());
            revoked.retain(|_, forget_at| *forget_at > now);
            revoked.insert(family, now + self.remember);
        }
        self.broker.do_send(CloseFamily { user, family });
    }

    /// Revokes here at once and tells the other nodes (best effort: they also reload from
    /// PostgreSQL whenever their subscription reconnects).
    pub async fn revoke(&self, user: UserId, family: i64) {
        self.apply(user, family);
        let payload = serde_json::to_string(&Announcement {
            user: user.0,
            family,
        })
        .unwrap_or_default();
        let publish = self.redis.publish_cmd(&self.channel, &payload);
        if let Err(e) = redis_store::run::<i64>(&self.redis, publish, Duration::from_secs(1)).await
        {
            tracing::warn!(error = %Chain(&e), "could not announce a revocation");
        }
    }

    async fn reload(&self, pool: &ReadPool) -> Result<usize, ReadError> {
        let conn = pool.get().await?;
        let rows = conn
            .query(
                "SELECT DISTINCT family_id, user_id FROM refresh_tokens \
                 WHERE revoked_at > now() - make_interval(secs => $1)",
                &[&self.remember.as_secs_f64()],
            )
            .await?;
        for row in &rows {
            let family: i64 = row.try_get(0)?;
            let user: i64 = row.try_get(1)?;
            self.apply(UserId(user), family);
        }
        Ok(rows.len())
    }

    /// Listens for other nodes' revocations until the process ends, reconnecting with backoff.
    pub fn listen(self: Arc<Self>, subscriber: redis_store::Subscriber, pool: ReadPool) {
        let channel = self.channel.clone();
        redis_store::keep_listening(
            subscriber,
            channel,
            OtherNodesRevocations {
                revocations: self,
                pool,
            },
        );
    }
}

/// The revocation channel's listener.
struct OtherNodesRevocations {
    revocations: Arc<Revocations>,
    pool: ReadPool,
}

impl ChannelListener for OtherNodesRevocations {
    type Error = ReadError;

    /// Anything announced while we were not listening is in PostgreSQL.
    async fn caught_up(&self) -> Result<(), Self::Error> {
        let reloaded = self.revocations.reload(&self.pool).await?;
        tracing::debug!(reloaded, "revocation channel subscribed");
        Ok(())
    }

    fn message(&self, payload: &str) {
        match serde_json::from_str::<Announcement>(payload) {
            Ok(a) => self.revocations.apply(UserId(a.user), a.family),
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed revocation message"),
        }
    }
}
