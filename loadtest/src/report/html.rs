//! The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched)
//! with latency and throughput over time, the summary with its thresholds, and the run's
//! metadata; the JSON report rides along in a `<script type="application/json">` block.

use std::fmt::Write;

use super::metrics::{self, number};
use super::run_info::RunInfo;
use super::series::{Point, Series};
use super::summary::{Row, condition};
use super::thresholds::Verdict;

/// What the page shows.
pub struct Page<'a> {
    pub run: &'a RunInfo,
    /// `None` when no threshold was set.
    pub passed: Option<bool>,
    pub rows: &'a [Row],
    pub verdicts: &'a [Verdict],
    pub series: &'a [Series],
    /// The JSON report, embedded as data.
    pub json: &'a str,
}

const COLORS: [&str; 6] = [
    "#2563eb", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2",
];

/// Text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2937;margin:0;background:#f3f4f6}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:14px;margin:16px 0 4px}
.sub{color:#6b7280}.card{background:#fff;border-radius:8px;padding:16px;box-shadow:0 1px 2px #0001;margin-bottom:16px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff;margin-left:8px;font-size:13px}
.pass{background:#059669}.fail{background:#dc2626}.none{background:#6b7280}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #e5e7eb;text-align:left;vertical-align:top}
th{background:#f9fafb;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.mark{width:1.5em;text-align:center;font-weight:700}.ok{color:#059669}.bad{color:#dc2626}
code{font:12px ui-monospace,monospace;word-break:break-all}
svg{width:100%;height:auto;display:block}svg text{font:11px system-ui,sans-serif;fill:#4b5563}
.legend span{display:inline-block;margin-right:16px;font-size:12px}.legend i{display:inline-block;width:18px;height:0;border-top:2px solid;vertical-align:middle;margin-right:4px}
.legend i.dash{border-top-style:dashed}.legend i.dot{border-top-style:dotted}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}@media(max-width:800px){.grid{grid-template-columns:1fr}}
";

/// The whole page.
pub fn render(page: &Page<'_>) -> String {
    let run = page.run;
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("aisocial-loadtest {}", run.scenario);
    let (badge_class, badge) = match page.passed {
        Some(true) => ("pass", "PASS"),
        Some(false) => ("fail", "FAIL"),
        None => ("none", "no thresholds"),
    };
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>{}<span class=\"badge {badge_class}\">{badge}</span></h1>\n<div class=\"sub\">started {} · {} · commit <code>{}</code>{} · {} build</div>\n",
        escape(&title),
        escape(&title),
        escape(&run.started_at),
        run.duration_seconds
            .map_or_else(|| "running".to_owned(), |d| format!("{} s", number(d))),
        escape(run.commit.as_deref().unwrap_or("unknown")),
        if run.commit_dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        },
        run.build,
    );

    out.push_str("<h2>Over time</h2>\n<div class=\"card\">\n");
    out.push_str(&latency_chart(page.series, run.duration_seconds));
    out.push_str(&throughput_chart(page.series, run.duration_seconds));
    out.push_str("</div>\n");

    out.push_str("<h2>Summary</h2>\n<div class=\"card\">\n");
    out.push_str(&summary_table(page.rows, page.verdicts));
    out.push_str("</div>\n");

    out.push_str("<h2>Run</h2>\n<div class=\"grid\">\n<div class=\"card\">\n<h3>Run</h3>\n");
    out.push_str(&pairs(&[
        ("scenario", run.scenario.clone()),
        ("started at", run.started_at.clone()),
        ("finished at", run.finished_at.clone().unwrap_or_default()),
        (
            "duration",
            run.duration_seconds
                .map(|d| format!("{} s", number(d)))
                .unwrap_or_default(),
        ),
        (
            "commit",
            run.commit.clone().unwrap_or_else(|| "unknown".into()),
        ),
        (
            "commit dirty",
            run.commit_dirty
                .map(|d| d.to_string())
                .unwrap_or_else(|| "unknown".into()),
        ),
        ("build", run.build.to_owned()),
        ("loadtest version", run.loadtest_version.to_owned()),
        ("command", run.command.join(" ")),
    ]));
    let m = &run.machine;
    out.push_str("<h3>Machine</h3>\n");
    out.push_str(&pairs(&[
        ("hostname", m.hostname.clone().unwrap_or_default()),
        ("CPU", m.cpu_model.clone().unwrap_or_default()),
        ("CPUs", m.cpus.map(|n| n.to_string()).unwrap_or_default()),
        (
            "available parallelism",
            m.available_parallelism
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ),
        (
            "memory",
            m.memory_total_bytes
                .map(|b| format!("{} GiB", number(b as f64 / f64::from(1u32 << 30))))
                .unwrap_or_default(),
        ),
        ("kernel", m.kernel.clone().unwrap_or_default()),
        (
            "kernel version",
            m.kernel_version.clone().unwrap_or_default(),
        ),
        (
            "load average at start",
            m.loadavg.clone().unwrap_or_default(),
        ),
    ]));
    out.push_str("</div>\n<div class=\"card\">\n<h3>Parameters</h3>\n");
    let parameters: Vec<(String, String)> = metrics::flatten(&run.parameters)
        .map(|f| {
            f.leaves
                .into_iter()
                .map(|(k, v)| (k, v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&pairs(
        &parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect::<Vec<_>>(),
    ));
    out.push_str("<h3>Kernel settings</h3>\n");
    out.push_str(&pairs(
        &run.kernel
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone().unwrap_or_else(|| "unreadable".into())))
            .collect::<Vec<_>>(),
    ));
    out.push_str("</div>\n</div>\n");
    // The data, for tools; `<` escaped so no string in it can close the element.
    let _ = write!(
        out,
        "<script type=\"application/json\" id=\"report-data\">{}</script>\n</main>\n</body>\n</html>\n",
        page.json.replace('<', "\\u003c")
    );
    out
}

fn pairs(rows: &[(&str, String)]) -> String {
    let mut out = String::from("<table>\n");
    for (k, v) in rows {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            escape(k),
            escape(v)
        );
    }
    out.push_str("</table>\n");
    out
}

fn summary_table(rows: &[Row], verdicts: &[Verdict]) -> String {
    let mut out = String::from(
        "<table class=\"summary\">\n<tr><th></th><th>metric</th><th>value</th><th>threshold</th></tr>\n",
    );
    for row in rows {
        let (class, mark) = match row.passed(verdicts) {
            Some(true) => ("ok", "✓"),
            Some(false) => ("bad", "✗"),
            None => ("", ""),
        };
        let conditions: Vec<String> = row
            .checks
            .iter()
            .map(|&i| {
                let v = &verdicts[i];
                format!(
                    "<span class=\"{}\">{} {}</span>",
                    if v.passed { "ok" } else { "bad" },
                    if v.passed { "✓" } else { "✗" },
                    escape(&condition(v))
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<tr><td class=\"mark {class}\">{mark}</td><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(&row.metric),
            escape(&row.value),
            conditions.join("<br>")
        );
    }
    out.push_str("</table>\n");
    if !verdicts.is_empty() {
        let passed = verdicts.iter().filter(|v| v.passed).count();
        let _ = writeln!(
            out,
            "<p>thresholds: <span class=\"ok\">{passed} passed</span>, <span class=\"{}\">{} failed</span></p>",
            if passed == verdicts.len() {
                "ok"
            } else {
                "bad"
            },
            verdicts.len() - passed
        );
    }
    out
}

/// A line of a chart: points `(seconds since the run started, value)`, `None` for a gap.
pub struct Line {
    pub label: String,
    pub color: &'static str,
    /// `""`, `"dash"` or `"dot"`.
    pub style: &'static str,
    pub points: Vec<Option<(f64, f64)>>,
}

fn x_of(series: &Series, second: u64) -> f64 {
    series.offset_seconds + second as f64 + 0.5
}

/// The run's time line: from its start (or the earliest series) to its end (or the end of the
/// last series).
fn x_range(series: &[Series], duration: Option<f64>) -> (f64, f64) {
    let start = series
        .iter()
        .map(|s| s.offset_seconds.floor())
        .fold(0.0, f64::min);
    let end = series
        .iter()
        .map(|s| s.offset_seconds + s.points.len() as f64)
        .fold(duration.unwrap_or(0.0).max(start + 1.0), f64::max)
        .ceil();
    (start, end)
}

fn latency_chart(series: &[Series], duration: Option<f64>) -> String {
    let mut lines = Vec::new();
    for (n, s) in series.iter().enumerate() {
        if s.points.iter().all(|p| p.p99_ms.is_none()) {
            continue;
        }
        let color = COLORS[n % COLORS.len()];
        for (what, style, pick) in [
            (
                "p99",
                "",
                (|p: &Point| p.p99_ms) as fn(&Point) -> Option<f64>,
            ),
            ("p50", "dash", |p| p.p50_ms),
        ] {
            lines.push(Line {
                label: format!("{} {what}", s.name),
                color,
                style,
                points: s
                    .points
                    .iter()
                    .map(|p| pick(p).map(|v| (x_of(s, p.second), v)))
                    .collect(),
            });
        }
    }
    chart(
        "Latency per second (p50, p99)",
        "ms",
        &lines,
        x_range(series, duration),
        true,
    )
}

/// A per-second rate, placed in the middle of the part of the second the point covers; none
/// for a last point covering under a quarter of a second (too short to tell a rate).
fn rate(s: &Series, p: &Point, count: u64) -> Option<(f64, f64)> {
    (p.covered >= 0.25).then(|| {
        (
            s.offset_seconds + p.second as f64 + p.covered / 2.0,
            count as f64 / p.covered,
        )
    })
}

fn throughput_chart(series: &[Series], duration: Option<f64>) -> String {
    let mut lines = Vec::new();
    for (n, s) in series.iter().enumerate() {
        let color = COLORS[n % COLORS.len()];
        lines.push(Line {
            label: format!("{} per second", s.name),
            color,
            style: "",
            points: s.points.iter().map(|p| rate(s, p, p.ops)).collect(),
        });
        if s.errors > 0 {
            lines.push(Line {
                label: format!("{} errors per second", s.name),
                color,
                style: "dot",
                points: s.points.iter().map(|p| rate(s, p, p.errors)).collect(),
            });
        }
    }
    chart(
        "Throughput per second",
        "per second",
        &lines,
        x_range(series, duration),
        false,
    )
}

/// A step of 1, 2 or 5 times a power of ten near `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let step = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    step * magnitude
}

/// An SVG line chart over `x_range` (seconds), with a log scale when `log_if_wide` and the
/// values span more than a factor of 30.
pub fn chart(
    title: &str,
    unit: &str,
    lines: &[Line],
    x_range: (f64, f64),
    log_if_wide: bool,
) -> String {
    const W: f64 = 1000.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 12.0;
    const BOTTOM: f64 = 40.0;
    let mut out = format!("<h3>{}</h3>\n", escape(title));
    let all: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|l| l.points.iter().flatten().copied())
        .collect();
    if all.is_empty() {
        let _ = writeln!(
            out,
            "<svg viewBox=\"0 0 {W} 60\" role=\"img\"><text x=\"{LEFT}\" y=\"30\">no observations</text></svg>"
        );
        return out;
    }
    out.push_str("<div class=\"legend\">");
    for l in lines {
        let _ = write!(
            out,
            "<span><i class=\"{}\" style=\"border-color:{}\"></i>{}</span>",
            l.style,
            l.color,
            escape(&l.label)
        );
    }
    out.push_str("</div>\n");
    let (x_min, x_max) = x_range;
    let x_max = if x_max - x_min < 1.0 {
        x_min + 1.0
    } else {
        x_max
    };
    let y_top = all.iter().map(|p| p.1).fold(0.0, f64::max);
    let y_bottom = all
        .iter()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(f64::INFINITY, f64::min);
    // A log scale when one outlier would flatten everything else (latency spikes).
    let log = log_if_wide && y_bottom.is_finite() && y_top / y_bottom > 30.0;
    let (y_lo, y_hi, ticks): (f64, f64, Vec<f64>) = if log {
        let (lo, hi) = (
            y_bottom.log10().floor(),
            y_top.log10().ceil().max(y_bottom.log10().floor() + 1.0),
        );
        let decades = (hi - lo) as i32;
        let mut ticks = Vec::new();
        for d in 0..=decades {
            let base = 10f64.powi(lo as i32 + d);
            ticks.push(base);
            if decades <= 3 && d < decades {
                ticks.extend([2.0 * base, 5.0 * base]);
            }
        }
        (10f64.powf(lo), 10f64.powf(hi), ticks)
    } else {
        let step = nice_step(if y_top > 0.0 { y_top / 5.0 } else { 0.2 });
        let max = ((y_top / step).ceil() * step).max(step);
        let ticks = (0..)
            .map(|n| f64::from(n) * step)
            .take_while(|y| *y <= max + step / 2.0)
            .collect();
        (0.0, max, ticks)
    };
    let x_step = nice_step((x_max - x_min) / 10.0).max(1.0);
    let px = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * (W - LEFT - RIGHT);
    let py = |y: f64| {
        let at = if log {
            (y.max(y_lo).log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10())
        } else {
            y / y_hi
        };
        TOP + (1.0 - at) * (H - TOP - BOTTOM)
    };
    let _ = writeln!(
        out,
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(title)
    );
    // Grid and axes.
    for y in ticks {
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e5e7eb\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            py(y),
            py(y),
            LEFT - 6.0,
            py(y) + 4.0,
            number(y)
        );
    }
    let unit = if log {
        format!("{unit} (log scale)")
    } else {
        unit.to_owned()
    };
    let unit = unit.as_str();
    let mut x = (x_min / x_step).ceil() * x_step;
    while x <= x_max + 1e-9 {
        let _ = writeln!(
            out,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#f3f4f6\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            px(x),
            px(x),
            H - BOTTOM,
            px(x),
            H - BOTTOM + 16.0,
            number(x)
        );
        x += x_step;
    }
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#9ca3af\"/><line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#9ca3af\"/>",
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds since the start of the run</text><text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (LEFT + W - RIGHT) / 2.0,
        H - 6.0,
        (TOP + H - BOTTOM) / 2.0,
        escape(unit)
    );
    // The lines, broken at gaps, and a dot with a tooltip per point.
    for l in lines {
        let dash = match l.style {
            "dash" => " stroke-dasharray=\"7 4\"",
            "dot" => " stroke-dasharray=\"2 3\"",
            _ => "",
        };
        for segment in l.points.split(Option::is_none) {
            let coordinates: Vec<String> = segment
                .iter()
                .flatten()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            if coordinates.len() > 1 {
                let _ = writeln!(
                    out,
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
                    l.color,
                    coordinates.join(" ")
                );
            }
        }
        for &(x, y) in l.points.iter().flatten() {
            let _ = writeln!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"><title>{} at {} s: {} {}</title></circle>",
                px(x),
                py(y),
                l.color,
                escape(&l.label),
                number(x),
                number(y),
                escape(unit)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::metrics::{Flat, Value};
    use super::super::summary::rows;
    use super::super::thresholds::evaluate;
    use super::*;

    fn series() -> Vec<Series> {
        let point = |second, ops, p99: Option<f64>| Point {
            second,
            covered: if second == 2 { 0.5 } else { 1.0 },
            ops,
            errors: u64::from(second == 2),
            p50_ms: p99.map(|p| p / 2.0),
            p99_ms: p99,
            max_ms: p99,
        };
        vec![Series {
            name: "posts <a>".into(),
            offset_seconds: 1.5,
            ops: 30,
            errors: 1,
            points: vec![
                point(0, 10, Some(12.5)),
                point(1, 0, None),
                point(2, 20, Some(40.0)),
            ],
        }]
    }

    #[test]
    fn the_page_is_self_contained_and_carries_the_series() {
        let run = RunInfo::collect(
            "writes",
            &serde_json::json!({"clients": 20, "url": "http://x/<y>"}),
        );
        let metrics = Flat {
            leaves: vec![("latency.p99_ms".into(), Value::Number(40.0))],
            open_maps: vec![],
        };
        let thresholds = ["latency.p99_ms<100".parse(), "latency.p99_ms<10".parse()]
            .into_iter()
            .filter_map(Result::ok)
            .collect::<Vec<_>>();
        let (verdicts, _) = evaluate(&thresholds, &metrics);
        let rows = rows(&metrics, &verdicts);
        let series = series();
        let json = serde_json::json!({"series": &series, "note": "</script><b>"}).to_string();
        let html = render(&Page {
            run: &run,
            passed: Some(false),
            rows: &rows,
            verdicts: &verdicts,
            series: &series,
            json: &json,
        });
        assert!(
            html.starts_with("<!doctype html>\n<html"),
            "{}",
            &html[..40]
        );
        assert!(html.trim_end().ends_with("</html>"));
        for (open, close) in [
            ("<svg", "</svg>"),
            ("<table", "</table>"),
            ("<script", "</script>"),
            ("<tr>", "</tr>"),
        ] {
            assert_eq!(
                html.matches(open).count(),
                html.matches(close).count(),
                "{open}"
            );
        }
        assert_eq!(html.matches("<svg").count(), 2, "latency and throughput");
        assert_eq!(html.matches("<script").count(), 1);
        for fetch in ["<link", "src=", "@import", "url(", "<img"] {
            assert!(!html.contains(fetch), "nothing fetched: {fetch}");
        }
        // The series: its names (escaped), a tooltip per point, a gap in the latency lines.
        assert!(html.contains("posts &lt;a&gt; p99"));
        assert!(html.contains("posts &lt;a&gt; errors per second"));
        assert!(
            html.contains("p99 at 4 s: 40 ms"),
            "second 2 after an offset of 1.5 s"
        );
        assert!(html.contains("p99 at 2 s: 12.5 ms"));
        assert!(
            html.contains("per second at 3.75 s: 40 per second"),
            "20 in the half second covered"
        );
        assert!(
            html.contains("\\u003c/script>\\u003cb>"),
            "the data cannot close its element"
        );
        assert!(html.contains("\"name\":\"posts \\u003ca>\""));
        // The summary and the metadata.
        assert!(html.contains("✓ &lt; 100") && html.contains("✗ &lt; 10"));
        assert!(html.contains("badge fail"));
        assert!(html.contains("http://x/&lt;y&gt;"));
        assert!(html.contains("net.core.somaxconn"));
        let empty = chart("Nothing", "ms", &[], (0.0, 1.0), false);
        assert!(empty.contains("no observations"));
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(1200.0), 2000.0);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn a_wide_latency_range_gets_a_log_scale() {
        let line = |top: f64| Line {
            label: "p99".into(),
            color: COLORS[0],
            style: "",
            points: vec![Some((0.5, 2.0)), None, Some((2.5, top))],
        };
        let wide = chart("Latency", "ms", &[line(4000.0)], (0.0, 3.0), true);
        assert!(wide.contains("ms (log scale)"), "{wide}");
        for tick in [">1<", ">10<", ">100<", ">1000<", ">10000<"] {
            assert!(wide.contains(tick), "{tick}");
        }
        assert!(!wide.contains("<polyline"), "a gap leaves single points");
        let narrow = chart("Latency", "ms", &[line(20.0)], (0.0, 3.0), true);
        assert!(!narrow.contains("log scale") && narrow.contains(">20<"));
    }
}
