//! Replication lag in time, from WAL positions: the primary's position is sampled on every
//! check, and a replica is as far behind as the oldest sample it has not replayed yet.
//!
//! Why not `now() - pg_last_xact_replay_timestamp()` on the replica: on an idle primary that
//! grows without bound although the replica is fully caught up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use aisocial_actors::lsn::Lsn;

/// Recent samples of the primary's WAL position, oldest first.
#[derive(Debug, Default)]
pub struct PrimaryHistory {
    samples: VecDeque<(Instant, Lsn)>,
}

/// How far one replica is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Since the primary first had WAL the replica has not replayed (zero when caught up with
    /// the newest sample); at least `time` when the history does not reach back far enough.
    pub time: Duration,
    /// WAL bytes between the newest sample and the replica's replay position.
    pub bytes: u64,
}

impl PrimaryHistory {
    /// How long samples are kept: lags beyond it read as "at least this long".
    pub const KEEP: Duration = Duration::from_secs(300);

    /// Records the primary's position at `at` (samples must come in time order).
    pub fn record(&mut self, at: Instant, lsn: Lsn) {
        // A position that did not move adds nothing: the first sample at it is what counts.
        if self.samples.back().is_some_and(|&(_, last)| last >= lsn) {
            return;
        }
        self.samples.push_back((at, lsn));
        while self
            .samples
            .front()
            .is_some_and(|&(t, _)| at.saturating_duration_since(t) > Self::KEEP)
        {
            self.samples.pop_front();
        }
    }

    /// The newest sample, if any.
    pub fn newest(&self) -> Option<Lsn> {
        self.samples.back().map(|&(_, lsn)| lsn)
    }

    /// The lag of a replica that has replayed up to `replayed`, as of `now`; `None` before the
    /// first sample of the primary.
    pub fn lag_of(&self, replayed: Lsn, now: Instant) -> Option<Lag> {
        let newest = self.newest()?;
        if replayed >= newest {
            return Some(Lag {
                time: Duration::ZERO,
                bytes: 0,
            });
        }
        // The first moment the primary had a position beyond the replay: since then the
        // replica has been missing something.
        let behind_since = self
            .samples
            .iter()
            .find(|&&(_, lsn)| lsn > replayed)
            .map_or(now, |&(t, _)| t);
        Some(Lag {
            time: now.saturating_duration_since(behind_since),
            bytes: newest.bytes_after(replayed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_replica_at_the_newest_position_has_no_lag_however_idle_the_primary() {
        let t0 = Instant::now();
        let mut history = PrimaryHistory::default();
        history.record(t0, Lsn(100));
        let lag = history.lag_of(Lsn(100), t0 + Duration::from_secs(120));
        assert_eq!(
            lag,
            Some(Lag {
                time: Duration::ZERO,
                bytes: 0
            })
        );
    }

    #[test]
    fn lag_counts_from_the_first_sample_the_replica_has_not_replayed() {
        let t0 = Instant::now();
        let mut history = PrimaryHistory::default();
        history.record(t0, Lsn(100));
        history.record(t0 + ms(250), Lsn(200));
        history.record(t0 + ms(500), Lsn(300));
        history.record(t0 + ms(750), Lsn(300)); // idle: adds nothing
        let now = t0 + ms(1000);
        assert_eq!(
            history.lag_of(Lsn(150), now),
            Some(Lag {
                time: ms(750),
                bytes: 150
            })
        );
        assert_eq!(
            history.lag_of(Lsn(200), now),
            Some(Lag {
                time: ms(500),
                bytes: 100
            })
        );
        assert_eq!(history.lag_of(Lsn(10), now).map(|l| l.time), Some(ms(1000)));
    }

    #[test]
    fn nothing_is_known_before_the_first_sample_and_old_samples_are_forgotten() {
        let t0 = Instant::now();
        let mut history = PrimaryHistory::default();
        assert_eq!(history.lag_of(Lsn(1), t0), None);
        history.record(t0, Lsn(10));
        history.record(t0 + PrimaryHistory::KEEP + ms(1), Lsn(20));
        assert_eq!(history.samples.len(), 1);
        assert_eq!(history.newest(), Some(Lsn(20)));
    }
}
