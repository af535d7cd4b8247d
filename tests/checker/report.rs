//! The run's report: operations, faults, readers and the oracle's counts, printed as a short
//! table and written as JSON to `CHECKER_REPORT` when it is set.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::oracle::Verdict;

/// How the operations of one kind ended.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpCounts {
    /// 2xx.
    pub acked: u64,
    /// A 4xx that the random workload earns (a reply to a deleted post, …): not a failure.
    pub rejected: u64,
    /// The rejections by status.
    pub rejected_by_status: BTreeMap<u16, u64>,
    /// Never answered before its deadline or the end of the run (the oracle reads PostgreSQL,
    /// so whether it committed does not matter).
    pub unacknowledged: u64,
    /// A 5xx other than 503: a broken promise.
    pub failed: u64,
}

impl OpCounts {
    pub fn add(&mut self, other: OpCounts) {
        self.acked += other.acked;
        self.rejected += other.rejected;
        for (status, n) in other.rejected_by_status {
            *self.rejected_by_status.entry(status).or_default() += n;
        }
        self.unacknowledged += other.unacknowledged;
        self.failed += other.failed;
    }
}

/// Everything a run did and found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub seed: u64,
    pub seconds: u64,
    pub nodes: usize,
    pub writers: usize,
    pub readers: usize,
    pub faults_enabled: Vec<String>,
    pub start_id: i64,
    pub head_id: i64,
    pub wall_seconds: f64,
    pub operations: BTreeMap<String, OpCounts>,
    pub faults: BTreeMap<String, u64>,
    /// When each fault began (seconds since the workload started) and what it was.
    pub fault_timeline: Vec<String>,
    pub reconnects: u64,
    /// Why sessions ended: `voluntary`, `close <code>`, `error`, `hello timeout`, …
    pub session_ends: BTreeMap<String, u64>,
    /// Upgrades refused or failed: `503`, `429`, `connect error`, `timeout`, …
    pub connect_failures: BTreeMap<String, u64>,
    pub events_in_log: usize,
    pub client_visible_events: usize,
    pub routing_records: usize,
    pub skipped_kinds: BTreeMap<String, usize>,
    pub deliveries_expected: usize,
    pub deliveries_seen: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub out_of_order: usize,
    pub unexpected: usize,
    pub beyond_head: usize,
    /// Broken promises outside the oracle (5xx, `resync_required`, a frame before `hello`, …).
    pub failures: Vec<String>,
    pub log_errors: Vec<String>,
    pub findings: Vec<String>,
    pub valid: bool,
}

impl Report {
    /// Takes the oracle's counts and decides validity.
    pub fn judge(&mut self, verdict: Verdict) {
        self.events_in_log = verdict.events_in_log;
        self.client_visible_events = verdict.client_visible;
        self.routing_records = verdict.routing_records;
        self.skipped_kinds = verdict.skipped_kinds.clone();
        self.deliveries_expected = verdict.deliveries_expected;
        self.deliveries_seen = verdict.deliveries_seen;
        self.lost = verdict.lost;
        self.duplicated = verdict.duplicated;
        self.out_of_order = verdict.out_of_order;
        self.unexpected = verdict.unexpected;
        self.beyond_head = verdict.beyond_head;
        self.valid = verdict.valid() && self.failures.is_empty();
        self.log_errors = verdict.log_errors;
        self.findings = verdict.findings;
    }

    /// The short table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "checker seed={} {}s, {} nodes, {} writers, {} readers, events ({}, {}], {:.0}s wall: {}",
            self.seed,
            self.seconds,
            self.nodes,
            self.writers,
            self.readers,
            self.start_id,
            self.head_id,
            self.wall_seconds,
            if self.valid { "VALID" } else { "INVALID" }
        );
        let _ = writeln!(
            out,
            "  {:<12} {:>7} {:>8} {:>7} {:>6}",
            "operation", "acked", "rejected", "unacked", "failed"
        );
        for (kind, c) in &self.operations {
            let _ = writeln!(
                out,
                "  {kind:<12} {:>7} {:>8} {:>7} {:>6}",
                c.acked, c.rejected, c.unacknowledged, c.failed
            );
        }
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(out, "  faults: {}", join_or_none(&faults));
        let ends: Vec<String> = self
            .session_ends
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  reconnects: {} (sessions ended: {})",
            self.reconnects,
            join_or_none(&ends)
        );
        let refused: Vec<String> = self
            .connect_failures
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(out, "  connect failures: {}", join_or_none(&refused));
        let _ = writeln!(
            out,
            "  log: {} events, {} client-visible, {} route.follow; deliveries expected {}, seen {}",
            self.events_in_log,
            self.client_visible_events,
            self.routing_records,
            self.deliveries_expected,
            self.deliveries_seen
        );
        let _ = writeln!(
            out,
            "  lost {}, duplicated {}, out of order {}, unexpected {}, failures {}, log errors {}",
            self.lost,
            self.duplicated,
            self.out_of_order,
            self.unexpected,
            self.failures.len(),
            self.log_errors.len()
        );
        out
    }

    /// Why the run failed, with the seed and how to run it again.
    pub fn failure_message(&self) -> String {
        let mut out = format!(
            "seed={}: the delivery promise was broken (lost {}, duplicated {}, out of order {}, \
             unexpected {}, {} failures, {} log errors); rerun with CHECKER_SEED={} \
             CHECKER_SECONDS={}\n",
            self.seed,
            self.lost,
            self.duplicated,
            self.out_of_order,
            self.unexpected,
            self.failures.len(),
            self.log_errors.len(),
            self.seed,
            self.seconds
        );
        for line in self
            .log_errors
            .iter()
            .chain(&self.failures)
            .chain(&self.findings)
        {
            let _ = writeln!(out, "  seed={}: {line}", self.seed);
        }
        let _ = writeln!(out, "  fault timeline: {}", self.fault_timeline.join("; "));
        out
    }

    /// Writes the JSON report to `path` (its folder made when missing).
    pub fn write_json(&self, path: &str) {
        let path = std::path::Path::new(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("seed={}: {}: {e}", self.seed, dir.display()));
        }
        let json = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| panic!("seed={}: the report as JSON: {e}", self.seed));
        std::fs::write(path, json)
            .unwrap_or_else(|e| panic!("seed={}: {}: {e}", self.seed, path.display()));
    }
}

fn join_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}
