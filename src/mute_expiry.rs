//! Timed mutes end by themselves: every [`SWEEP_EVERY`], each node looks (one read of the
//! primary through `mutes_until_idx`) for mutes whose `until` has passed and, only if there
//! are, asks the DbWriter to end them ([`ExpireMutes`]), a bounded number per transaction. Each end
//! is a `route.filter` record of the log, so live delivery resumes on every node at the same id,
//! and a resume agrees. Reads do not wait for the sweep: they hide only while
//! `until IS NULL OR until > now()`. The deletes are idempotent: nodes sweeping together end
//! each mute once.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aisocial_actors::db_writer::{DbWriter, ExpireMutes};
use aisocial_actors::meter::{self, MeteredAddr};
use prometheus::IntCounter;

use crate::replicas::ReadRouting;

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

/// Whether a mute has passed its end (the DbWriter is asked only then).
const ANY_PASSED: &str =
    "SELECT EXISTS (SELECT 1 FROM mutes WHERE until IS NOT NULL AND until <= now())";

/// Sweeps every `every`, until the process ends.
pub fn spawn(writer: MeteredAddr<DbWriter>, reads: Arc<ReadRouting>, every: Duration) {
    LazyLock::force(&EXPIRED);
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if any_passed(&reads).await {
                sweep(&writer).await;
            }
        }
    });
}

/// A failed look is a quiet "no": the next tick looks again.
async fn any_passed(reads: &ReadRouting) -> bool {
    match crate::reads::query(reads, ANY_PASSED, &[]).await {
        Ok(rows) => rows
            .first()
            .and_then(|row| row.try_get::<_, bool>(0).ok())
            .unwrap_or(false),
        Err(e) => {
            tracing::debug!(error = %e, "could not look for passed mutes");
            false
        }
    }
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
