//! A socket of a revoked sign-in session is refused at `Connect`: the revocation may have come
//! between the upgrade's check and the registration, when its `CloseFamily` found nothing to
//! close.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::mailbox_tests::{EmptyLog, NoFollows};
use super::*;
use crate::committed::NoPublisher;
use crate::meter::ActorMeter;

/// Stands in for a Session: records the closes it is told.
struct Probe {
    meter: ActorMeter,
    closes: Arc<Mutex<Vec<u16>>>,
}

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Probe {
    type Result = ();
    fn handle(&mut self, _: Deliver, _: &mut Context<Self>) {}
}
metered_handler!(Probe, Deliver);

impl Handler<CloseSession> for Probe {
    type Result = ();
    fn handle(&mut self, msg: CloseSession, _: &mut Context<Self>) {
        if let Ok(mut closes) = self.closes.lock() {
            closes.push(msg.code);
        }
    }
}
metered_handler!(Probe, CloseSession);

/// Answered after everything sent to the probe before it.
#[derive(Message)]
#[rtype(result = "()")]
struct Flush;

impl Handler<Flush> for Probe {
    type Result = ();
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) {}
}

/// Connects a probe; answers what it was told once the broker has answered the `Connect`.
async fn connect(broker: &Addr<FeedBroker>, session: u64, family: i64) -> Vec<u16> {
    let closes = Arc::new(Mutex::new(Vec::new()));
    let meter = ActorMeter::new("revocation_probe");
    let probe = Probe {
        meter: meter.clone(),
        closes: Arc::clone(&closes),
    }
    .start();
    let metered = MeteredAddr::new(probe.clone(), meter);
    broker
        .send(Connect {
            session: SessionId(session),
            user: UserId(1),
            handle: "ann".into(),
            family: Some(family),
            deliver: metered.recipient(),
            close: metered.recipient(),
            backlog: Backlog::new(),
        })
        .await
        .expect("the broker answers");
    // Whatever the broker sent the probe while registering it is in its mailbox before this.
    probe.send(Flush).await.expect("the probe answers");
    closes.lock().map(|c| c.clone()).unwrap_or_default()
}

#[actix::test]
async fn a_revoked_family_is_refused_at_connect() {
    let revoked = Arc::new(RevokedFamilies::default());
    revoked.insert(5, Instant::now() + Duration::from_secs(60));
    let config = BrokerConfig {
        revoked: Arc::clone(&revoked),
        ..BrokerConfig::default()
    };
    let broker = FeedBroker::new(
        Arc::new(NoFollows),
        Arc::new(EmptyLog),
        Arc::new(NoPublisher),
        config,
    )
    .start();
    let refused = connect(&broker, 1, 5).await;
    let admitted = connect(&broker, 2, 6).await;
    let online = broker.send(GetOnline).await.expect("the broker answers");
    assert_eq!(refused, vec![1008]);
    assert!(admitted.is_empty());
    assert_eq!(
        online.sessions, 1,
        "only the session of the live family registered"
    );
}
