//! Committed changes between nodes, through Redis pub/sub on `{prefix}events` (sharded
//! pub/sub on a Redis Cluster that offers it, see [`redis_store::pubsub`]).
//!
//! Each node publishes what its DbWriter committed (after COMMIT) and hands what other nodes
//! published to its FeedBroker. Pub/sub is at-most-once: a message lost while a node was
//! disconnected leaves a gap in event ids that the broker fills from PostgreSQL, and whenever
//! the subscription starts or comes back the broker reads the log's head (a lost last message
//! leaves no gap), so Redis loss never becomes client loss. This module is the only one that
//! knows the Redis payload.

use std::sync::Arc;
use std::time::Duration;

use aisocial_actors::committed::{
    CommitPublisher, EphemeralPush, FollowChange, PresenceChange, RemoteCommitted,
};
use aisocial_actors::event_log::{Audience, CommittedEvent};
use aisocial_actors::feed_broker::{CheckLogHead, FeedBroker};
use aisocial_actors::ids::{EventId, PostId, UserId};
use aisocial_actors::meter::MeteredAddr;
use aisocial_actors::protocol::EventKind;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::redis_store::{self, ChannelListener};

#[derive(Serialize, Deserialize)]
struct WireEvent {
    id: i64,
    kind: String,
    author: Option<i64>,
    recipient: Option<i64>,
    payload: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct WireFollow {
    follower: i64,
    followee: i64,
    following: bool,
}

#[derive(Serialize, Deserialize)]
struct WirePresence {
    user: i64,
    handle: String,
    online: bool,
}

#[derive(Serialize, Deserialize)]
struct WirePush {
    users: Vec<i64>,
    thread: Option<i64>,
    frame: String,
}

#[derive(Serialize, Deserialize, Default)]
struct WireBatch {
    node: String,
    #[serde(default)]
    events: Vec<WireEvent>,
    #[serde(default)]
    follows: Vec<WireFollow>,
    #[serde(default)]
    presence: Vec<WirePresence>,
    #[serde(default)]
    pushes: Vec<WirePush>,
}

fn to_wire(node: &str, events: &[Arc<CommittedEvent>], follows: &[FollowChange]) -> WireBatch {
    WireBatch {
        node: node.to_owned(),
        events: events
            .iter()
            .map(|e| {
                let (author, recipient) = match e.audience {
                    Audience::FollowersOf(a) => (Some(a.0), None),
                    Audience::User(r) => (None, Some(r.0)),
                };
                WireEvent {
                    id: e.id.0,
                    kind: e.kind.as_str().to_owned(),
                    author,
                    recipient,
                    payload: e.payload.clone(),
                }
            })
            .collect(),
        follows: follows
            .iter()
            .map(|f| WireFollow {
                follower: f.follower.0,
                followee: f.followee.0,
                following: f.following,
            })
            .collect(),
        ..WireBatch::default()
    }
}

fn from_wire(batch: WireBatch) -> RemoteCommitted {
    RemoteCommitted {
        node: batch.node,
        pushes: batch
            .pushes
            .into_iter()
            .map(|p| EphemeralPush {
                users: p.users.into_iter().map(UserId).collect(),
                thread: p.thread.map(PostId),
                frame: p.frame.into(),
            })
            .collect(),
        presence: batch
            .presence
            .into_iter()
            .map(|p| PresenceChange {
                user: UserId(p.user),
                handle: p.handle,
                online: p.online,
            })
            .collect(),
        events: batch
            .events
            .into_iter()
            .filter_map(|e| {
                let audience = match (e.author, e.recipient) {
                    (Some(a), _) => Audience::FollowersOf(UserId(a)),
                    (None, Some(r)) => Audience::User(UserId(r)),
                    (None, None) => return None,
                };
                Some(Arc::new(CommittedEvent {
                    id: EventId(e.id),
                    kind: EventKind::parse(&e.kind)?,
                    audience,
                    payload: e.payload,
                }))
            })
            .collect(),
        follows: batch
            .follows
            .into_iter()
            .map(|f| FollowChange {
                follower: UserId(f.follower),
                followee: UserId(f.followee),
                following: f.following,
            })
            .collect(),
    }
}

/// Publishes this node's commits without making the broker wait: a task sends them in order.
pub struct RedisPublisher {
    node: String,
    queue: mpsc::UnboundedSender<String>,
}

impl RedisPublisher {
    pub fn start(redis: crate::redis_store::RedisConn, prefix: &str, node: String) -> Self {
        let (queue, mut batches) = mpsc::unbounded_channel::<String>();
        let channel = format!("{prefix}events");
        actix_rt::spawn(async move {
            while let Some(payload) = batches.recv().await {
                let publish = redis.publish_cmd(&channel, &payload);
                if let Err(e) =
                    redis_store::run::<i64>(&redis, publish, Duration::from_secs(1)).await
                {
                    // Other nodes notice the gap and read these events from PostgreSQL.
                    tracing::warn!(error = %e, "could not publish committed events");
                }
            }
        });
        Self { node, queue }
    }
}

impl RedisPublisher {
    fn send(&self, batch: &WireBatch) {
        if let Ok(payload) = serde_json::to_string(batch) {
            let _ = self.queue.send(payload);
        }
    }
}

impl CommitPublisher for RedisPublisher {
    fn publish_presence(&self, change: &PresenceChange) {
        self.send(&WireBatch {
            node: self.node.clone(),
            presence: vec![WirePresence {
                user: change.user.0,
                handle: change.handle.clone(),
                online: change.online,
            }],
            ..WireBatch::default()
        });
    }

    fn publish_push(&self, push: &EphemeralPush) {
        self.send(&WireBatch {
            node: self.node.clone(),
            pushes: vec![WirePush {
                users: push.users.iter().map(|u| u.0).collect(),
                thread: push.thread.map(|t| t.0),
                frame: push.frame.to_string(),
            }],
            ..WireBatch::default()
        });
    }

    fn publish(&self, events: &[Arc<CommittedEvent>], follows: &[FollowChange]) {
        if events.is_empty() && follows.is_empty() {
            return;
        }
        self.send(&to_wire(&self.node, events, follows));
    }
}

/// Hands other nodes' commits to the broker until the process ends, resubscribing after any
/// loss (what was missed meanwhile is repaired from PostgreSQL by the broker).
pub fn listen(
    subscriber: redis_store::Subscriber,
    prefix: &str,
    node: String,
    broker: MeteredAddr<FeedBroker>,
) {
    redis_store::keep_listening(
        subscriber,
        format!("{prefix}events"),
        OtherNodesCommits { node, broker },
    );
}

/// The events channel's listener: other nodes' batches go to the broker.
struct OtherNodesCommits {
    node: String,
    broker: MeteredAddr<FeedBroker>,
}

impl ChannelListener for OtherNodesCommits {
    /// Missed events leave a gap, or a head behind the log's, that the broker reads from
    /// PostgreSQL: at once, not at its next poll.
    async fn caught_up(&self) -> Result<(), String> {
        self.broker.do_send(CheckLogHead);
        Ok(())
    }

    fn message(&self, payload: &str) {
        match serde_json::from_str::<WireBatch>(payload) {
            Ok(batch) if batch.node == self.node => {} // our own, delivered already
            Ok(batch) => self.broker.do_send(from_wire(batch)),
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed event message"),
        }
    }
}
