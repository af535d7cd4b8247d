//! Committed changes between nodes, through Redis pub/sub on `{prefix}events` (sharded
//! pub/sub on a Redis Cluster that offers it, see [`redis_store::pubsub`]).
//!
//! Each node publishes what its DbWriter committed (after COMMIT: events and routing records,
//! each with its id), its presence changes and a heartbeat, and hands what other nodes
//! published to its FeedBroker. Pub/sub is at-most-once: a message lost while a node was
//! disconnected leaves a gap in event ids that the broker fills from PostgreSQL, and whenever
//! the subscription starts or comes back the broker reads the log's head (a lost last message
//! leaves no gap), so Redis loss never becomes client loss. This module is the only one that
//! knows the Redis payload.

use std::sync::LazyLock;
use std::time::Duration;

use aisocial_actors::committed::{
    CommitPublisher, EphemeralPush, LogEntry, Logged, PresenceChange, RemoteCommitted,
};
use aisocial_actors::error_chain::Chain;
use aisocial_actors::event_log::{self, Audience};
use aisocial_actors::feed_broker::{
    CheckLogHead, FeedBroker, NodeHeartbeat, NodePresenceList, PresenceListWanted, offer_or_shed,
};
use aisocial_actors::ids::{EventId, PostId, UserId};
use aisocial_actors::log_record::{self, StoredRecord};
use aisocial_actors::meter::{self, MeteredAddr};
use prometheus::{IntCounterVec, IntGaugeVec};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::redis::RelayQueues;
use crate::redis_store::{self, ChannelListener};

/// One log record as stored (`events`' columns).
#[derive(Serialize, Deserialize)]
struct WireRecord {
    id: i64,
    kind: String,
    /// Absent in messages of nodes older than versioned records: version 1.
    #[serde(default = "first_version")]
    version: i16,
    author: Option<i64>,
    recipient: Option<i64>,
    payload: serde_json::Value,
}

fn first_version() -> i16 {
    1
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

/// Everything nodes tell each other. Fields a node does not know are ignored, so older and
/// newer nodes can share the channel during a rolling upgrade.
#[derive(Serialize, Deserialize, Default)]
struct WireBatch {
    node: String,
    #[serde(default)]
    events: Vec<WireRecord>,
    #[serde(default)]
    presence: Vec<WirePresence>,
    #[serde(default)]
    pushes: Vec<WirePush>,
    /// A heartbeat: this many users are online on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    heartbeat: Option<usize>,
    /// Asks the named node for its whole presence list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    want_presence_of: Option<String>,
    /// The node's whole presence list, as asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    presence_list: Option<Vec<WirePresence>>,
}

/// A record for the wire; `None` for an id this node has nothing of (other nodes read it from
/// PostgreSQL if they need it).
fn record_to_wire(logged: &Logged) -> Option<WireRecord> {
    let (kind, author, recipient, payload) = match &logged.entry {
        LogEntry::Event(e) => {
            let (author, recipient) = match e.audience {
                Audience::FollowersOf(a) => (Some(a.0), None),
                Audience::User(r) => (None, Some(r.0)),
            };
            (e.kind.as_str(), author, recipient, e.payload.clone())
        }
        LogEntry::Follow(f) => (
            log_record::FOLLOW_KIND,
            None,
            Some(f.follower.0),
            log_record::follow(f),
        ),
        LogEntry::Account(a) => (
            log_record::ACCOUNT_KIND,
            None,
            Some(a.user.0),
            log_record::account(a),
        ),
        LogEntry::Filter(f) => (
            log_record::FILTER_KIND,
            None,
            Some(f.user.0),
            log_record::filter(f),
        ),
        LogEntry::Skip => return None,
    };
    Some(WireRecord {
        id: logged.id.0,
        kind: kind.to_owned(),
        version: log_record::VERSION,
        author,
        recipient,
        payload,
    })
}

fn presence_to_wire(change: &PresenceChange) -> WirePresence {
    WirePresence {
        user: change.user.0,
        handle: change.handle.clone(),
        online: change.online,
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
        // Every id keeps its place: a kind this node does not know is a skip, never a gap.
        entries: batch
            .events
            .into_iter()
            .map(|e| {
                event_log::logged(StoredRecord {
                    id: EventId(e.id),
                    kind: e.kind,
                    version: e.version,
                    author: e.author,
                    recipient: e.recipient,
                    payload: e.payload,
                })
            })
            .collect(),
    }
}

static QUEUED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    meter::labelled_gauge(
        "aisocial_relay_queue_depth",
        "Messages waiting to be published to Redis, by lane (records and presence; ephemeral pushes).",
        &["lane"],
    )
});
static DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_relay_dropped_total",
        "Messages not published because their lane was full (records are read from PostgreSQL \
         by the other nodes; pushes are lost), by lane.",
        &["lane"],
    )
});

/// One lane: a bounded queue and its depth gauge.
struct Lane {
    name: &'static str,
    queue: mpsc::Sender<String>,
}

impl Lane {
    fn send(&self, payload: String) {
        match self.queue.try_send(payload) {
            Ok(()) => QUEUED.with_label_values(&[self.name]).inc(),
            Err(mpsc::error::TrySendError::Full(_)) => {
                DROPPED.with_label_values(&[self.name]).inc();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Publishes this node's commits without making the broker wait: a task sends them in order,
/// records ahead of ephemeral pushes, each lane bounded.
pub struct RedisPublisher {
    node: String,
    records: Lane,
    pushes: Lane,
}

impl RedisPublisher {
    pub fn start(
        redis: crate::redis_store::RedisConn,
        prefix: &str,
        node: String,
        queues: RelayQueues,
    ) -> Self {
        let (records, mut record_rx) = mpsc::channel::<String>(queues.records.max(1));
        let (pushes, mut push_rx) = mpsc::channel::<String>(queues.pushes.max(1));
        for lane in ["records", "pushes"] {
            QUEUED.with_label_values(&[lane]).set(0);
            DROPPED.with_label_values(&[lane]);
        }
        let channel = format!("{prefix}events");
        actix_rt::spawn(async move {
            loop {
                let (lane, payload) = tokio::select! {
                    biased;
                    Some(p) = record_rx.recv() => ("records", p),
                    Some(p) = push_rx.recv() => ("pushes", p),
                    else => return,
                };
                QUEUED.with_label_values(&[lane]).dec();
                let publish = redis.publish_cmd(&channel, &payload);
                if let Err(e) =
                    redis_store::run::<i64>(&redis, publish, Duration::from_secs(1)).await
                {
                    // Other nodes notice the gap and read these records from PostgreSQL.
                    tracing::warn!(error = %Chain(&e), lane, "could not publish to the other nodes");
                }
            }
        });
        Self {
            node,
            records: Lane {
                name: "records",
                queue: records,
            },
            pushes: Lane {
                name: "pushes",
                queue: pushes,
            },
        }
    }

    fn send(&self, batch: &WireBatch) {
        if let Ok(payload) = serde_json::to_string(batch) {
            let lane = if batch.pushes.is_empty() {
                &self.records
            } else {
                &self.pushes
            };
            lane.send(payload);
        }
    }

    fn batch(&self) -> WireBatch {
        WireBatch {
            node: self.node.clone(),
            ..WireBatch::default()
        }
    }
}

impl CommitPublisher for RedisPublisher {
    fn publish_presence(&self, change: &PresenceChange) {
        self.send(&WireBatch {
            presence: vec![presence_to_wire(change)],
            ..self.batch()
        });
    }

    fn publish_push(&self, push: &EphemeralPush) {
        self.send(&WireBatch {
            pushes: vec![WirePush {
                users: push.users.iter().map(|u| u.0).collect(),
                thread: push.thread.map(|t| t.0),
                frame: push.frame.to_string(),
            }],
            ..self.batch()
        });
    }

    fn publish(&self, entries: &[Logged]) {
        let events: Vec<WireRecord> = entries.iter().filter_map(record_to_wire).collect();
        if !events.is_empty() {
            self.send(&WireBatch {
                events,
                ..self.batch()
            });
        }
    }

    fn publish_heartbeat(&self, online: usize) {
        self.send(&WireBatch {
            heartbeat: Some(online),
            ..self.batch()
        });
    }

    fn ask_presence_list(&self, node: &str) {
        self.send(&WireBatch {
            want_presence_of: Some(node.to_owned()),
            ..self.batch()
        });
    }

    fn publish_presence_list(&self, users: &[(UserId, String)]) {
        let list = users
            .iter()
            .map(|(user, handle)| WirePresence {
                user: user.0,
                handle: handle.clone(),
                online: true,
            })
            .collect();
        self.send(&WireBatch {
            presence_list: Some(list),
            ..self.batch()
        });
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
    type Error = std::convert::Infallible;

    /// Missed events leave a gap, or a head behind the log's, that the broker reads from
    /// PostgreSQL: at once, not at its next poll.
    async fn caught_up(&self) -> Result<(), Self::Error> {
        offer_or_shed(&self.broker, CheckLogHead, "CheckLogHead");
        Ok(())
    }

    fn message(&self, payload: &str) {
        let mut batch = match serde_json::from_str::<WireBatch>(payload) {
            Ok(batch) if batch.node == self.node => return, // our own, delivered already
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a malformed event message");
                return;
            }
        };
        if let Some(online) = batch.heartbeat.take() {
            let beat = NodeHeartbeat {
                node: batch.node.clone(),
                online,
            };
            offer_or_shed(&self.broker, beat, "NodeHeartbeat");
        }
        if batch.want_presence_of.take().as_deref() == Some(self.node.as_str()) {
            offer_or_shed(&self.broker, PresenceListWanted, "PresenceListWanted");
        }
        if let Some(list) = batch.presence_list.take() {
            let list = NodePresenceList {
                node: batch.node.clone(),
                users: list
                    .into_iter()
                    .map(|p| (UserId(p.user), p.handle))
                    .collect(),
            };
            offer_or_shed(&self.broker, list, "NodePresenceList");
        }
        if !(batch.events.is_empty() && batch.presence.is_empty() && batch.pushes.is_empty()) {
            // Shed when the broker is behind: its records come back from PostgreSQL.
            offer_or_shed(&self.broker, from_wire(batch), "RemoteCommitted");
        }
    }
}

#[cfg(test)]
mod tests {
    use aisocial_actors::log_record::FollowChange;

    use super::*;

    fn follow_record() -> Logged {
        Logged {
            id: EventId(41),
            entry: LogEntry::Follow(FollowChange {
                follower: UserId(7),
                followee: UserId(9),
                following: true,
            }),
        }
    }

    /// The message nodes exchange is a wire format of its own: its JSON is pinned here, so a
    /// change that would break a rolling upgrade shows in review.
    #[test]
    fn a_batch_between_nodes_has_the_pinned_shape() {
        let batch = WireBatch {
            node: "node-a".into(),
            events: record_to_wire(&follow_record()).into_iter().collect(),
            presence: vec![presence_to_wire(&PresenceChange {
                user: UserId(7),
                handle: "ann".into(),
                online: true,
            })],
            pushes: vec![WirePush {
                users: vec![9],
                thread: Some(3),
                frame: r#"{"type":"ai.delta"}"#.into(),
            }],
            heartbeat: Some(2),
            want_presence_of: None,
            presence_list: None,
        };
        let json = serde_json::to_string(&batch).expect("a batch serialises");
        assert_eq!(
            json,
            r#"{"node":"node-a","events":[{"id":41,"kind":"route.follow","version":1,"author":null,"recipient":7,"payload":{"followee":9,"follower":7,"following":true}}],"presence":[{"user":7,"handle":"ann","online":true}],"pushes":[{"users":[9],"thread":3,"frame":"{\"type\":\"ai.delta\"}"}],"heartbeat":2}"#
        );
    }

    #[test]
    fn an_older_nodes_batch_without_versions_or_lists_still_reads() {
        let old = r#"{"node":"old","events":[{"id":41,"kind":"route.follow","author":null,"recipient":7,"payload":{"followee":9,"follower":7,"following":true}}],"unknown_field":1}"#;
        let batch: WireBatch = serde_json::from_str(old).expect("an older batch parses");
        let remote = from_wire(batch);
        assert_eq!(remote.node, "old");
        assert!(matches!(
            remote.entries.as_slice(),
            [Logged { id: EventId(41), entry: LogEntry::Follow(change) }]
                if change.follower == UserId(7) && change.followee == UserId(9) && change.following
        ));
    }

    #[test]
    fn a_filter_record_crosses_nodes_as_it_is_stored() {
        use aisocial_actors::log_record::{FilterChange, FilterKind};

        let change = FilterChange {
            user: UserId(7),
            other: UserId(9),
            kind: FilterKind::Mute,
            on: false,
        };
        let logged = Logged {
            id: EventId(43),
            entry: LogEntry::Filter(change),
        };
        let wire = record_to_wire(&logged).expect("a filter record goes on the wire");
        assert_eq!(
            serde_json::to_string(&wire).expect("a record serialises"),
            r#"{"id":43,"kind":"route.filter","version":1,"author":null,"recipient":7,"payload":{"kind":"mute","on":false,"other":9,"user":7}}"#
        );
        let remote = from_wire(WireBatch {
            node: "node-b".into(),
            events: vec![wire],
            presence: Vec::new(),
            pushes: Vec::new(),
            heartbeat: None,
            want_presence_of: None,
            presence_list: None,
        });
        assert!(matches!(
            remote.entries.as_slice(),
            [Logged { id: EventId(43), entry: LogEntry::Filter(f) }] if *f == change
        ));
    }

    #[test]
    fn a_record_of_an_unknown_kind_keeps_its_place_as_a_skip() {
        let newer = r#"{"node":"new","events":[{"id":42,"kind":"route.block","version":9,"author":null,"recipient":7,"payload":{}}]}"#;
        let batch: WireBatch = serde_json::from_str(newer).expect("a newer batch parses");
        let remote = from_wire(batch);
        assert!(matches!(
            remote.entries.as_slice(),
            [Logged {
                id: EventId(42),
                entry: LogEntry::Skip
            }]
        ));
    }
}
