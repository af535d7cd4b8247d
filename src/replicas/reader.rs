//! A read's resolved route: the primary, or one replica with the primary behind it. Every query
//! is bounded by `DATABASE_READ_TIMEOUT_MS` as a whole; a replica that fails or does not answer
//! within half of it is taken out of rotation and the query is run on the primary with what is
//! left (reads are idempotent, so trying twice is safe).

use std::sync::Arc;
use std::time::Instant;

use aisocial_actors::db_error::ReadError;
use aisocial_actors::error_chain::Chain;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{READS, ReadRouting, Replica};
use crate::problem::ApiError;

/// Where a read goes.
pub struct Reader<'a> {
    routing: &'a ReadRouting,
    replica: Option<Arc<Replica>>,
    /// On the primary because no replica has replayed the reader's own last write yet.
    own_writes: bool,
}

impl<'a> Reader<'a> {
    pub(super) fn primary(routing: &'a ReadRouting) -> Self {
        Self {
            routing,
            replica: None,
            own_writes: false,
        }
    }

    /// On the primary so that the reader sees a write of theirs no replica has replayed.
    pub(super) fn own_writes(routing: &'a ReadRouting) -> Self {
        Self {
            own_writes: true,
            ..Self::primary(routing)
        }
    }

    pub(super) fn replica(routing: &'a ReadRouting, replica: Arc<Replica>) -> Self {
        Self {
            routing,
            replica: Some(replica),
            own_writes: false,
        }
    }

    /// The replica this reader uses, if any (for tests and logs).
    pub fn replica_name(&self) -> Option<&str> {
        self.replica.as_deref().map(|r| r.name.as_str())
    }

    /// Whether the reader must see a recent write of their own: a shared cache, which others
    /// may have filled from a replica, must not answer for it.
    pub fn needs_own_writes(&self) -> bool {
        self.own_writes
    }

    /// How long a shared cache may keep what this reader read: `fresh_secs` for the primary;
    /// for a replica about the lag bound, so that a value read before it replayed a change does
    /// not outlive the change by more than that.
    pub fn cache_ttl_secs(&self, fresh_secs: u64) -> u64 {
        if self.replica.is_none() {
            return fresh_secs;
        }
        self.routing
            .max_lag
            .as_secs()
            .saturating_add(1)
            .clamp(1, fresh_secs.max(1))
    }

    /// Runs `sql` on the route.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ApiError> {
        let deadline = self.routing.read_timeout;
        let started = Instant::now();
        // A replica that failed an earlier query of this reader (or anyone's) is not tried again.
        if let Some(replica) = self.replica.as_ref().filter(|r| r.in_rotation()) {
            match tokio::time::timeout(deadline / 2, run(&replica.pool, sql, params)).await {
                Ok(Ok(rows)) => {
                    READS.with_label_values(&["replica"]).inc();
                    return Ok(rows);
                }
                Ok(Err(e)) => replica.suspend(format!("a read failed: {}", Chain(&e))),
                Err(_) => replica.suspend(format!("a read took over {:?}", deadline / 2)),
            }
            READS.with_label_values(&["primary_fallback"]).inc();
        }
        let left = deadline.saturating_sub(started.elapsed());
        let rows = tokio::time::timeout(left, run(&self.routing.primary, sql, params))
            .await
            .unwrap_or(Err(ReadError::TimedOut(deadline)))?;
        Ok(rows)
    }
}

async fn run(
    pool: &aisocial_actors::store::ReadPool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, ReadError> {
    let conn = pool.get().await?;
    Ok(conn.query(sql, params).await?)
}
