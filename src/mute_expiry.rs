//! Timed mutes end by themselves: every [`SWEEP_EVERY`], each node asks the DbWriter to end the
//! mutes whose `until` has passed ([`ExpireMutes`]), a bounded number per transaction. Each end
//! is a `route.filter` record of the log, so live delivery resumes on every node at the same id,
//! and a resume agrees. Reads do not wait for the sweep: they hide only while
//! `until IS NULL OR until > now()`. The deletes are idempotent: nodes sweeping together end
//! each mute once.

use std::sync::LazyLock;
use std::time::Duration;

use aisocial_actors::db_writer::{DbWriter, ExpireMutes};
use aisocial_actors::meter::{self, MeteredAddr};
use prometheus::IntCounter;

/// How often each node sweeps: how late, at most (plus a commit), live delivery resumes after a
/// timed mute's end.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Mutes one transaction ends at most (the writer's other commands wait behind it).
const SWEEP_BATCH: i64 = 1_000;

static EXPIRED: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_mutes_expired_total",
        "Timed mutes ended by the sweep (each with its routing record).",
    )
});

/// Sweeps every `every`, until the process ends.
pub fn spawn(writer: MeteredAddr<DbWriter>, every: Duration) {
    LazyLock::force(&EXPIRED);
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sweep(&writer).await;
        }
    });
}

/// Ends batch after batch while passed mutes remain.
async fn sweep(writer: &MeteredAddr<DbWriter>) {
    loop {
        let command = ExpireMutes {
            max_rows: SWEEP_BATCH,
        };
        match writer.send(command).await {
            Ok(Ok(0)) => return,
            Ok(Ok(ended)) => {
                EXPIRED.inc_by(ended);
                if ended < SWEEP_BATCH.unsigned_abs() {
                    return;
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not end passed mutes; trying at the next tick");
                return;
            }
            Err(_) => return, // the writer stopped: shutting down
        }
    }
}
