//! [`RedisConn`]: the one handle every module uses for commands, scripts and pipelines, whether
//! Redis is a single server or a cluster.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// An auto-reconnecting, multiplexed connection to a single Redis server or to a Redis Cluster
/// (which routes each command to the master of its key's slot and follows `MOVED` and
/// failovers). Cheap to clone: clones share the connections.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConn),
}

/// A cluster connection and what the cluster offers.
#[derive(Clone)]
pub struct ClusterConn {
    pub(super) conn: ClusterConnection,
    /// Sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis ≥ 7): a message goes only to the
    /// shard that owns its channel's slot instead of to every node of the cluster.
    pub(super) sharded_pubsub: bool,
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Whether pub/sub is sharded (`SPUBLISH`) on this connection.
    pub fn sharded_pubsub(&self) -> bool {
        matches!(self, Self::Cluster(c) if c.sharded_pubsub)
    }

    /// The command publishing `payload` on `channel`: `SPUBLISH` on a cluster that offers
    /// sharded pub/sub, `PUBLISH` otherwise.
    pub fn publish_cmd(&self, channel: &str, payload: &str) -> Cmd {
        let mut cmd = redis::cmd(if self.sharded_pubsub() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        });
        cmd.arg(channel).arg(payload);
        cmd
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(c) => c.conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(c) => c.conn.get_db(),
        }
    }
}
