//! A snapshot of the process and machine for `/health/system`, read from `/proc` and `statvfs`.

use std::time::Instant;

use aisocial_actors::feed_broker::OnlineStats;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct SystemSnapshot {
    pub uptime_secs: f64,
    pub cpu: Cpu,
    pub memory: Memory,
    pub disk: Option<Disk>,
    pub connections: Connections,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Cpu {
    pub cores: usize,
    pub process_seconds: Option<f64>,
    pub load_average: Option<[f64; 3]>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Memory {
    pub process_rss_bytes: Option<u64>,
    pub machine_total_bytes: Option<u64>,
    pub machine_available_bytes: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Disk {
    pub path: &'static str,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Connections {
    pub websockets: usize,
    pub online_users: usize,
    pub open_files: Option<usize>,
}

fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    Some((utime + stime) / ticks)
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmRSS:")
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn disk() -> Option<Disk> {
    let stat = nix::sys::statvfs::statvfs(".").ok()?;
    let fragment = stat.fragment_size() as u64;
    Some(Disk {
        path: ".",
        total_bytes: stat.blocks() as u64 * fragment,
        available_bytes: stat.blocks_available() as u64 * fragment,
    })
}

fn open_files() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

pub fn snapshot(started_at: Instant, online: OnlineStats) -> SystemSnapshot {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    SystemSnapshot {
        uptime_secs: started_at.elapsed().as_secs_f64(),
        cpu: Cpu {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            process_seconds: process_cpu_seconds(),
            load_average: load_average(),
        },
        memory: Memory {
            process_rss_bytes: rss_bytes(),
            machine_total_bytes: kib_field(&meminfo, "MemTotal:"),
            machine_available_bytes: kib_field(&meminfo, "MemAvailable:"),
        },
        disk: disk(),
        connections: Connections {
            websockets: online.sessions,
            online_users: online.users,
            open_files: open_files(),
        },
    }
}
