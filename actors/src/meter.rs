//! Metering for every actor: mailbox depth, messages handled, time waiting in the mailbox and
//! time handling, exported through the process-wide Prometheus registry.
//!
//! Senders wrap a message in an [`Envelope`] (through [`MeteredAddr`] or [`Envelope::new`]); the
//! envelope counts itself into the mailbox-depth gauge when created and out when it is handled
//! or dropped unhandled, and remembers when it was sent. Actors handle envelopes through the
//! [`metered_handler!`](crate::metered_handler) macro, which records wait and handling time and
//! then calls the actor's plain `Handler<M>`.
//!
//! Each mailbox also has a [`MailboxClock`]: its own depth and enough timestamps to bound the age
//! of its oldest unhandled message. Kinds with one actor share a clock per kind; actors of which
//! there are many (sessions, AI workers) get one each, registered so the admin view can find the
//! deepest and oldest without a series per actor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use actix::prelude::*;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec,
};

/// Buckets for mailbox wait and handling times: 10 µs to 10 s.
const TIME_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

// Metric definitions are constants of this module and each is registered once (behind a
// `LazyLock`), so registration cannot fail; the unit test below exercises every definition.
#[expect(
    clippy::expect_used,
    reason = "metric names and labels are compile-time constants"
)]
fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register_int_gauge_vec!(Opts::new(name, help), labels).expect("valid metric definition")
}

#[expect(
    clippy::expect_used,
    reason = "metric names and labels are compile-time constants"
)]
fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register_int_counter_vec!(Opts::new(name, help), labels).expect("valid metric definition")
}

#[expect(
    clippy::expect_used,
    reason = "metric names and labels are compile-time constants"
)]
fn histogram_vec(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(TIME_BUCKETS.to_vec());
    register_histogram_vec!(opts, labels).expect("valid metric definition")
}

/// A counter registered in the process registry (for `/metrics`).
#[expect(
    clippy::expect_used,
    reason = "metric names and labels are compile-time constants"
)]
pub fn counter(name: &str, help: &str) -> IntCounter {
    register_int_counter!(name, help).expect("valid metric definition")
}

/// A gauge registered in the process registry.
#[expect(
    clippy::expect_used,
    reason = "metric names and labels are compile-time constants"
)]
pub fn gauge(name: &str, help: &str) -> IntGauge {
    register_int_gauge!(name, help).expect("valid metric definition")
}

/// A histogram with these buckets, registered in the process registry.
#[expect(
    clippy::expect_used,
    reason = "metric names and labels are compile-time constants"
)]
pub fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register_histogram!(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric definition")
}

/// A labelled gauge registered in the process registry.
pub fn labelled_gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    gauge_vec(name, help, labels)
}

/// A labelled counter registered in the process registry.
pub fn labelled_counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    counter_vec(name, help, labels)
}

/// A labelled histogram with these buckets, registered in the process registry.
#[expect(
    clippy::expect_used,
    reason = "metric names and labels are compile-time constants"
)]
pub fn labelled_histogram(
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    register_histogram_vec!(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("valid metric definition")
}

/// The `q` quantile of a histogram given as `(upper bound, cumulative count)` pairs, as the
/// upper bound of the bucket it falls in (a conservative reading); `None` when it is empty.
pub fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let mut sorted = buckets.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = sorted.last()?.1;
    if total <= 0.0 {
        return None;
    }
    sorted
        .iter()
        .find(|(_, count)| *count >= total * q)
        .map(|(bound, _)| *bound)
}

/// `count` buckets from `start`, each `factor` times the last.
pub fn exponential(start: f64, factor: f64, count: usize) -> Vec<f64> {
    (0..count)
        .scan(start, |bound, _| {
            let this = *bound;
            *bound *= factor;
            Some(this)
        })
        .collect()
}

/// `aisocial_actor_mailbox_depth{actor}`: envelopes sent and not yet handled.
pub static MAILBOX_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "aisocial_actor_mailbox_depth",
        "Messages sent to actors of this kind and not yet handled.",
        &["actor"],
    )
});

/// `aisocial_actor_messages_handled_total{actor,message}`.
pub static MESSAGES_HANDLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "aisocial_actor_messages_handled_total",
        "Messages handled by actors of this kind, by message type.",
        &["actor", "message"],
    )
});

/// `aisocial_actor_mailbox_wait_seconds{actor}`: from send to the start of handling.
pub static MAILBOX_WAIT: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "aisocial_actor_mailbox_wait_seconds",
        "Time a message waited in the mailbox before its handler ran.",
        &["actor"],
    )
});

/// `aisocial_actor_handle_seconds{actor}`: the handler's synchronous part.
pub static HANDLE_TIME: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "aisocial_actor_handle_seconds",
        "Time spent in the message handler (its synchronous part).",
        &["actor"],
    )
});

/// `aisocial_actor_restarts_total{actor}`: actors of this kind restarted by a supervisor.
pub static RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "aisocial_actor_restarts_total",
        "Actors of this kind restarted after a failure.",
        &["actor"],
    )
});

/// `aisocial_actor_oldest_message_age_seconds{actor}`: set by the server's sampler.
pub static OLDEST_AGE: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    #[expect(
        clippy::expect_used,
        reason = "metric names and labels are compile-time constants"
    )]
    prometheus::register_gauge_vec!(
        Opts::new(
            "aisocial_actor_oldest_message_age_seconds",
            "At most this old: the oldest message waiting in any mailbox of this kind (0 when all are empty).",
        ),
        &["actor"]
    )
    .expect("valid metric definition")
});

/// The instant every clock counts from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn micros(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_micros()).unwrap_or(u64::MAX)
}

/// Who an actor with its own clock is, for the admin view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// A number unique within the kind (the session id, the worker index).
    pub id: u64,
    /// The user the actor serves, when it serves one (the admin view looks up the handle).
    pub user: Option<i64>,
}

/// One mailbox's depth and the two instants that bound the age of its oldest message: when it
/// last went from empty to not empty, and when the newest message whose handling began was
/// sent. A mailbox is first in, first out, so every message still waiting was sent after both.
#[derive(Debug, Default)]
pub struct MailboxClock {
    depth: AtomicI64,
    nonempty_since: AtomicU64,
    last_begun: AtomicU64,
    instance: Option<Instance>,
}

impl MailboxClock {
    fn enqueued(&self, at: Instant) {
        if self.depth.fetch_add(1, Ordering::Relaxed) <= 0 {
            self.nonempty_since.store(micros(at), Ordering::Relaxed);
        }
    }

    fn begun(&self, sent_at: Instant) {
        self.last_begun
            .fetch_max(micros(sent_at), Ordering::Relaxed);
    }

    fn left(&self) {
        self.depth.fetch_sub(1, Ordering::Relaxed);
    }

    /// Messages sent to this mailbox and not yet handled (one being handled counts).
    pub fn depth(&self) -> i64 {
        self.depth.load(Ordering::Relaxed).max(0)
    }

    /// An upper bound of the age of the oldest message waiting, zero when none waits.
    pub fn oldest_age(&self, now: Instant) -> Duration {
        if self.depth() == 0 {
            return Duration::ZERO;
        }
        let since = self
            .nonempty_since
            .load(Ordering::Relaxed)
            .max(self.last_begun.load(Ordering::Relaxed));
        Duration::from_micros(micros(now).saturating_sub(since))
    }

    pub fn instance(&self) -> Option<&Instance> {
        self.instance.as_ref()
    }
}

/// Every clock: one shared per single-actor kind, and a weak reference to each per-actor clock.
#[derive(Default)]
struct Clocks {
    shared: HashMap<&'static str, Arc<MailboxClock>>,
    instances: HashMap<&'static str, Vec<Weak<MailboxClock>>>,
}

static CLOCKS: LazyLock<Mutex<Clocks>> = LazyLock::new(Mutex::default);

fn clocks() -> std::sync::MutexGuard<'static, Clocks> {
    // A panic while holding the lock leaves the registry whole (every update is one push), so
    // a poisoned lock is still usable.
    CLOCKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The mailboxes of one actor kind right now.
#[derive(Debug, Clone)]
pub struct KindClocks {
    pub kind: &'static str,
    /// Live actors of this kind (1 for a kind with a shared clock).
    pub actors: usize,
    pub depth: i64,
    pub oldest_age: Duration,
    /// The per-actor clocks of a kind with many actors (empty otherwise).
    pub instances: Vec<Arc<MailboxClock>>,
}

/// Lists a kind of many actors even before its first actor starts.
pub fn declare_instances(kind: &'static str) {
    clocks().instances.entry(kind).or_default();
}

/// Every kind's mailboxes, dropping the registrations of actors that have stopped.
pub fn every_kind(now: Instant) -> Vec<KindClocks> {
    let mut registry = clocks();
    let mut kinds: Vec<KindClocks> = registry
        .shared
        .iter()
        .map(|(kind, clock)| KindClocks {
            kind,
            actors: 1,
            depth: clock.depth(),
            oldest_age: clock.oldest_age(now),
            instances: Vec::new(),
        })
        .collect();
    for (kind, weak) in &mut registry.instances {
        weak.retain(|w| w.strong_count() > 0);
        let instances: Vec<Arc<MailboxClock>> = weak.iter().filter_map(Weak::upgrade).collect();
        kinds.push(KindClocks {
            kind,
            actors: instances.len(),
            depth: instances.iter().map(|c| c.depth()).sum(),
            oldest_age: instances
                .iter()
                .map(|c| c.oldest_age(now))
                .max()
                .unwrap_or_default(),
            instances,
        });
    }
    kinds.sort_by_key(|k| k.kind);
    kinds
}

/// The metric series of one actor kind, resolved once so the hot path does no label lookup,
/// and the clock of the mailbox (or mailboxes) it meters.
#[derive(Clone)]
pub struct ActorMeter {
    kind: &'static str,
    depth: prometheus::IntGauge,
    wait: prometheus::Histogram,
    handle: prometheus::Histogram,
    clock: Arc<MailboxClock>,
}

impl ActorMeter {
    /// The meter of a kind with one actor: every meter of the kind shares one clock.
    pub fn new(kind: &'static str) -> Self {
        let clock = Arc::clone(clocks().shared.entry(kind).or_default());
        // The restart counter exists (at zero) from the kind's first actor on.
        RESTARTS.with_label_values(&[kind]);
        Self::with_clock(kind, clock)
    }

    /// The meter of one of many actors of a kind, with a clock of its own; senders must use
    /// this meter (or a clone) for the clock to see them.
    pub fn for_instance(kind: &'static str, instance: Instance) -> Self {
        let clock = Arc::new(MailboxClock {
            instance: Some(instance),
            ..MailboxClock::default()
        });
        let mut registry = clocks();
        let actors = registry.instances.entry(kind).or_default();
        if actors.is_empty() {
            // Once per kind, not on every session's start.
            RESTARTS.with_label_values(&[kind]);
        }
        actors.push(Arc::downgrade(&clock));
        drop(registry);
        Self::with_clock(kind, clock)
    }

    fn with_clock(kind: &'static str, clock: Arc<MailboxClock>) -> Self {
        Self {
            kind,
            depth: MAILBOX_DEPTH.with_label_values(&[kind]),
            wait: MAILBOX_WAIT.with_label_values(&[kind]),
            handle: HANDLE_TIME.with_label_values(&[kind]),
            clock,
        }
    }

    /// This meter's mailbox clock.
    pub fn clock(&self) -> &Arc<MailboxClock> {
        &self.clock
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The number of envelopes addressed to this kind and not yet handled.
    pub fn depth(&self) -> i64 {
        self.depth.get()
    }

    /// Counts one restart of an actor of this kind.
    pub fn restarted(&self) {
        RESTARTS.with_label_values(&[self.kind]).inc();
    }

    /// Records the wait of an envelope whose handler starts now and returns the timer of the
    /// handling itself.
    pub fn begin(&self, sent_at: Instant) -> HandleTimer {
        let now = Instant::now();
        self.clock.begun(sent_at);
        self.wait.observe(now.duration_since(sent_at).as_secs_f64());
        HandleTimer {
            started: now,
            histogram: self.handle.clone(),
        }
    }
}

/// Observes the handling time when dropped.
pub struct HandleTimer {
    started: Instant,
    histogram: prometheus::Histogram,
}

impl Drop for HandleTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// A message on its way to an actor, counted in its kind's mailbox depth until handled.
pub struct Envelope<M> {
    msg: M,
    sent_at: Instant,
    _depth: DepthGuard,
}

/// Takes one envelope out of the depth gauge and the clock when dropped: handled or dropped
/// unhandled alike.
struct DepthGuard(prometheus::IntGauge, Arc<MailboxClock>);

impl Drop for DepthGuard {
    fn drop(&mut self) {
        self.0.dec();
        self.1.left();
    }
}

impl<M> Envelope<M> {
    pub fn new(meter: &ActorMeter, msg: M) -> Self {
        let sent_at = Instant::now();
        meter.depth.inc();
        meter.clock.enqueued(sent_at);
        Self {
            msg,
            sent_at,
            _depth: DepthGuard(meter.depth.clone(), Arc::clone(&meter.clock)),
        }
    }

    pub fn sent_at(&self) -> Instant {
        self.sent_at
    }

    /// Takes the message out; the envelope leaves the mailbox-depth count here.
    pub fn open(self) -> M {
        self.msg
    }
}

impl<M: Message> Message for Envelope<M> {
    type Result = M::Result;
}

/// An actor address that meters everything sent through it.
pub struct MeteredAddr<A: Actor> {
    addr: Addr<A>,
    meter: ActorMeter,
}

impl<A: Actor> Clone for MeteredAddr<A> {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr.clone(),
            meter: self.meter.clone(),
        }
    }
}

impl<A: Actor> MeteredAddr<A> {
    pub fn new(addr: Addr<A>, meter: ActorMeter) -> Self {
        Self { addr, meter }
    }

    pub fn meter(&self) -> &ActorMeter {
        &self.meter
    }

    pub fn connected(&self) -> bool {
        self.addr.connected()
    }

    /// Fire and forget.
    pub fn do_send<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Envelope<M>>,
        A::Context: actix::dev::ToEnvelope<A, Envelope<M>>,
    {
        self.addr.do_send(Envelope::new(&self.meter, msg));
    }

    /// Sends and waits for the reply.
    pub async fn send<M>(&self, msg: M) -> Result<M::Result, MailboxError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Envelope<M>>,
        A::Context: actix::dev::ToEnvelope<A, Envelope<M>>,
    {
        self.addr.send(Envelope::new(&self.meter, msg)).await
    }

    /// Queues `msg` unless the mailbox is at its capacity (or the actor stopped); then answers
    /// why, with the message.
    pub fn try_send<M>(&self, msg: M) -> Result<(), (NotQueued, M)>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Envelope<M>>,
        A::Context: actix::dev::ToEnvelope<A, Envelope<M>>,
    {
        self.addr
            .try_send(Envelope::new(&self.meter, msg))
            .map_err(not_queued)
    }

    /// A type-erased, metered recipient for messages of type `M`.
    pub fn recipient<M>(&self) -> MeteredRecipient<M>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Envelope<M>>,
        A::Context: actix::dev::ToEnvelope<A, Envelope<M>>,
    {
        MeteredRecipient {
            recipient: self.addr.clone().recipient(),
            meter: self.meter.clone(),
        }
    }
}

/// Why [`MeteredAddr::try_send`] did not queue a message (it is dropped, and counted out of
/// the depth gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotQueued {
    /// The mailbox is at its capacity.
    Full,
    /// The actor stopped.
    Closed,
}

fn not_queued<M: Message>(e: actix::dev::SendError<Envelope<M>>) -> (NotQueued, M) {
    match e {
        actix::dev::SendError::Full(envelope) => (NotQueued::Full, envelope.open()),
        actix::dev::SendError::Closed(envelope) => (NotQueued::Closed, envelope.open()),
    }
}

/// A [`Recipient`] that meters what it sends; used across actor boundaries so that one actor
/// does not depend on another's type.
pub struct MeteredRecipient<M: Message + Send>
where
    M::Result: Send,
{
    recipient: Recipient<Envelope<M>>,
    meter: ActorMeter,
}

impl<M: Message + Send> Clone for MeteredRecipient<M>
where
    M::Result: Send,
{
    fn clone(&self) -> Self {
        Self {
            recipient: self.recipient.clone(),
            meter: self.meter.clone(),
        }
    }
}

impl<M: Message + Send + 'static> MeteredRecipient<M>
where
    M::Result: Send,
{
    pub fn do_send(&self, msg: M) {
        self.recipient.do_send(Envelope::new(&self.meter, msg));
    }

    pub async fn send(&self, msg: M) -> Result<M::Result, MailboxError> {
        self.recipient.send(Envelope::new(&self.meter, msg)).await
    }

    /// Queues `msg` unless the mailbox is at its capacity (or the actor stopped); then answers
    /// why, with the message.
    pub fn try_send(&self, msg: M) -> Result<(), (NotQueued, M)> {
        self.recipient
            .try_send(Envelope::new(&self.meter, msg))
            .map_err(not_queued)
    }

    /// Queues `msg`, waiting while the mailbox is at its capacity (backpressure for a producer
    /// that can wait); answers how many times it had to wait, or that the actor stopped.
    pub async fn queue(&self, mut msg: M) -> Result<u32, NotQueued> {
        let mut waits = 0u32;
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            match self.try_send(msg) {
                Ok(()) => return Ok(waits),
                Err((NotQueued::Closed, _)) => return Err(NotQueued::Closed),
                Err((NotQueued::Full, back)) => {
                    msg = back;
                    waits = waits.saturating_add(1);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(20));
                }
            }
        }
    }

    pub fn connected(&self) -> bool {
        self.recipient.connected()
    }
}

/// Implements `Handler<Envelope<$msg>>` for `$actor` by recording the envelope's wait and the
/// handling time on `self.meter` (an [`ActorMeter`] field) and delegating to `Handler<$msg>`.
#[macro_export]
macro_rules! metered_handler {
    ($actor:ty, $msg:ty) => {
        impl ::actix::Handler<$crate::meter::Envelope<$msg>> for $actor {
            type Result = <$actor as ::actix::Handler<$msg>>::Result;

            fn handle(
                &mut self,
                envelope: $crate::meter::Envelope<$msg>,
                ctx: &mut Self::Context,
            ) -> Self::Result {
                static HANDLED: ::std::sync::OnceLock<::prometheus::IntCounter> =
                    ::std::sync::OnceLock::new();
                HANDLED
                    .get_or_init(|| {
                        $crate::meter::MESSAGES_HANDLED
                            .with_label_values(&[self.meter.kind(), stringify!($msg)])
                    })
                    .inc();
                let _timer = self.meter.begin(envelope.sent_at());
                <$actor as ::actix::Handler<$msg>>::handle(self, envelope.open(), ctx)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_count_in_and_out_of_the_depth_gauge() {
        let meter = ActorMeter::new("test_kind");
        let before = meter.depth();
        let a = Envelope::new(&meter, ());
        let b = Envelope::new(&meter, ());
        assert_eq!(meter.depth(), before + 2);
        a.open();
        assert_eq!(meter.depth(), before + 1);
        drop(b);
        assert_eq!(meter.depth(), before);
        meter.restarted();
    }

    #[test]
    fn a_clock_bounds_the_age_of_the_oldest_waiting_message() {
        let meter = ActorMeter::for_instance("test_clock", Instance { id: 1, user: None });
        let clock = Arc::clone(meter.clock());
        assert_eq!(clock.oldest_age(Instant::now()), Duration::ZERO);
        let first = Envelope::new(&meter, ());
        let second = Envelope::new(&meter, ());
        let later = first.sent_at() + Duration::from_secs(3);
        let age = clock.oldest_age(later);
        // The clock counts whole microseconds.
        assert!(age >= Duration::from_millis(2_999), "{age:?}");
        // Handling the first: the oldest still waiting was sent no earlier than it.
        let _timer = meter.begin(second.sent_at());
        drop(first);
        assert_eq!(clock.depth(), 1);
        assert!(clock.oldest_age(later) <= age);
        drop(second);
        assert_eq!(clock.oldest_age(later), Duration::ZERO);
        let kinds = every_kind(later);
        let kind = kinds
            .iter()
            .find(|k| k.kind == "test_clock")
            .unwrap_or_else(|| panic!("the instance is registered: {kinds:?}"));
        assert_eq!((kind.actors, kind.depth), (1, 0));
        drop(kinds);
        drop(meter);
        drop(clock);
        assert!(
            every_kind(later)
                .iter()
                .all(|k| k.kind != "test_clock" || k.actors == 0)
        );
    }
}
