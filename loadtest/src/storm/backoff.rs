//! How a storm client waits before trying again, as a well-behaved client would: a refusal's
//! `Retry-After` is honoured (never retried sooner) with a little jitter added, so refused
//! clients do not all come back in the same instant; without one, jittered exponential backoff.

use std::time::Duration;

use crate::scenario::Rng;

/// The delay of a `Retry-After` header: delta-seconds (an HTTP date, which servers here never
/// send, reads as absent).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let seconds: f64 = value?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

/// The wait before retrying after a refusal that said `Retry-After: after`: at least `after`,
/// plus up to a quarter of it (at least up to 250 ms) of jitter.
pub fn honour(after: Duration, rng: &mut Rng) -> Duration {
    let spread = (after / 4).max(Duration::from_millis(250));
    after + spread.mul_f64(rng.fraction())
}

/// Exponential backoff with full jitter: attempt `k` waits a uniform time in
/// `[0, min(cap, base · 2^k)]`.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next wait (and the one after it doubles).
    pub fn next(&mut self, rng: &mut Rng) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rng.fraction())
    }

    /// After a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_delta_seconds() {
        assert_eq!(retry_after(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(Some(" 0 ")), Some(Duration::ZERO));
        assert_eq!(retry_after(Some("1.5")), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn an_honoured_retry_is_never_sooner_and_is_spread() {
        let mut rng = Rng::new(1);
        let waits: Vec<Duration> = (0..1000)
            .map(|_| honour(Duration::from_secs(2), &mut rng))
            .collect();
        assert!(waits.iter().all(|w| *w >= Duration::from_secs(2)));
        assert!(waits.iter().all(|w| *w < Duration::from_millis(2500)));
        let distinct: std::collections::HashSet<_> = waits.iter().collect();
        assert!(
            distinct.len() > 900,
            "jittered: {} distinct",
            distinct.len()
        );
        let zero = honour(Duration::ZERO, &mut rng);
        assert!(zero < Duration::from_millis(250));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut rng = Rng::new(2);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        for ceiling in [100, 200, 400, 800, 1000, 1000] {
            let wait = backoff.next(&mut rng);
            assert!(
                wait < Duration::from_millis(ceiling),
                "{wait:?} ≥ {ceiling} ms"
            );
        }
        backoff.reset();
        assert!(backoff.next(&mut rng) < Duration::from_millis(100));
    }
}
