//! What every scenario shares besides the client (`aisocial-client` speaks the protocol):
//! open-loop schedules with late-send accounting, loss/duplicate/order checks, CPU time from
//! `/proc`, wall-clock stamps, and a small seeded random source.

use std::collections::HashSet;
use std::hash::Hash;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A send that started more than this after its scheduled time slipped the schedule.
pub const LATE_SEND_AFTER: Duration = Duration::from_millis(10);

/// Past this share of late sends a run measured the generator, not the server: it is invalid.
pub const MAX_LATE_SHARE: f64 = 0.001;

/// Wall-clock microseconds since the epoch (what goes into post bodies to be read back).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// An open-loop schedule: send `n` is due at `start + n / rate`, whether or not earlier sends
/// were answered. Latency is measured from that due time, so a stall is charged to the
/// server, never hidden by a generator that waited (no coordinated omission).
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    start: Instant,
    start_wall_micros: u64,
    interval: Duration,
}

/// One send's slot: when it was due and how late it actually started.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    pub due: Instant,
    /// `due` on the wall clock, in microseconds (for bodies read back by other tasks).
    pub due_wall_micros: u64,
    /// How long after `due` the send started.
    pub lag: Duration,
}

impl Schedule {
    /// `rate` sends a second from `start`, which may be in the past or the future (a rate ≤ 0
    /// is taken as one send in 1,000 s).
    pub fn new(start: Instant, rate: f64) -> Self {
        let (now, wall_now) = (Instant::now(), now_micros());
        let start_wall_micros = if start >= now {
            wall_now + micros_u64(start - now)
        } else {
            wall_now.saturating_sub(micros_u64(now - start))
        };
        Self {
            start,
            start_wall_micros,
            interval: Duration::from_secs_f64(1.0 / rate.max(0.001)),
        }
    }

    /// The same rate, shifted by `offset` (so several schedules do not fire together).
    pub fn shifted(self, offset: Duration) -> Self {
        Self {
            start: self.start + offset,
            start_wall_micros: self.start_wall_micros + micros_u64(offset),
            ..self
        }
    }

    /// Sends due strictly before `elapsed` from the start.
    pub fn sends_within(&self, elapsed: Duration) -> u64 {
        (elapsed.as_secs_f64() / self.interval.as_secs_f64()).ceil() as u64
    }

    /// When send `n` is due.
    pub fn due(&self, n: u64) -> Instant {
        self.start + self.interval.mul_f64(n as f64)
    }

    /// `due` on the wall clock, in microseconds.
    pub fn wall_micros(&self, due: Instant) -> u64 {
        self.start_wall_micros + micros_u64(due.saturating_duration_since(self.start))
    }

    /// Waits for send `n`'s due time (not at all when already past it) and says how late the
    /// wait ended.
    pub async fn wait_for(&self, n: u64) -> Slot {
        let due = self.due(n);
        tokio::time::sleep_until(due.into()).await;
        Slot {
            due,
            due_wall_micros: self.wall_micros(due),
            lag: Instant::now().saturating_duration_since(due),
        }
    }
}

fn micros_u64(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Counts sends and those that started late; past [`MAX_LATE_SHARE`] the run is invalid.
#[derive(Clone, Copy, Debug, Default)]
pub struct LateSends {
    pub sends: u64,
    pub late: u64,
    /// The worst lag seen, in microseconds.
    pub worst_lag_micros: u64,
}

impl LateSends {
    pub fn record(&mut self, lag: Duration) {
        self.sends += 1;
        self.worst_lag_micros = self.worst_lag_micros.max(micros_u64(lag));
        if lag > LATE_SEND_AFTER {
            self.late += 1;
        }
    }

    pub fn merge(&mut self, other: &LateSends) {
        self.sends += other.sends;
        self.late += other.late;
        self.worst_lag_micros = self.worst_lag_micros.max(other.worst_lag_micros);
    }

    /// The share of sends that started late (0 without sends).
    pub fn share(&self) -> f64 {
        if self.sends == 0 {
            0.0
        } else {
            self.late as f64 / self.sends as f64
        }
    }

    /// Whether the generator kept its schedule well enough for the run to mean anything.
    pub fn validity(&self) -> Validity {
        if self.share() > MAX_LATE_SHARE {
            Validity {
                valid: false,
                invalid_reason: Some(format!(
                    "{} of {} sends ({:.2}%) started more than {} ms after their scheduled time (limit {:.1}%, worst {:.1} ms): the generator could not keep the schedule, so the latencies measure the client",
                    self.late,
                    self.sends,
                    self.share() * 100.0,
                    LATE_SEND_AFTER.as_millis(),
                    MAX_LATE_SHARE * 100.0,
                    self.worst_lag_micros as f64 / 1000.0
                )),
            }
        } else {
            Validity {
                valid: true,
                invalid_reason: None,
            }
        }
    }
}

/// Whether a run's figures can be believed, and why not.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Validity {
    pub valid: bool,
    pub invalid_reason: Option<String>,
}

impl Validity {
    /// Prints the loud line of an invalid run (nothing for a valid one).
    pub fn shout(&self, scenario: &str) {
        if let Some(reason) = &self.invalid_reason {
            println!("{scenario}: *** INVALID RUN *** {reason}");
        }
    }
}

/// What one observation on a stream of durable events was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// New, with an id above every id before it.
    InOrder,
    /// Seen before (counted as a duplicate, not also as out of order).
    Duplicate,
    /// New, but its id is not above the highest id seen before it.
    OutOfOrder,
}

/// Checks one recipient's durable events (across reconnects): every event identified by a
/// `key` (a post, a sequence number) must come once, with ids strictly increasing.
#[derive(Debug)]
pub struct StreamCheck<K> {
    last_id: i64,
    seen: HashSet<K>,
    pub deliveries: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

impl<K: Eq + Hash> Default for StreamCheck<K> {
    fn default() -> Self {
        Self {
            last_id: i64::MIN,
            seen: HashSet::new(),
            deliveries: 0,
            duplicated: 0,
            out_of_order: 0,
        }
    }
}

impl<K: Eq + Hash> StreamCheck<K> {
    pub fn observe(&mut self, id: i64, key: K) -> Observed {
        self.deliveries += 1;
        let fresh = self.seen.insert(key);
        let in_order = id > self.last_id;
        self.last_id = self.last_id.max(id);
        if !fresh {
            self.duplicated += 1;
            Observed::Duplicate
        } else if !in_order {
            self.out_of_order += 1;
            Observed::OutOfOrder
        } else {
            Observed::InOrder
        }
    }

    /// The highest durable id seen (the `since` to resume from).
    pub fn last_id(&self) -> Option<i64> {
        (self.last_id != i64::MIN).then_some(self.last_id)
    }

    /// How many of `expected` never came.
    pub fn missing<'a>(&self, expected: impl IntoIterator<Item = &'a K>) -> u64
    where
        K: 'a,
    {
        expected
            .into_iter()
            .filter(|k| !self.seen.contains(k))
            .count() as u64
    }
}

/// CPU seconds (user + system) a process on this machine has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    cpu_seconds_in(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds this process has used.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds_in(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn cpu_seconds_in(stat: &str) -> Option<f64> {
    // Fields after the command name (which may hold spaces) start after the last ')'; utime
    // and stime are the 14th and 15th, in clock ticks (100 a second on Linux).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// A small seeded random source (splitmix64): the same seed, the same run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform fraction in `[0, 1)` (53 random bits).
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// The index of a weight, chosen in proportion to the weights.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut point = self.next_u64() % total.max(1);
        for (index, &weight) in weights.iter().enumerate() {
            if point < u64::from(weight) {
                return index;
            }
            point -= u64::from(weight);
        }
        weights.len().saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_check_tells_duplicates_reordering_and_loss_apart() {
        let mut check = StreamCheck::<u64>::default();
        assert_eq!(check.last_id(), None);
        assert_eq!(check.observe(10, 1), Observed::InOrder);
        assert_eq!(check.observe(12, 2), Observed::InOrder);
        // The same post again, whatever its id: a duplicate, not also out of order.
        assert_eq!(check.observe(12, 2), Observed::Duplicate);
        assert_eq!(check.observe(9, 1), Observed::Duplicate);
        // A new post under an id not above the last: out of order.
        assert_eq!(check.observe(11, 3), Observed::OutOfOrder);
        assert_eq!(check.observe(13, 4), Observed::InOrder);
        assert_eq!(check.deliveries, 6);
        assert_eq!(check.duplicated, 2);
        assert_eq!(check.out_of_order, 1);
        assert_eq!(check.last_id(), Some(13));
        assert_eq!(check.missing(&[1, 2, 3, 4, 5, 6]), 2);
    }

    #[test]
    fn a_schedule_is_open_loop_and_late_sends_are_counted() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 100.0);
        assert_eq!(schedule.due(0), start);
        assert_eq!(schedule.due(100), start + Duration::from_secs(1));
        assert_eq!(schedule.sends_within(Duration::from_secs(2)), 200);
        assert_eq!(schedule.sends_within(Duration::from_millis(15)), 2);
        let wall = schedule.wall_micros(schedule.due(50));
        assert_eq!(wall - schedule.wall_micros(start), 500_000);
        let shifted = schedule.shifted(Duration::from_millis(3));
        assert_eq!(shifted.due(1), start + Duration::from_millis(13));

        let mut late = LateSends::default();
        for _ in 0..999 {
            late.record(Duration::from_millis(2));
        }
        late.record(Duration::from_millis(11));
        assert_eq!((late.sends, late.late), (1000, 1));
        assert!(late.validity().valid, "exactly 0.1% late is still valid");
        late.record(Duration::from_millis(50));
        let validity = late.validity();
        assert!(!validity.valid);
        assert!(
            validity
                .invalid_reason
                .as_deref()
                .is_some_and(|r| r.contains("2 of 1001")),
            "{validity:?}"
        );
        assert_eq!(late.worst_lag_micros, 50_000);
        let mut total = LateSends::default();
        total.merge(&late);
        total.merge(&late);
        assert_eq!((total.sends, total.late), (2002, 4));
        assert!(LateSends::default().validity().valid);
    }

    #[tokio::test]
    async fn waiting_for_a_slot_in_the_past_returns_at_once_with_its_lag() {
        let start = Instant::now() - Duration::from_millis(100);
        let schedule = Schedule::new(start, 1000.0);
        let slot = schedule.wait_for(0).await;
        assert!(slot.lag >= Duration::from_millis(100));
        let slot = schedule.wait_for(150).await;
        assert!(slot.lag < Duration::from_millis(10), "{:?}", slot.lag);
    }

    #[test]
    fn proc_stat_is_read() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0";
        assert_eq!(cpu_seconds_in(stat), Some(4.0));
    }

    #[test]
    fn the_random_source_is_seeded_and_weighted() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.next_u64(), b.next_u64());
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[a.weighted(&[1, 0, 9])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((800..1200).contains(&counts[0]), "{counts:?}");
        assert_eq!(a.below(0), 0);
        assert!(a.below(3) < 3);
    }
}
