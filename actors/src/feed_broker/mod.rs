//! The FeedBroker: knows which sessions are online and whose events each should see, and fans
//! the committed log out to them, in id order, each event serialised once.
//!
//! The jobs are plain types that return decisions, and this actor carries them out:
//! - [`sequencer`]: records from this node's DbWriter, other nodes (Redis) and PostgreSQL
//!   repairs leave in id order, each once; a missing id is read from PostgreSQL.
//! - [`routing`]: whom each online user follows at the broker's position; routing records
//!   change it only as they are released, interleaved with the events they affect.
//! - [`catchup`]: users whose follow lists are loading (one read for all arriving together)
//!   are caught up from what was released meanwhile.
//! - [`presence`]: who is online here and elsewhere, with node heartbeats.
//!
//! Who receives an event is decided by [`crate::audience`], the same decision a resume replay
//! makes, so live delivery and replay cannot disagree.

pub mod catchup;
#[cfg(test)]
mod mailbox_tests;
mod messages;
#[cfg(test)]
mod model_tests;
pub mod presence;
#[cfg(test)]
mod revocation_tests;
pub mod routing;
pub mod sequencer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::oneshot;

pub use messages::*;

use crate::backlog::{Admit, Backlog};
use crate::committed::{
    CommitPublisher, Committed, EphemeralPush, LogEntry, Logged, PresenceChange, RemoteCommitted,
};
use crate::db_error::ReadError;
use crate::error_chain::Chain;
use crate::event_log::{CommittedEvent, EventSource};
use crate::follow_graph::FollowGraph;
use crate::ids::{EventId, PostId, SessionId, UserId};
use crate::meter::{self, ActorMeter, MeteredAddr, MeteredRecipient};
use crate::metered_handler;
use crate::protocol::{self, EventKind};
use crate::revoked::{RevokedFamilies, SuspendedUsers};
use catchup::Catchup;
use presence::Presence;
use routing::Routing;
use sequencer::{Released, Sequencer, SequencerLimits};

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
        "Reads of follow lists that failed (retried; the users wait, nothing is lost).",
    )
});
static GAP_REPAIRS: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_broker_gap_repairs_total",
        "Log records the broker read from PostgreSQL because they did not arrive from any node.",
    )
});
static WAITING_OVERFLOWS: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_broker_waiting_overflows_total",
        "Records dropped from the reorder buffer (read from PostgreSQL when their turn comes).",
    )
});
static WAITING_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_broker_waiting_bytes",
        "Bytes of records waiting in the broker for a lower id.",
    )
});
static HELD_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_broker_catchup_held_bytes",
        "Bytes of released records held for users whose follow lists are loading.",
    )
});
static LOADING_USERS: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_broker_loading_users",
        "Users online here whose follow lists are loading.",
    )
});
static CATCHUP_GIVEN_UP: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_broker_catchup_given_up_total",
        "Users whose catch-up passed the held-bytes bound (their sessions closed with 1013 to resume).",
    )
});
static NODES_EXPIRED: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_broker_presence_expired_total",
        "Users counted offline because the node they were on stopped sending heartbeats.",
    )
});

static SHED: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_broker_shed_total",
        "Messages not queued because the FeedBroker's mailbox was full, by kind (records among \
         them are read from PostgreSQL later; ephemeral frames are lost).",
        &["message"],
    )
});

/// Messages the broker's mailbox holds at most. Producers that can wait (the DbWriter) wait
/// for room; the others ([`offer_or_shed`]) drop and count.
pub const MAILBOX_CAPACITY: usize = 4096;

/// For producers that cannot wait (Redis, the AI, timers): queues `msg`, or drops it and counts
/// it under `kind` when the broker's mailbox is full. Answers whether it was queued.
pub fn offer_or_shed<M>(broker: &MeteredAddr<FeedBroker>, msg: M, kind: &'static str) -> bool
where
    M: Message + Send + 'static,
    M::Result: Send,
    FeedBroker: Handler<meter::Envelope<M>>,
{
    match broker.try_send(msg) {
        Ok(()) => true,
        Err((meter::NotQueued::Full, _)) => {
            SHED.with_label_values(&[kind]).inc();
            false
        }
        Err((meter::NotQueued::Closed, _)) => false,
    }
}

/// [`offer_or_shed`] for an ephemeral frame through a recipient (the AI's deltas): a frame
/// that finds the broker's mailbox full is dropped and counted.
pub fn push_or_shed(to: &MeteredRecipient<EphemeralPush>, push: EphemeralPush) -> bool {
    match to.try_send(push) {
        Ok(()) => true,
        Err((meter::NotQueued::Full, _)) => {
            SHED.with_label_values(&["EphemeralPush"]).inc();
            false
        }
        Err((meter::NotQueued::Closed, _)) => false,
    }
}

/// How long a gap in ids may stay open before it is read from PostgreSQL.
const GAP_WAIT: Duration = Duration::from_millis(100);
/// Rows one repair reads at most; a longer gap is read page by page.
const REPAIR_PAGE: usize = 2_000;
/// The longest wait between retries of a failed follow-list read.
const MAX_LOAD_BACKOFF: Duration = Duration::from_secs(2);

/// How the broker behaves.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// How long a follow-list read may take before it is retried.
    pub load_timeout: Duration,
    /// Frames a session may have waiting before it counts as a slow consumer.
    pub outbound_limit: usize,
    /// How long a user must be gone before followers hear `offline`.
    pub presence_debounce: Duration,
    /// How often the log's head is compared with what was delivered (the bound on delivering
    /// a record that no Redis message brought).
    pub log_poll: Duration,
    /// How often this node announces itself; a node silent for three of these (at least 3 s)
    /// stops counting its users online.
    pub node_heartbeat: Duration,
    /// Records (and their bytes) that may wait ahead of a missing id.
    pub max_waiting: usize,
    pub max_waiting_bytes: usize,
    /// Bytes of released records held for users whose follow lists are loading.
    pub max_held_bytes: usize,
    /// Users whose follow lists one read loads at most.
    pub load_batch: usize,
    /// Sign-in sessions revoked on any node: a socket of one is refused at `Connect`.
    pub revoked: Arc<RevokedFamilies>,
    /// Suspended accounts: kept up to date from the log's `route.account` records here; a
    /// socket of one is refused at `Connect`.
    pub suspended: Arc<SuspendedUsers>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            load_timeout: Duration::from_secs(5),
            outbound_limit: 1024,
            presence_debounce: Duration::from_secs(5),
            log_poll: Duration::from_millis(500),
            node_heartbeat: Duration::from_secs(1),
            max_waiting: 100_000,
            max_waiting_bytes: 64 << 20,
            max_held_bytes: 64 << 20,
            load_batch: 500,
            revoked: Arc::default(),
            suspended: Arc::default(),
        }
    }
}

struct SessionLink {
    id: SessionId,
    family: Option<i64>,
    backlog: Arc<Backlog>,
    deliver: MeteredRecipient<Deliver>,
    close: MeteredRecipient<CloseSession>,
}

/// The FeedBroker actor.
pub struct FeedBroker {
    meter: ActorMeter,
    /// Whom connecting users follow.
    graph: Arc<dyn FollowGraph>,
    /// The event log, to start from its head and to fill gaps.
    events: Arc<dyn EventSource>,
    /// Tells the other nodes what this node committed.
    publisher: Arc<dyn CommitPublisher>,
    config: BrokerConfig,
    sequencer: Sequencer,
    repairing: bool,
    routing: Routing,
    catchup: Catchup,
    load_backoff: Duration,
    presence: Presence,
    /// Users whose last session here ended, waiting out the debounce (the timer is cancelled
    /// when they come back, so timers never pile up in the actor's context under churn).
    going_offline: HashMap<UserId, SpawnHandle>,
    sessions: HashMap<UserId, Vec<SessionLink>>,
    session_user: HashMap<SessionId, UserId>,
    threads: HashMap<PostId, HashSet<SessionId>>,
    /// Connects that arrived before the log's head was known, answered once it is.
    early: Vec<(Connect, oneshot::Sender<()>)>,
}

impl FeedBroker {
    pub const KIND: &'static str = "feed_broker";

    pub fn new(
        graph: Arc<dyn FollowGraph>,
        events: Arc<dyn EventSource>,
        publisher: Arc<dyn CommitPublisher>,
        config: BrokerConfig,
    ) -> Self {
        let config = BrokerConfig {
            outbound_limit: config.outbound_limit.max(2),
            ..config
        };
        Self {
            meter: ActorMeter::new(Self::KIND),
            graph,
            events,
            publisher,
            sequencer: Sequencer::new(SequencerLimits {
                max_records: config.max_waiting,
                max_bytes: config.max_waiting_bytes,
            }),
            repairing: false,
            routing: Routing::default(),
            catchup: Catchup::new(config.max_held_bytes, config.load_batch),
            load_backoff: Duration::ZERO,
            presence: Presence::default(),
            going_offline: HashMap::new(),
            sessions: HashMap::new(),
            session_user: HashMap::new(),
            threads: HashMap::new(),
            early: Vec::new(),
            config,
        }
    }

    pub fn meter() -> ActorMeter {
        ActorMeter::new(Self::KIND)
    }

    // ---- the log: in order, then routed ----

    /// Offers records and carries out whatever they release.
    fn offer(
        &mut self,
        entries: impl IntoIterator<Item = Logged>,
        committed_at: Option<Instant>,
        ctx: &mut Context<Self>,
    ) {
        let mut released = Vec::new();
        for logged in entries {
            if self.sequencer.offer(logged, committed_at) == sequencer::Offered::Shed {
                WAITING_OVERFLOWS.inc();
            }
            released.extend(self.sequencer.release());
        }
        self.carry_out(released, ctx);
    }

    fn carry_out(&mut self, released: Vec<Released>, ctx: &mut Context<Self>) {
        for (logged, committed_at) in released {
            self.route(&logged, committed_at);
            for user in self.catchup.released(&logged) {
                CATCHUP_GIVEN_UP.inc();
                tracing::warn!(%user, "catch-up passed its bound; the user's sessions resume");
                self.close_user(user, 1013, "try again later: reconnect with since");
            }
        }
        WAITING_BYTES.set(self.sequencer.waiting_bytes() as i64);
        HELD_BYTES.set(self.catchup.held_bytes() as i64);
        if self.sequencer.gap().is_some() {
            self.repair_later(ctx);
        }
    }

    /// One released record: an event goes to whom it reaches, a routing record changes routing.
    fn route(&mut self, logged: &Logged, committed_at: Option<Instant>) {
        match &logged.entry {
            LogEntry::Follow(change) => self.routing.apply(change),
            LogEntry::Account(change) => {
                self.config.suspended.apply(change.user, change.suspended);
                if change.suspended {
                    self.close_user(
                        change.user,
                        protocol::ACCOUNT_SUSPENDED,
                        "this account was suspended",
                    );
                }
            }
            LogEntry::Filter(change) => self.routing.apply_filter(change),
            LogEntry::Skip => {}
            LogEntry::Event(event) => {
                if self.routing.anyone_for(event.audience) {
                    let frame = durable(event);
                    for user in self.routing.recipients(event) {
                        deliver_durable(
                            &self.sessions,
                            &self.config,
                            user,
                            event,
                            &frame,
                            committed_at,
                        );
                    }
                }
                if event.kind == EventKind::PostCreated {
                    self.route_thread_reply(event, committed_at);
                }
            }
        }
    }

    /// If ids are still missing after [`GAP_WAIT`], reads them from PostgreSQL.
    fn repair_later(&mut self, ctx: &mut Context<Self>) {
        if self.repairing {
            return;
        }
        self.repairing = true;
        ctx.run_later(GAP_WAIT, move |broker, ctx| {
            broker.repairing = false;
            // Whatever is still missing now (it may have arrived, or grown).
            if let Some((from, to)) = broker.sequencer.gap() {
                broker.repair(from, to, ctx);
            }
        });
    }

    /// Reads ids `from..to` (up to the head) and offers them, page after page.
    fn repair(&mut self, from: EventId, to: EventId, ctx: &mut Context<Self>) {
        if self.repairing {
            return;
        }
        self.repairing = true;
        let read = self.events.range(from, to, REPAIR_PAGE);
        ctx.spawn(read.into_actor(self).map(move |result, broker, ctx| {
            broker.repairing = false;
            match result {
                Ok(read) => {
                    let more = read.through.0 + 1 < to.0 && read.entries.len() >= REPAIR_PAGE;
                    GAP_REPAIRS.inc_by(
                        read.entries
                            .iter()
                            .filter(|l| broker.sequencer.next().is_some_and(|n| l.id >= n))
                            .count() as u64,
                    );
                    broker.offer(read.entries, None, ctx);
                    if more && let Some(next) = broker.sequencer.next() {
                        broker.repair(next, to, ctx);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %Chain(&e), "could not read the event log to fill a gap")
                }
            }
        }));
    }

    /// Reads whatever the log holds past what was released (unless a repair runs).
    fn check_log_head(&mut self, ctx: &mut Context<Self>) {
        if let Some(next) = self.sequencer.next() {
            self.repair(next, EventId(i64::MAX), ctx);
        }
    }

    /// Starts releasing after the newest committed record, retrying until the log answers;
    /// then answers the sessions that connected meanwhile.
    fn start_at_head(&mut self, ctx: &mut Context<Self>) {
        let source = self.events.clone();
        ctx.spawn(async move { source.head().await }.into_actor(self).map(
            |result, broker, ctx| match result {
                Ok(head) => {
                    broker.sequencer.start_at(head);
                    for (connect, answer) in std::mem::take(&mut broker.early) {
                        broker.register(connect, ctx);
                        let _ = answer.send(());
                    }
                    let released = broker.sequencer.release();
                    broker.carry_out(released, ctx);
                }
                Err(e) => {
                    tracing::warn!(error = %Chain(&e), "cannot read the event log head; retrying");
                    ctx.run_later(Duration::from_millis(500), |broker, ctx| {
                        broker.start_at_head(ctx)
                    });
                }
            },
        ));
    }

    // ---- users coming online: follow lists, caught up ----

    /// Starts the next follow-list read, when none is under way.
    fn load_follow_lists(&mut self, ctx: &mut Context<Self>) {
        let Some((users, after)) = self.catchup.next_read() else {
            return;
        };
        LOADING_USERS.set(self.catchup.loading() as i64);
        let read = self.graph.load(users, after);
        let timeout = self.config.load_timeout;
        let read = async move {
            tokio::time::timeout(timeout, read)
                .await
                .unwrap_or(Err(ReadError::TimedOut(timeout)))
        };
        ctx.spawn(
            read.into_actor(self)
                .map(|result, broker, ctx| match result {
                    Ok(snapshot) => {
                        broker.load_backoff = Duration::ZERO;
                        let position = broker.sequencer.position().unwrap_or_default();
                        for caught_up in broker.catchup.loaded(&snapshot, position) {
                            broker.routing.load(caught_up.user, caught_up.followees);
                            for logged in caught_up.deliver {
                                if let LogEntry::Event(event) = &logged.entry {
                                    let frame = durable(event);
                                    deliver_durable(
                                        &broker.sessions,
                                        &broker.config,
                                        caught_up.user,
                                        event,
                                        &frame,
                                        None,
                                    );
                                }
                            }
                        }
                        LOADING_USERS.set(broker.catchup.loading() as i64);
                        HELD_BYTES.set(broker.catchup.held_bytes() as i64);
                        broker.load_follow_lists(ctx);
                    }
                    Err(e) => {
                        FOLLOW_LOAD_FAILURES.inc();
                        tracing::warn!(error = %Chain(&e), "cannot load follow lists; retrying");
                        broker.catchup.failed();
                        broker.load_backoff = (broker.load_backoff * 2)
                            .max(Duration::from_millis(50))
                            .min(MAX_LOAD_BACKOFF);
                        ctx.run_later(broker.load_backoff, |broker, ctx| {
                            broker.load_follow_lists(ctx)
                        });
                    }
                }),
        );
    }

    /// Registers a session; its user's follow list is read if they were not online here.
    fn register(&mut self, msg: Connect, ctx: &mut Context<Self>) {
        // The revocation may have come between the upgrade's check and this: its
        // `CloseFamily` found no socket to close, so the socket is refused here.
        if msg.family.is_some_and(|f| self.config.revoked.contains(f)) {
            msg.close.do_send(CloseSession {
                code: 1008,
                reason: "this sign-in session was revoked",
            });
            return;
        }
        if self.config.suspended.contains(msg.user) {
            msg.close.do_send(CloseSession {
                code: protocol::ACCOUNT_SUSPENDED,
                reason: "this account was suspended",
            });
            return;
        }
        ONLINE_SESSIONS.inc();
        self.session_user.insert(msg.session, msg.user);
        let link = SessionLink {
            id: msg.session,
            family: msg.family,
            backlog: msg.backlog,
            deliver: msg.deliver,
            close: msg.close,
        };
        let sessions = self.sessions.entry(msg.user).or_default();
        sessions.push(link);
        if sessions.len() > 1 {
            return;
        }
        self.came_online(msg.user, msg.handle, ctx);
        let position = self.sequencer.position().unwrap_or_default();
        self.catchup.start(msg.user, position);
        self.load_follow_lists(ctx);
    }

    fn close_user(&self, user: UserId, code: u16, reason: &'static str) {
        for link in self.sessions.get(&user).into_iter().flatten() {
            link.close.do_send(CloseSession { code, reason });
        }
    }

    // ---- presence ----

    /// The first session of `user` on this node.
    fn came_online(&mut self, user: UserId, handle: String, ctx: &mut Context<Self>) {
        if let Some(timer) = self.going_offline.remove(&user) {
            ctx.cancel_future(timer);
            return; // back within the debounce: nobody was told it left
        }
        let change = self.presence.arrived(user, handle.clone());
        self.publisher.publish_presence(&PresenceChange {
            user,
            handle,
            online: true,
        });
        if let Some(change) = change {
            self.announce_presence(&change);
        }
    }

    /// The last session of `user` on this node ended: after the debounce, unless it came back.
    fn left(&mut self, user: UserId, ctx: &mut Context<Self>) {
        let timer = ctx.run_later(self.config.presence_debounce, move |broker, _| {
            if broker.going_offline.remove(&user).is_none() {
                return;
            }
            if let Some((change, tell)) = broker.presence.departed(user) {
                broker.publisher.publish_presence(&change);
                if tell {
                    broker.announce_presence(&change);
                }
            }
        });
        if let Some(previous) = self.going_offline.insert(user, timer) {
            ctx.cancel_future(previous);
        }
    }

    /// Tells the user's online followers on this node.
    fn announce_presence(&self, change: &PresenceChange) {
        let frame = protocol::presence_frame(change.user, &change.handle, change.online);
        for follower in self.routing.followers_of(change.user) {
            for link in self.sessions.get(&follower).into_iter().flatten() {
                if link.backlog.admit_ephemeral(self.config.outbound_limit) == Admit::Send {
                    link.deliver.do_send(Deliver {
                        event: None,
                        frame: frame.clone(),
                        committed_at: None,
                    });
                }
            }
        }
    }

    fn heartbeat(&mut self) {
        self.publisher.publish_heartbeat(self.presence.here_count());
        let expiry = (self.config.node_heartbeat * 3).max(Duration::from_secs(3));
        let gone = self.presence.expire(Instant::now(), expiry);
        NODES_EXPIRED.inc_by(gone.len() as u64);
        for change in gone {
            self.announce_presence(&change);
        }
    }

    // ---- ephemeral frames ----

    fn route_thread_reply(&self, event: &CommittedEvent, committed_at: Option<Instant>) {
        let Some(root) = event.payload.get("root_id").and_then(|v| v.as_i64()) else {
            return;
        };
        let Some(subscribers) = self.threads.get(&PostId(root)) else {
            return;
        };
        let frame = protocol::thread_reply_frame(&event.payload);
        let author = event.actor();
        // A reply by someone the subscriber hides (a block either way, a mute) is not theirs to
        // hear, by the same routing state as durable events.
        let hidden_from = |session: &SessionId| {
            let user = self.session_user.get(session);
            author.is_some_and(|author| {
                user.and_then(|u| self.routing.followees(*u))
                    .is_some_and(|f| Some(&author) != user && f.hides(author))
            })
        };
        for session in subscribers {
            if hidden_from(session) {
                continue;
            }
            if let Some(link) = self.link(*session)
                && link.backlog.admit_ephemeral(self.config.outbound_limit) == Admit::Send
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
        let by_user = push
            .users
            .iter()
            .filter_map(|u| self.sessions.get(u))
            .flatten();
        let by_thread = push
            .thread
            .and_then(|root| self.threads.get(&root))
            .into_iter()
            .flatten()
            .filter_map(|session| self.link(*session));
        for link in by_user.chain(by_thread) {
            if reached.insert(link.id)
                && link.backlog.admit_ephemeral(self.config.outbound_limit) == Admit::Send
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
        self.sessions.get(user)?.iter().find(|l| l.id == session)
    }

    fn remove_thread_subscriptions(&mut self, session: SessionId) {
        self.threads.retain(|_, sessions| {
            sessions.remove(&session);
            !sessions.is_empty()
        });
    }
}

/// Hands a durable frame to every session of `user` that is keeping up.
fn deliver_durable(
    sessions: &HashMap<UserId, Vec<SessionLink>>,
    config: &BrokerConfig,
    user: UserId,
    event: &CommittedEvent,
    frame: &ByteString,
    committed_at: Option<Instant>,
) {
    for link in sessions.get(&user).into_iter().flatten() {
        match link.backlog.admit_durable(config.outbound_limit) {
            Admit::Send => {}
            Admit::Drop => continue,
            Admit::DropAndClose => {
                link.close.do_send(CloseSession {
                    code: 1013,
                    reason: "too slow: reconnect with since to catch up",
                });
                continue;
            }
        }
        link.deliver.do_send(Deliver {
            event: Some(event.id),
            frame: frame.clone(),
            committed_at,
        });
        DELIVERIES.inc();
    }
}

fn durable(event: &CommittedEvent) -> ByteString {
    protocol::durable_frame(event.kind, event.id, &event.payload)
}

impl Actor for FeedBroker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.start_at_head(ctx);
        // A message lost between nodes leaves a gap only once a later one arrives; a lost last
        // message leaves none. Compare with the head now and then to catch both.
        ctx.run_interval(self.config.log_poll, |broker, ctx| {
            broker.check_log_head(ctx)
        });
        ctx.run_interval(self.config.node_heartbeat, |broker, _| broker.heartbeat());
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
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Connect, ctx: &mut Self::Context) -> Self::Result {
        if self.sequencer.next().is_some() {
            self.register(msg, ctx);
            return Box::pin(async {});
        }
        let (answer, answered) = oneshot::channel();
        self.early.push((msg, answer));
        Box::pin(async move {
            let _ = answered.await;
        })
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
        let Some(sessions) = self.sessions.get_mut(&msg.user) else {
            return;
        };
        sessions.retain(|l| l.id != msg.session);
        if !sessions.is_empty() {
            return;
        }
        self.sessions.remove(&msg.user);
        self.routing.unload(msg.user);
        self.catchup.cancel(msg.user);
        LOADING_USERS.set(self.catchup.loading() as i64);
        self.left(msg.user, ctx);
    }
}
metered_handler!(FeedBroker, Disconnect);

impl Handler<Committed> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: Committed, ctx: &mut Self::Context) {
        self.publisher.publish(&msg.entries);
        self.offer(msg.entries, Some(msg.committed_at), ctx);
    }
}
metered_handler!(FeedBroker, Committed);

impl Handler<RemoteCommitted> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: RemoteCommitted, ctx: &mut Self::Context) {
        for push in msg.pushes {
            self.push_here(&push);
        }
        let now = Instant::now();
        for change in msg.presence {
            if self.presence.remote(&msg.node, &change, now) {
                self.announce_presence(&change);
            }
        }
        self.offer(msg.entries, None, ctx);
    }
}
metered_handler!(FeedBroker, RemoteCommitted);

impl Handler<NodeHeartbeat> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: NodeHeartbeat, _: &mut Self::Context) {
        if self
            .presence
            .heartbeat(&msg.node, msg.online, Instant::now())
        {
            self.publisher.ask_presence_list(&msg.node);
        }
    }
}
metered_handler!(FeedBroker, NodeHeartbeat);

impl Handler<PresenceListWanted> for FeedBroker {
    type Result = ();

    fn handle(&mut self, _: PresenceListWanted, _: &mut Self::Context) {
        let users: Vec<(UserId, String)> = self
            .presence
            .here()
            .map(|(u, h)| (u, h.to_owned()))
            .collect();
        self.publisher.publish_presence_list(&users);
    }
}
metered_handler!(FeedBroker, PresenceListWanted);

impl Handler<NodePresenceList> for FeedBroker {
    type Result = ();

    fn handle(&mut self, msg: NodePresenceList, _: &mut Self::Context) {
        for change in self.presence.replace(&msg.node, msg.users, Instant::now()) {
            self.announce_presence(&change);
        }
    }
}
metered_handler!(FeedBroker, NodePresenceList);

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
        for link in self
            .sessions
            .get(&msg.user)
            .into_iter()
            .flatten()
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
        for link in self.sessions.values().flatten() {
            link.close.do_send(CloseSession {
                code: msg.code,
                reason: msg.reason,
            });
            closed += 1;
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
            users: self.sessions.len(),
        }
    }
}
metered_handler!(FeedBroker, GetOnline);
