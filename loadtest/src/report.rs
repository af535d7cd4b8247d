//! What every scenario reports, and how.
//!
//! A scenario's output is: a live progress line on stderr while it runs; on stdout, its own
//! text lines, then a summary table of every metric of its report with ✓/✗ for the
//! `--threshold`s, then its report as one JSON line, the last line of stdout (as before, for
//! scripts and tests); a JSON report (`--json`) and a self-contained HTML report (`--html`)
//! with latency and throughput over time. Every report records the run's metadata
//! ([`RunInfo`]). Exit code: 0, or [`THRESHOLDS_FAILED`] (99) when a threshold failed, or 1 on
//! an error (including a threshold naming no metric; a malformed one is clap's usage error, 2).
//!
//! The progress line runs on a thread of its own, so it works under tokio or actix runtimes
//! alike; recorders are `Send + Sync` and record from any task or thread.
//!
//! # Adopting it in a scenario
//!
//! ```ignore
//! #[derive(clap::Args, Serialize)]
//! pub struct Args {
//!     // ... the scenario's flags; URLs that may hold a password:
//!     #[serde(serialize_with = "report::redacted")]
//!     database_url: String,
//!     /// --threshold, --json, --html, --no-progress.
//!     #[command(flatten)]
//!     output: report::Output,
//! }
//!
//! #[derive(Serialize, Default)] // Default: the template of the metric names
//! struct Report { /* ... */ latency: report::Latency }
//!
//! pub async fn run(args: Args) -> anyhow::Result<()> {
//!     // First, before any work: metadata, and unknown threshold names fail here.
//!     let mut run = report::Run::start("writes", &args, &args.output, &Report::default())?;
//!     // ... set up ...
//!     let posts = run.recorder("posts"); // one per measured stream; cheap to clone
//!     posts.set_open(clients as i64); // the `open` gauge of the progress line (optional)
//!     let progress = run.progress("writes", "posts", Some(Duration::from_secs(secs)), &posts);
//!     // in every task: posts.ok(latency_micros) / posts.error() / posts.ops(n)
//!     progress.stop();
//!     // ... print the scenario's text lines, as before (not its JSON line) ...
//!     run.finish(&report) // summary, --json, --html, the JSON line; exits 99 if one failed
//! }
//! ```
//!
//! # The API
//!
//! - [`Output`]: the flags (`#[command(flatten)]`): `--threshold EXPR` (repeatable),
//!   `--json PATH`, `--html PATH`, `--no-progress`.
//! - [`Run::start`]`(scenario, &args, &args.output, &Report::default())`: collects the
//!   [`RunInfo`], checks the thresholds' metric names against the template report.
//! - [`Run::recorder`]`(name)` → [`Recorder`]: registers a per-second series (origin: now).
//! - [`Run::progress`]`(label, unit, total, &recorder)` → [`Progress`]; [`Progress::stop`].
//! - [`Run::finish`]`(&report)`: prints the summary, writes the reports, prints the JSON line,
//!   exits 99 on a failed threshold; [`Run::conclude`] does the same but returns the
//!   [`Outcome`] instead of exiting.
//! - [`Recorder`]: `ok(latency_µs)`, `ok_at(instant, µs)`, `ok_at_unix_micros(unix_µs, µs)`,
//!   `ops(n)`, `error()`, `errors(n)`, `set_open(n)`, `add_open(delta)`, `live()` → [`Live`],
//!   `series(run_started)` → [`Series`] of [`Point`]s (per second: ops, errors, p50/p99/max).
//! - [`RunInfo::collect`]`(scenario, &args)`: commit, machine, kernel settings, start time,
//!   parameters; [`redacted`] masks passwords in URL fields when serializing.
//! - [`Threshold`] (`FromStr`, `METRIC OP NUMBER`), [`evaluate`] → [`Verdict`]s;
//!   [`flatten`]`(&report)` → [`Flat`] metrics (dotted names in field order).
//! - [`histogram`], [`latency`] → [`Latency`], [`micros`]: the scenarios' own exact
//!   (three-digit) histograms, as before. The server's own histograms, read from `/metrics`,
//!   are `crate::prometheus`'s.
//!
//! # Metrics and thresholds
//!
//! The metrics are the report's leaves with dotted names: `acknowledged`, `latency.p99_ms`,
//! `failures.connect timeout`, `list.0`. Besides them, [`Run::finish`] adds, for each recorder
//! `NAME`, `series.NAME.ops`, `series.NAME.errors`, `series.NAME.errors_rate` and
//! `series.NAME.peak_per_second`, and, unless the report has them itself, `errors` (all
//! recorders' errors) and `errors_rate` (errors / (ops + errors)). A threshold is
//! `METRIC OP NUMBER` with OP one of `< <= > >= == !=` (`latency.p99_ms<100`,
//! `errors_rate<0.01`, `deliveries_per_second>=50_000`). At start-up, a name that is none of
//! the template's numeric leaves, of the derived names, nor an entry of one of the template's
//! maps (empty objects: `failures.*`) is an error listing the available names; `series.*`
//! names are checked at the end (an unknown one is an error, exit 1). At the end, a metric
//! that is `null` (not measured, e.g. without `--server-pid`) fails its threshold, and an
//! entry absent from a map counts as 0 (the maps are counts: `failures.HTTP 503==0` passes
//! when there was none).
//!
//! # The JSON report
//!
//! `{"run": RunInfo, "passed": bool|null, "thresholds": [Verdict], "metrics": {name: value},
//! "report": the scenario's report, "series": [Series]}`; the HTML page embeds the same
//! document in `<script type="application/json" id="report-data">`.

mod html;
mod metrics;
mod progress;
mod run_info;
mod series;
mod summary;
mod thresholds;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

// The API scenarios adopt; not all of it is used by every build of the binary yet.
#[allow(unused_imports, reason = "the reporting API for every scenario")]
pub use metrics::{Flat, Value, flatten};
pub use progress::Progress;
#[allow(unused_imports, reason = "the reporting API for every scenario")]
pub use run_info::{Machine, RunInfo, redacted};
#[allow(unused_imports, reason = "the reporting API for every scenario")]
pub use series::{Live, Point, Recorder, Series};
#[allow(unused_imports, reason = "the reporting API for every scenario")]
pub use thresholds::{Op, Threshold, Verdict, evaluate};

/// The exit code of a run whose thresholds did not all pass (as k6's).
pub const THRESHOLDS_FAILED: i32 = 99;

/// Microsecond latencies from 1 µs to 60 s, 3 significant digits.
#[expect(clippy::expect_used, reason = "the bounds are valid constants")]
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
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

/// A duration in whole microseconds, at least 1 (HDR histograms start at 1).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// The reporting flags of every scenario: `#[command(flatten)] output: report::Output`.
#[derive(clap::Args, Serialize, Clone, Debug, Default)]
pub struct Output {
    /// A pass/fail condition on a metric of the report, METRIC OP NUMBER with OP one of
    /// < <= > >= == != (e.g. 'latency.p99_ms<100', 'errors_rate<0.01'); repeatable. A failed
    /// one makes the exit code 99; a metric the scenario does not have is an error.
    #[arg(long = "threshold", value_name = "EXPR", value_parser = thresholds::parse)]
    pub thresholds: Vec<Threshold>,
    /// Write the JSON report (metadata, metrics, thresholds, per-second series) to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report (charts over time, summary, metadata) to this file.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    pub no_progress: bool,
}

/// Names thresholds may use besides the report's own (see the module's documentation).
const DERIVED: [&str; 3] = ["errors", "errors_rate", "series.*"];

/// One scenario run being reported: its metadata, its recorders and its reporting flags.
pub struct Run {
    info: RunInfo,
    output: Output,
    started: Instant,
    /// The template report's open maps (their entries may be named by thresholds).
    open_maps: Vec<String>,
    recorders: Vec<Recorder>,
}

/// What [`Run::conclude`] found.
#[derive(Debug)]
pub struct Outcome {
    /// `None` without thresholds.
    pub passed: Option<bool>,
    #[allow(dead_code, reason = "for callers of `conclude`")]
    pub verdicts: Vec<Verdict>,
}

impl Run {
    /// Starts reporting a run: collects its [`RunInfo`] (with `args` as its parameters) and
    /// checks `output`'s thresholds against the metrics of `template` (the scenario's report
    /// type with default values) and the derived names, and that the report files' folders
    /// exist. Call it before any work, so a mistyped flag costs nothing.
    pub fn start(
        scenario: &str,
        args: &impl Serialize,
        output: &Output,
        template: &impl Serialize,
    ) -> anyhow::Result<Self> {
        let template = metrics::flatten(template)?;
        thresholds::check_names(&output.thresholds, &template, &DERIVED)?;
        for (flag, path) in [("--json", &output.json), ("--html", &output.html)] {
            if let Some(path) = path {
                let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
                if let Some(folder) = folder {
                    anyhow::ensure!(
                        folder.is_dir(),
                        "{flag} {}: no folder {}",
                        path.display(),
                        folder.display()
                    );
                }
            }
        }
        Ok(Self {
            info: RunInfo::collect(scenario, args),
            output: output.clone(),
            started: Instant::now(),
            open_maps: template.open_maps,
            recorders: Vec::new(),
        })
    }

    #[allow(dead_code, reason = "the reporting API for every scenario")]
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    /// When the run started (the time line of the charts starts here).
    #[allow(dead_code, reason = "the reporting API for every scenario")]
    pub fn started(&self) -> Instant {
        self.started
    }

    /// A new [`Recorder`] whose second 0 is now, reported as the series `name`.
    pub fn recorder(&mut self, name: &str) -> Recorder {
        let recorder = Recorder::new(name);
        self.recorders.push(recorder.clone());
        recorder
    }

    /// A [`Progress`] line for a phase of `total` (if known) showing `recorder`'s rate in
    /// `unit`s per second; prints nothing with `--no-progress`.
    pub fn progress(
        &self,
        label: &str,
        unit: &str,
        total: Option<Duration>,
        recorder: &Recorder,
    ) -> Progress {
        if self.output.no_progress {
            Progress::disabled()
        } else {
            Progress::start(label, unit, total, recorder)
        }
    }

    /// The end of the run: [`Run::conclude`], then exit with [`THRESHOLDS_FAILED`] if a
    /// threshold failed (stdout and stderr flushed). Call it last, instead of printing the
    /// report's JSON line yourself: it prints it, as the last line of stdout.
    pub fn finish(self, report: &(impl Serialize + ?Sized)) -> anyhow::Result<()> {
        let outcome = self.conclude(report)?;
        if outcome.passed == Some(false) {
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            std::process::exit(THRESHOLDS_FAILED);
        }
        Ok(())
    }

    /// Flattens `report` into metrics (plus the derived ones), checks the thresholds, prints
    /// the summary table on stdout, writes `--json` and `--html`, and prints `report` as one
    /// JSON line, the last of stdout (what scripts and tests parse). An error when a threshold names a metric the run does not
    /// have (after all that).
    pub fn conclude(mut self, report: &(impl Serialize + ?Sized)) -> anyhow::Result<Outcome> {
        self.info.finished_at = Some(run_info::now_rfc3339());
        self.info.duration_seconds = Some(self.started.elapsed().as_secs_f64());
        let series: Vec<Series> = self
            .recorders
            .iter()
            .map(|r| r.series(self.started))
            .collect();
        let mut flat = metrics::flatten(report)?;
        add_derived(&mut flat, &series);
        for map in &self.open_maps {
            if !flat.open_maps.contains(map) {
                flat.open_maps.push(map.clone());
            }
        }
        let (verdicts, unknown) = evaluate(&self.output.thresholds, &flat);
        let rows = summary::rows(&flat, &verdicts);
        let passed = (!self.output.thresholds.is_empty())
            .then(|| unknown.is_empty() && verdicts.iter().all(|v| v.passed));
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "\n{}",
            summary::table(&self.info.scenario, &rows, &verdicts)
        )?;
        stdout.flush()?;
        drop(stdout);
        if self.output.json.is_some() || self.output.html.is_some() {
            let document = Document {
                run: &self.info,
                passed,
                thresholds: &verdicts,
                metrics: Ordered(&flat.leaves),
                report,
                series: &series,
            };
            let json = serde_json::to_string(&document)?;
            if let Some(path) = &self.output.json {
                write_file(path, &json)?;
            }
            if let Some(path) = &self.output.html {
                let page = html::render(&html::Page {
                    run: &self.info,
                    passed,
                    rows: &rows,
                    verdicts: &verdicts,
                    series: &series,
                    json: &json,
                });
                write_file(path, &page)?;
            }
        }
        let line = serde_json::to_string(report)?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        if !unknown.is_empty() {
            anyhow::bail!(
                "--threshold names {} that this run's report does not have; it has: {}",
                unknown
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                thresholds::available(&flat, &[]).join(", ")
            );
        }
        Ok(Outcome { passed, verdicts })
    }
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("report: wrote {}", path.display());
    Ok(())
}

/// `series.NAME.*` for every series, and `errors` / `errors_rate` unless the report has them.
fn add_derived(flat: &mut Flat, series: &[Series]) {
    let rate = |errors: u64, ops: u64| {
        if errors + ops == 0 {
            0.0
        } else {
            errors as f64 / (errors + ops) as f64
        }
    };
    let (mut ops, mut errors) = (0, 0);
    for s in series {
        let name = &s.name;
        let peak = s.points.iter().map(|p| p.ops).max().unwrap_or(0);
        flat.push_default(&format!("series.{name}.ops"), Value::Number(s.ops as f64));
        flat.push_default(
            &format!("series.{name}.errors"),
            Value::Number(s.errors as f64),
        );
        flat.push_default(
            &format!("series.{name}.errors_rate"),
            Value::Number(rate(s.errors, s.ops)),
        );
        flat.push_default(
            &format!("series.{name}.peak_per_second"),
            Value::Number(peak as f64),
        );
        ops += s.ops;
        errors += s.errors;
    }
    flat.push_default("errors", Value::Number(errors as f64));
    flat.push_default("errors_rate", Value::Number(rate(errors, ops)));
}

/// The JSON report.
#[derive(Serialize)]
struct Document<'a, R: Serialize + ?Sized> {
    run: &'a RunInfo,
    passed: Option<bool>,
    thresholds: &'a [Verdict],
    metrics: Ordered<'a>,
    report: &'a R,
    series: &'a [Series],
}

/// Flat metrics as a JSON object in their order.
struct Ordered<'a>(&'a [(String, Value)]);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[derive(Serialize, Default)]
    struct Report {
        scenario: &'static str,
        acknowledged: u64,
        latency: Latency,
        failures: std::collections::BTreeMap<String, u64>,
        rss: Option<u64>,
    }

    fn output(thresholds: &[&str]) -> Output {
        Output {
            thresholds: thresholds.iter().filter_map(|t| t.parse().ok()).collect(),
            no_progress: true,
            ..Output::default()
        }
    }

    #[test]
    fn unknown_threshold_names_fail_before_the_run() {
        let args = serde_json::json!({});
        let error = Run::start(
            "t",
            &args,
            &output(&["latency.p98_ms<1"]),
            &Report::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            error.contains("no metric named `latency.p98_ms`"),
            "{error}"
        );
        assert!(error.contains("latency.p99_ms"), "{error}");
        assert!(
            error.contains("failures.*, errors, errors_rate, series.*"),
            "{error}"
        );
        for fine in [
            "latency.p99_ms<1",
            "failures.HTTP 503==0",
            "errors_rate<0.1",
            "series.x.ops>1",
            "rss<1",
        ] {
            assert!(
                Run::start("t", &args, &output(&[fine]), &Report::default()).is_ok(),
                "{fine}"
            );
        }
        let mut bad_folder = output(&[]);
        bad_folder.json = Some("/nonexistent-folder/x.json".into());
        assert!(Run::start("t", &args, &bad_folder, &Report::default()).is_err());
    }

    #[test]
    fn a_run_concludes_with_verdicts_files_and_derived_metrics() -> anyhow::Result<()> {
        let folder = std::env::temp_dir().join(format!("lt-report-{}", std::process::id()));
        std::fs::create_dir_all(&folder)?;
        let mut out = output(&[
            "latency.p99_ms<100",
            "failures.HTTP 503==0",
            "failures.connect timeout==0",
            "errors_rate<0.5",
            "series.posts.ops>=2",
            "rss<1",
        ]);
        out.json = Some(folder.join("r.json"));
        out.html = Some(folder.join("r.html"));
        let mut run = Run::start(
            "t",
            &serde_json::json!({"clients": 2}),
            &out,
            &Report::default(),
        )?;
        let posts = run.recorder("posts");
        posts.ok(1500);
        posts.ok(2500);
        posts.error();
        let mut h = histogram();
        let _ = h.record(2000);
        let report = Report {
            scenario: "t",
            acknowledged: 2,
            latency: latency(&h),
            failures: [("connect timeout".to_owned(), 1)].into(),
            rss: None,
        };
        let outcome = run.conclude(&report)?;
        let passed: Vec<bool> = outcome.verdicts.iter().map(|v| v.passed).collect();
        // 503: an absent entry of a map that is no longer empty still counts 0; rss: not measured.
        assert_eq!(passed, [true, true, false, true, true, false]);
        assert_eq!(outcome.passed, Some(false));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("r.json"))?)?;
        assert_eq!(json["metrics"]["errors"], 1);
        assert_eq!(json["metrics"]["series.posts.peak_per_second"], 2);
        assert!(
            (json["metrics"]["errors_rate"].as_f64().unwrap_or_default() - 1.0 / 3.0).abs() < 1e-9
        );
        assert_eq!(json["report"]["acknowledged"], 2);
        assert_eq!(json["run"]["parameters"]["clients"], 2);
        assert_eq!(json["series"][0]["points"][0]["ops"], 2);
        assert_eq!(json["thresholds"][0]["threshold"], "latency.p99_ms<100");
        assert_eq!(json["passed"], false);
        let html = std::fs::read_to_string(folder.join("r.html"))?;
        assert!(html.starts_with("<!doctype html>") && html.contains("<svg"));
        // A series name no recorder has is an error at the end.
        let run = Run::start(
            "t",
            &serde_json::json!({}),
            &output(&["series.nope.ops>1"]),
            &Report::default(),
        )?;
        let error = run
            .conclude(&report)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("`series.nope.ops`"), "{error}");
        std::fs::remove_dir_all(&folder)?;
        Ok(())
    }
}
