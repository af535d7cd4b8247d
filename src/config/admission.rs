//! The bounds on websockets a node admits (the admission service applies them).

/// The bounds; each a setting.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub max_sessions: usize,
    pub max_starting: usize,
    pub per_user: usize,
    pub per_ip: usize,
}

/// The open-file limit minus what the node needs besides sockets (pools, logs, listeners).
pub fn sessions_for_open_files() -> usize {
    const RESERVE: usize = 512;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1024);
    soft.saturating_sub(RESERVE).max(64)
}
