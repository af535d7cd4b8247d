//! Revoked sign-in sessions (refresh-token families). The truth is in PostgreSQL
//! (`refresh_tokens.revoked_at`); each node keeps the recently revoked families in memory
//! (`RevokedFamilies`, shared with the broker), so every request checks without a round trip.
//! Other nodes' revocations arrive through a Redis channel, fast; and, so that a lost or
//! delayed announcement never leaves a revoked session usable, every node also reloads them
//! from PostgreSQL on a short period (`REVOCATION_RELOAD_MS`) and whenever its subscription
//! (re)connects: revocation fails closed within that period. A revocation closes that
//! session's websockets on every node, and the broker refuses its sockets that connect later.
//!
//! Suspended accounts are refused here too. A suspension reaches each node's broker as a
//! `route.account` record of the ordered log (through Redis, or the broker's log poll when
//! Redis is slow), which closes the user's sockets and fills `SuspendedUsers` at once; the same
//! periodic reload re-reads them from `users.disabled_at` as a second path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aisocial_actors::db_error::ReadError;
use aisocial_actors::error_chain::Chain;
use aisocial_actors::feed_broker::{CloseFamily, FeedBroker};
use aisocial_actors::ids::UserId;
use aisocial_actors::meter::MeteredAddr;
use aisocial_actors::revoked::{RevokedFamilies, SuspendedUsers};
use aisocial_actors::store::ReadPool;
use serde::{Deserialize, Serialize};

use crate::redis_store::{self, ChannelListener};

/// The longest one reload from PostgreSQL may take.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

static RELOADS: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    let reloads = aisocial_actors::meter::labelled_counter(
        "aisocial_revocation_reloads_total",
        "Periodic reloads of revoked sign-in sessions from PostgreSQL, by result.",
        &["result"],
    );
    for result in ["ok", "failed"] {
        reloads.with_label_values(&[result]);
    }
    reloads
});

/// The Redis payload announcing one revocation (this module is its only reader and writer).
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    user: i64,
    family: i64,
}

pub struct Revocations {
    /// Family → when it may be forgotten (every access token of it has expired by then).
    revoked: Arc<RevokedFamilies>,
    /// Suspended accounts (kept by the broker from the log; reloaded here too).
    suspended: Arc<SuspendedUsers>,
    remember: Duration,
    broker: MeteredAddr<FeedBroker>,
    redis: crate::redis_store::RedisConn,
    channel: String,
}

impl Revocations {
    /// `remember` must cover an access token's lifetime plus clock leeway.
    pub fn new(
        remember: Duration,
        revoked: Arc<RevokedFamilies>,
        suspended: Arc<SuspendedUsers>,
        broker: MeteredAddr<FeedBroker>,
        redis: crate::redis_store::RedisConn,
        prefix: &str,
    ) -> Self {
        Self {
            revoked,
            suspended,
            remember,
            broker,
            redis,
            channel: format!("{prefix}revocations"),
        }
    }

    pub fn is_revoked(&self, family: i64) -> bool {
        self.revoked.contains(family)
    }

    pub fn is_suspended(&self, user: UserId) -> bool {
        self.suspended.contains(user)
    }

    /// A suspension (or its end) this node just committed: its tokens are refused (or taken)
    /// here from now on, not only once the broker releases the log record, which follows.
    pub fn suspension_committed(&self, user: UserId, suspended: bool) {
        self.suspended.apply(user, suspended);
    }

    /// Remembers the revocation, then closes the session's sockets here (once: a socket
    /// that connects later is refused by the broker, which reads the same set).
    fn apply(&self, user: UserId, family: i64) {
        if self.revoked.insert(family, Instant::now() + self.remember) {
            self.broker.do_send(CloseFamily { user, family });
        }
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
        let read_started = Instant::now();
        let suspended = conn
            .query("SELECT id FROM users WHERE disabled_at IS NOT NULL", &[])
            .await?
            .iter()
            .map(|row| row.try_get(0).map(UserId))
            .collect::<Result<_, _>>()?;
        self.suspended.reload(suspended, read_started);
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

    /// Listens for other nodes' revocations until the process ends, reconnecting with
    /// backoff; and reloads them from PostgreSQL every `reload_every`, whatever Redis does.
    pub fn listen(
        self: Arc<Self>,
        subscriber: redis_store::Subscriber,
        pool: ReadPool,
        reload_every: Duration,
    ) {
        let reloading = Arc::clone(&self);
        let reload_pool = pool.clone();
        actix_rt::spawn(async move {
            let mut every = tokio::time::interval(reload_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match tokio::time::timeout(
                    reload_every.max(RELOAD_TIMEOUT),
                    reloading.reload(&reload_pool),
                )
                .await
                {
                    Ok(Ok(_)) => RELOADS.with_label_values(&["ok"]).inc(),
                    Ok(Err(e)) => {
                        RELOADS.with_label_values(&["failed"]).inc();
                        tracing::warn!(error = %Chain(&e), "could not reload revocations");
                    }
                    Err(_) => {
                        RELOADS.with_label_values(&["failed"]).inc();
                        tracing::warn!("reloading revocations timed out");
                    }
                }
            }
        });
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
