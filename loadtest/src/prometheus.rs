//! What the load tests read from the server's `/metrics` (Prometheus text format): a counter's
//! or gauge's value, and a quantile of one histogram series from its cumulative buckets.

/// The value of an unlabelled counter or gauge `name` in Prometheus text (`None` if absent).
pub fn value(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            (series == name).then(|| value.parse().ok())?
        })
}

/// The `q` quantile of one Prometheus histogram series in `metrics` (text format), named by
/// the start of its bucket lines (`name_bucket{labels`), as the upper bound of the bucket it
/// falls in, in milliseconds; `None` when the series is absent or empty.
pub fn quantile_ms(metrics: &str, prefix: &str, q: f64) -> Option<f64> {
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
    bucket_quantile(&buckets, q).map(|le| le * 1000.0)
}

/// The `q` quantile of a histogram given as `(upper bound, cumulative count)` pairs, as the
/// upper bound of the bucket it falls in (a conservative reading); `None` when it is empty.
pub fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let mut sorted = buckets.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = sorted.last()?.1;
    if total <= 0.0 {
        return None;
    }
    sorted
        .iter()
        .find(|(_, count)| *count >= total * q)
        .map(|(bound, _)| *bound)
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
        let median = quantile_ms(METRICS, "x_bucket{route=\"/a\"", 0.5);
        assert_eq!(median, Some(1.0));
        let p99 = quantile_ms(METRICS, "x_bucket{route=\"/a\"", 0.99);
        assert_eq!(p99, Some(100.0));
        // An empty series, or an absent one, has no quantile.
        assert_eq!(quantile_ms(METRICS, "x_bucket{route=\"/b\"", 0.5), None);
        assert_eq!(quantile_ms(METRICS, "y_bucket{", 0.5), None);
    }

    #[test]
    fn a_bucket_quantile_is_the_bound_of_the_bucket_it_falls_in() {
        // Unsorted input is sorted by bound; the count is cumulative.
        let buckets = [(f64::INFINITY, 10.0), (0.1, 4.0), (1.0, 9.0)];
        assert_eq!(bucket_quantile(&buckets, 0.4), Some(0.1));
        assert_eq!(bucket_quantile(&buckets, 0.5), Some(1.0));
        assert_eq!(bucket_quantile(&buckets, 0.9), Some(1.0));
        assert_eq!(bucket_quantile(&buckets, 0.95), Some(f64::INFINITY));
        assert_eq!(bucket_quantile(&[], 0.5), None);
        assert_eq!(bucket_quantile(&[(1.0, 0.0)], 0.5), None);
    }

    #[test]
    fn counter_values_are_read_from_unlabelled_series() {
        let metrics = "# HELP x y\nx_total 5\nx_total{a=\"b\"} 7\ny 1.5\n";
        assert_eq!(value(metrics, "x_total"), Some(5.0));
        assert_eq!(value(metrics, "y"), Some(1.5));
        assert_eq!(value(metrics, "z"), None);
    }
}
