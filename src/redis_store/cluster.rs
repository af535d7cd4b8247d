//! Redis Cluster: telling a cluster node from a single server, connecting to a cluster, and the
//! hash tags that keep the keys one script or transaction touches in one slot.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::AsyncPushSender;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{ConnectionInfo, ProtocolVersion, RedisResult};

use super::conn::ClusterConn;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a server says about itself (`INFO server`, `INFO cluster`).
#[derive(Debug, Clone, Copy)]
pub struct ServerFacts {
    pub cluster_enabled: bool,
    pub major_version: u32,
}

impl ServerFacts {
    /// Sharded pub/sub came with Redis 7.
    pub fn has_sharded_pubsub(&self) -> bool {
        self.major_version >= 7
    }
}

/// Asks one server whether it is a cluster node, and its version.
pub async fn server_facts(info: &ConnectionInfo) -> RedisResult<ServerFacts> {
    let client = redis::Client::open(info.clone())?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let cluster: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await?;
    let server: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await?;
    Ok(parse_facts(&cluster, &server))
}

fn parse_facts(cluster: &str, server: &str) -> ServerFacts {
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
            .map(str::to_owned)
    };
    ServerFacts {
        cluster_enabled: field(cluster, "cluster_enabled").as_deref() == Some("1"),
        major_version: field(server, "redis_version")
            .and_then(|v| v.split('.').next()?.parse().ok())
            .unwrap_or(0),
    }
}

fn builder(seeds: &[ConnectionInfo]) -> ClusterClientBuilder {
    ClusterClientBuilder::new(seeds.to_vec())
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        // A failover takes about the cluster's node timeout; callers bound each command with
        // their own deadline, so retrying within it (after a topology refresh) is right.
        .retries(6)
        .min_retry_wait(20)
        .max_retry_wait(400)
}

/// Connects to the cluster the seeds belong to (any reachable seed is enough).
pub async fn connect(seeds: &[ConnectionInfo], sharded_pubsub: bool) -> RedisResult<ClusterConn> {
    let conn = builder(seeds).build()?.get_async_connection().await?;
    Ok(ClusterConn {
        conn,
        sharded_pubsub,
    })
}

/// A RESP3 cluster connection whose pushes (pub/sub messages, subscription changes,
/// disconnections) go to `pushes`; for subscribers only.
pub async fn connect_for_pushes(
    seeds: &[ConnectionInfo],
    pushes: impl AsyncPushSender,
) -> RedisResult<ClusterConnection> {
    builder(seeds)
        .use_protocol(ProtocolVersion::RESP3)
        .push_sender(pushes)
        .build()?
        .get_async_connection()
        .await
}

/// The start of keys that a cluster keeps in one slot: `{prefix}{tag}:`. Only the tag is
/// hashed, so every key starting with it lives on the same node, and a script or `MULTI`
/// touching several of them never spans two slots. On a single server it is just a name.
pub fn tagged(prefix: &str, tag: &str) -> String {
    let tag: String = tag
        .chars()
        .map(|c| if c == '{' || c == '}' { '_' } else { c })
        .collect();
    format!("{prefix}{{{tag}}}:")
}

/// The cluster slot of `key` (its hash tag's, when it has one).
pub fn slot_of(key: &str) -> Slot {
    Slot::for_key(key)
}

/// `items` grouped by the slot of their key, each group in the original order with the
/// original positions, so that a pipeline per slot can be answered back in place.
pub fn group_by_slot<T>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> &str,
) -> Vec<Vec<(usize, T)>> {
    let mut groups: HashMap<Slot, Vec<(usize, T)>> = HashMap::new();
    for (n, item) in items.into_iter().enumerate() {
        groups
            .entry(slot_of(key(&item)))
            .or_default()
            .push((n, item));
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_under_one_tag_share_a_slot_and_tags_spread() {
        let ai = tagged("aisocial:", "ai:gemini-2.5-flash");
        assert_eq!(ai, "aisocial:{ai:gemini-2.5-flash}:");
        let window = format!("{ai}window");
        let day = format!("{ai}day:20260101");
        let paused = format!("{ai}paused");
        assert_eq!(slot_of(&window), slot_of(&day));
        assert_eq!(slot_of(&window), slot_of(&paused));
        // The slot depends on the tag only, not on the prefix.
        assert_eq!(
            slot_of(&window),
            slot_of("other:{ai:gemini-2.5-flash}:window")
        );
        let slots: std::collections::HashSet<Slot> = (0..50)
            .map(|n| slot_of(&format!("{}1", tagged("p:", &format!("rl:ip:10.0.0.{n}")))))
            .collect();
        assert!(slots.len() > 40, "buckets spread over the cluster");
    }

    #[test]
    fn braces_in_a_tag_cannot_break_it() {
        let key = tagged("p:", "rl:{x}");
        assert_eq!(key, "p:{rl:_x_}:");
        assert_eq!(slot_of(&format!("{key}1")), slot_of(&format!("{key}2")));
    }

    #[test]
    fn groups_keep_positions_and_slots() {
        let keys = ["{a}1", "{b}1", "{a}2", "{c}1", "{b}2"];
        let groups = group_by_slot(keys, |k| k);
        assert_eq!(groups.len(), 3);
        for group in &groups {
            let first = slot_of(group[0].1);
            assert!(
                group
                    .iter()
                    .all(|(n, k)| slot_of(k) == first && keys[*n] == *k)
            );
        }
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), keys.len());
    }

    #[test]
    fn server_facts_are_read_from_info() {
        let facts = parse_facts(
            "# Cluster\r\ncluster_enabled:1\r\n",
            "# Server\r\nredis_version:7.0.15\r\nredis_mode:cluster\r\n",
        );
        assert!(facts.cluster_enabled && facts.has_sharded_pubsub());
        let facts = parse_facts(
            "# Cluster\r\ncluster_enabled:0\r\n",
            "redis_version:6.2.1\r\n",
        );
        assert!(!facts.cluster_enabled && !facts.has_sharded_pubsub());
    }
}
