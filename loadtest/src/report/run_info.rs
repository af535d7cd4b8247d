//! [`RunInfo`]: what a report says about its run: the commit, the machine, the kernel's
//! network and file limits, the start time and the scenario's parameters.

use std::collections::BTreeMap;
use std::process::Command;

use serde::{Serialize, Serializer};

/// The metadata of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub scenario: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// Set by [`crate::report::Run::finish`].
    pub finished_at: Option<String>,
    pub duration_seconds: Option<f64>,
    /// `git rev-parse HEAD` in the current directory, else `$AISOCIAL_COMMIT`.
    pub commit: Option<String>,
    /// Whether tracked files differ from the commit (only known from git).
    pub commit_dirty: Option<bool>,
    /// `release` or `debug`: a debug load generator measures itself.
    pub build: &'static str,
    pub loadtest_version: &'static str,
    /// The command line, passwords in URLs masked.
    pub command: Vec<String>,
    pub machine: Machine,
    /// Sysctls from /proc/sys (by their dotted names) and this process's open-file limits.
    pub kernel: BTreeMap<String, Option<String>>,
    /// The scenario's arguments (its clap `Args`, serialized).
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub hostname: Option<String>,
    pub cpu_model: Option<String>,
    /// Processors listed in /proc/cpuinfo.
    pub cpus: Option<usize>,
    /// The processors this process may run on (affinity and cgroup quota).
    pub available_parallelism: Option<usize>,
    pub memory_total_bytes: Option<u64>,
    /// `/proc/sys/kernel/osrelease` (as `uname -r`).
    pub kernel: Option<String>,
    pub kernel_version: Option<String>,
    /// `/proc/loadavg` at the start.
    pub loadavg: Option<String>,
}

/// The sysctls a load test's figures depend on.
pub const SYSCTLS: [&str; 10] = [
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_tw_reuse",
    "net.core.netdev_max_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "fs.file-max",
    "fs.nr_open",
    "vm.overcommit_memory",
];

fn read(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("--no-optional-locks")
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The commit: `git rev-parse HEAD` here, else `$AISOCIAL_COMMIT`; and whether the tree is dirty.
pub fn commit() -> (Option<String>, Option<bool>) {
    match git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty()) {
        Some(commit) => {
            let dirty =
                git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
            (Some(commit), dirty)
        }
        None => (
            std::env::var("AISOCIAL_COMMIT")
                .ok()
                .filter(|c| !c.trim().is_empty()),
            None,
        ),
    }
}

impl Machine {
    pub fn collect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_owned())
        };
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            hostname: read("/proc/sys/kernel/hostname"),
            cpu_model: field("model name")
                .or_else(|| field("Hardware"))
                .or_else(|| field("uarch")),
            cpus: (cpus > 0).then_some(cpus),
            available_parallelism: std::thread::available_parallelism().ok().map(|n| n.get()),
            memory_total_bytes: meminfo
                .lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .map(|kib| kib * 1024),
            kernel: read("/proc/sys/kernel/osrelease"),
            kernel_version: read("/proc/sys/kernel/version"),
            loadavg: read("/proc/loadavg"),
        }
    }
}

/// [`SYSCTLS`] from /proc/sys, and `open_files.soft` / `open_files.hard` of this process.
pub fn kernel_settings() -> BTreeMap<String, Option<String>> {
    let mut settings: BTreeMap<String, Option<String>> = SYSCTLS
        .iter()
        .map(|name| {
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            ((*name).to_owned(), read(&path))
        })
        .collect();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| {
            l["Max open files".len()..]
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
    settings.insert(
        "open_files.soft".into(),
        open_files.as_ref().and_then(|f| f.first().cloned()),
    );
    settings.insert(
        "open_files.hard".into(),
        open_files.as_ref().and_then(|f| f.get(1).cloned()),
    );
    settings
}

/// `scheme://user:password@host` as `scheme://user:***@host`; other text unchanged.
pub fn redact(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = text[authority_start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| authority_start + i);
    let authority = &text[authority_start..authority_end];
    match authority
        .rfind('@')
        .and_then(|at| Some((at, authority[..at].find(':')?)))
    {
        Some((at, colon)) => format!(
            "{}{}:***{}",
            &text[..authority_start],
            &authority[..colon],
            &text[authority_start + at..]
        ),
        None => text.to_owned(),
    }
}

/// `#[serde(serialize_with = "report::redacted")]` for URL fields that may hold a password.
pub fn redacted<T: AsRef<str>, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact(value.as_ref()))
}

impl RunInfo {
    /// Collects everything now (call it first thing in the scenario).
    pub fn collect(scenario: &str, parameters: &impl Serialize) -> Self {
        let (commit, commit_dirty) = commit();
        Self {
            scenario: scenario.to_owned(),
            started_at: now_rfc3339(),
            finished_at: None,
            duration_seconds: None,
            commit,
            commit_dirty,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            loadtest_version: env!("CARGO_PKG_VERSION"),
            command: std::env::args().map(|a| redact(&a)).collect(),
            machine: Machine::collect(),
            kernel: kernel_settings(),
            parameters: serde_json::to_value(parameters).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// Now, RFC 3339 in UTC to the millisecond.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            redact("postgres://bench:s3cret@db:5432/x?a=b"),
            "postgres://bench:***@db:5432/x?a=b"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(redact("--clients"), "--clients");
        assert_eq!(redact("redis://:pw@host/0"), "redis://:***@host/0");
    }

    #[test]
    fn the_machine_and_its_settings_are_read() {
        #[derive(Serialize)]
        struct Args {
            clients: usize,
        }
        let info = RunInfo::collect("writes", &Args { clients: 3 });
        assert_eq!(info.parameters["clients"], 3);
        assert!(
            info.started_at.ends_with('Z') && info.started_at.contains('T'),
            "{}",
            info.started_at
        );
        assert_eq!(info.kernel.len(), SYSCTLS.len() + 2);
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(info.machine.memory_total_bytes.unwrap_or(0) > 0);
            assert!(info.machine.cpus.unwrap_or(0) > 0);
            assert!(info.machine.kernel.is_some());
            assert!(info.kernel["open_files.soft"].is_some());
            assert!(info.kernel["net.core.somaxconn"].is_some());
        }
    }
}
