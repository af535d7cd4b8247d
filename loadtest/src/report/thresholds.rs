//! `--threshold 'METRIC OP NUMBER'`: pass/fail conditions on a report's flat metrics.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::metrics::{Flat, Value, number};

/// A comparison operator of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }

    /// Whether `value OP bound` holds.
    pub fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Self::Lt => value < bound,
            Self::Le => value <= bound,
            Self::Gt => value > bound,
            Self::Ge => value >= bound,
            Self::Eq => value == bound,
            Self::Ne => value != bound,
        }
    }
}

/// `metric OP bound`, e.g. `latency.p99_ms<100`; parsed from a `--threshold` flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: String,
    pub op: Op,
    pub bound: f64,
}

const SYNTAX: &str =
    "write METRIC OP NUMBER, e.g. 'latency.p99_ms<100', with OP one of < <= > >= == !=";

impl FromStr for Threshold {
    type Err = String;

    fn from_str(expr: &str) -> Result<Self, String> {
        let expr = expr.trim();
        let Some(at) = expr.find(['<', '>', '=', '!']) else {
            return Err(format!("`{expr}` compares nothing: {SYNTAX}"));
        };
        let metric = expr[..at].trim();
        if metric.is_empty() {
            return Err(format!("`{expr}` names no metric: {SYNTAX}"));
        }
        let rest = &expr[at..];
        let op = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find(|(text, _)| rest.starts_with(text));
        let Some((text, op)) = op else {
            return Err(format!(
                "`{expr}`: `{}` is no operator: {SYNTAX}",
                &rest[..1]
            ));
        };
        let bound_text = rest[text.len()..].trim();
        let bound: f64 = bound_text.replace('_', "").parse().map_err(|_| {
            if bound_text.is_empty() {
                format!("`{expr}` has no number to compare with: {SYNTAX}")
            } else {
                format!(
                    "`{expr}`: `{bound_text}` is not a number (units belong to the metric's name, as in p99_ms<100): {SYNTAX}"
                )
            }
        })?;
        if bound.is_nan() {
            return Err(format!("`{expr}`: NaN compares with nothing"));
        }
        Ok(Self {
            metric: metric.to_owned(),
            op,
            bound,
        })
    }
}

/// For clap's `value_parser`.
pub fn parse(expr: &str) -> Result<Threshold, String> {
    expr.parse()
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.metric,
            self.op.as_str(),
            number(self.bound)
        )
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A threshold checked against a finished run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub threshold: Threshold,
    /// The metric's value, when it has a number.
    pub value: Option<f64>,
    pub passed: bool,
    /// Why it failed without a value, or how the value was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Metric names the thresholds name that `metrics` lacks, and do not belong to one of its open
/// maps or to `also` (names to be checked later, by exact name or `prefix.*`).
pub fn unknown<'a>(thresholds: &'a [Threshold], metrics: &Flat, also: &[&str]) -> Vec<&'a str> {
    thresholds
        .iter()
        .map(|t| t.metric.as_str())
        .filter(|name| {
            metrics.get(name).is_none()
                && metrics.open_map_of(name).is_none()
                && !also.iter().any(|a| {
                    a.strip_suffix(".*").map_or(*a == *name, |prefix| {
                        name.starts_with(&format!("{prefix}."))
                    })
                })
        })
        .collect()
}

/// Checks the thresholds that name numbers (or entries of open maps, absent ones counting 0),
/// and rejects, before the run, those that name text. The error lists the available names.
pub fn check_names(thresholds: &[Threshold], metrics: &Flat, also: &[&str]) -> anyhow::Result<()> {
    let missing = unknown(thresholds, metrics, also);
    let textual: Vec<&str> = thresholds
        .iter()
        .map(|t| t.metric.as_str())
        .filter(|name| matches!(metrics.get(name), Some(Value::Text(_))))
        .collect();
    if missing.is_empty() && textual.is_empty() {
        return Ok(());
    }
    let mut message = String::new();
    if !missing.is_empty() {
        message.push_str(&format!("no metric named {}", quoted(&missing)));
    }
    if !textual.is_empty() {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(&format!("{} is text, not a number", quoted(&textual)));
    }
    anyhow::bail!(
        "--threshold: {message}. Available metrics: {}",
        available(metrics, also).join(", ")
    )
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names thresholds may use: numeric leaves, `map.*` for open maps, and `also`.
pub fn available(metrics: &Flat, also: &[&str]) -> Vec<String> {
    metrics
        .leaves
        .iter()
        .filter(|(_, v)| !matches!(v, Value::Text(_)))
        .map(|(k, _)| k.clone())
        .chain(metrics.open_maps.iter().map(|m| format!("{m}.*")))
        .chain(also.iter().map(|a| (*a).to_owned()))
        .collect()
}

/// Checks every threshold against a finished run's metrics. A null metric (not measured)
/// fails; an absent entry of an open map counts as 0; text fails. Returns the verdicts, and
/// the names that are neither metrics nor entries of open maps (errors, not failures).
pub fn evaluate(thresholds: &[Threshold], metrics: &Flat) -> (Vec<Verdict>, Vec<String>) {
    let mut verdicts = Vec::with_capacity(thresholds.len());
    let mut unknown = Vec::new();
    for t in thresholds {
        let (value, note) = match metrics.get(&t.metric) {
            Some(Value::Null) => (None, Some("not measured in this run".to_owned())),
            Some(Value::Text(_)) => (None, Some("text, not a number".to_owned())),
            Some(v) => (v.as_f64(), None),
            None => match metrics.open_map_of(&t.metric) {
                Some(map) => (Some(0.0), Some(format!("no `{map}` entry of that name: 0"))),
                None => {
                    unknown.push(t.metric.clone());
                    continue;
                }
            },
        };
        verdicts.push(Verdict {
            threshold: t.clone(),
            passed: value.is_some_and(|v| t.op.holds(v, t.bound)),
            value,
            note,
        });
    }
    (verdicts, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(expr: &str) -> Threshold {
        expr.parse().unwrap_or(Threshold {
            metric: format!("UNPARSED {expr}"),
            op: Op::Eq,
            bound: f64::NAN,
        })
    }

    #[test]
    fn expressions_parse_with_every_operator() {
        assert_eq!(
            t("p99_ms<100"),
            Threshold {
                metric: "p99_ms".into(),
                op: Op::Lt,
                bound: 100.0
            }
        );
        assert_eq!(t(" deliveries_per_second >= 50_000 ").op, Op::Ge);
        assert_eq!(t(" deliveries_per_second >= 50_000 ").bound, 50_000.0);
        assert_eq!(t("missing==0").op, Op::Eq);
        assert_eq!(t("errors_rate<0.01").bound, 0.01);
        assert_eq!(t("latency.p99_ms<=2.5").metric, "latency.p99_ms");
        assert_eq!(t("a>1e3").bound, 1000.0);
        assert_eq!(t("a!=-1").bound, -1.0);
        assert_eq!(
            t("failures.HTTP 429 Too Many Requests==0").metric,
            "failures.HTTP 429 Too Many Requests"
        );
        assert_eq!(t("latency.p99_ms<=2.5").to_string(), "latency.p99_ms<=2.5");
    }

    #[test]
    fn bad_expressions_are_refused_with_a_reason() {
        for (expr, why) in [
            ("p99_ms", "compares nothing"),
            ("<100", "names no metric"),
            ("p99_ms=100", "no operator"),
            ("p99_ms!100", "no operator"),
            ("p99_ms<", "no number"),
            ("p99_ms<100ms", "not a number"),
            ("p99_ms<<100", "not a number"),
            ("p99_ms<NaN", "NaN"),
            ("", "compares nothing"),
        ] {
            match expr.parse::<Threshold>() {
                Ok(t) => panic!("`{expr}` parsed as {t:?}"),
                Err(e) => assert!(e.contains(why), "`{expr}`: {e}"),
            }
        }
    }

    fn metrics() -> Flat {
        Flat {
            leaves: vec![
                ("scenario".into(), Value::Text("writes".into())),
                ("latency.p99_ms".into(), Value::Number(42.0)),
                ("missing".into(), Value::Number(0.0)),
                ("rss".into(), Value::Null),
                ("failures.HTTP 503".into(), Value::Number(2.0)),
            ],
            open_maps: vec!["callers".into()],
        }
    }

    #[test]
    fn thresholds_evaluate_against_the_flat_metrics() {
        let all = [
            t("latency.p99_ms<100"),
            t("latency.p99_ms<42"),
            t("latency.p99_ms<=42"),
            t("missing==0"),
            t("missing!=0"),
            t("rss<1000"),
            t("callers.500==0"),
            t("failures.HTTP 503>=3"),
        ];
        let (verdicts, unknown) = evaluate(&all, &metrics());
        assert!(unknown.is_empty());
        let passed: Vec<bool> = verdicts.iter().map(|v| v.passed).collect();
        assert_eq!(passed, [true, false, true, true, false, false, true, false]);
        assert_eq!(
            verdicts[5].note.as_deref(),
            Some("not measured in this run")
        );
        assert_eq!(
            verdicts[6].value,
            Some(0.0),
            "absent entries of open maps are 0"
        );
    }

    #[test]
    fn unknown_names_are_reported_with_what_is_available() {
        let all = [
            t("latency.p98_ms<1"),
            t("missing==0"),
            t("series.posts.errors<1"),
        ];
        let (verdicts, unknown_at_the_end) = evaluate(&all, &metrics());
        assert_eq!(
            unknown_at_the_end,
            ["latency.p98_ms", "series.posts.errors"]
        );
        assert_eq!(verdicts.len(), 1, "the known ones are still checked");
        assert_eq!(unknown(&all, &metrics(), &["series.*"]), ["latency.p98_ms"]);
        let error = check_names(&all, &metrics(), &["errors", "series.*"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("no metric named `latency.p98_ms`"),
            "{error}"
        );
        assert!(
            error.contains(
                "latency.p99_ms, missing, rss, failures.HTTP 503, callers.*, errors, series.*"
            ),
            "{error}"
        );
        let error = check_names(&[t("scenario==1")], &metrics(), &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("`scenario` is text"), "{error}");
        assert!(
            check_names(
                &[t("callers.202>1"), t("errors<1")],
                &metrics(),
                &["errors"]
            )
            .is_ok()
        );
    }
}
