//! Several nodes on one database and one Redis: every event reaches every node's followers, in
//! id order, once; resume works across nodes; a lost Redis message is repaired from PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;

use crate::helpers::{
    PrivateRedis, TestApp, WsClient, WsEvent, free_port, spawn_app, spawn_app_on, spawn_app_with,
    spawn_node_with_prefix, spawn_peer, spawn_peer_on, unique_name, wait_for_subscribers,
    wait_for_subscribers_on,
};

/// Reads `count` durable events, asserting strictly increasing ids and no repeats.
async fn read_in_order(ws: &mut WsClient, count: usize, mut last: i64) -> (Vec<i64>, i64) {
    let mut posts = Vec::new();
    while posts.len() < count {
        match ws.next_event(Duration::from_secs(10)).await {
            WsEvent::Json(frame) if frame["type"] == "post.created" => {
                let id = frame["id"].as_i64().unwrap_or_default();
                assert!(id > last, "event {id} after {last}");
                last = id;
                posts.push(frame["data"]["id"].as_i64().unwrap_or_default());
            }
            WsEvent::Json(_) => {}
            other => panic!("after {} of {count}: {other:?}", posts.len()),
        }
    }
    (posts, last)
}

#[actix_web::test]
async fn posts_written_through_three_nodes_reach_followers_on_each_in_order() {
    let a = spawn_app().await;
    let b = spawn_peer(&a, &[]).await;
    let c = spawn_peer(&a, &[]).await;
    let nodes: [&TestApp; 3] = [&a, &b, &c];
    let reader = a.sign_in("reader").await;
    let mut authors = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let author = node.sign_in(&format!("author_{n}")).await;
        assert_eq!(node.follow(&reader, &author.handle).await, 204);
        authors.push(author);
    }
    let (mut on_a, _) = a.ws(&reader, None).await;
    let (mut on_c, _) = c.ws(&reader, None).await;

    const EACH: usize = 30;
    let writes = (0..EACH * 3).map(|n| {
        let node = nodes[n % 3];
        let author = &authors[(n / 3) % 3];
        async move {
            let res = node.post(author, &format!("post {n}")).await;
            assert_eq!(res.status(), 201);
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            body["id"].as_i64().unwrap_or_default()
        }
    });
    let written: HashSet<i64> = join_all(writes).await.into_iter().collect();
    for ws in [&mut on_a, &mut on_c] {
        let (got, _) = read_in_order(ws, EACH * 3, 0).await;
        let unique: HashSet<i64> = got.iter().copied().collect();
        assert_eq!(unique.len(), got.len(), "no event twice");
        assert_eq!(unique, written, "none missing");
    }
}

#[actix_web::test]
async fn a_client_resumes_on_another_node_with_exactly_what_it_missed() {
    let a = spawn_app().await;
    let b = spawn_peer(&a, &[]).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    a.follow(&bob, "alice").await;
    let (mut ws, _) = a.ws(&bob, None).await;
    a.create_post(&alice, "seen").await;
    let (_, last) = read_in_order(&mut ws, 1, 0).await;
    drop(ws);
    let mut missed = Vec::new();
    for n in 0..4 {
        let node = if n % 2 == 0 { &a } else { &b };
        missed.push(
            node.create_post(&alice, &format!("missed {n}")).await["id"]
                .as_i64()
                .unwrap_or_default(),
        );
    }
    let (mut ws, hello) = b.ws(&bob, Some(last)).await;
    assert_eq!(hello["data"]["resume"]["replayed"], 4);
    let (got, last) = read_in_order(&mut ws, 4, last).await;
    assert_eq!(got, missed);
    let live = a.create_post(&alice, "live").await["id"]
        .as_i64()
        .unwrap_or_default();
    let (got, _) = read_in_order(&mut ws, 1, last).await;
    assert_eq!(got, vec![live]);
}

#[actix_web::test]
async fn events_that_never_arrive_through_redis_are_repaired_from_postgres() {
    let a = spawn_app().await;
    // Node B shares the database but not the Redis prefix: nothing it publishes reaches A, as
    // if every message between them were lost.
    let b = spawn_node_with_prefix(&a, &format!("aisocial-test:{}:", unique_name())).await;
    let alice = b.sign_in("alice").await;
    let bob = b.sign_in("bob").await;
    b.follow(&bob, "alice").await;
    let (mut ws, _) = a.ws(&bob, None).await;
    let mut written = Vec::new();
    for n in 0..5 {
        written.push(
            b.create_post(&alice, &format!("via b {n}")).await["id"]
                .as_i64()
                .unwrap_or_default(),
        );
    }
    let (got, last) = read_in_order(&mut ws, 5, 0).await;
    assert_eq!(got, written);
    // A post through A after the lost ones arrives too, after them.
    let mine = a.create_post(&alice, "via a").await["id"]
        .as_i64()
        .unwrap_or_default();
    let (got, _) = read_in_order(&mut ws, 1, last).await;
    assert_eq!(got, vec![mine]);
    let metrics = a.metrics().await;
    assert!(
        metrics.contains("aisocial_broker_gap_repairs_total"),
        "repairs are counted"
    );
}

#[actix_web::test]
async fn followers_see_presence_across_nodes_debounced() {
    let a = spawn_app_with(&["--presence-debounce-ms=1000"]).await;
    let b = spawn_peer(&a, &["--presence-debounce-ms=1000"]).await;
    wait_for_subscribers(&a, "events", 2).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    a.follow(&alice, "bob").await;
    let (mut watcher, _) = a.ws(&alice, None).await;
    // Presence is ephemeral: it reaches followers whose follow lists are in, a moment after
    // they connect.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Bob comes online on the other node.
    let (bob_ws, _) = b.ws(&bob, None).await;
    let frame = watcher.next_json().await;
    assert_eq!(frame["type"], "presence");
    assert_eq!(frame["data"]["user"]["handle"], "bob");
    assert_eq!(frame["data"]["status"], "online");
    assert!(frame.get("id").is_none(), "presence is ephemeral");

    // A quick reconnect inside the debounce says nothing.
    drop(bob_ws);
    let (bob_ws, _) = b.ws(&bob, None).await;
    watcher.assert_quiet(Duration::from_millis(1500)).await;

    // Leaving for longer than the debounce says offline.
    drop(bob_ws);
    let frame = watcher.next_json().await;
    assert_eq!(frame["type"], "presence");
    assert_eq!(frame["data"]["status"], "offline");
}

#[actix_web::test]
async fn a_redis_restart_during_fan_out_loses_nothing() {
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    redis.wait_up().await;
    let url = format!("--redis-url={}", redis.url());
    let a = spawn_app_with(&[&url]).await;
    let b = spawn_peer(&a, &[&url]).await;
    let alice = b.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    b.follow(&bob, "alice").await;
    let (mut ws, _) = a.ws(&bob, None).await;

    let writer = async {
        let mut ids = Vec::new();
        for n in 0..60 {
            let res = b.post(&alice, &format!("post {n}")).await;
            assert_eq!(res.status(), 201, "posting does not need Redis");
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            ids.push(body["id"].as_i64().unwrap_or_default());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ids
    };
    let outage = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.kill();
        tokio::time::sleep(Duration::from_millis(400)).await;
        redis = PrivateRedis::start(port);
        redis.wait_up().await;
    };
    let (written, ()) = futures_util::join!(writer, outage);
    // Live delivery fills what Redis dropped from PostgreSQL: every post, in order, once.
    let (got, last) = read_in_order(&mut ws, written.len(), 0).await;
    assert_eq!(got, written);
    // The nodes are back on Redis by themselves: a post through B still reaches A live.
    wait_for_subscribers_on(&redis.url(), &a, "events", 2).await;
    let after = b.create_post(&alice, "after the restart").await["id"]
        .as_i64()
        .unwrap_or_default();
    let (got, _) = read_in_order(&mut ws, 1, last).await;
    assert_eq!(got, vec![after]);
    // And a client resuming from the start of the outage gets exactly the rest.
    let (mut again, hello) = a.ws(&bob, Some(0)).await;
    assert_eq!(hello["data"]["resume"]["replayed"], written.len() + 1);
    let (replayed, _) = read_in_order(&mut again, written.len() + 1, 0).await;
    assert_eq!(replayed.len(), written.len() + 1);
}

#[actix_web::test]
async fn a_single_servers_url_given_explicitly_is_used_as_a_single_server() {
    // The same URL a cluster node's would be; this one answers `cluster_enabled:0`.
    let a = spawn_app_on("redis://127.0.0.1:6379", &[]).await;
    let b = spawn_peer_on(&a, " redis://127.0.0.1:6379 ", &[]).await;
    wait_for_subscribers(&a, "events", 2).await;
    let alice = a.sign_in("alice").await;
    let bob = b.sign_in("bob").await;
    b.follow(&bob, "alice").await;
    let (mut ws, _) = b.ws(&bob, None).await;
    let post = a.create_post(&alice, "through one server").await["id"]
        .as_i64()
        .unwrap_or_default();
    let (got, _) = read_in_order(&mut ws, 1, 0).await;
    assert_eq!(got, vec![post]);
}
