//! Reconnect pacing: exponential backoff with full jitter (a uniform wait between zero and
//! `min(cap, base · 2^attempt)`, so a crowd of clients cut off together spreads its returns),
//! with a server's `Retry-After` as the least wait.

use std::time::Duration;

/// The waits of one run of failed attempts; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// `base` is the first attempt's ceiling, `cap` every later one's.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The wait before the next attempt, drawn at random.
    pub fn next(&mut self, retry_after: Option<Duration>) -> Duration {
        self.next_with(rand::random::<f64>(), retry_after)
    }

    /// The wait before the next attempt for a uniform draw `unit` in `[0, 1)`: full jitter
    /// under the attempt's ceiling, and never less than the server asked for.
    pub fn next_with(&mut self, unit: f64, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let jittered = ceiling.mul_f64(unit.clamp(0.0, 1.0));
        retry_after.map_or(jittered, |least| jittered.max(least))
    }

    /// How many waits this run has given.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// A success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    /// 250 ms, doubling to 30 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(250), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_to_the_cap_and_the_draw_picks_below_them() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let tops: Vec<Duration> = (0..6).map(|_| backoff.next_with(1.0, None)).collect();
        let ms: Vec<u128> = tops.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_with(0.5, None), Duration::from_millis(50));
        assert_eq!(backoff.next_with(0.0, None), Duration::ZERO);
        assert_eq!(backoff.attempts(), 2);
    }

    #[test]
    fn retry_after_is_the_least_wait_and_draws_stay_in_range() {
        let mut backoff = Backoff::default();
        let asked = Duration::from_secs(5);
        assert_eq!(backoff.next_with(0.1, Some(asked)), asked);
        let mut many = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
        for _ in 0..1000 {
            assert!(many.next(None) <= Duration::from_millis(80));
        }
        // A draw outside [0, 1) is clamped, never a longer wait than the ceiling.
        let mut odd = Backoff::new(Duration::from_millis(10), Duration::from_millis(10));
        assert_eq!(odd.next_with(7.0, None), Duration::from_millis(10));
    }
}
