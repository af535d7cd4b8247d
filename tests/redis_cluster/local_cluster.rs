//! A real Redis Cluster made by the test: six `redis-server` processes on free ports in a temp
//! directory (three masters, one replica each), formed with `redis-cli --cluster create`, all
//! killed and removed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may be silent before the others mark it failed and its replica takes over.
const NODE_TIMEOUT_MS: u64 = 1000;

pub struct LocalCluster {
    dir: PathBuf,
    nodes: Vec<(u16, Option<Child>)>,
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_port_pair(taken: &[u16]) -> u16 {
    for _ in 0..1000 {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = listener.local_addr() else {
            continue;
        };
        let port = addr.port();
        if port > 55_000 || taken.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair");
}

impl LocalCluster {
    /// Starts six nodes and forms the cluster; returns once every node says `cluster_state:ok`.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "aisocial-redis-cluster-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Self {
            dir,
            nodes: Vec::new(),
        };
        let mut ports = Vec::new();
        for _ in 0..6 {
            let port = free_port_pair(&ports);
            ports.push(port);
            let child = cluster.start_node(port);
            cluster.nodes.push((port, Some(child)));
        }
        for &port in &ports {
            wait_until("a node answers", Duration::from_secs(10), || async move {
                query::<String>(port, redis::cmd("PING")).await.is_ok()
            })
            .await;
        }
        let mut create = tokio::process::Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let output = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("redis-cli");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_ok().await;
        cluster.wait_replicas_synced().await;
        cluster
    }

    /// Waits until every replica has synced with its master (so that it may take over).
    pub async fn wait_replicas_synced(&self) {
        let ports = self.running_ports();
        wait_until("replicas synced", Duration::from_secs(20), || {
            let ports = ports.clone();
            async move {
                for port in ports {
                    let info = query::<String>(port, redis::cmd("INFO").arg("replication").clone())
                        .await
                        .unwrap_or_default();
                    if info.contains("role:slave") && !info.contains("master_link_status:up") {
                        return false;
                    }
                }
                true
            }
        })
        .await;
    }

    fn start_node(&self, port: u16) -> Child {
        Command::new("redis-server")
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(format!("nodes-{port}.conf"))
            .arg("--cluster-node-timeout")
            .arg(NODE_TIMEOUT_MS.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", ""])
            // Replicas sync at once (not after the 5 s wait for more replicas): a replica that
            // never synced cannot take over.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--appendonly", "no"])
            .arg("--logfile")
            .arg(format!("redis-{port}.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server")
    }

    /// Waits until every running node says the cluster is whole.
    pub async fn wait_ok(&self) {
        let ports = self.running_ports();
        wait_until("cluster_state:ok", Duration::from_secs(20), || {
            let ports = ports.clone();
            async move {
                for port in ports {
                    let info = query::<String>(port, redis::cmd("CLUSTER").arg("INFO").clone())
                        .await
                        .unwrap_or_default();
                    if !info.contains("cluster_state:ok") {
                        return false;
                    }
                }
                true
            }
        })
        .await;
    }

    pub fn running_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|(_, child)| child.is_some())
            .map(|(port, _)| *port)
            .collect()
    }

    /// `redis://127.0.0.1:<port>` of node `n` (0 to 5).
    pub fn url(&self, n: usize) -> String {
        format!("redis://127.0.0.1:{}", self.nodes[n].0)
    }

    /// Every node's URL, comma-separated: the seed list form of `REDIS_URL`.
    pub fn seeds(&self) -> String {
        (0..self.nodes.len())
            .map(|n| self.url(n))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the master that serves `key`'s slot now (as the first node that answers
    /// sees it).
    pub async fn master_of(&self, key: &str) -> u16 {
        for port in self.running_ports() {
            let Ok(slot) =
                query::<u16>(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).clone()).await
            else {
                continue;
            };
            let Ok(nodes) = query::<String>(port, redis::cmd("CLUSTER").arg("NODES").clone()).await
            else {
                continue;
            };
            for line in nodes.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // A master marked failed still serves its slots until a replica takes them.
                if fields.len() < 9 || !fields[2].contains("master") {
                    continue;
                }
                let serves = fields[8..].iter().any(|range| {
                    let mut bounds = range.split('-').filter_map(|b| b.parse::<u16>().ok());
                    match (bounds.next(), bounds.next()) {
                        (Some(lo), Some(hi)) => (lo..=hi).contains(&slot),
                        (Some(one), None) => one == slot,
                        _ => false,
                    }
                });
                if serves {
                    let address = fields[1].split('@').next().unwrap_or_default();
                    if let Some(port) = address.rsplit(':').next().and_then(|p| p.parse().ok()) {
                        return port;
                    }
                }
            }
        }
        let ports = self.running_ports();
        let slot = query::<i64>(
            ports[0],
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).clone(),
        )
        .await;
        let nodes = query::<String>(ports[0], redis::cmd("CLUSTER").arg("NODES").clone()).await;
        panic!("no master serves {key}: {slot:?} {nodes:?}");
    }

    /// The port of a replica of the master on `master`, once it has one (a restarted node
    /// takes a moment to learn that it is now a replica).
    pub async fn replica_of(&self, master: u16) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let nodes = query::<String>(master, redis::cmd("CLUSTER").arg("NODES").clone())
                .await
                .expect("CLUSTER NODES");
            if let Some(replica) = replica_in(&nodes, master) {
                return replica;
            }
            assert!(
                Instant::now() < deadline,
                "{master} has no replica: {nodes}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The port of a replica of `master` in `CLUSTER NODES` output.
fn replica_in(nodes: &str, master: u16) -> Option<u16> {
    let parsed: Vec<Vec<&str>> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let port_of = |fields: &[&str]| -> Option<u16> {
        let address = fields.get(1)?.split('@').next()?;
        address.rsplit(':').next()?.parse().ok()
    };
    let master_id = parsed
        .iter()
        .find(|f| port_of(f) == Some(master))
        .and_then(|f| f.first().copied())?;
    parsed
        .iter()
        .find(|f| {
            f.get(2).is_some_and(|flags| flags.contains("slave")) && f.get(3) == Some(&master_id)
        })
        .and_then(|f| port_of(f))
}

impl LocalCluster {
    /// Kills node `port` with SIGKILL (no goodbye to the cluster).
    pub fn kill(&mut self, port: u16) {
        for (p, child) in &mut self.nodes {
            if *p == port
                && let Some(mut child) = child.take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl LocalCluster {
    /// Starts the killed node `port` again, with its cluster configuration: it rejoins.
    pub fn restart(&mut self, port: u16) {
        let Some(n) = self.nodes.iter().position(|(p, _)| *p == port) else {
            panic!("{port} is not a node of this cluster");
        };
        // Kept in `nodes`, so killed and waited for on drop.
        self.nodes[n].1 = Some(self.start_node(port));
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One command to the node on `port` (a plain connection: no cluster routing).
pub async fn query<T: redis::FromRedisValue>(port: u16, cmd: redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    cmd.query_async(&mut conn).await
}

/// Polls `ready` every 50 ms until it holds, or panics after `limit` naming `what`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, ready: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !ready().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
