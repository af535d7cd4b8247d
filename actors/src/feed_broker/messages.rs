//! The FeedBroker's messages: one struct per intent, from sessions, the relay, revocation and
//! shutdown.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytestring::ByteString;

use crate::backlog::Backlog;
use crate::ids::{EventId, PostId, SessionId, UserId};
use crate::meter::MeteredRecipient;

/// FeedBroker → Session: a frame to write to the socket.
#[derive(Debug, Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver {
    /// Set for durable events; sessions use it to drop duplicates and keep ids increasing.
    pub event: Option<EventId>,
    pub frame: ByteString,
    pub committed_at: Option<Instant>,
}

/// FeedBroker → Session: close the socket with this code (1001 on shutdown, 1013 when the
/// broker cannot serve the session right now).
#[derive(Debug, Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct CloseSession {
    pub code: u16,
    pub reason: &'static str,
}

/// Session → FeedBroker: a session is online. Answered once it is registered and the broker
/// knows the log's head, so that every event committed after the answer reaches it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Connect {
    pub session: SessionId,
    pub user: UserId,
    pub handle: String,
    /// The sign-in session (refresh-token family) the socket was opened under.
    pub family: Option<i64>,
    pub deliver: MeteredRecipient<Deliver>,
    pub close: MeteredRecipient<CloseSession>,
    /// The session's outbound backlog; past the broker's limit nothing more is sent.
    pub backlog: Arc<Backlog>,
}

/// Revocation → FeedBroker: a sign-in session was revoked; close its websockets with 1008.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CloseFamily {
    pub user: UserId,
    pub family: i64,
}

/// Session → FeedBroker: the session ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub session: SessionId,
    pub user: UserId,
}

/// Session → FeedBroker: deliver `thread.reply` for replies in the thread rooted at `root`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SubscribeThread {
    pub session: SessionId,
    pub root: PostId,
}

/// Session → FeedBroker: stop delivering `thread.reply` for `root`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct UnsubscribeThread {
    pub session: SessionId,
    pub root: PostId,
}

/// Shutdown → FeedBroker: close every session with `code`; answers how many were closed.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CloseAll {
    pub code: u16,
    pub reason: &'static str,
}

/// Relay → FeedBroker: messages between nodes may have been lost (the subscription was down);
/// compare with the event log's head now rather than at the next poll.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CheckLogHead;

/// Anyone → FeedBroker: how many sessions and users are online.
#[derive(Debug, Message)]
#[rtype(result = "OnlineStats")]
pub struct GetOnline;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, MessageResponse)]
pub struct OnlineStats {
    pub sessions: usize,
    pub users: usize,
}

/// Relay → FeedBroker: another node's heartbeat, with how many users it has online.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct NodeHeartbeat {
    pub node: String,
    pub online: usize,
}

/// Relay → FeedBroker: another node asks for this node's list of online users.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PresenceListWanted;

/// Relay → FeedBroker: another node's whole list of online users (it was asked for it).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct NodePresenceList {
    pub node: String,
    pub users: Vec<(UserId, String)>,
}
