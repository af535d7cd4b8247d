//! The server on a real Redis Cluster (six `redis-server` processes made by the test: three
//! masters, one replica each): events cross nodes through sharded pub/sub, rate limits and the
//! AI budget run their multi-key scripts and pipelines without CROSSSLOT errors, readiness
//! holds, a single cluster node's URL is recognised as a cluster, and a master killed with
//! SIGKILL fails over to its replica with delivery resuming and nothing missed.
//!
//! Slow-ish on purpose: each test forms a cluster of its own (about 2 s) and the failover
//! waits for the cluster's node timeout (1 s) and the replica's election.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod local_cluster;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aisocial_gemini::emulator::{self, EmulatorConfig, Outcome, QuotaLimits};
use helpers::{TestApp, WsClient, WsEvent, spawn_app_on, spawn_peer_on};
use local_cluster::{LocalCluster, query, wait_until};
use serde_json::{Value, json};

/// No periodic comparison with the event log's head during these tests: an event that reaches
/// another node within a second came through pub/sub (or a gap repair a later one triggered).
const NO_POLLING: &str = "--event-log-poll-ms=60000";

/// The failover test's nodes poll the log head every 4 s: longer than the kill-phase recovery
/// takes (so the post lost in the outage still shows the resubscription's own check), and the
/// bound on a message Redis loses during the graceful handover (see that phase).
const POLL: Duration = Duration::from_secs(4);
const SLOW_POLLING: &str = "--event-log-poll-ms=4000";

/// How many subscribers the shard owning `channel` has (sharded pub/sub only). They may be at
/// its master or at a replica (after a graceful failover the old master keeps them): Redis
/// delivers a shard channel's messages on every node of the shard.
async fn shard_subscribers(cluster: &LocalCluster, channel: &str) -> i64 {
    let mut total = 0;
    for port in cluster.running_ports() {
        let count = redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(channel).clone();
        total += query::<(String, i64)>(port, count)
            .await
            .map_or(0, |(_, n)| n);
    }
    total
}

async fn wait_for_shard_subscribers(cluster: &LocalCluster, channel: &str, count: i64) {
    wait_until("shard subscribers", Duration::from_secs(20), || async {
        shard_subscribers(cluster, channel).await >= count
    })
    .await;
}

/// Reads `post.created` frames until every id of `want` arrived; asserts increasing event
/// ids and no post twice. Returns the last event id.
async fn read_posts(ws: &mut WsClient, want: &HashSet<i64>, mut last: i64) -> i64 {
    let mut got = HashSet::new();
    while !want.is_subset(&got) {
        match ws.next_event(Duration::from_secs(15)).await {
            WsEvent::Json(frame) if frame["type"] == "post.created" => {
                let id = frame["id"].as_i64().unwrap_or_default();
                assert!(id > last, "event {id} after {last}");
                last = id;
                let post = frame["data"]["id"].as_i64().unwrap_or_default();
                assert!(got.insert(post), "post {post} delivered twice");
            }
            WsEvent::Json(_) => {}
            other => panic!("{} of {} posts, then {other:?}", got.len(), want.len()),
        }
    }
    last
}

async fn post_id(app: &TestApp, user: &helpers::TestUser, body: &str) -> i64 {
    app.create_post(user, body).await["id"]
        .as_i64()
        .unwrap_or_default()
}

async fn readiness(app: &TestApp) -> (u16, Value) {
    let res = app.http.get(app.url("/health/ready")).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

async fn dev_sign_in_status(app: &TestApp, handle: &str) -> u16 {
    app.client()
        .sign_in_dev_request(handle)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[actix_web::test]
async fn two_nodes_on_a_cluster_share_events_and_rate_limits_and_are_ready() {
    let cluster = LocalCluster::start().await;
    const AUTH_LIMIT: u32 = 12;
    let limit = format!("--rate-limit-auth-per-min={AUTH_LIMIT}");
    // A is given the seed list; B one node's URL (a replica's), which it finds is a cluster.
    let a = spawn_app_on(&cluster.seeds(), &[NO_POLLING, &limit]).await;
    let b = spawn_peer_on(&a, &cluster.url(4), &[NO_POLLING, &limit]).await;
    for node in [&a, &b] {
        let (status, body) = readiness(node).await;
        assert_eq!(status, 200, "ready on a cluster: {body}");
        assert_eq!(body["checks"]["redis"]["up"], true);
    }
    let channel = format!("{}events", a.redis_prefix);
    wait_for_shard_subscribers(&cluster, &channel, 2).await;

    // An event written through A reaches B's websocket through the channel's shard.
    let author = a.sign_in("author").await;
    let reader = b.sign_in("reader").await;
    assert_eq!(b.follow(&reader, "author").await, 204);
    let (mut ws, _) = b.ws(&reader, None).await;
    let started = Instant::now();
    let post = post_id(&a, &author, "across the cluster").await;
    read_posts(&mut ws, &HashSet::from([post]), 0).await;
    let crossed = started.elapsed();
    assert!(crossed < Duration::from_secs(2), "delivered in {crossed:?}");

    // The sign-in limit is shared: what A admitted counts on B (2 sign-ins so far).
    for n in 0..8 {
        assert_eq!(dev_sign_in_status(&a, &format!("user_a{n}")).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut admitted_on_b = 0;
    let mut limited_on_b = 0;
    for n in 0..6 {
        match dev_sign_in_status(&b, &format!("user_b{n}")).await {
            200 => admitted_on_b += 1,
            429 => limited_on_b += 1,
            other => panic!("sign-in on B: {other}"),
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    println!(
        "cluster: post crossed nodes in {} ms; B admitted {admitted_on_b} and limited \
         {limited_on_b} sign-ins after A's 10 (limit {AUTH_LIMIT})",
        crossed.as_millis()
    );
    assert!(limited_on_b >= 2, "B learned A's counts from Redis");
    assert!(admitted_on_b <= 3, "at most the limit plus one flush's lag");

    // With every Redis node gone, readiness says so.
    let mut cluster = cluster;
    for port in cluster.running_ports() {
        cluster.kill(port);
    }
    let gone_at = Instant::now();
    wait_until(
        "not ready without Redis",
        Duration::from_secs(10),
        || async { readiness(&a).await.0 == 503 && readiness(&b).await.0 == 503 },
    )
    .await;
    println!(
        "cluster gone: both nodes not ready after {} ms",
        gone_at.elapsed().as_millis()
    );
}

#[actix_web::test]
async fn the_ai_budget_is_shared_through_the_cluster() {
    let cluster = LocalCluster::start().await;
    let limits = QuotaLimits {
        rpm: 4,
        input_tpm: 250_000,
        rpd: 1_000,
    };
    let emulator = emulator::start(
        EmulatorConfig {
            api_key: Some("test-gemini-key".into()),
            limits,
            ..EmulatorConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .expect("emulator");
    let base = format!("--gemini-base-url={}", emulator.base_url());
    let args = [
        "--gemini-api-key=test-gemini-key",
        base.as_str(),
        "--ai-rpm=4",
        "--ai-tpm=250000",
        "--ai-rpd=1000",
        "--ai-retry-base-ms=50",
        "--ai-user-per-min=1000",
        "--ai-user-queue=20",
    ];
    let a = spawn_app_on(&cluster.seeds(), &args).await;
    let b = spawn_peer_on(&a, &cluster.url(1), &args).await;
    let on_a = a.sign_in("on_a").await;
    let on_b = b.sign_in("on_b").await;
    for n in 0..4 {
        for (node, user) in [(&a, &on_a), (&b, &on_b)] {
            let res = node
                .http
                .post(node.url("/api/v1/ai/compose"))
                .bearer_auth(&user.token)
                .json(&json!({ "prompt": format!("{} {n}", user.handle) }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 202);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = emulator.control().stats();
    println!(
        "cluster AI budget: upstream served {}, refused {} (limit {} a minute, 8 asked)",
        stats.outcome_count(Outcome::Ok),
        stats.outcome_count(Outcome::QuotaRpm),
        limits.rpm
    );
    assert_eq!(stats.outcome_count(Outcome::QuotaRpm), 0);
    assert_eq!(stats.outcome_count(Outcome::Ok), u64::from(limits.rpm));
}

#[actix_web::test]
async fn a_killed_master_fails_over_and_delivery_resumes_with_nothing_missed() {
    let mut cluster = LocalCluster::start().await;
    let a = spawn_app_on(&cluster.seeds(), &[SLOW_POLLING]).await;
    let b = spawn_peer_on(&a, &cluster.seeds(), &[SLOW_POLLING]).await;
    let channel = format!("{}events", a.redis_prefix);
    wait_for_shard_subscribers(&cluster, &channel, 2).await;
    let author = a.sign_in("author").await;
    let reader = b.sign_in("reader").await;
    assert_eq!(b.follow(&reader, "author").await, 204);
    let (mut ws, _) = b.ws(&reader, None).await;
    let first = post_id(&a, &author, "before").await;
    let mut last = read_posts(&mut ws, &HashSet::from([first]), 0).await;

    // Kill the master serving the events channel (where both nodes subscribed); keep posting
    // through A meanwhile.
    let old = cluster.master_of(&channel).await;
    let at_old = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(&channel)
        .clone();
    assert_eq!(
        query::<(String, i64)>(old, at_old)
            .await
            .map_or(0, |(_, n)| n),
        2
    );
    let killed_at = Instant::now();
    cluster.kill(old);
    // One post in the outage: its message is lost (its publish times out before the replica
    // takes over), and no later message reveals the gap, so only the subscriber's report of
    // its resubscription (the broker then reads the log's head) can bring it.
    let lost = post_id(&a, &author, "during the outage").await;
    let mut new_master = None;
    let mut readiness_during = Vec::new();
    while new_master.is_none() {
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "no replica took over"
        );
        readiness_during.push(readiness(&a).await.0);
        let master = cluster.master_of(&channel).await;
        if master != old {
            new_master = Some(master);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = killed_at.elapsed();
    wait_for_shard_subscribers(&cluster, &channel, 2).await;
    let resubscribed = killed_at.elapsed();
    last = read_posts(&mut ws, &HashSet::from([lost]), last).await;
    let lost_delivered = killed_at.elapsed();
    wait_until("both ready", Duration::from_secs(20), || async {
        readiness(&a).await.0 == 200 && readiness(&b).await.0 == 200
    })
    .await;
    let ready_again = killed_at.elapsed();

    // Posts after the failover arrive promptly, through the new master.
    let after_at = Instant::now();
    let mut after = HashSet::new();
    for n in 0..5 {
        after.insert(post_id(&a, &author, &format!("after {n}")).await);
    }
    last = read_posts(&mut ws, &after, last).await;
    let delivered_after = after_at.elapsed();

    // The killed node comes back (as a replica of its successor) and takes its slots back
    // with a graceful `CLUSTER FAILOVER`: the subscriptions stay where they are or follow the
    // slot, and delivery goes on.
    cluster.restart(old);
    cluster.wait_ok().await;
    let master = cluster.master_of(&channel).await;
    let replica = cluster.replica_of(master).await;
    assert_eq!(replica, old, "the killed node came back as the replica");
    let handed_over_at = Instant::now();
    let answer = query::<String>(replica, redis::cmd("CLUSTER").arg("FAILOVER").clone()).await;
    assert!(answer.is_ok(), "CLUSTER FAILOVER: {answer:?}");
    wait_until("the replica is master", Duration::from_secs(20), || async {
        cluster.master_of(&channel).await == replica
    })
    .await;
    wait_for_shard_subscribers(&cluster, &channel, 2).await;
    let handed_over = handed_over_at.elapsed();
    let moved = post_id(&a, &author, "after a graceful failover").await;
    let posted_at = Instant::now();
    last = read_posts(&mut ws, &HashSet::from([moved]), last).await;
    let delivered_after_handover = posted_at.elapsed();
    // Nothing is lost, and it arrives within what the log poll promises. Usually it comes
    // through pub/sub at once; under load the first publish after a handover has been seen
    // lost (2 CI runs of 4, 2026-12-08; cause not found: the publisher's stale slot map is the
    // suspect), and then the poll brings it.
    assert!(
        delivered_after_handover < POLL + Duration::from_secs(2),
        "{delivered_after_handover:?}"
    );

    // A client that goes away and comes back resumes with exactly what it missed.
    drop(ws);
    let missed: HashSet<i64> = [
        post_id(&a, &author, "missed 0").await,
        post_id(&a, &author, "missed 1").await,
    ]
    .into();
    let (mut ws, hello) = b.ws(&reader, Some(last)).await;
    assert_eq!(hello["data"]["resume"]["replayed"], 2, "{hello}");
    read_posts(&mut ws, &missed, last).await;
    // Both nodes counted taking their events subscription up again (metrics are per process).
    let metrics = a.metrics().await;
    let resubscriptions = metrics
        .lines()
        .find_map(|l| l.strip_prefix("aisocial_redis_resubscriptions_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_default();
    assert!(
        resubscriptions >= 2.0,
        "{resubscriptions} resubscriptions counted"
    );
    println!(
        "cluster graceful failover back to the restarted node: done after {} ms, the next \
         post delivered in {} ms",
        handed_over.as_millis(),
        delivered_after_handover.as_millis()
    );
    println!(
        "cluster failover: master killed; replica promoted after {} ms, both nodes \
         resubscribed after {} ms, both ready after {} ms; the post written during the outage \
         delivered after {} ms; 5 posts after it delivered in {} ms; readiness during the \
         outage: {} of {} checks 503",
        promoted.as_millis(),
        resubscribed.as_millis(),
        ready_again.as_millis(),
        lost_delivered.as_millis(),
        delivered_after.as_millis(),
        readiness_during.iter().filter(|s| **s == 503).count(),
        readiness_during.len()
    );
    assert!(delivered_after < Duration::from_secs(2));
}
