//! The FeedBroker's event log read from a replica (`EVENT_LOG_READS=replica`): in a region far
//! from the primary, events written elsewhere arrive through the local replica. A replica shows
//! a prefix of the log (it replays commits in order, and ids are dense in commit order), and a
//! range read covers ids only up to the head of the same snapshot, so a gap it cannot fill yet
//! stays open until it has replayed further, never skipped. With no
//! replica in rotation, or when one fails, the primary answers.

use std::sync::Arc;

use aisocial_actors::db_error::ReadError;
use aisocial_actors::error_chain::Chain;
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

    /// A replica in rotation (if any), and the primary.
    fn pools(&self) -> (Option<ReadPool>, ReadPool) {
        let replica = self
            .routing
            .pick(Lsn::default())
            .map(|replica| replica.pool.clone());
        (replica, self.routing.primary().clone())
    }
}

/// Runs `read` on the replica, and on the primary when the replica fails (or there is none).
async fn first_answer<T, F>(
    (replica, primary): (Option<ReadPool>, ReadPool),
    read: F,
) -> Result<T, ReadError>
where
    F: for<'c> Fn(&'c tokio_postgres::Client) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>,
{
    let attempt = |pool: ReadPool| {
        let read = &read;
        async move {
            let conn = pool.get().await?;
            Ok::<_, ReadError>(read(&conn).await?)
        }
    };
    if let Some(replica) = replica {
        match attempt(replica).await {
            Ok(value) => return Ok(value),
            Err(e) => {
                tracing::debug!(error = %Chain(&e), "a replica could not read the event log; asking the primary");
            }
        }
    }
    attempt(primary).await
}

impl EventSource for ReplicaEventSource {
    fn head(&self) -> BoxFuture<'static, Result<EventId, ReadError>> {
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
    ) -> BoxFuture<'static, Result<RangeRead, ReadError>> {
        let pools = self.pools();
        Box::pin(first_answer(pools, move |client| {
            Box::pin(event_log::range(client, from, to, max_rows))
        }))
    }
}
