//! The nemesis: one fault at a time on a schedule drawn from the run's seed, each healed before
//! the next. It runs on a thread of its own, because starting PostgreSQL or a node blocks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng, rngs::StdRng};

use crate::cluster::Cluster;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `CLIENT PAUSE <ms> ALL` on Redis.
    RedisPause,
    /// Redis killed with SIGKILL and started again, empty, on its port.
    RedisKill,
    /// A node stopped with SIGSTOP, then SIGCONT.
    NodeStop,
    /// A node killed with SIGKILL and started again on its port.
    NodeKill,
    /// PostgreSQL stopped (fast) and started again.
    PostgresRestart,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::RedisPause,
        FaultKind::RedisKill,
        FaultKind::NodeStop,
        FaultKind::NodeKill,
        FaultKind::PostgresRestart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::RedisPause => "redis-pause",
            FaultKind::RedisKill => "redis-kill",
            FaultKind::NodeStop => "node-stop",
            FaultKind::NodeKill => "node-kill",
            FaultKind::PostgresRestart => "postgres-restart",
        }
    }

    /// `CHECKER_FAULTS`: `all` (or unset), `none`, or names separated by commas.
    pub fn parse_list(raw: &str) -> Result<Vec<FaultKind>, String> {
        match raw.trim() {
            "" | "all" => Ok(Self::ALL.to_vec()),
            "none" => Ok(Vec::new()),
            list => list
                .split(',')
                .map(str::trim)
                .map(|name| {
                    Self::ALL
                        .into_iter()
                        .find(|k| k.name() == name)
                        .ok_or_else(|| format!("unknown fault {name:?}"))
                })
                .collect(),
        }
    }
}

/// What the nemesis did, and the deployment handed back whole.
pub struct Outcome {
    pub cluster: Cluster,
    pub faults: BTreeMap<String, u64>,
    pub timeline: Vec<String>,
}

/// The nemesis's thread; dropping it (a test that panicked) stops it and waits, so that the
/// deployment's processes are killed rather than left behind.
pub struct Nemesis {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Outcome>>,
}

impl Nemesis {
    pub fn start(cluster: Cluster, seed: u64, kinds: Vec<FaultKind>, began: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("nemesis".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("seed={seed}: the nemesis's runtime: {e}"));
                runtime.block_on(run(cluster, seed, kinds, stopping, began))
            })
            .unwrap_or_else(|e| panic!("seed={seed}: the nemesis's thread: {e}"));
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Asks for no new fault; the one under way is still healed.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops after the fault under way is healed; the deployment comes back.
    pub async fn finish(mut self, seed: u64) -> Outcome {
        self.stop();
        let thread = self.thread.take();
        actix_rt::task::spawn_blocking(move || thread.map(std::thread::JoinHandle::join))
            .await
            .ok()
            .flatten()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("seed={seed}: the nemesis panicked (see its message above)"))
    }
}

impl Drop for Nemesis {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sleeps `wait`, or less when asked to stop; true when asked.
async fn idle(wait: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.load(Ordering::Relaxed)
}

async fn pause_redis(url: &str, ms: u64) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| "no connection within 2 s".to_owned())?
    .map_err(|e| e.to_string())?;
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("ALL")
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

fn signal(cluster: &Cluster, node: usize, signal: Signal) -> Result<(), String> {
    kill(cluster.pid(node), signal).map_err(|e| format!("{signal}: {e}"))
}

async fn run(
    mut cluster: Cluster,
    seed: u64,
    kinds: Vec<FaultKind>,
    stop: Arc<AtomicBool>,
    began: Instant,
) -> Outcome {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321);
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let mut timeline = Vec::new();
    let nodes = cluster.nodes.len();
    loop {
        let healthy = Duration::from_millis(rng.random_range(1500..5000));
        if idle(healthy, &stop).await {
            break;
        }
        let Some(&kind) = kinds.choose(&mut rng) else {
            continue;
        };
        let at = began.elapsed().as_secs_f64();
        // Every parameter is drawn before anything happens, so the schedule is the seed's.
        let node = rng.random_range(0..nodes);
        let hold = Duration::from_millis(match kind {
            FaultKind::RedisPause => rng.random_range(500..=2000),
            FaultKind::NodeStop => rng.random_range(1000..=3000),
            FaultKind::RedisKill | FaultKind::NodeKill | FaultKind::PostgresRestart => {
                rng.random_range(200..=2000)
            }
        });
        let ms = hold.as_millis();
        let (what, applied) = match kind {
            FaultKind::RedisPause => {
                let applied = pause_redis(&cluster.topology().redis_url, ms as u64).await;
                tokio::time::sleep(hold + Duration::from_millis(100)).await;
                (format!("CLIENT PAUSE {ms} ms ALL"), applied)
            }
            FaultKind::RedisKill => {
                cluster.restart_redis(hold).await;
                (format!("Redis SIGKILL, restarted after {ms} ms"), Ok(()))
            }
            FaultKind::NodeStop => {
                let stopped = signal(&cluster, node, Signal::SIGSTOP);
                tokio::time::sleep(hold).await;
                let resumed = signal(&cluster, node, Signal::SIGCONT);
                (
                    format!("node {node} SIGSTOP for {ms} ms"),
                    stopped.and(resumed),
                )
            }
            FaultKind::NodeKill => {
                cluster.kill_node(node);
                tokio::time::sleep(hold).await;
                cluster.restart_node(node).await;
                (
                    format!("node {node} SIGKILL, restarted after {ms} ms"),
                    Ok(()),
                )
            }
            FaultKind::PostgresRestart => {
                cluster.pg.stop_fast();
                tokio::time::sleep(hold).await;
                cluster.pg.restart().await;
                (format!("PostgreSQL stopped (fast) for {ms} ms"), Ok(()))
            }
        };
        match applied {
            Ok(()) => {
                *faults.entry(kind.name().to_owned()).or_default() += 1;
                timeline.push(format!("{at:.1}s {what}"));
            }
            Err(e) => timeline.push(format!("{at:.1}s {what} (not applied: {e})")),
        }
    }
    Outcome {
        cluster,
        faults,
        timeline,
    }
}
