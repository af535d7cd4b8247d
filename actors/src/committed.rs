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
