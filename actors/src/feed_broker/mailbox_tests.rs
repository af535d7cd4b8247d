//! The broker's mailbox is bounded for every producer: while the broker is stalled, producers
//! that can wait (the DbWriter) wait, and the others shed and count, so its depth never passes
//! the capacity.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::BoxFuture;

use super::*;
use crate::committed::NoPublisher;
use crate::db_error::ReadError;
use crate::event_log::RangeRead;
use crate::follow_graph::FollowSnapshot;

pub(super) struct EmptyLog;

impl EventSource for EmptyLog {
    fn head(&self) -> BoxFuture<'static, Result<EventId, ReadError>> {
        Box::pin(async { Ok(EventId(0)) })
    }

    fn range(
        &self,
        _: EventId,
        _: EventId,
        _: usize,
    ) -> BoxFuture<'static, Result<RangeRead, ReadError>> {
        Box::pin(async { Ok(RangeRead::default()) })
    }
}

pub(super) struct NoFollows;

impl FollowGraph for NoFollows {
    fn load(
        &self,
        _: Vec<UserId>,
        _: EventId,
    ) -> BoxFuture<'static, Result<FollowSnapshot, ReadError>> {
        Box::pin(async { Ok(FollowSnapshot::default()) })
    }
}

async fn stalled_broker(stall: Duration, kind: &'static str) -> (MeteredAddr<FeedBroker>, Arbiter) {
    let arbiter = Arbiter::new();
    let broker = FeedBroker::start_in_arbiter(&arbiter.handle(), |_| {
        FeedBroker::new(
            Arc::new(NoFollows),
            Arc::new(EmptyLog),
            Arc::new(NoPublisher),
            BrokerConfig::default(),
        )
    });
    // A meter of its own, so that tests running at once do not share a depth.
    let broker = MeteredAddr::new(broker, crate::meter::ActorMeter::new(kind));
    // Started (its capacity set) before the stall.
    let _ = broker.send(GetOnline).await;
    // The broker's thread is asleep before anything is sent (not merely asked to sleep).
    let (asleep, stalled) = tokio::sync::oneshot::channel();
    arbiter.spawn(async move {
        let _ = asleep.send(());
        std::thread::sleep(stall);
    });
    let _ = stalled.await;
    (broker, arbiter)
}

fn remote() -> RemoteCommitted {
    RemoteCommitted {
        node: "elsewhere".into(),
        entries: Vec::new(),
        presence: Vec::new(),
        pushes: Vec::new(),
    }
}

#[actix::test]
async fn producers_that_cannot_wait_shed_past_the_capacity() {
    let (broker, arbiter) = stalled_broker(Duration::from_millis(500), "broker_test_shed").await;
    let queued = (0..MAILBOX_CAPACITY * 3)
        .filter(|_| offer_or_shed(&broker, remote(), "RemoteCommitted"))
        .count();
    assert!(queued <= MAILBOX_CAPACITY + 1, "queued {queued}");
    assert!(queued >= MAILBOX_CAPACITY / 2, "queued {queued}");
    assert!(broker.meter().depth() <= MAILBOX_CAPACITY as i64 + 2);
    // Once the broker runs again it takes messages again.
    let _ = broker.send(GetOnline).await;
    assert!(offer_or_shed(&broker, remote(), "RemoteCommitted"));
    arbiter.stop();
}

#[actix::test]
async fn the_writer_waits_for_room_instead() {
    let (broker, arbiter) = stalled_broker(Duration::from_millis(500), "broker_test_wait").await;
    let committed = broker.recipient::<Committed>();
    let depth = broker.meter().clone();
    let writer = actix::spawn(async move {
        let mut waited = 0u32;
        for _ in 0..MAILBOX_CAPACITY * 2 {
            let commit = Committed {
                entries: Vec::new(),
                committed_at: Instant::now(),
            };
            waited += committed.queue(commit).await.unwrap_or(0);
        }
        waited
    });
    let mut deepest = 0;
    while !writer.is_finished() {
        deepest = deepest.max(depth.depth());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waited = writer.await.unwrap_or(0);
    assert!(waited > 0, "the writer never had to wait");
    assert!(
        deepest <= MAILBOX_CAPACITY as i64 + 2,
        "depth reached {deepest}"
    );
    arbiter.stop();
}
