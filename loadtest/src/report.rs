//! Latency histograms and the report every scenario prints (text and one JSON line).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Microsecond latencies from 1 µs to 60 s, 3 significant digits.
#[expect(clippy::expect_used, reason = "the bounds are valid constants")]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub fn latency(h: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}

/// The `q` quantile of one Prometheus histogram series in `metrics` (text format), named by
/// the start of its bucket lines (`name_bucket{labels`), as the upper bound of the bucket it
/// falls in, in milliseconds; `None` when the series is absent or empty.
pub fn prometheus_quantile(metrics: &str, prefix: &str, q: f64) -> Option<f64> {
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    aisocial_actors::meter::bucket_quantile(&buckets, q).map(|le| le * 1000.0)
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "\
# TYPE x histogram
x_bucket{route=\"/a\",le=\"0.001\"} 50
x_bucket{route=\"/a\",le=\"0.01\"} 98
x_bucket{route=\"/a\",le=\"0.1\"} 100
x_bucket{route=\"/a\",le=\"+Inf\"} 100
x_bucket{route=\"/b\",le=\"0.001\"} 0
x_bucket{route=\"/b\",le=\"0.01\"} 0
x_bucket{route=\"/b\",le=\"0.1\"} 0
x_bucket{route=\"/b\",le=\"+Inf\"} 0
";

    #[test]
    fn quantiles_come_from_the_named_series_bucket_bounds() {
        let median = prometheus_quantile(METRICS, "x_bucket{route=\"/a\"", 0.5);
        assert_eq!(median, Some(1.0));
        let p99 = prometheus_quantile(METRICS, "x_bucket{route=\"/a\"", 0.99);
        assert_eq!(p99, Some(100.0));
        // An empty series, or an absent one, has no quantile.
        assert_eq!(
            prometheus_quantile(METRICS, "x_bucket{route=\"/b\"", 0.5),
            None
        );
        assert_eq!(prometheus_quantile(METRICS, "y_bucket{", 0.5), None);
    }

    #[test]
    fn histograms_merge_and_report_in_milliseconds() {
        let mut a = histogram();
        let mut b = histogram();
        for micros in 1..=1000u64 {
            let _ = a.record(micros * 100);
        }
        let _ = b.record(5_000_000);
        let _ = a.add(&b);
        let l = latency(&a);
        // 1,001 values: the median is the 501st, 50.1 ms (to HDR's three digits).
        assert!((l.p50_ms - 50.1).abs() < 0.1, "{}", l.p50_ms);
        assert!((l.max_ms - 5000.0).abs() < 5.0, "{}", l.max_ms);
        assert_eq!(
            micros(Duration::ZERO),
            1,
            "never zero: HDR histograms start at 1"
        );
    }
}
