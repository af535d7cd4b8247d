//! Listening on one pub/sub channel: `SUBSCRIBE` on a single server; on a cluster `SSUBSCRIBE`
//! at the shard owning the channel's slot (or `SUBSCRIBE` where the cluster has no sharded
//! pub/sub), followed across `MOVED`, failovers and topology changes. A shard's replicas
//! deliver its messages too, so a subscription left on a demoted master still hears them.
//!
//! Pub/sub is at-most-once: what is published while a subscription is lost is gone. A single
//! server's subscription ends when its connection drops (the caller subscribes again); a
//! cluster's is repaired in place and says so with [`Notice::Resubscribed`]. Either way the
//! caller learns that it may have missed messages and repairs from PostgreSQL.
//! [`keep_listening`] does that for a [`ChannelListener`]: it subscribes, resubscribes with
//! backoff, and tells the listener each time messages may have been missed.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use aisocial_actors::error_chain::Chain;
use aisocial_actors::meter;
use futures_util::StreamExt;
use prometheus::IntCounter;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionInfo, Msg, PushInfo, PushKind};
use tokio::sync::mpsc;

/// How often a cluster subscription is confirmed with its shard's current owner. Confirming
/// is idempotent where the subscription stands and moves it where the slot has moved.
const CONFIRM_EVERY: Duration = Duration::from_millis(500);

static RESUBSCRIPTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_redis_resubscriptions_total",
        "Cluster pub/sub subscriptions lost (node down, failover, slot moved) and taken up again.",
    )
});

/// What a subscription yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Notice {
    /// A message's payload.
    Message(String),
    /// The subscription had been lost and stands again: messages published in between were
    /// missed.
    Resubscribed,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot subscribe to {channel:?}")]
pub struct SubscribeError {
    channel: String,
    #[source]
    source: redis::RedisError,
}

/// What a node does with one channel for as long as it runs.
pub trait ChannelListener: 'static {
    /// A subscription stands, for the first time, again after a loss, or repaired in place:
    /// whatever was published while none stood was missed and must be read from where it is
    /// kept. An error drops the subscription, and the whole is tried again after a backoff.
    fn caught_up(&self) -> impl Future<Output = Result<(), Self::Error>>;

    /// Why catching up failed.
    type Error: std::error::Error + 'static;

    /// One message's payload.
    fn message(&self, payload: &str);
}

/// First wait before subscribing again; it doubles after each loss, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait before subscribing again; a subscription that stood this long resets the wait.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Keeps `listener` subscribed to `channel` until the process ends (spawned on the current
/// actix arbiter), subscribing again after any loss.
pub fn keep_listening(subscriber: Subscriber, channel: String, listener: impl ChannelListener) {
    actix_rt::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            let lost = listen_once(&subscriber, &channel, &listener).await;
            tracing::warn!(channel = %channel, reason = %Chain(&lost), "pub/sub channel lost; subscribing again");
            if started.elapsed() >= MAX_BACKOFF {
                backoff = FIRST_BACKOFF;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    });
}

/// Why a subscription's life ended.
#[derive(Debug, thiserror::Error)]
enum Lost<E: std::error::Error + 'static> {
    #[error(transparent)]
    Subscribe(SubscribeError),
    #[error("catching up on what was missed failed")]
    CatchUp(#[source] E),
    #[error("the subscription ended")]
    Ended,
}

/// One subscription's life; returns why it ended.
async fn listen_once<L: ChannelListener>(
    subscriber: &Subscriber,
    channel: &str,
    listener: &L,
) -> Lost<L::Error> {
    let mut subscription = match subscriber.subscribe(channel).await {
        Ok(subscription) => subscription,
        Err(e) => return Lost::Subscribe(e),
    };
    if let Err(e) = listener.caught_up().await {
        return Lost::CatchUp(e);
    }
    while let Some(notice) = subscription.next().await {
        match notice {
            Notice::Message(payload) => listener.message(&payload),
            Notice::Resubscribed => {
                if let Err(e) = listener.caught_up().await {
                    return Lost::CatchUp(e);
                }
            }
        }
    }
    Lost::Ended
}

/// Makes subscriptions to the deployment's Redis (cheap to clone).
#[derive(Clone)]
pub struct Subscriber {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Single(redis::Client),
    Cluster {
        seeds: Arc<[ConnectionInfo]>,
        sharded: bool,
    },
}

impl Subscriber {
    pub(super) fn single(client: redis::Client) -> Self {
        Self {
            target: Target::Single(client),
        }
    }

    pub(super) fn cluster(seeds: Vec<ConnectionInfo>, sharded: bool) -> Self {
        Self {
            target: Target::Cluster {
                seeds: seeds.into(),
                sharded,
            },
        }
    }

    /// Subscribes to `channel`; messages published from now on are delivered.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, SubscribeError> {
        let failed = |source| SubscribeError {
            channel: channel.to_owned(),
            source,
        };
        let inner = match &self.target {
            Target::Single(client) => {
                let mut pubsub = client.get_async_pubsub().await.map_err(failed)?;
                pubsub.subscribe(channel).await.map_err(failed)?;
                Inner::Single(pubsub.into_on_message())
            }
            Target::Cluster { seeds, sharded } => {
                let (pushes_to, pushes) = mpsc::unbounded_channel();
                let conn = super::cluster::connect_for_pushes(seeds, pushes_to)
                    .await
                    .map_err(failed)?;
                let mut subscription = ClusterSubscription {
                    conn,
                    pushes,
                    channel: channel.to_owned(),
                    sharded: *sharded,
                    confirm: tokio::time::interval(CONFIRM_EVERY),
                    lost: false,
                };
                subscription.confirm().await.map_err(failed)?;
                subscription
                    .confirm
                    .set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Inner::Cluster(Box::new(subscription))
            }
        };
        Ok(Subscription { inner })
    }
}

/// One channel's messages.
pub struct Subscription {
    inner: Inner,
}

enum Inner {
    Single(redis::aio::PubSubStream),
    Cluster(Box<ClusterSubscription>),
}

impl Subscription {
    /// The next message or notice; `None` when the subscription has ended for good (subscribe
    /// again, and treat everything since the last message as missed).
    pub async fn next(&mut self) -> Option<Notice> {
        match &mut self.inner {
            Inner::Single(messages) => loop {
                let message = messages.next().await?;
                if let Ok(payload) = message.get_payload::<String>() {
                    return Some(Notice::Message(payload));
                }
            },
            Inner::Cluster(subscription) => subscription.next().await,
        }
    }
}

struct ClusterSubscription {
    /// A connection of its own (RESP3, its pushes to `pushes`): the cluster client keeps the
    /// subscription at the slot's owner, re-sending it on reconnects and topology changes.
    conn: ClusterConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    channel: String,
    sharded: bool,
    confirm: tokio::time::Interval,
    /// A connection dropped or the server unsubscribed us since the last confirmation.
    lost: bool,
}

impl ClusterSubscription {
    async fn next(&mut self) -> Option<Notice> {
        loop {
            tokio::select! {
                push = self.pushes.recv() => {
                    if let Some(notice) = self.on_push(push?).await {
                        return Some(notice);
                    }
                }
                _ = self.confirm.tick() => {
                    if let Err(e) = self.confirm().await {
                        self.lost = true;
                        tracing::debug!(error = %e, channel = %self.channel, "pub/sub subscription not confirmed; retrying");
                    }
                }
            }
        }
    }

    /// (Re)subscribes where the channel's slot is now; the cluster client follows `MOVED` and
    /// refreshes its view of the cluster when the owner is gone.
    async fn confirm(&mut self) -> redis::RedisResult<()> {
        let subscribing = if self.sharded {
            futures_util::FutureExt::boxed(self.conn.ssubscribe(&self.channel))
        } else {
            futures_util::FutureExt::boxed(self.conn.subscribe(&self.channel))
        };
        match tokio::time::timeout(CONFIRM_EVERY * 4, subscribing).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no confirmation in time",
            ))),
        }
    }

    async fn on_push(&mut self, push: PushInfo) -> Option<Notice> {
        let ours = push.data.first().is_some_and(|name| {
            redis::from_redis_value_ref::<String>(name).is_ok_and(|n| n == self.channel)
        });
        match push.kind {
            PushKind::Message | PushKind::SMessage if ours => {
                let message = Msg::from_push_info(push)?;
                message.get_payload::<String>().ok().map(Notice::Message)
            }
            PushKind::Subscribe | PushKind::SSubscribe if ours && self.lost => {
                self.lost = false;
                RESUBSCRIPTIONS.inc();
                tracing::info!(channel = %self.channel, "pub/sub subscription taken up again");
                Some(Notice::Resubscribed)
            }
            PushKind::Unsubscribe | PushKind::SUnsubscribe if ours => {
                // The server dropped us (its slot moved, or it became a replica): subscribe
                // again where the slot lives now.
                self.lost = true;
                if let Err(e) = self.confirm().await {
                    tracing::debug!(error = %e, channel = %self.channel, "pub/sub resubscription failed; retrying");
                }
                None
            }
            PushKind::Disconnection => {
                self.lost = true;
                None
            }
            _ => None,
        }
    }
}
