//! The relay's publish queue is bounded: while Redis does not take messages, what waits for
//! it stays within its lanes' bounds, and the rest is dropped (records come back from
//! PostgreSQL on the other nodes), instead of piling up in memory.

use std::time::Duration;

use aisocial::config::redis::RelayQueues;
use aisocial::relay::RedisPublisher;
use aisocial_actors::committed::{CommitPublisher, EphemeralPush};
use aisocial_actors::ids::UserId;
use futures_util::StreamExt;

use crate::helpers::{PrivateRedis, free_port};

#[actix_web::test]
async fn a_paused_redis_never_grows_the_publish_queue_past_its_bound() {
    let port = free_port();
    let redis = PrivateRedis::start(port);
    redis.wait_up().await;
    let url = format!("redis://127.0.0.1:{port}");
    let connected = aisocial::redis_store::connect(&url, &url).await.unwrap();
    let publisher = RedisPublisher::start(
        connected.conn,
        "relay-test:",
        "node-a".into(),
        RelayQueues {
            records: 8,
            pushes: 4,
        },
    );
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("relay-test:events").await.unwrap();
    redis.pause(1500).await;
    for n in 0..100 {
        publisher.publish_push(&EphemeralPush {
            users: vec![UserId(n)],
            thread: None,
            frame: "{}".into(),
        });
        publisher.publish_heartbeat(n as usize);
    }
    // Everything that was going to arrive has arrived well after the pause.
    let mut messages = pubsub.into_on_message();
    let mut received = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(3), messages.next()).await {
        received += 1;
    }
    assert!(received > 0, "nothing was published after the pause");
    assert!(
        received <= 8 + 4 + 2,
        "{received} of 200 messages waited out the pause (the bound is 8 + 4, and one in flight per lane)"
    );
    drop(redis);
}
