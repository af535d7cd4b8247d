//! The replica check loop: every `DATABASE_READ_CHECK_MS` it reads the primary's WAL position
//! and each replica's replay position, works out each replica's lag, and puts it in or takes it
//! out of rotation. A replica is in rotation only while it answers, is still a standby, and lags
//! at most `DATABASE_READ_MAX_LAG_MS`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use aisocial_actors::db_error::ReadError;
use aisocial_actors::error_chain::Chain;
use aisocial_actors::lsn::Lsn;
use aisocial_actors::meter;
use aisocial_actors::store::ReadPool;
use prometheus::IntGaugeVec;

use super::lag::PrimaryHistory;
use super::{ReadRouting, Replica};

static LAG_MS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    meter::labelled_gauge(
        "aisocial_db_replica_lag_milliseconds",
        "How long each read replica has been missing WAL the primary had (0 when caught up).",
        &["replica"],
    )
});
static LAG_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    meter::labelled_gauge(
        "aisocial_db_replica_lag_bytes",
        "WAL bytes between the primary's position and each read replica's replay position.",
        &["replica"],
    )
});
static IN_ROTATION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    meter::labelled_gauge(
        "aisocial_db_replica_in_rotation",
        "1 while a read replica takes reads, 0 while it is out (lagging, failing, promoted).",
        &["replica"],
    )
});

/// A check waits at most this long for an answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// What one check of a replica found.
enum Finding {
    /// Replayed up to here, still in recovery.
    Standby(Lsn),
    Problem(String),
}

/// Starts the loop; it ends when the routing is dropped.
pub fn spawn(routing: &Arc<ReadRouting>, max_lag: Duration, every: Duration) {
    if !routing.has_replicas() {
        return;
    }
    for replica in routing.replicas() {
        LAG_MS.with_label_values(&[&replica.name]).set(0);
        LAG_BYTES.with_label_values(&[&replica.name]).set(0);
        IN_ROTATION.with_label_values(&[&replica.name]).set(0);
    }
    let routing: Weak<ReadRouting> = Arc::downgrade(routing);
    actix_rt::spawn(async move {
        let mut history = PrimaryHistory::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(routing) = routing.upgrade() else {
                return;
            };
            check_once(&routing, &mut history, max_lag).await;
        }
    });
}

async fn check_once(routing: &ReadRouting, history: &mut PrimaryHistory, max_lag: Duration) {
    let replicas = routing.replicas();
    let (primary, findings) = tokio::join!(
        primary_position(routing.primary()),
        futures_util::future::join_all(replicas.iter().map(|r| replica_position(&r.pool)))
    );
    let now = Instant::now();
    match primary {
        Ok(lsn) => history.record(now, lsn),
        // The replicas' lag is then judged against the last position seen (reads may go on
        // from a caught-up replica while the primary is away).
        Err(e) => tracing::debug!(error = %Chain(&e), "cannot read the primary's WAL position"),
    }
    for (replica, finding) in replicas.iter().zip(findings) {
        judge(replica, finding, history, now, max_lag);
    }
}

fn judge(
    replica: &Replica,
    finding: Finding,
    history: &PrimaryHistory,
    now: Instant,
    max_lag: Duration,
) {
    let verdict = match finding {
        Finding::Problem(why) => Err(why),
        Finding::Standby(replayed) => {
            replica.replayed.fetch_max(replayed.0, Ordering::AcqRel);
            match history.lag_of(replayed, now) {
                None => Err("the primary's WAL position is not known yet".to_owned()),
                Some(lag) => {
                    let ms = u64::try_from(lag.time.as_millis()).unwrap_or(u64::MAX);
                    replica.lag_ms.store(ms, Ordering::Relaxed);
                    replica.lag_bytes.store(lag.bytes, Ordering::Relaxed);
                    LAG_MS
                        .with_label_values(&[&replica.name])
                        .set(i64::try_from(ms).unwrap_or(i64::MAX));
                    LAG_BYTES
                        .with_label_values(&[&replica.name])
                        .set(i64::try_from(lag.bytes).unwrap_or(i64::MAX));
                    if lag.time > max_lag {
                        Err(format!(
                            "lagging {} ms ({} bytes) behind the primary",
                            ms, lag.bytes
                        ))
                    } else {
                        Ok(())
                    }
                }
            }
        }
    };
    let was = replica.in_rotation();
    let mut error = replica.error.lock().unwrap_or_else(PoisonError::into_inner);
    match verdict {
        Ok(()) => {
            *error = None;
            replica.in_rotation.store(true, Ordering::Release);
            if !was {
                tracing::info!(replica = %replica.name, "read replica in rotation");
            }
        }
        Err(why) => {
            replica.in_rotation.store(false, Ordering::Release);
            if was {
                tracing::warn!(replica = %replica.name, reason = %why, "read replica out of rotation");
            }
            *error = Some(why);
        }
    }
    IN_ROTATION
        .with_label_values(&[&replica.name])
        .set(i64::from(replica.in_rotation()));
}

/// Why the primary's WAL position could not be had.
#[derive(Debug, thiserror::Error)]
enum PositionError {
    #[error("the primary could not be read")]
    Read(#[from] ReadError),
    #[error("an unreadable WAL position {0:?}")]
    Unreadable(String),
}

async fn primary_position(pool: &ReadPool) -> Result<Lsn, PositionError> {
    let read = async {
        let conn = pool.get().await.map_err(ReadError::from)?;
        let row = conn
            .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
            .await
            .map_err(ReadError::from)?;
        let text: String = row.try_get(0).map_err(ReadError::from)?;
        Lsn::parse(&text).ok_or(PositionError::Unreadable(text))
    };
    tokio::time::timeout(CHECK_TIMEOUT, read)
        .await
        .unwrap_or(Err(PositionError::Read(ReadError::TimedOut(CHECK_TIMEOUT))))
}

async fn replica_position(pool: &ReadPool) -> Finding {
    let read = async {
        let conn = pool.get().await?;
        let row = conn
            .query_one(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text",
                &[],
            )
            .await?;
        let in_recovery: bool = row.try_get(0)?;
        let replayed: Option<String> = row.try_get(1)?;
        Ok::<_, ReadError>((in_recovery, replayed))
    };
    match tokio::time::timeout(CHECK_TIMEOUT, read).await {
        Err(_) => Finding::Problem(format!("no answer within {CHECK_TIMEOUT:?}")),
        Ok(Err(e)) => Finding::Problem(format!("unreachable: {}", Chain(&e))),
        Ok(Ok((false, _))) => {
            Finding::Problem("not a standby (promoted, or not a replica at all)".into())
        }
        Ok(Ok((true, None))) => Finding::Problem("a standby that replays no WAL".into()),
        Ok(Ok((true, Some(text)))) => match Lsn::parse(&text) {
            Some(lsn) => Finding::Standby(lsn),
            None => Finding::Problem(format!("an unreadable replay position {text:?}")),
        },
    }
}
