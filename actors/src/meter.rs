//! Metering for every actor: mailbox depth, messages handled, time waiting in the mailbox and
//! time handling, exported through the process-wide Prometheus registry.
//!
//! Senders wrap a message in an [`Envelope`] (through [`MeteredAddr`] or [`Envelope::new`]); the
//! envelope counts itself into the mailbox-depth gauge when created and out when it is handled
//! or dropped unhandled, and remembers when it was sent. Actors handle envelopes through the
//! [`metered_handler!`](crate::metered_handler) macro, which records wait and handling time and
//! then calls the actor's plain `Handler<M>`.

use std::sync::LazyLock;
use std::time::Instant;

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

/// The metric series of one actor kind, resolved once so the hot path does no label lookup.
#[derive(Clone)]
pub struct ActorMeter {
    kind: &'static str,
    depth: prometheus::IntGauge,
    wait: prometheus::Histogram,
    handle: prometheus::Histogram,
}

impl ActorMeter {
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            depth: MAILBOX_DEPTH.with_label_values(&[kind]),
            wait: MAILBOX_WAIT.with_label_values(&[kind]),
            handle: HANDLE_TIME.with_label_values(&[kind]),
        }
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

/// Takes one envelope out of the depth gauge when dropped: handled or dropped unhandled alike.
struct DepthGuard(prometheus::IntGauge);

impl Drop for DepthGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl<M> Envelope<M> {
    pub fn new(meter: &ActorMeter, msg: M) -> Self {
        meter.depth.inc();
        Self {
            msg,
            sent_at: Instant::now(),
            _depth: DepthGuard(meter.depth.clone()),
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
}
