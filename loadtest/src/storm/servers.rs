//! The servers as this machine sees them (`--server-pid`, read from `/proc`): memory before the
//! storm, at its peak and at the end, and CPU time used; and the SIGKILL of `--kill-node`.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;

use crate::scenario;

/// One server process, as sampled.
#[derive(Serialize, Default, Debug, Clone)]
pub struct ServerReport {
    pub pid: u32,
    pub rss_before_bytes: Option<u64>,
    pub rss_peak_bytes: Option<u64>,
    /// The last sample (before the kill, for the killed node).
    pub rss_end_bytes: Option<u64>,
    /// CPU seconds (user + system) from before the storm to the last sample.
    pub cpu_seconds: Option<f64>,
    pub killed: bool,
}

/// The watched servers.
pub struct Servers {
    watched: Vec<(ServerReport, Option<f64>)>,
}

impl Servers {
    /// Starts watching `pids` (their memory and CPU time now are the "before").
    pub fn watch(pids: &[u32]) -> Self {
        Self {
            watched: pids
                .iter()
                .map(|&pid| {
                    let rss = crate::connect::rss_of(pid);
                    let report = ServerReport {
                        pid,
                        rss_before_bytes: rss,
                        rss_peak_bytes: rss,
                        rss_end_bytes: rss,
                        cpu_seconds: Some(0.0),
                        killed: false,
                    };
                    (report, scenario::cpu_seconds_of(pid))
                })
                .collect(),
        }
    }

    /// Takes a sample of every server still running.
    pub fn sample(&mut self) {
        for (report, cpu_before) in &mut self.watched {
            if report.killed {
                continue;
            }
            if let Some(rss) = crate::connect::rss_of(report.pid) {
                report.rss_end_bytes = Some(rss);
                report.rss_peak_bytes = report.rss_peak_bytes.max(Some(rss));
            }
            if let (Some(before), Some(now)) = (*cpu_before, scenario::cpu_seconds_of(report.pid)) {
                report.cpu_seconds = Some(now - before);
            }
        }
    }

    /// Samples, then sends SIGKILL to the server of index `n` (in `--server-pid` order).
    pub fn kill(&mut self, n: usize) -> anyhow::Result<u32> {
        self.sample();
        let (report, _) = self
            .watched
            .get_mut(n)
            .ok_or_else(|| anyhow::anyhow!("no --server-pid number {}", n + 1))?;
        let pid = i32::try_from(report.pid)?;
        kill(Pid::from_raw(pid), Signal::SIGKILL)
            .map_err(|e| anyhow::anyhow!("SIGKILL to {pid}: {e}"))?;
        report.killed = true;
        Ok(report.pid)
    }

    pub fn reports(&self) -> Vec<ServerReport> {
        self.watched.iter().map(|(r, _)| r.clone()).collect()
    }

    /// The sum over the servers of `f`, when every server has it (none without servers).
    pub fn total<T: std::iter::Sum<T>>(&self, f: impl Fn(&ServerReport) -> Option<T>) -> Option<T> {
        if self.watched.is_empty() {
            return None;
        }
        self.watched.iter().map(|(r, _)| f(r)).sum()
    }
}
