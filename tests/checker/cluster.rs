//! The deployment under test: a private PostgreSQL cluster, a private `redis-server` and three
//! real `aisocial` processes on them, each of which the nemesis may stop, kill and restart.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{PrivateRedis, SIGNING_KEY, ServerProcess, free_port, unique_name};
use crate::private_postgres::PrivatePostgres;

pub const DATABASE: &str = "aisocial_checker";

/// What clients and the oracle need to know; it does not change while the run lasts (a node
/// comes back on its own port, Redis on its own).
#[derive(Clone, Debug)]
pub struct Topology {
    /// `host:port` of each node.
    pub nodes: Vec<String>,
    pub redis_url: String,
    pub redis_prefix: String,
}

pub struct Cluster {
    pub pg: Arc<PrivatePostgres>,
    pub redis: PrivateRedis,
    pub nodes: Vec<ServerProcess>,
    /// What each node's killed processes logged, for a failed run's report.
    retired_logs: Vec<Vec<String>>,
    env: Vec<(String, String)>,
    topology: Topology,
}

impl Cluster {
    /// Starts PostgreSQL, Redis and `count` nodes (one after the other: the first creates the
    /// database and migrates it).
    pub async fn start(count: usize) -> Self {
        let pg = Arc::new(PrivatePostgres::start_with("-c max_connections=200").await);
        let redis = PrivateRedis::start(free_port());
        redis.wait_up().await;
        let redis_prefix = format!("aisocial-checker:{}:", unique_name());
        let env: Vec<(String, String)> = [
            ("DATABASE_URL", format!("{}/{DATABASE}", pg.base_url())),
            ("REDIS_URL", redis.url()),
            ("REDIS_PREFIX", redis_prefix.clone()),
            ("JWT_SIGNING_KEY", SIGNING_KEY.to_owned()),
            ("ACCESS_TOKEN_TTL_SECS", "900".to_owned()),
            ("RATE_LIMIT_USER_PER_MIN", "1000000".to_owned()),
            ("RATE_LIMIT_IP_PER_MIN", "10000000".to_owned()),
            ("RATE_LIMIT_AUTH_PER_MIN", "1000000".to_owned()),
            ("EVENT_LOG_POLL_MS", "200".to_owned()),
            ("WS_REPLAY_LIMIT", "1000000".to_owned()),
            ("DATABASE_POOL_SIZE", "8".to_owned()),
            ("SHUTDOWN_TIMEOUT_SECS", "5".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut this = Self {
            pg,
            redis,
            nodes: Vec::new(),
            retired_logs: vec![Vec::new(); count],
            env,
            topology: Topology {
                nodes: Vec::new(),
                redis_url: String::new(),
                redis_prefix,
            },
        };
        this.topology.redis_url = this.redis.url();
        for n in 0..count {
            let node = this.spawn_node(n, "127.0.0.1:0").await;
            this.topology.nodes.push(node.address.clone());
            this.nodes.push(node);
        }
        this
    }

    async fn spawn_node(&self, n: usize, bind: &str) -> ServerProcess {
        let node_id = format!("checker-node-{n}");
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.push(("NODE_ID", &node_id));
        ServerProcess::start_on(bind, &env).await
    }

    pub fn topology(&self) -> Topology {
        self.topology.clone()
    }

    /// The process id of node `n`, for signals.
    pub fn pid(&self, n: usize) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.nodes[n].child.id()).unwrap_or_default())
    }

    /// SIGKILL to node `n`; returns once it is gone.
    pub fn kill_node(&mut self, n: usize) {
        let _ = self.nodes[n].child.kill();
        let _ = self.nodes[n].child.wait();
    }

    /// Starts node `n` again on the port it had (free once the killed process is gone).
    pub async fn restart_node(&mut self, n: usize) {
        let bind = self.topology.nodes[n].clone();
        let old = self.nodes[n].collect_log().to_vec();
        self.retired_logs[n].extend(old);
        self.retired_logs[n].push(format!("--- node {n} killed; a new process follows ---"));
        self.nodes[n] = self.spawn_node(n, &bind).await;
    }

    /// Writes every node's log (its killed processes' first) to `<prefix>.node-<n>.log`.
    pub fn write_logs(&mut self, prefix: &str) -> Vec<String> {
        let mut written = Vec::new();
        for (n, node) in self.nodes.iter_mut().enumerate() {
            let mut lines = std::mem::take(&mut self.retired_logs[n]);
            lines.extend_from_slice(node.collect_log());
            let path = format!("{prefix}.node-{n}.log");
            match std::fs::write(&path, lines.join("\n")) {
                Ok(()) => written.push(path),
                Err(e) => written.push(format!("{path}: {e}")),
            }
        }
        written
    }

    /// SIGKILL to Redis, then a new one on the same port (empty: it saves nothing).
    pub async fn restart_redis(&mut self, down: Duration) {
        self.redis.kill();
        tokio::time::sleep(down).await;
        self.redis = PrivateRedis::start(self.redis.port);
        self.redis.wait_up().await;
    }
}
