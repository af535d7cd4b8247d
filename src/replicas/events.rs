//! The FeedBroker's event log read from a replica (`EVENT_LOG_READS=replica`): in a region far
//! from the primary, events written elsewhere arrive through the local replica. A replica shows
//! a prefix of the log (it replays commits in order, and ids are dense in commit order), and a
//! range read covers ids only up to the head of the same snapshot, so a gap it cannot fill yet
//! stays open until it has replayed further, never skipped. With no
//! replica in rotation, or when one fails, the primary answers.

use std::sync::Arc;

use aisocial_actors::event_log::{self, EventSource, RangeRead};
use aisocial_actors::ids::EventId;
use aisocial_actors::lsn::Lsn;
use aisocial_actors::store::ReadPool;
use futures_util::future::BoxFuture;

use super::ReadRouting;

pub struct ReplicaEventSource {
    routing: Arc<ReadRouting>,
}

impl ReplicaEventSource {
    pub fn new(routing: Arc<ReadRouting>) -> Self {
        Self { routing }
    }

    /// A replica in rotation, else the primary.
    fn pools(&self) -> Vec<ReadPool> {
        let mut pools = Vec::with_capacity(2);
        if let Some(replica) = self.routing.pick(Lsn::default()) {
            pools.push(replica.pool.clone());
        }
        pools.push(self.routing.primary().clone());
        pools
    }
}

/// Runs `read` on each pool in turn until one answers.
async fn first_answer<T, F>(pools: Vec<ReadPool>, read: F) -> Result<T, String>
where
    F: for<'c> Fn(&'c tokio_postgres::Client) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>,
{
    let mut last = String::from("no pool");
    for pool in pools {
        let attempt = async {
            let conn = pool.get().await.map_err(|e| e.to_string())?;
            read(&conn).await.map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(value) => return Ok(value),
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl EventSource for ReplicaEventSource {
    fn head(&self) -> BoxFuture<'static, Result<EventId, String>> {
        let pools = self.pools();
        Box::pin(first_answer(pools, |client| {
            Box::pin(event_log::head(client))
        }))
    }

    fn range(
        &self,
        from: EventId,
        to: EventId,
        max_rows: usize,
    ) -> BoxFuture<'static, Result<RangeRead, String>> {
        let pools = self.pools();
        Box::pin(first_answer(pools, move |client| {
            Box::pin(event_log::range(client, from, to, max_rows))
        }))
    }
}
