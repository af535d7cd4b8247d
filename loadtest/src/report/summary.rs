//! The end-of-run summary: every metric with its value and the thresholds on it (✓ / ✗).

use super::metrics::{Flat, number};
use super::thresholds::Verdict;

/// One line of the summary: a metric, its value as printed, and the thresholds on it.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub value: String,
    /// Indexes into the verdicts.
    pub checks: Vec<usize>,
}

impl Row {
    /// `Some(true)` when every threshold on it passed, `Some(false)` when one failed.
    pub fn passed(&self, verdicts: &[Verdict]) -> Option<bool> {
        (!self.checks.is_empty()).then(|| self.checks.iter().all(|&i| verdicts[i].passed))
    }
}

/// A row per metric, in order, then one per threshold on a metric not among them (an absent
/// entry of an open map).
pub fn rows(metrics: &Flat, verdicts: &[Verdict]) -> Vec<Row> {
    let on = |name: &str| -> Vec<usize> {
        verdicts
            .iter()
            .enumerate()
            .filter(|(_, v)| v.threshold.metric == name)
            .map(|(i, _)| i)
            .collect()
    };
    let mut rows: Vec<Row> = metrics
        .leaves
        .iter()
        .map(|(name, value)| Row {
            metric: name.clone(),
            value: value.to_string(),
            checks: on(name),
        })
        .collect();
    for v in verdicts {
        if metrics.get(&v.threshold.metric).is_none()
            && !rows.iter().any(|r| r.metric == v.threshold.metric)
        {
            rows.push(Row {
                metric: v.threshold.metric.clone(),
                value: v.value.map_or_else(|| "-".to_owned(), number),
                checks: on(&v.threshold.metric),
            });
        }
    }
    rows
}

/// The condition of a check as the table shows it: `< 500`, `== 0 (not measured in this run)`.
pub fn condition(v: &Verdict) -> String {
    let mut text = format!("{} {}", v.threshold.op.as_str(), number(v.threshold.bound));
    if let Some(note) = &v.note {
        text.push_str(&format!(" ({note})"));
    }
    text
}

/// The summary as text, k6-like:
///
/// ```text
/// writes: summary
///   scenario ................ writes
/// ✓ latency.p99_ms .......... 45.1     < 500
/// ✗ errors_rate ............. 0.02     < 0.01
///
/// thresholds: 1 passed, 1 failed
/// ```
pub fn table(title: &str, rows: &[Row], verdicts: &[Verdict]) -> String {
    let name_width = rows
        .iter()
        .map(|r| r.metric.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(16, 56)
        + 2;
    let value_width = rows
        .iter()
        .filter(|r| !r.checks.is_empty())
        .map(|r| r.value.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(6, 24);
    let mut out = format!("{title}: summary\n");
    for row in rows {
        let mark = match row.passed(verdicts) {
            Some(true) => '✓',
            Some(false) => '✗',
            None => ' ',
        };
        let dots = name_width.saturating_sub(row.metric.chars().count() + 1);
        let mut line = format!(
            "{mark} {} {} {:<value_width$}",
            row.metric,
            ".".repeat(dots),
            row.value
        );
        let conditions: Vec<String> = row
            .checks
            .iter()
            .map(|&i| {
                let v = &verdicts[i];
                if row.checks.len() > 1 {
                    format!("{} {}", if v.passed { '✓' } else { '✗' }, condition(v))
                } else {
                    condition(v)
                }
            })
            .collect();
        if !conditions.is_empty() {
            line.push_str("  ");
            line.push_str(&conditions.join(", "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if !verdicts.is_empty() {
        let passed = verdicts.iter().filter(|v| v.passed).count();
        out.push_str(&format!(
            "\nthresholds: {passed} passed, {} failed\n",
            verdicts.len() - passed
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::metrics::Value;
    use super::super::thresholds::{Threshold, evaluate};
    use super::*;

    #[test]
    fn the_table_marks_metrics_with_thresholds() {
        let metrics = Flat {
            leaves: vec![
                ("scenario".into(), Value::Text("writes".into())),
                ("latency.p99_ms".into(), Value::Number(45.12)),
                ("errors_rate".into(), Value::Number(0.02)),
            ],
            open_maps: vec!["failures".into()],
        };
        let thresholds: Vec<Threshold> = [
            "latency.p99_ms<500",
            "latency.p99_ms<40",
            "errors_rate<0.01",
            "failures.x==0",
        ]
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect();
        let (verdicts, _) = evaluate(&thresholds, &metrics);
        let rows = rows(&metrics, &verdicts);
        assert_eq!(rows.len(), 4, "an absent map entry gets its own row");
        let text = table("writes", &rows, &verdicts);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "writes: summary");
        assert_eq!(lines[1], "  scenario ......... writes");
        assert_eq!(lines[2], "✗ latency.p99_ms ... 45.12   ✓ < 500, ✗ < 40");
        assert_eq!(lines[3], "✗ errors_rate ...... 0.02    < 0.01");
        assert_eq!(
            lines[4],
            "✓ failures.x ....... 0       == 0 (no `failures` entry of that name: 0)"
        );
        assert_eq!(
            lines.last().copied(),
            Some("thresholds: 2 passed, 2 failed")
        );
    }
}
