//! The FeedBroker: knows which sessions are online and whose posts each should see, and fans
//! committed events out to them.
//!
//! Routing state is per online user: the authors they follow (loaded from PostgreSQL when their
//! first session connects, then kept current from the committed follow changes) and, inverted,
//! for each author the online followers. A committed event is serialised once and the same
//! frame (a reference-counted string) is handed to every recipient session, in commit order.
//!
//! While a user's follow list is loading, the changes committed meanwhile are held and replayed
//! to that user once the list is in, so nothing committed after a session connected is missed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use prometheus::{IntCounter, IntGauge};

use crate::backlog::{Admit, Backlog};
use crate::committed::{
    CommitPublisher, Committed, CommittedChange, EphemeralPush, FollowChange, PresenceChange,
    RemoteCommitted,
};
use crate::event_log::{Audience, CommittedEvent, EventSource};
use crate::follow_graph::FollowGraph;
use crate::ids::{EventId, PostId, SessionId, UserId};
use crate::meter::{self, ActorMeter, MeteredRecipient};
use crate::metered_handler;
use crate::protocol::{self, EventKind};

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

/// Session → FeedBroker: a session is online. Answered once it is registered, so that every
/// event committed after the answer reaches it.
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

static DELIVERIES: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_broker_deliveries_total",
        "Frames the FeedBroker handed to sessions.",
    )
});
static ONLINE_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_broker_online_sessions",
        "Sessions registered with the FeedBroker.",
    )
});
static FOLLOW_LOAD_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_broker_follow_load_failures_total",
        "Follow lists that could not be loaded (their sessions were closed with 1013).",
    )
});

/// How long a gap in event ids may stay open before it is read from PostgreSQL.
const GAP_WAIT: Duration = Duration::from_millis(100);
/// Events held ahead of a gap at most; past it they are dropped here and repaired later.
const MAX_WAITING: usize = 100_000;

static GAP_REPAIRS: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_broker_gap_repairs_total",
        "Events the broker read from PostgreSQL because they did not arrive from any node.",
    )
});
static WAITING_OVERFLOWS: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_broker_waiting_overflows_total",
        "Events dropped from the reorder buffer (repaired from PostgreSQL later).",
    )
});

struct SessionLink {
    id: SessionId,
    family: Option<i64>,
    backlog: Arc<Backlog>,
    deliver: MeteredRecipient<Deliver>,
    close: MeteredRecipient<CloseSession>,
}

struct OnlineUser {
    sessions: Vec<SessionLink>,
    followees: HashSet<UserId>,
    /// While the follow list loads: the position in `held` from which this user must replay.
    loading_from: Option<u64>,
}

/// How the broker behaves.
#[derive(Debug, Clone, Copy)]
pub struct BrokerConfig {
    /// How long a follow list may take to load.
    pub load_timeout: Duration,
    /// Frames a session may have waiting before it counts as a slow consumer.
    pub outbound_limit: usize,
    /// How long a user must be gone before followers hear `offline`.
    pub presence_debounce: Duration,
    /// How often the log's head is compared with what was delivered (the bound on delivering
    /// an event that no Redis message brought).
    pub log_poll: Duration,
}

/// The FeedBroker actor.
pub struct FeedBroker {
    meter: ActorMeter,
    /// Whom a connecting user follows.
    graph: Arc<dyn FollowGraph>,
    /// The event log, to start from its head and to fill gaps.
    events: Arc<dyn EventSource>,
    /// Tells the other nodes what this node committed.
    publisher: Arc<dyn CommitPublisher>,
    /// The next event id to deliver; `None` until the head was read at start-up.
    next_event: Option<EventId>,
    /// Events that arrived ahead of a lower id not yet seen.
    waiting: BTreeMap<EventId, (Arc<CommittedEvent>, Option<Instant>)>,
    repairing: bool,
    /// Frames a session may have waiting before it counts as a slow consumer.
    outbound_limit: usize,
    /// Users online on this node (announced), with their handles.
    presence_here: HashMap<UserId, String>,
    /// Users online on other nodes, by node.
    presence_elsewhere: HashMap<UserId, HashSet<String>>,
    /// Users whose last session here ended, waiting out the debounce (the timer is cancelled
    /// when they come back, so timers never pile up in the actor's context under churn).
    going_offline: HashMap<UserId, SpawnHandle>,
    presence_debounce: Duration,
    /// How often the head of the log is compared with what was delivered.
    log_poll: Duration,
    load_timeout: Duration,
    users: HashMap<UserId, OnlineUser>,
    /// Author → online followers whose follow lists are loaded.
    audience: HashMap<UserId, HashSet<UserId>>,
    session_user: HashMap<SessionId, UserId>,
    threads: HashMap<PostId, HashSet<SessionId>>,
    /// Changes committed while some user's follow list was loading; `held[0]` is number
    /// `held_start` in the broker's life.
    held: Vec<CommittedChange>,
    held_start: u64,
    loading: usize,
}

impl FeedBroker {
    pub const KIND: &'static str = "feed_broker";

    pub fn new(
        graph: Arc<dyn FollowGraph>,
        events: Arc<dyn EventSource>,
        publisher: Arc<dyn CommitPublisher>,
        config: BrokerConfig,
    ) -> Self {
        Self {
            meter: ActorMeter::new(Self::KIND),
            graph,
            events,
            publisher,
            next_event: None,
            waiting: BTreeMap::new(),
            repairing: false,
            outbound_limit: config.outbound_limit.max(2),
            presence_here: HashMap::new(),
            presence_elsewhere: HashMap::new(),
            going_offline: HashMap::new(),
            presence_debounce: config.presence_debounce,
            log_poll: config.log_poll,
            load_timeout: config.load_timeout,
            users: HashMap::new(),
            audience: HashMap::new(),
            session_user: HashMap::new(),
            threads: HashMap::new(),
            held: Vec::new(),
            held_start: 0,
            loading: 0,
        }
    }

    pub fn meter() -> ActorMeter {
        ActorMeter::new(Self::KIND)
    }

    fn held_end(&self) -> u64 {
        self.held_start + self.held.len() as u64
    }

    fn load_followees(&mut self, user: UserId, ctx: &mut Context<Self>) {
        let read = self.graph.followees(user);
        let timeout = self.load_timeout;
        let load = async move {
            match tokio::time::timeout(timeout, read).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {timeout:?}")),
            }
        };
        ctx.spawn(load.into_actor(self).map(move |result, broker, _| {
            broker.followees_loaded(user, result);
        }));
    }

    fn followees_loaded(&mut self, user: UserId, result: Result<Vec<UserId>, String>) {
        let Some(online) = self.users.get_mut(&user) else {
            return; // every session left while loading
        };
        let Some(from) = online.loading_from.take() else {
            return;
        };
        self.loading = self.loading.saturating_sub(1);
        match result {
            Err(e) => {
                FOLLOW_LOAD_FAILURES.inc();
                tracing::warn!(%user, error = %e, "cannot load a follow list; closing the user's sessions");
                for link in &online.sessions {
                    link.close.do_send(CloseSession {
                        code: 1013,
                        reason: "try again later",
                    });
                }
            }
            Ok(followees) => {
                online.followees = followees.into_iter().collect();
                for author in &online.followees {
                    self.audience.entry(*author).or_default().insert(user);
                }
                let skip =
                    usize::try_from(from.saturating_sub(self.held_start)).unwrap_or(usize::MAX);
                let held: Vec<CommittedChange> = self.held.iter().skip(skip).cloned().collect();
                for change in held {
                    match change {
                        CommittedChange::Follow(f) if f.follower == user => self.apply_follow(f),
                        CommittedChange::Follow(_) => {}
                        CommittedChange::Event(e) => {
                            if self.addressed_to(&e, user) {
                                let frame = durable(&e);
                                self.deliver_to_user(user, &e, &frame, None);
                            }
                        }
                    }
                }
            }
        }
        self.trim_held();
    }

    /// Online anywhere: here, or on a node that said so.
    fn globally_online(&self, user: UserId) -> bool {
        self.presence_here.contains_key(&user)
            || self
                .presence_elsewhere
                .get(&user)
                .is_some_and(|nodes| !nodes.is_empty())
    }

    /// The first session of `user` on this node.
    fn came_online(&mut self, user: UserId, handle: String, ctx: &mut Context<Self>) {
        if let Some(timer) = self.going_offline.remove(&user) {
            ctx.cancel_future(timer);
            return; // back within the debounce: nobody was told it left
        }
        let was_online = self.globally_online(user);
        let change = PresenceChange {
            user,
            handle: handle.clone(),
            online: true,
        };
        self.presence_here.insert(user, handle);
        self.publisher.publish_presence(&change);
        if !was_online {
            self.announce_presence(&change);
        }
    }

    /// The last session of `user` on this node ended: after the debounce, unless it came back.
    fn left(&mut self, user: UserId, ctx: &mut Context<Self>) {
        let timer = ctx.run_later(self.presence_debounce, move |broker, _| {
            if broker.going_offline.remove(&user).is_none() {
                return;
            }
            let Some(handle) = broker.presence_here.remove(&user) else {
                return;
            };
            let change = PresenceChange {
                user,
                handle,
                online: false,
            };
            broker.publisher.publish_presence(&change);
            if !broker.globally_online(user) {
                broker.announce_presence(&change);
            }
        });
        if let Some(previous) = self.going_offline.insert(user, timer) {
            ctx.cancel_future(previous);
        }
    }

    fn remote_presence(&mut self, node: &str, change: PresenceChange) {
        let before = self.globally_online(change.user);
        let nodes = self.presence_elsewhere.entry(change.user).or_default();
        if change.online {
            nodes.insert(node.to_owned());
        } else {
            nodes.remove(node);
            if nodes.is_empty() {
                self.presence_elsewhere.remove(&change.user);
            }
        }
        if before != self.globally_online(change.user) {
            self.announce_presence(&change);
        }
    }

    /// Tells the user's online followers on this node.
    fn announce_presence(&self, change: &PresenceChange) {
        let Some(followers) = self.audience.get(&change.user) else {
            return;
        };
        let frame = protocol::presence_frame(change.user, &change.handle, change.online);
        for follower in followers {
            let Some(online) = self.users.get(follower) else {
                continue;
            };
            for link in &online.sessions {
                if link.backlog.admit_ephemeral(self.outbound_limit) == Admit::Send {
                    link.deliver.do_send(Deliver {
                        event: None,
                        frame: frame.clone(),
                        committed_at: None,
                    });
                }
            }
        }
    }

    fn follow_changed(&mut self, f: FollowChange) {
        self.apply_follow(f);
        if self.loading > 0 {
            self.held.push(CommittedChange::Follow(f));
        }
    }

    /// An event committed here or elsewhere; it waits until every lower id was delivered.
    fn arrived(&mut self, event: Arc<CommittedEvent>, committed_at: Option<Instant>) {
        if self.next_event.is_some_and(|next| event.id < next) {
            return; // delivered already (our own commit coming back, or a repair overlap)
        }
        if self.waiting.len() >= MAX_WAITING {
            WAITING_OVERFLOWS.inc();
            return; // repaired from PostgreSQL once the gap is filled
        }
        self.waiting
            .entry(event.id)
            .or_insert((event, committed_at));
    }

    /// Delivers every event whose predecessors are all delivered; asks for a repair when a
    /// gap stays open.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        let Some(mut next) = self.next_event else {
            return;
        };
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() > next {
                break;
            }
            let (id, (event, committed_at)) = entry.remove_entry();
            if id < next {
                continue;
            }
            self.route_event(&event, committed_at);
            if self.loading > 0 {
                self.held.push(CommittedChange::Event(event));
            }
            next = EventId(id.0 + 1);
        }
        self.next_event = Some(next);
        if let Some(first) = self.waiting.keys().next().copied() {
            self.repair_later(next, first, ctx);
        }
    }

    /// If ids `from..to` are still missing after [`GAP_WAIT`], reads them from PostgreSQL.
    fn repair_later(&mut self, from: EventId, to: EventId, ctx: &mut Context<Self>) {
        if self.repairing {
            return;
        }
        self.repairing = true;
        ctx.run_later(GAP_WAIT, move |broker, ctx| {
            if broker.next_event.is_some_and(|next| next > from) && broker.waiting.is_empty() {
                broker.repairing = false;
                return; // filled meanwhile
            }
            let from = broker.next_event.unwrap_or(from);
            let to = broker
                .waiting
                .keys()
                .next()
                .copied()
                .unwrap_or(to)
                .max(from);
            broker.repair(from, to, ctx);
        });
    }

    /// Reads ids `from..to` (or everything after `from` up to the head when `to <= from`).
    fn repair(&mut self, from: EventId, to: EventId, ctx: &mut Context<Self>) {
        self.repairing = true;
        let source = self.events.clone();
        let read = async move {
            let to = if to > from {
                to
            } else {
                EventId(source.head().await?.0 + 1)
            };
            if to <= from {
                return Ok(Vec::new());
            }
            source.range(from, to).await
        };
        ctx.spawn(read.into_actor(self).map(|result, broker, ctx| {
            broker.repairing = false;
            match result {
                Ok(events) => {
                    if !events.is_empty() {
                        GAP_REPAIRS.inc_by(events.len() as u64);
                    }
                    for e in events {
                        broker.arrived(Arc::new(e), None);
                    }
                    broker.drain(ctx);
                }
                Err(e) => tracing::warn!(error = %e, "could not repair a gap in the event stream"),
            }
        }));
    }

    fn trim_held(&mut self) {
        if self.loading == 0 {
            self.held_start = self.held_end();
            self.held.clear();
        }
    }

    fn apply_follow(&mut self, f: FollowChange) {
        let Some(online) = self.users.get_mut(&f.follower) else {
            return;
        };
        if online.loading_from.is_some() {
            return; // replayed from `held` once the list is in
        }
        if f.following {
            online.followees.insert(f.followee);
            self.audience
                .entry(f.followee)
                .or_default()
                .insert(f.follower);
        } else {
            online.followees.remove(&f.followee);
            if let Some(followers) = self.audience.get_mut(&f.followee) {
                followers.remove(&f.follower);
                if followers.is_empty() {
                    self.audience.remove(&f.followee);
                }
            }
        }
    }

    fn addressed_to(&self, event: &CommittedEvent, user: UserId) -> bool {
        match event.audience {
            Audience::User(u) => u == user,
            Audience::FollowersOf(author) => {
                author == user
                    || self
                        .users
                        .get(&user)
                        .is_some_and(|u| u.followees.contains(&author))
            }
        }
    }

    fn deliver_to_user(
        &self,
        user: UserId,
        event: &CommittedEvent,
        frame: &ByteString,
        committed_at: Option<Instant>,
    ) {
        let Some(online) = self.users.get(&user) else {
            return;
        };
        if online.loading_from.is_some() {
            return;
        }
        for link in &online.sessions {
            if link.backlog.admit_durable(self.outbound_limit) == Admit::Drop {
                continue;
            }
            link.deliver.do_send(Deliver {
                event: Some(event.id),
                frame: frame.clone(),
                committed_at,
            });
            DELIVERIES.inc();
        }
    }

    /// Starts delivering after the newest committed event, retrying until the log answers.
    fn start_at_head(&mut self, ctx: &mut Context<Self>) {
        let source = self.events.clone();
        ctx.spawn(async move { source.head().await }.into_actor(self).map(
            |result, broker, ctx| match result {
                Ok(head) => {
                    broker.next_event = Some(EventId(head.0 + 1));
                    broker.drain(ctx);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the event log head; retrying");
                    ctx.run_later(Duration::from_millis(500), |broker, ctx| {
                        broker.start_at_head(ctx)
                    });
                }
            },
        ));
    }

    fn route_event(&self, event: &CommittedEvent, committed_at: Option<Instant>) {
        let mut cached = None;
        let mut frame = || cached.get_or_insert_with(|| durable(event)).clone();
        match event.audience {
            Audience::User(user) => {
                if self.users.contains_key(&user) {
                    self.deliver_to_user(user, event, &frame(), committed_at);
                }
            }
            Audience::FollowersOf(author) => {
                let followers = self.audience.get(&author);
                if self.users.contains_key(&author) || followers.is_some() {
                    let frame = frame();
                    self.deliver_to_user(author, event, &frame, committed_at);
                    for follower in followers.into_iter().flatten() {
                        self.deliver_to_user(*follower, event, &frame, committed_at);
                    }
                }
            }
        }
        if event.kind == EventKind::PostCreated {
            self.route_thread_reply(event, committed_at);
        }
    }

    fn route_thread_reply(&self, event: &CommittedEvent, committed_at: Option<Instant>) {
        let Some(root) = event.payload.get("root_id").and_then(|v| v.as_i64()) else {
            return;
        };
        let Some(subscribers) = self.threads.get(&PostId(root)) else {
            return;
        };
        let frame = protocol::thread_reply_frame(&event.payload);
        for session in subscribers {
            if let Some(link) = self.link(*session)
                && link.backlog.admit_ephemeral(self.outbound_limit) == Admit::Send
            {
                link.deliver.do_send(Deliver {
                    event: None,
                    frame: frame.clone(),
                    committed_at,
                });
                DELIVERIES.inc();
            }
        }
    }

    /// Hands an ephemeral frame to the named users' sessions and the thread's subscribers on
    /// this node, each session once.
    fn push_here(&self, push: &EphemeralPush) {
        let mut reached: HashSet<SessionId> = HashSet::new();
        let users = push.users.iter().filter_map(|u| self.users.get(u));
        let by_user = users.flat_map(|online| online.sessions.iter());
        let by_thread = push
            .thread
            .and_then(|root| self.threads.get(&root))
            .into_iter()
            .flatten()
            .filter_map(|session| self.link(*session));
        for link in by_user.chain(by_thread) {
            if reached.insert(link.id)
                && link.backlog.admit_ephemeral(self.outbound_limit) == Admit::Send
            {
                link.deliver.do_send(Deliver {
                    event: None,
                    frame: push.frame.clone(),
                    committed_at: None,
                });
            }
        }
    }

    fn link(&self, session: SessionId) -> Option<&SessionLink> {
        let user = self.session_user.get(&session)?;
        self.users
            .get(user)?
            .sessions
            .iter()
            .find(|l| l.id == session)
    }

    fn remove_thread_subscriptions(&mut self, session: SessionId) {
        self.threads.retain(|_, sessions| {
            sessions.remove(&session);
            !sessions.is_empty()
        });
    }
}

fn durable(event: &CommittedEvent) -> ByteString {
    protocol::durable_frame(event.kind, event.id, &event.payload)
}

impl Actor for FeedBroker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.start_at_head(ctx);
        // A message lost between nodes leaves a gap only once a later one arrives; a lost last
        // message leaves none. Compare with the head now and then to catch both.
        let log_poll = self.log_poll;
        ctx.run_interval(log_poll, |broker, ctx| broker.check_log_head(ctx));
    }
}

impl FeedBroker {
    /// Reads whatever the event log holds past what was delivered (unless a repair runs).
    fn check_log_head(&mut self, ctx: &mut Context<Self>) {
        if self.next_event.is_some() && !self.repairing {
            let from = self.next_event.unwrap_or(EventId(1));
            self.repair(from, from, ctx);
        }
    }
}

impl Handler<CheckLogHead> for FeedBroker {
    type Result = ();

    fn handle(&mut self, _: CheckLogHead, ctx: &mut Self::Context) {
        self.check_log_head(ctx);
    }
}
metered_handler!(FeedBroker, CheckLogHead);

impl Handler<Connect> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: Connect, ctx: &mut Self::Context) {
        ONLINE_SESSIONS.inc();
        self.session_user.insert(msg.session, msg.user);
        let link = SessionLink {
            id: msg.session,
            family: msg.family,
            backlog: msg.backlog,
            deliver: msg.deliver,
            close: msg.close,
        };
        if let Some(online) = self.users.get_mut(&msg.user) {
            online.sessions.push(link);
            return;
        }
        self.came_online(msg.user, msg.handle, ctx);
        let from = self.held_end();
        self.users.insert(
            msg.user,
            OnlineUser {
                sessions: vec![link],
                followees: HashSet::new(),
                loading_from: Some(from),
            },
        );
        self.loading += 1;
        self.load_followees(msg.user, ctx);
    }
}
metered_handler!(FeedBroker, Connect);

impl Handler<Disconnect> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Self::Context) {
        if self.session_user.remove(&msg.session).is_none() {
            return;
        }
        ONLINE_SESSIONS.dec();
        self.remove_thread_subscriptions(msg.session);
        let Some(online) = self.users.get_mut(&msg.user) else {
            return;
        };
        online.sessions.retain(|l| l.id != msg.session);
        if !online.sessions.is_empty() {
            return;
        }
        if let Some(online) = self.users.remove(&msg.user) {
            self.left(msg.user, ctx);
            if online.loading_from.is_some() {
                self.loading = self.loading.saturating_sub(1);
                self.trim_held();
            }
            for author in online.followees {
                if let Some(followers) = self.audience.get_mut(&author) {
                    followers.remove(&msg.user);
                    if followers.is_empty() {
                        self.audience.remove(&author);
                    }
                }
            }
        }
    }
}
metered_handler!(FeedBroker, Disconnect);

impl Handler<Committed> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: Committed, ctx: &mut Self::Context) {
        let mut events = Vec::new();
        let mut follows = Vec::new();
        for change in msg.changes {
            match change {
                CommittedChange::Follow(f) => follows.push(f),
                CommittedChange::Event(e) => events.push(e),
            }
        }
        self.publisher.publish(&events, &follows);
        for f in follows {
            self.follow_changed(f);
        }
        for e in events {
            self.arrived(e, Some(msg.committed_at));
        }
        self.drain(ctx);
    }
}
metered_handler!(FeedBroker, Committed);

impl Handler<RemoteCommitted> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: RemoteCommitted, ctx: &mut Self::Context) {
        for push in msg.pushes {
            self.push_here(&push);
        }
        for change in msg.presence {
            self.remote_presence(&msg.node, change);
        }
        for f in msg.follows {
            self.follow_changed(f);
        }
        for e in msg.events {
            self.arrived(e, None);
        }
        self.drain(ctx);
    }
}
metered_handler!(FeedBroker, RemoteCommitted);

impl Handler<EphemeralPush> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: EphemeralPush, _: &mut Self::Context) {
        self.push_here(&msg);
        self.publisher.publish_push(&msg);
    }
}
metered_handler!(FeedBroker, EphemeralPush);

impl Handler<SubscribeThread> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: SubscribeThread, _: &mut Self::Context) {
        if self.session_user.contains_key(&msg.session) {
            self.threads
                .entry(msg.root)
                .or_default()
                .insert(msg.session);
        }
    }
}
metered_handler!(FeedBroker, SubscribeThread);

impl Handler<UnsubscribeThread> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: UnsubscribeThread, _: &mut Self::Context) {
        if let Some(sessions) = self.threads.get_mut(&msg.root) {
            sessions.remove(&msg.session);
            if sessions.is_empty() {
                self.threads.remove(&msg.root);
            }
        }
    }
}
metered_handler!(FeedBroker, UnsubscribeThread);

impl Handler<CloseFamily> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: CloseFamily, _: &mut Self::Context) {
        let Some(online) = self.users.get(&msg.user) else {
            return;
        };
        for link in online
            .sessions
            .iter()
            .filter(|l| l.family == Some(msg.family))
        {
            link.close.do_send(CloseSession {
                code: 1008,
                reason: "this sign-in session was revoked",
            });
        }
    }
}
metered_handler!(FeedBroker, CloseFamily);

impl Handler<CloseAll> for FeedBroker {
    type Result = usize;

    fn handle(&mut self, msg: CloseAll, _: &mut Self::Context) -> usize {
        let mut closed = 0;
        for online in self.users.values() {
            for link in &online.sessions {
                link.close.do_send(CloseSession {
                    code: msg.code,
                    reason: msg.reason,
                });
                closed += 1;
            }
        }
        closed
    }
}
metered_handler!(FeedBroker, CloseAll);

impl Handler<GetOnline> for FeedBroker {
    type Result = OnlineStats;

    fn handle(&mut self, _: GetOnline, _: &mut Self::Context) -> OnlineStats {
        OnlineStats {
            sessions: self.session_user.len(),
            users: self.users.len(),
        }
    }
}
metered_handler!(FeedBroker, GetOnline);
