//! [`Recorder`]: what a run observes, live (atomic counters for the progress line) and per
//! second (a count, an error count and a latency histogram for each second, for the charts).

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Per-second and running latency: 1 µs to 60 s, two significant digits (1 %), 20 KiB each.
#[expect(clippy::expect_used, reason = "the bounds are valid constants")]
fn coarse_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds")
}

/// No gauge value yet.
const UNSET: i64 = i64::MIN;

/// The shared recorder of one measured stream of operations (posts acknowledged, deliveries,
/// handshakes...): cheap to clone (an `Arc`), safe from any task or thread. Each thread
/// records into its own shard (a mutex no other thread normally takes), so recording costs a
/// clock read, an uncontended lock and two histogram increments.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    origin: Instant,
    origin_unix_micros: u64,
    ops: AtomicU64,
    errors: AtomicU64,
    /// The latest observation, in µs after the origin.
    last_micros: AtomicU64,
    open: AtomicI64,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    seconds: Vec<Second>,
    running: Option<Histogram<u64>>,
}

#[derive(Default)]
struct Second {
    ops: u64,
    errors: u64,
    latency: Option<Histogram<u64>>,
}

/// What a [`Recorder`] has counted so far (for the progress line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Live {
    pub ops: u64,
    pub errors: u64,
    /// The gauge set with [`Recorder::set_open`] / [`Recorder::add_open`], if ever.
    pub open: Option<i64>,
    /// Latency percentiles of everything recorded so far, in ms (two significant digits).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One second of a series: operations and errors counted in it and its latency percentiles
/// (`None` in a second without latency observations).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Seconds since the recorder started (this point covers `[second, second + 1)`).
    pub second: u64,
    /// How much of that second the recording covered: 1, but for the last point, which ends
    /// with the last observation (so its rate is `ops / covered`, not a drop at the end).
    pub covered: f64,
    pub ops: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// A recorder's per-second series, as reports carry it.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub name: String,
    /// When the recorder started, in seconds after the run started.
    pub offset_seconds: f64,
    pub ops: u64,
    pub errors: u64,
    pub points: Vec<Point>,
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Recorder {
    /// A recorder whose second 0 starts now; `name` labels its series in charts and reports.
    pub fn new(name: &str) -> Self {
        Self::starting_at(name, Instant::now())
    }

    /// A recorder whose second 0 starts at `origin`.
    pub fn starting_at(name: &str, origin: Instant) -> Self {
        let shards = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .clamp(1, 16);
        let since = Instant::now().saturating_duration_since(origin);
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                origin,
                origin_unix_micros: unix_micros()
                    .saturating_sub(u64::try_from(since.as_micros()).unwrap_or(0)),
                ops: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                last_micros: AtomicU64::new(0),
                open: AtomicI64::new(UNSET),
                shards: (0..shards).map(|_| Mutex::default()).collect(),
            }),
        }
    }

    #[allow(dead_code, reason = "the reporting API for every scenario")]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The instant second 0 starts.
    #[allow(dead_code, reason = "the reporting API for every scenario")]
    pub fn origin(&self) -> Instant {
        self.inner.origin
    }

    /// One successful operation that took `latency_micros`, counted in the current second.
    pub fn ok(&self, latency_micros: u64) {
        self.ok_at(Instant::now(), latency_micros);
    }

    /// One successful operation that took `latency_micros`, counted in the second of `at`.
    pub fn ok_at(&self, at: Instant, latency_micros: u64) {
        self.inner.ops.fetch_add(1, Ordering::Relaxed);
        self.with_second(at, |second, running| {
            second.ops += 1;
            let value = latency_micros.max(1);
            second
                .latency
                .get_or_insert_with(coarse_histogram)
                .saturating_record(value);
            running
                .get_or_insert_with(coarse_histogram)
                .saturating_record(value);
        });
    }

    /// [`Recorder::ok_at`] for an instant given as microseconds since the Unix epoch (as
    /// another process on this machine reports it).
    pub fn ok_at_unix_micros(&self, at_unix_micros: u64, latency_micros: u64) {
        let after =
            Duration::from_micros(at_unix_micros.saturating_sub(self.inner.origin_unix_micros));
        self.ok_at(self.inner.origin + after, latency_micros);
    }

    /// `n` successful operations without a latency (counted in the current second).
    #[allow(dead_code, reason = "the reporting API for every scenario")]
    pub fn ops(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.inner.ops.fetch_add(n, Ordering::Relaxed);
        self.with_second(Instant::now(), |second, _| second.ops += n);
    }

    /// One failed operation (counted in the current second).
    pub fn error(&self) {
        self.errors(1);
    }

    /// `n` failed operations (counted in the current second).
    pub fn errors(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.inner.errors.fetch_add(n, Ordering::Relaxed);
        self.with_second(Instant::now(), |second, _| second.errors += n);
    }

    /// Sets the gauge the progress line shows as `open` (connections, sessions, callers).
    pub fn set_open(&self, n: i64) {
        self.inner.open.store(n, Ordering::Relaxed);
    }

    /// Moves the `open` gauge by `delta` (from 0 if it was never set).
    pub fn add_open(&self, delta: i64) {
        let _ = self
            .inner
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(if v == UNSET { delta } else { v + delta })
            });
    }

    fn with_second(&self, at: Instant, f: impl FnOnce(&mut Second, &mut Option<Histogram<u64>>)) {
        let after = at.saturating_duration_since(self.inner.origin);
        let index = usize::try_from(after.as_secs()).unwrap_or(usize::MAX);
        let after_micros = u64::try_from(after.as_micros()).unwrap_or(u64::MAX);
        self.inner
            .last_micros
            .fetch_max(after_micros, Ordering::Relaxed);
        let shards = &self.inner.shards;
        let mut shard = shards[shard_index() % shards.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let shard = &mut *shard;
        if shard.seconds.len() <= index {
            shard.seconds.resize_with(index + 1, Second::default);
        }
        f(&mut shard.seconds[index], &mut shard.running);
    }

    /// The counters and running percentiles (merges the shards' running histograms).
    pub fn live(&self) -> Live {
        let mut running: Option<Histogram<u64>> = None;
        for shard in &self.inner.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(h) = &shard.running {
                let _ = running.get_or_insert_with(coarse_histogram).add(h);
            }
        }
        let open = self.inner.open.load(Ordering::Relaxed);
        Live {
            ops: self.inner.ops.load(Ordering::Relaxed),
            errors: self.inner.errors.load(Ordering::Relaxed),
            open: (open != UNSET).then_some(open),
            p50_ms: running.as_ref().map(|h| ms(h.value_at_quantile(0.5))),
            p99_ms: running.as_ref().map(|h| ms(h.value_at_quantile(0.99))),
        }
    }

    /// Every second from 0 to the last one with an operation or an error, the shards merged;
    /// `run_started` places the series on the run's time line.
    pub fn series(&self, run_started: Instant) -> Series {
        let mut merged: Vec<Second> = Vec::new();
        for shard in &self.inner.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            if merged.len() < shard.seconds.len() {
                merged.resize_with(shard.seconds.len(), Second::default);
            }
            for (into, from) in merged.iter_mut().zip(&shard.seconds) {
                into.ops += from.ops;
                into.errors += from.errors;
                if let Some(h) = &from.latency {
                    let _ = into.latency.get_or_insert_with(coarse_histogram).add(h);
                }
            }
        }
        let last = merged.iter().rposition(|s| s.ops > 0 || s.errors > 0);
        merged.truncate(last.map_or(0, |l| l + 1));
        let end = self.inner.last_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let points = merged
            .iter()
            .enumerate()
            .map(|(n, s)| Point {
                second: n as u64,
                covered: (end - n as f64).clamp(0.001, 1.0),
                ops: s.ops,
                errors: s.errors,
                p50_ms: s.latency.as_ref().map(|h| ms(h.value_at_quantile(0.5))),
                p99_ms: s.latency.as_ref().map(|h| ms(h.value_at_quantile(0.99))),
                max_ms: s.latency.as_ref().map(|h| ms(h.max())),
            })
            .collect();
        let offset = if self.inner.origin >= run_started {
            self.inner.origin.duration_since(run_started).as_secs_f64()
        } else {
            -run_started.duration_since(self.inner.origin).as_secs_f64()
        };
        Series {
            name: self.inner.name.clone(),
            offset_seconds: offset,
            ops: self.inner.ops.load(Ordering::Relaxed),
            errors: self.inner.errors.load(Ordering::Relaxed),
            points,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_second_they_happened() {
        let origin = Instant::now();
        let r = Recorder::starting_at("posts", origin);
        let at = |ms: u64| origin + Duration::from_millis(ms);
        for n in 1..=100 {
            r.ok_at(at(100), n * 1000); // 1..100 ms in second 0
        }
        r.ok_at(at(2_500), 7_000);
        r.ok_at(at(2_999), 9_000);
        let series = r.series(origin);
        assert_eq!(
            series.points.len(),
            3,
            "seconds 0 to 2, the empty second 1 included"
        );
        let p = &series.points;
        assert_eq!((p[0].ops, p[1].ops, p[2].ops), (100, 0, 2));
        assert_eq!((p[0].covered, p[1].covered), (1.0, 1.0));
        assert!(
            (p[2].covered - 0.999).abs() < 1e-9,
            "the last ends at the last observation"
        );
        assert_eq!(p[1].p99_ms, None, "no latency in an empty second");
        assert!(
            (p[0].p50_ms.unwrap_or_default() - 50.0).abs() <= 0.5,
            "{:?}",
            p[0]
        );
        assert!(
            (p[0].p99_ms.unwrap_or_default() - 99.0).abs() <= 1.0,
            "{:?}",
            p[0]
        );
        assert!(
            (p[2].max_ms.unwrap_or_default() - 9.0).abs() <= 0.1,
            "{:?}",
            p[2]
        );
        assert_eq!(series.ops, 102);
        assert_eq!(series.offset_seconds, 0.0);
        // Before the origin counts in second 0; a later run start gives a negative offset.
        r.ok_at(
            origin.checked_sub(Duration::from_secs(1)).unwrap_or(origin),
            1,
        );
        assert_eq!(r.series(origin).points[0].ops, 101);
        let later = r.series(origin + Duration::from_secs(2)).offset_seconds;
        assert!((later + 2.0).abs() < 1e-9, "{later}");
    }

    #[test]
    fn threads_record_into_shards_that_merge() {
        let origin = Instant::now();
        let r = Recorder::starting_at("deliveries", origin);
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let r = r.clone();
                s.spawn(move || {
                    for n in 0..1000u64 {
                        r.ok_at(origin + Duration::from_millis(n % 2 * 1000), 1000 * (t + 1));
                    }
                    r.errors(t);
                });
            }
        });
        let series = r.series(origin);
        assert_eq!(series.points[0].ops + series.points[1].ops, 8000);
        assert_eq!(series.points[0].ops, 4000);
        assert_eq!(series.errors, 28);
        assert_eq!(series.points.iter().map(|p| p.errors).sum::<u64>(), 28);
        let live = r.live();
        assert_eq!((live.ops, live.errors, live.open), (8000, 28, None));
        assert!(
            (live.p99_ms.unwrap_or_default() - 8.0).abs() < 0.1,
            "{live:?}"
        );
        assert!((series.points[1].p50_ms.unwrap_or_default() - 4.0).abs() < 0.1);
    }

    #[test]
    fn gauges_and_counts_without_latency() {
        let r = Recorder::new("handshakes");
        r.add_open(5);
        r.add_open(-2);
        r.ops(3);
        r.ops(0);
        let live = r.live();
        assert_eq!((live.ops, live.open, live.p99_ms), (3, Some(3), None));
        r.set_open(10);
        assert_eq!(r.live().open, Some(10));
        let series = r.series(r.origin());
        assert_eq!(series.points.len(), 1);
        assert_eq!(series.points[0].p50_ms, None);
        // Unix-time observations map onto the same time line.
        let now = unix_micros();
        r.ok_at_unix_micros(now + 3_200_000, 500);
        assert_eq!(r.series(r.origin()).points.len(), 4);
        assert_eq!(r.series(r.origin()).points[3].ops, 1);
        let empty = Recorder::new("none").series(Instant::now());
        assert!(empty.points.is_empty());
    }
}
