//! The Session: one actor per websocket. It registers with the FeedBroker, replays what the
//! client missed when it resumes with `since`, writes delivered frames to the socket in id
//! order without duplicates, answers client operations, and keeps the connection alive.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};

use crate::backlog::Backlog;
use crate::db_error::ReadError;
use crate::error_chain::Chain;
use crate::event_log::{self, Replay};
use crate::feed_broker::{
    CloseSession, Connect, Deliver, Disconnect, FeedBroker, SubscribeThread, UnsubscribeThread,
};
use crate::ids::{EventId, PostId, SessionId, UserId};
use crate::meter::{self, ActorMeter, MeteredAddr};
use crate::metered_handler;
use crate::protocol::{self, ClientOp, Hello, HelloUser, Resume, ResumeStatus, Topic};
use crate::starting::{Starting, StartingGuard};
use crate::store::ReadPool;

/// Settings shared by every session of a node.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub node_id: String,
    /// How often the server pings.
    pub heartbeat: Duration,
    /// A client silent for this long is disconnected.
    pub idle_timeout: Duration,
    /// The most events one resume replays; beyond it the client must resync.
    pub replay_limit: usize,
    /// Thread subscriptions per session at most.
    pub max_topics: usize,
    /// Client frames per second allowed on average, and the burst above it.
    pub frames_per_second: f64,
    pub frame_burst: f64,
    /// A database read (resume, topic check) that takes longer fails.
    pub read_timeout: Duration,
    /// Sessions of this node still registering and replaying.
    pub starting: Arc<Starting>,
    /// Events one page of a resume carries (at most half the outbound limit).
    pub replay_page: usize,
    /// Checks the access tokens clients renew their sockets with (`{"op":"auth"}`); without
    /// it, renewal is refused.
    pub tokens: Option<TokenCheck>,
}

/// What a valid access token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenGrant {
    pub user: UserId,
    /// Its sign-in session.
    pub family: i64,
    pub expires_at: SystemTime,
}

/// Why a token sent in-band was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    #[error("the access token is invalid or expired")]
    Invalid,
    #[error("this sign-in session was revoked; sign in again")]
    Revoked,
    #[error("this account is suspended")]
    Suspended,
}

/// The port the server implements with its token verifier.
pub trait AccessTokens: Send + Sync + 'static {
    fn verify(&self, token: &str) -> Result<TokenGrant, TokenRefused>;
}

/// The token check sessions share.
#[derive(Clone)]
pub struct TokenCheck(pub Arc<dyn AccessTokens>);

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck")
    }
}

static OPEN: LazyLock<IntGauge> = LazyLock::new(|| {
    meter::gauge(
        "aisocial_websocket_connections",
        "Websocket sessions open on this node.",
    )
});
static CLOSES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_websocket_closes_total",
        "Websocket sessions ended, by the close code the server sent (client when the client closed first).",
        &["code"],
    )
});
pub static DELIVERY_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    meter::histogram(
        "aisocial_delivery_latency_seconds",
        "From COMMIT to the frame written to the session's socket buffer.",
        meter::exponential(0.000_05, 2.0, 18),
    )
});
static DUPLICATES_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_session_duplicates_dropped_total",
        "Durable frames a session dropped because it had already written that id.",
    )
});

static RESUMES_GIVEN_UP: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_session_resumes_given_up_total",
        "Resumes whose replay could not be read in time (answered resync_required).",
    )
});

/// What a client hears (after the topic) when a subscribe cannot check its post: the same
/// whatever the database said, which goes to the log instead.
pub const SUBSCRIBE_UNAVAILABLE: &str =
    "the post could not be checked now; subscribe again shortly";

/// Runs `attempt` until it succeeds, retrying failures (a connection lost, a pool exhausted)
/// with backoff until `timeout` has passed; then answers the last error.
async fn retry_within<T, F, Fut>(timeout: Duration, mut attempt: F) -> Result<T, ReadError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ReadError>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Duration::from_millis(50);
    loop {
        let error = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e,
            Err(_) => return Err(ReadError::TimedOut(timeout)),
        };
        if tokio::time::Instant::now() + backoff >= deadline {
            return Err(error);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Plans a resume ([`event_log::replay`]) within `timeout`.
async fn replay_within(
    pool: ReadPool,
    user: UserId,
    since: EventId,
    limit: usize,
    timeout: Duration,
) -> Result<Replay, ReadError> {
    retry_within(timeout, || async {
        let mut conn = pool.get().await?;
        Ok(event_log::replay(&mut conn, user, since, limit).await?)
    })
    .await
}

/// Reads one page of a planned replay within `timeout`.
async fn read_page_within(
    pool: ReadPool,
    ids: Vec<EventId>,
    timeout: Duration,
) -> Result<Vec<(EventId, protocol::EventKind, serde_json::Value)>, ReadError> {
    retry_within(timeout, || async {
        let conn = pool.get().await?;
        Ok(event_log::read_events(&conn, &ids).await?)
    })
    .await
}

/// A token bucket for client frames.
#[derive(Debug)]
struct FrameBudget {
    tokens: f64,
    refilled: Instant,
}

impl FrameBudget {
    fn new(burst: f64) -> Self {
        Self {
            tokens: burst,
            refilled: Instant::now(),
        }
    }

    fn take(&mut self, rate: f64, burst: f64) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Who opened the socket.
#[derive(Debug, Clone)]
pub struct SessionIdentity {
    pub user: UserId,
    pub handle: String,
    /// The sign-in session the socket belongs to; revoking it closes the socket.
    pub family: Option<i64>,
    /// When the access token the socket was opened with expires: the socket closes then
    /// (`protocol::TOKEN_EXPIRED`) unless the client renewed it in-band.
    pub expires_at: Option<SystemTime>,
}

enum Phase {
    /// Registered or registering; replaying. Live frames wait here until the replay is out.
    Starting {
        held: Vec<Deliver>,
    },
    Live,
}

/// The Session actor.
pub struct Session {
    meter: ActorMeter,
    id: SessionId,
    user: UserId,
    handle: String,
    family: Option<i64>,
    /// When the socket's access token expires (renewed by `{"op":"auth"}`).
    expires_at: Option<SystemTime>,
    /// The close at `expires_at`.
    expiry: Option<SpawnHandle>,
    since: Option<EventId>,
    broker: MeteredAddr<FeedBroker>,
    pool: ReadPool,
    config: Arc<SessionConfig>,
    phase: Phase,
    /// The last durable id written to the socket.
    last_event: Option<EventId>,
    last_heard: Instant,
    budget: FrameBudget,
    /// Requested topic → the thread root it resolved to.
    topics: HashMap<Topic, PostId>,
    /// The close code this side sent, for the close counter.
    closed_with: Option<u16>,
    /// Frames the broker handed over and this session has not written yet.
    backlog: Arc<Backlog>,
    /// Counts this session as starting until it is live.
    starting: Option<StartingGuard>,
    /// Whatever must live exactly as long as the session (the server's admission slot).
    _held: Option<Box<dyn std::any::Any>>,
}

impl Session {
    pub const KIND: &'static str = "session";

    pub fn new(
        id: SessionId,
        identity: SessionIdentity,
        since: Option<EventId>,
        broker: MeteredAddr<FeedBroker>,
        pool: ReadPool,
        config: Arc<SessionConfig>,
    ) -> Self {
        let SessionIdentity {
            user,
            handle,
            family,
            expires_at,
        } = identity;
        let burst = config.frame_burst;
        let instance = meter::Instance {
            id: id.0,
            user: Some(user.0),
        };
        Self {
            meter: ActorMeter::for_instance(Self::KIND, instance),
            id,
            user,
            handle,
            family,
            expires_at,
            expiry: None,
            since,
            broker,
            pool,
            phase: Phase::Starting { held: Vec::new() },
            last_event: None,
            last_heard: Instant::now(),
            budget: FrameBudget::new(burst),
            topics: HashMap::new(),
            closed_with: None,
            backlog: Backlog::new(),
            starting: Some(config.starting.begin()),
            _held: None,
            config,
        }
    }

    /// Keeps `held` until the session ends.
    pub fn holding(mut self, held: Box<dyn std::any::Any>) -> Self {
        self._held = Some(held);
        self
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: u16, reason: &str) {
        if self.closed_with.is_none() {
            self.closed_with = Some(code);
            ctx.close(Some(CloseReason {
                code: CloseCode::from(code),
                description: Some(reason.to_owned()),
            }));
        }
        ctx.stop();
    }

    fn error(&self, ctx: &mut ws::WebsocketContext<Self>, code: &str, detail: &str) {
        ctx.text(protocol::error_frame(code, detail));
    }

    /// Writes one delivered frame, dropping durable ids at or below the last one written.
    fn write(&mut self, ctx: &mut ws::WebsocketContext<Self>, deliver: Deliver) {
        if let Some(id) = deliver.event {
            if self.last_event.is_some_and(|last| id <= last) {
                DUPLICATES_DROPPED.inc();
                return;
            }
            self.last_event = Some(id);
        }
        if let Some(at) = deliver.committed_at {
            DELIVERY_LATENCY.observe(at.elapsed().as_secs_f64());
        }
        ctx.text(deliver.frame);
    }

    fn hello(&self, ctx: &mut ws::WebsocketContext<Self>, replayed: u64, status: ResumeStatus) {
        let hello = Hello {
            session_id: format!("{}-{}", self.config.node_id, self.id),
            user: HelloUser {
                id: self.user,
                handle: self.handle.clone(),
            },
            heartbeat_ms: u64::try_from(self.config.heartbeat.as_millis()).unwrap_or(u64::MAX),
            resume: Resume {
                since: self.since,
                replayed,
                status,
            },
        };
        ctx.text(protocol::hello_frame(&hello));
    }

    /// Registered with the broker: replay if asked, then go live.
    fn resume(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(since) = self.since else {
            self.hello(ctx, 0, ResumeStatus::Fresh);
            self.go_live(ctx);
            return;
        };
        let (user, limit, timeout) = (
            self.user,
            self.config.replay_limit,
            self.config.read_timeout,
        );
        let read = replay_within(self.pool.clone(), user, since, limit, timeout);
        ctx.spawn(
            read.into_actor(self)
                .map(|result, session, ctx| match result {
                    Ok(Replay::Events(ids)) => {
                        session.hello(ctx, ids.len() as u64, ResumeStatus::Resumed);
                        session.last_event = session.since;
                        session.replay_pages(ids.into(), ctx);
                    }
                    Ok(Replay::ResyncRequired) => {
                        session.hello(ctx, 0, ResumeStatus::ResyncRequired);
                        session.go_live(ctx);
                    }
                    Err(e) => {
                        // Closing would only bring the client back to the same wait: it
                        // refetches over HTTP instead, and is live from here on.
                        RESUMES_GIVEN_UP.inc();
                        tracing::warn!(session = %session.id, error = %Chain(&e), "resume could not finish in time; asking for a resync");
                        session.hello(ctx, 0, ResumeStatus::ResyncRequired);
                        session.go_live(ctx);
                    }
                }),
        );
    }

    /// Sends the planned replay a page at a time: the next page is read only when this
    /// session runs again, and a client that stops reading stops it from running, so a replay
    /// never buffers more than a page ahead of the client.
    fn replay_pages(&mut self, mut ids: VecDeque<EventId>, ctx: &mut ws::WebsocketContext<Self>) {
        if ids.is_empty() {
            self.go_live(ctx);
            return;
        }
        let take = ids.len().min(self.config.replay_page.max(1));
        let page: Vec<EventId> = ids.drain(..take).collect();
        let read = read_page_within(self.pool.clone(), page, self.config.read_timeout);
        ctx.spawn(read.into_actor(self).map(move |result, session, ctx| match result {
            Ok(events) => {
                for (id, kind, payload) in events {
                    let frame = protocol::durable_frame(kind, id, &payload);
                    session.write(
                        ctx,
                        Deliver {
                            event: Some(id),
                            frame,
                            committed_at: None,
                        },
                    );
                }
                session.replay_pages(ids, ctx);
            }
            Err(e) => {
                // What was sent is exact; the client resumes from the last id it got.
                RESUMES_GIVEN_UP.inc();
                tracing::warn!(session = %session.id, error = %Chain(&e), "a resume's page could not be read");
                session.close(ctx, 1013, "resume interrupted: reconnect with since");
            }
        }));
    }

    fn go_live(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.starting = None;
        if let Phase::Starting { held } = std::mem::replace(&mut self.phase, Phase::Live) {
            for deliver in held {
                self.backlog.taken();
                self.write(ctx, deliver);
            }
        }
    }

    fn on_text(&mut self, ctx: &mut ws::WebsocketContext<Self>, text: &str) {
        match protocol::parse_client_frame(text) {
            Err(e) => self.error(ctx, e.code, &e.detail),
            Ok(ClientOp::Ping) => ctx.text(protocol::pong_frame()),
            Ok(ClientOp::Auth { token }) => self.renew(ctx, &token),
            Ok(ClientOp::Subscribe(topic)) => self.subscribe(ctx, topic),
            Ok(ClientOp::Unsubscribe(topic)) => {
                if let Some(root) = self.topics.remove(&topic)
                    && !self.topics.values().any(|r| *r == root)
                {
                    self.broker.do_send(UnsubscribeThread {
                        session: self.id,
                        root,
                    });
                }
                ctx.text(protocol::topic_frame(false, topic));
            }
        }
    }

    /// Closes the socket when its access token expires (a renewal moves the time).
    fn arm_expiry(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(previous) = self.expiry.take() {
            ctx.cancel_future(previous);
        }
        let Some(at) = self.expires_at else {
            return;
        };
        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
        self.expiry = Some(ctx.run_later(left, |session, ctx| {
            session.close(ctx, protocol::TOKEN_EXPIRED, "access token expired");
        }));
    }

    /// `{"op":"auth"}`: a new access token of the same user and sign-in session keeps the
    /// socket open until it expires in turn.
    fn renew(&mut self, ctx: &mut ws::WebsocketContext<Self>, token: &str) {
        let Some(tokens) = &self.config.tokens else {
            self.error(
                ctx,
                "auth_unsupported",
                "this node does not renew sockets in-band",
            );
            return;
        };
        match tokens.0.verify(token) {
            Ok(grant) if grant.user == self.user && Some(grant.family) == self.family => {
                self.expires_at = Some(grant.expires_at);
                self.arm_expiry(ctx);
                let expires_in = grant
                    .expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .as_secs();
                ctx.text(protocol::auth_ok_frame(expires_in));
            }
            Ok(_) => self.error(
                ctx,
                "auth_mismatch",
                "the token belongs to another user or sign-in session",
            ),
            Err(refused) => self.error(ctx, "auth_invalid", &refused.to_string()),
        }
    }

    fn subscribe(&mut self, ctx: &mut ws::WebsocketContext<Self>, topic: Topic) {
        if self.topics.contains_key(&topic) {
            ctx.text(protocol::topic_frame(true, topic));
            return;
        }
        if self.topics.len() >= self.config.max_topics {
            let detail = format!("at most {} topics per connection", self.config.max_topics);
            self.error(ctx, "too_many_topics", &detail);
            return;
        }
        let Topic::Thread(post) = topic;
        let pool = self.pool.clone();
        let timeout = self.config.read_timeout;
        let read = async move {
            let work = async {
                let conn = pool.get().await?;
                let row = conn
                    .query_opt(
                        "SELECT coalesce(root_id, id) FROM posts WHERE id = $1 AND deleted_at IS NULL",
                        &[&post.0],
                    )
                    .await?;
                Ok::<_, ReadError>(
                    row.map(|r| r.try_get::<_, i64>(0).map(PostId))
                        .transpose()?,
                )
            };
            tokio::time::timeout(timeout, work)
                .await
                .unwrap_or(Err(ReadError::TimedOut(timeout)))
        };
        ctx.spawn(
            read.into_actor(self)
                .map(move |result, session, ctx| match result {
                    Ok(Some(root)) => {
                        if session.topics.len() >= session.config.max_topics {
                            let detail = format!(
                                "at most {} topics per connection",
                                session.config.max_topics
                            );
                            session.error(ctx, "too_many_topics", &detail);
                            return;
                        }
                        session.topics.insert(topic, root);
                        session.broker.do_send(SubscribeThread {
                            session: session.id,
                            root,
                        });
                        ctx.text(protocol::topic_frame(true, topic));
                    }
                    Ok(None) => session.error(ctx, "not_found", &format!("{topic}: no such post")),
                    Err(e) => {
                        // The client hears the code's fixed detail; the cause goes to the log.
                        tracing::warn!(session = %session.id, %topic, error = %Chain(&e), "a subscribe could not check its post");
                        session.error(ctx, "unavailable", &format!("{topic}: {SUBSCRIBE_UNAVAILABLE}"));
                    }
                }),
        );
    }

    /// Charges one client frame to the budget; a flood closes the socket with 1008.
    fn within_budget(&mut self, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        let (rate, burst) = (self.config.frames_per_second, self.config.frame_burst);
        if self.budget.take(rate, burst) {
            true
        } else {
            self.close(ctx, 1008, "message rate exceeded");
            false
        }
    }
}

impl Actor for Session {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        OPEN.inc();
        let me = MeteredAddr::new(ctx.address(), self.meter.clone());
        let connect = Connect {
            session: self.id,
            user: self.user,
            handle: self.handle.clone(),
            family: self.family,
            deliver: me.recipient(),
            close: me.recipient(),
            backlog: self.backlog.clone(),
        };
        self.arm_expiry(ctx);
        let heartbeat = self.config.heartbeat;
        ctx.run_interval(heartbeat, |session, ctx| {
            if session.backlog.overflowed() {
                session.close(ctx, 1013, "too slow: reconnect with since to catch up");
            } else if session.last_heard.elapsed() > session.config.idle_timeout {
                session.close(ctx, 1001, "idle timeout");
            } else {
                ctx.ping(b"");
            }
        });
        let broker = self.broker.clone();
        let register = async move { broker.send(connect).await };
        ctx.wait(
            register
                .into_actor(self)
                .map(|result, session, ctx| match result {
                    Ok(()) => session.resume(ctx),
                    Err(_) => session.close(ctx, 1011, "the feed is unavailable"),
                }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        OPEN.dec();
        let code = self
            .closed_with
            .map(|c| c.to_string())
            .unwrap_or_else(|| "client".to_owned());
        CLOSES.with_label_values(&[&code]).inc();
        self.broker.do_send(Disconnect {
            session: self.id,
            user: self.user,
        });
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        if self.backlog.overflowed() {
            self.close(ctx, 1013, "too slow: reconnect with since to catch up");
            return;
        }
        match &mut self.phase {
            // Held frames still count against the outbound limit until they are written.
            Phase::Starting { held } => held.push(msg),
            Phase::Live => {
                self.backlog.taken();
                self.write(ctx, msg);
            }
        }
    }
}
metered_handler!(Session, Deliver);

impl Handler<CloseSession> for Session {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, ctx: &mut Self::Context) {
        self.close(ctx, msg.code, msg.reason);
    }
}
metered_handler!(Session, CloseSession);

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Session {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let message = match item {
            Ok(message) => message,
            Err(ws::ProtocolError::Overflow) => {
                let detail = format!("frames are at most {} bytes", protocol::MAX_FRAME_BYTES);
                self.close(ctx, 1009, &detail);
                return;
            }
            Err(e) => {
                self.close(ctx, 1002, &format!("protocol error: {e}"));
                return;
            }
        };
        match message {
            ws::Message::Text(text) => {
                if self.within_budget(ctx) {
                    self.on_text(ctx, &text);
                }
            }
            ws::Message::Binary(_) | ws::Message::Continuation(_) => {
                if self.within_budget(ctx) {
                    self.error(
                        ctx,
                        "unsupported_frame",
                        "send one JSON object per text frame",
                    );
                }
            }
            ws::Message::Ping(payload) => {
                if self.within_budget(ctx) {
                    ctx.pong(&payload);
                }
            }
            // A pong answers the heartbeat (and the last-heard time above is all it is for);
            // unasked-for pongs cost like any other frame.
            ws::Message::Pong(_) => {
                self.within_budget(ctx);
            }
            ws::Message::Nop => {}
            ws::Message::Close(reason) => {
                // Echo the client's close and end.
                ctx.close(reason);
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
