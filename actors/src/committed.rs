//! What the DbWriter announces after each COMMIT, in commit order: the log records it wrote
//! (durable events to deliver, and the routing records that decide who receives them).

use std::sync::Arc;
use std::time::Instant;

use actix::Message;

use crate::event_log::CommittedEvent;
use crate::ids::EventId;

pub use crate::log_record::{AccountChange, FilterChange, FollowChange};

/// What one id of the log holds, as far as this node can tell.
#[derive(Debug, Clone)]
pub enum LogEntry {
    /// A durable event for clients.
    Event(Arc<CommittedEvent>),
    /// A routing record: from this id on, the follower does (not) receive the followee's events.
    Follow(FollowChange),
    /// A routing record: from this id on, the user is (no longer) suspended.
    Account(AccountChange),
    /// A routing record: from this id on, a user does (not) receive what another user causes
    /// (a block, a mute, or their end).
    Filter(FilterChange),
    /// Nothing this node can use: a kind or version it does not know, or a row no longer there
    /// (purged). Its id is passed over, never waited for.
    Skip,
}

/// One id of the log and what it holds.
#[derive(Debug, Clone)]
pub struct Logged {
    pub id: EventId,
    pub entry: LogEntry,
}

impl Logged {
    /// A rough size in bytes, for bounding what the broker holds.
    pub fn weight(&self) -> usize {
        const BASE: usize = 64;
        match &self.entry {
            LogEntry::Event(e) => BASE + e.weight(),
            LogEntry::Follow(_) | LogEntry::Filter(_) | LogEntry::Account(_) | LogEntry::Skip => {
                BASE
            }
        }
    }
}

/// DbWriter → FeedBroker: one committed transaction's records, in id order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Committed {
    pub entries: Vec<Logged>,
    /// When COMMIT returned; delivery latency is measured from here.
    pub committed_at: Instant,
}

/// Relay → FeedBroker: what another node committed, as it came through Redis. Its records go
/// through the same ordering as this node's own.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteCommitted {
    /// The node that published it.
    pub node: String,
    pub entries: Vec<Logged>,
    pub presence: Vec<PresenceChange>,
    pub pushes: Vec<EphemeralPush>,
}

/// An ephemeral frame (no id, not stored) for some users' sessions and a thread's
/// subscribers, on every node: how `ai.delta`, `ai.done` and `ai.error` travel.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct EphemeralPush {
    pub users: Vec<crate::ids::UserId>,
    /// Sessions subscribed to this thread root hear it too.
    pub thread: Option<crate::ids::PostId>,
    pub frame: bytestring::ByteString,
}

/// A user came online on, or left, one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    pub user: crate::ids::UserId,
    pub handle: String,
    pub online: bool,
}

/// Where the broker hands this node's commits so that other nodes hear of them.
pub trait CommitPublisher: Send + Sync + 'static {
    fn publish(&self, entries: &[Logged]);
    /// A user's presence on this node changed.
    fn publish_presence(&self, change: &PresenceChange);
    /// An ephemeral frame for sessions on other nodes.
    fn publish_push(&self, push: &EphemeralPush);
    /// This node is alive, with `online` users.
    fn publish_heartbeat(&self, online: usize);
    /// Asks `node` for its whole list of online users.
    fn ask_presence_list(&self, node: &str);
    /// This node's whole list of online users, asked for by another node.
    fn publish_presence_list(&self, users: &[(crate::ids::UserId, String)]);
}

/// A single node: nobody to tell.
pub struct NoPublisher;

impl CommitPublisher for NoPublisher {
    fn publish(&self, _: &[Logged]) {}
    fn publish_presence(&self, _: &PresenceChange) {}
    fn publish_push(&self, _: &EphemeralPush) {}
    fn publish_heartbeat(&self, _: usize) {}
    fn ask_presence_list(&self, _: &str) {}
    fn publish_presence_list(&self, _: &[(crate::ids::UserId, String)]) {}
}

/// Log records for tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::sync::Arc;

    use super::{LogEntry, Logged};
    use crate::audience::Audience;
    use crate::event_log::CommittedEvent;
    use crate::ids::{EventId, UserId};
    use crate::protocol::EventKind;

    /// `post.created` number `id` by `author`, addressed to the author's followers.
    pub fn post(id: i64, author: i64) -> Logged {
        Logged {
            id: EventId(id),
            entry: LogEntry::Event(Arc::new(CommittedEvent {
                id: EventId(id),
                kind: EventKind::PostCreated,
                audience: Audience::FollowersOf(UserId(author)),
                payload: serde_json::Value::Null,
            })),
        }
    }
}
