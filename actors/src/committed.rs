//! What the DbWriter announces after each COMMIT, in commit order: durable events to deliver
//! and the follow-graph changes the FeedBroker needs to route them.

use std::sync::Arc;
use std::time::Instant;

use actix::Message;

use crate::event_log::CommittedEvent;
use crate::ids::UserId;

/// A follow edge that was added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowChange {
    pub follower: UserId,
    pub followee: UserId,
    pub following: bool,
}

/// One committed change, in the order its command ran.
#[derive(Debug, Clone)]
pub enum CommittedChange {
    Event(Arc<CommittedEvent>),
    Follow(FollowChange),
}

/// DbWriter → FeedBroker: one committed transaction's changes.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Committed {
    pub changes: Vec<CommittedChange>,
    /// When COMMIT returned; delivery latency is measured from here.
    pub committed_at: Instant,
}

/// Relay → FeedBroker: what another node committed, as it came through Redis. Events are
/// delivered in id order together with this node's own; follow changes apply on arrival.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteCommitted {
    /// The node that published it.
    pub node: String,
    pub events: Vec<Arc<CommittedEvent>>,
    pub follows: Vec<FollowChange>,
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
    fn publish(&self, events: &[Arc<CommittedEvent>], follows: &[FollowChange]);
    /// A user's presence on this node changed.
    fn publish_presence(&self, change: &PresenceChange);
    /// An ephemeral frame for sessions on other nodes.
    fn publish_push(&self, push: &EphemeralPush);
}

/// A single node: nobody to tell.
pub struct NoPublisher;

impl CommitPublisher for NoPublisher {
    fn publish(&self, _: &[Arc<CommittedEvent>], _: &[FollowChange]) {}
    fn publish_presence(&self, _: &PresenceChange) {}
    fn publish_push(&self, _: &EphemeralPush) {}
}
