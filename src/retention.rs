//! The event log's retention: on a schedule, records older than `EVENT_RETENTION_HOURS` are
//! deleted through the DbWriter, a bounded number per transaction, and the log's floor is
//! raised with them. A resume from below the floor answers `resync_required`; one from above it
//! is exact, whatever the records' age. Every node runs it; the deletes are idempotent.

use std::sync::LazyLock;
use std::time::Duration;

use aisocial_actors::db_writer::{DbWriter, PurgeEvents};
use aisocial_actors::meter::{self, MeteredAddr};
use prometheus::IntCounter;

/// Ids one purge transaction deletes at most (the writer's other commands wait behind it).
const PURGE_BATCH: i64 = 5_000;

static PURGED: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_event_log_purged_total",
        "Log records deleted because they were older than the retention window.",
    )
});

/// Purges every `every`, until the process ends.
pub fn spawn(writer: MeteredAddr<DbWriter>, retention: Duration, every: Duration) {
    LazyLock::force(&PURGED);
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            purge_all(&writer, retention).await;
        }
    });
}

/// Purges batch after batch while there is something older than the window.
async fn purge_all(writer: &MeteredAddr<DbWriter>, retention: Duration) {
    loop {
        let command = PurgeEvents {
            retention,
            max_rows: PURGE_BATCH,
        };
        match writer.send(command).await {
            Ok(Ok(0)) => return,
            Ok(Ok(purged)) => PURGED.inc_by(purged),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not purge old events; trying at the next tick");
                return;
            }
            Err(_) => return, // the writer stopped: shutting down
        }
    }
}
