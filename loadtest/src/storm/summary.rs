//! The storm's report: what the workers counted, the exactness check against the log, the
//! kill, the posts and the servers, and the lines printed at the end.

use std::collections::BTreeMap;

use serde::Serialize;

use super::audit::{self, Addressed, ResumeReport};
use super::posting::PostsReport;
use super::servers::ServerReport;
use super::wire::ClientOutcome;
use crate::report::Latency;

#[derive(Serialize, Default)]
pub struct Report {
    pub scenario: &'static str,
    /// `storm`, or `kill-node`.
    pub mode: &'static str,
    pub users: usize,
    pub nodes: usize,
    pub processes: usize,
    pub follows: usize,
    pub most_followers: usize,
    pub median_follows: usize,
    pub setup_seconds: f64,
    /// 429s and 503s waited out while signing in and following.
    pub setup_refusals_waited: u64,
    /// Other 5xx answers retried while setting up (each request is idempotent).
    pub setup_errors_retried: u64,
    pub tokens_refreshed: bool,
    /// The `since` of every first session (the log's head before the storm), or null (fresh).
    pub since: Option<i64>,
    /// Clients that had a session at least once.
    pub connected: usize,
    /// From the storm's start until the last client's first `hello`; null if not all did
    /// within the connect deadline.
    pub connected_within_seconds: Option<f64>,
    /// From the storm's start to each client's first `hello` (retries and waits included).
    pub time_to_first_hello: Latency,
    /// Of each session opened: TCP connect, upgrade and `hello`.
    pub connect_time: Latency,
    pub sessions_opened: u64,
    pub peak_open: i64,
    /// Sessions open when the storm was stopped.
    pub open_at_stop: i64,
    /// Upgrades refused before the 101, by status.
    pub refusals: BTreeMap<String, u64>,
    pub refusals_without_retry_after: u64,
    /// Retries made after waiting a refusal's `Retry-After`.
    pub retries_honoured: u64,
    /// Attempts that failed below HTTP, by cause.
    pub failures: BTreeMap<String, u64>,
    /// Open sessions the server ended, by close code (`no close frame`: reset or EOF).
    pub closes: BTreeMap<String, u64>,
    /// Sessions the server closed with a close frame (every code).
    pub sessions_closed_by_server: u64,
    /// Sessions that ended without a close frame (a reset, EOF: a node gone).
    pub sessions_dropped: u64,
    /// Clients that stopped trying: refused with a status no client retries (401, 403, ...).
    pub clients_gave_up: u64,
    pub deliveries: u64,
    pub resume: ResumeReport,
    pub kill: KillReport,
    pub posts: PostsReport,
    pub server_rss_before_bytes: Option<u64>,
    /// The sum over the servers of each one's peak.
    pub server_rss_peak_bytes: Option<u64>,
    pub server_cpu_seconds: Option<f64>,
    pub servers: Vec<ServerReport>,
    /// CPU seconds of the worker processes and of this one during the storm.
    pub generator_cpu_seconds: Option<f64>,
    pub storm_seconds: f64,
    /// Clients whose worker process reported nothing at the end (it failed): they are in no
    /// figure above but the workers' running counts.
    pub clients_unreported: usize,
}

/// `--kill-node`: what the SIGKILL did.
#[derive(Serialize, Default, Debug, Clone)]
pub struct KillReport {
    pub killed_pid: Option<u32>,
    /// Seconds after the storm's start.
    pub at_seconds: Option<f64>,
    pub open_before: Option<i64>,
    /// Sessions that ended without a close frame after the kill.
    pub sessions_dropped: Option<u64>,
    /// From the kill until every client had a session again (to a quarter second).
    pub all_open_again_seconds: Option<f64>,
    /// Sessions opened on another node than the client's one before.
    pub clients_moved: u64,
}

/// Checks every client's ids: order and duplicates always; with the log (`addressed`, read
/// after `head`), exactness for each client open at the end and never told to resync.
/// `user_of` gives a client's user id; with `fresh` first sessions, a client is compared above
/// the first id it received rather than above `head`.
pub fn check(
    outcomes: &[ClientOutcome],
    addressed: Option<&Addressed>,
    head: i64,
    fresh: bool,
    user_of: impl Fn(usize) -> i64,
) -> ResumeReport {
    let mut report = ResumeReport {
        checked: addressed.is_some(),
        ..ResumeReport::default()
    };
    let (mut missing, mut unexpected, mut clients_missing) = (0, 0, 0);
    for outcome in outcomes {
        report.duplicated += outcome.duplicated;
        report.out_of_order += outcome.out_of_order;
        report.resync_required += u64::from(outcome.resyncs);
        if outcome.resyncs > 0 {
            continue;
        }
        if !outcome.open_at_stop {
            report.not_open_at_stop += 1;
            continue;
        }
        let Some(log) = addressed else {
            continue;
        };
        let above = if fresh {
            outcome.ids.first().copied().unwrap_or(i64::MAX)
        } else {
            head
        };
        let compared = audit::compare(
            &log.expected(user_of(outcome.index), above),
            &outcome.ids,
            above,
        );
        report.clients_checked += 1;
        report.expected += compared.expected;
        missing += compared.missing;
        unexpected += compared.unexpected;
        clients_missing += u64::from(compared.missing > 0);
    }
    if report.checked {
        report.missing = Some(missing);
        report.unexpected = Some(unexpected);
        report.clients_missing = Some(clients_missing);
    }
    report
}

pub fn print(r: &Report) {
    let within = r
        .connected_within_seconds
        .map_or_else(|| "not all".to_owned(), |s| format!("{s:.1} s"));
    println!(
        "storm: {} of {} clients connected (all within: {within}); time to first hello p50 {:.0} ms, p99 {:.0} ms; connect p50 {:.1} ms, p99 {:.1} ms",
        r.connected,
        r.users,
        r.time_to_first_hello.p50_ms,
        r.time_to_first_hello.p99_ms,
        r.connect_time.p50_ms,
        r.connect_time.p99_ms
    );
    println!(
        "storm: refusals {:?} ({} without Retry-After), retries honoured {}, failures {:?}; clients given up {}",
        r.refusals,
        r.refusals_without_retry_after,
        r.retries_honoured,
        r.failures,
        r.clients_gave_up
    );
    println!(
        "storm: sessions closed by the server {}, dropped {} {:?}; {} sessions opened, peak open {}, open at the end {}",
        r.sessions_closed_by_server,
        r.sessions_dropped,
        r.closes,
        r.sessions_opened,
        r.peak_open,
        r.open_at_stop
    );
    if r.clients_unreported > 0 {
        println!(
            "storm: *** {} clients were not reported by their worker process",
            r.clients_unreported
        );
    }
    let res = &r.resume;
    let maybe = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    println!(
        "storm: resume: {} clients compared with the log, {} ids expected; missing {}, unexpected {}, duplicated {}, out of order {}; resync_required {}, not open at the end {}",
        res.clients_checked,
        res.expected,
        maybe(res.missing),
        maybe(res.unexpected),
        res.duplicated,
        res.out_of_order,
        res.resync_required,
        res.not_open_at_stop
    );
    if let Some(pid) = r.kill.killed_pid {
        println!(
            "storm: node {pid} SIGKILLed at {:.1} s with {} sessions open; {} dropped; all open again after {}; {} sessions moved node",
            r.kill.at_seconds.unwrap_or_default(),
            r.kill.open_before.unwrap_or_default(),
            r.kill.sessions_dropped.unwrap_or_default(),
            r.kill
                .all_open_again_seconds
                .map_or_else(|| "never".to_owned(), |s| format!("{s:.2} s")),
            r.kill.clients_moved
        );
    }
    println!(
        "storm: {} posts acknowledged of {} ({} failed); {} deliveries",
        r.posts.acknowledged, r.posts.sent, r.posts.failed, r.deliveries
    );
    for s in &r.servers {
        println!(
            "storm: server {}{}: RSS {} → peak {} MiB, CPU {} s",
            s.pid,
            if s.killed { " (killed)" } else { "" },
            mib(s.rss_before_bytes),
            mib(s.rss_peak_bytes),
            s.cpu_seconds
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}"))
        );
    }
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "-".to_owned(),
        |b| format!("{:.1}", b as f64 / 1048576.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(index: usize, ids: &[i64]) -> ClientOutcome {
        ClientOutcome {
            index,
            ids: ids.to_vec(),
            open_at_stop: true,
            ..ClientOutcome::default()
        }
    }

    #[test]
    fn clients_are_compared_only_when_they_can_be() {
        let log = Addressed {
            by_author: [(1, vec![11, 12, 13])].into(),
            followees: [(2, vec![1])].into(),
            ..Addressed::default()
        };
        let resynced = ClientOutcome {
            resyncs: 1,
            ..outcome(0, &[11])
        };
        let gone = ClientOutcome {
            open_at_stop: false,
            ..outcome(1, &[])
        };
        let outcomes = [
            outcome(1, &[11, 12, 13]),
            outcome(2, &[11, 13]),
            resynced,
            gone,
        ];
        // Users: index 0 → 3 (follows nobody), 1 → 1 (the author), 2 → 2 (a follower).
        let user_of = |i: usize| [3, 1, 2][i];
        let r = check(&outcomes, Some(&log), 10, false, user_of);
        assert_eq!(r.clients_checked, 2);
        assert_eq!(r.expected, 6);
        assert_eq!(r.missing, Some(1));
        assert_eq!(r.clients_missing, Some(1));
        assert_eq!((r.resync_required, r.not_open_at_stop), (1, 1));
        // Fresh first sessions: compared above the first id each received.
        let r = check(&outcomes[1..2], Some(&log), 10, true, user_of);
        assert_eq!((r.expected, r.missing), (2, Some(1)));
        // Without the log, nothing is compared and the counts are null.
        let r = check(&outcomes, None, 10, false, user_of);
        assert_eq!((r.checked, r.missing), (false, None));
    }
}
