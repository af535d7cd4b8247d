//! Two regions on one machine, as docs/multi-region.md describes them: region A
//! holds the primary and a node; region B holds a streaming replica and a node, each with a
//! Redis key space of its own, and everything between the regions crosses a link that delays
//! each chunk (`LINK_DELAY` each way): B's writes to the primary and the replication stream.
//!
//! Measured: delivery to a follower in each region of posts written in A (B's come through its
//! replica's log, not through Redis), the cost of a write from B, resume in B, and a regional
//! failover (A lost, B's replica promoted): what was acknowledged but not yet replicated is lost
//! (the RPO, bounded by the replication lag), a client that had seen it is told to resync, and
//! clients that had not resume with nothing missing while new ids continue after the last.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, TestUser, WsClient, WsEvent, spawn_app_with, unique_name};
use crate::private_postgres::PrivatePostgres;
use crate::slow_proxy::SlowProxy;

/// One way between the regions (so a round trip costs twice this).
const LINK_DELAY: Duration = Duration::from_millis(20);
const POSTS: usize = 40;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "p50 {:.1} ms, p99 {:.1} ms (n={})",
        percentile(&samples, 50.0).as_secs_f64() * 1000.0,
        percentile(&samples, 99.0).as_secs_f64() * 1000.0,
        samples.len()
    )
}

/// Reads `post.created` frames until `bodies` have all arrived; when each arrived, and the ids
/// in arrival order.
async fn collect(
    ws: &mut WsClient,
    bodies: &[String],
    limit: Duration,
) -> (HashMap<String, Instant>, Vec<i64>) {
    let mut arrived = HashMap::new();
    let mut ids = Vec::new();
    let deadline = Instant::now() + limit;
    while arrived.len() < bodies.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws.next_event(left).await {
            WsEvent::Json(frame) if frame["type"] == "post.created" => {
                let body = frame["data"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if bodies.contains(&body) {
                    assert!(
                        arrived.insert(body.clone(), Instant::now()).is_none(),
                        "{body} twice"
                    );
                }
                ids.push(frame["id"].as_i64().unwrap_or_default());
            }
            WsEvent::Json(_) => {}
            other => panic!(
                "{} of {} posts, then {other:?}",
                arrived.len(),
                bodies.len()
            ),
        }
    }
    (arrived, ids)
}

fn assert_increasing(ids: &[i64], who: &str) {
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "{who} got ids out of order: {ids:?}"
    );
}

async fn wait_for_replica(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready: Value = app.public_json("/health/ready").await;
        if ready["checks"]["replicas"][0]["in_rotation"] == true {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never joined: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Posts `bodies` as `author` one every `gap`, returning when each was sent (a delivery can
/// reach a socket before its 201 reaches the writer) and how long the writes took on average.
async fn post_all(
    app: &TestApp,
    author: &TestUser,
    bodies: &[String],
    gap: Duration,
) -> (HashMap<String, Instant>, Duration) {
    let mut sent = HashMap::new();
    let mut writing = Duration::ZERO;
    for body in bodies {
        let at = Instant::now();
        sent.insert(body.clone(), at);
        app.create_post(author, body).await;
        writing += at.elapsed();
        tokio::time::sleep(gap).await;
    }
    let each = writing / u32::try_from(bodies.len().max(1)).unwrap_or(1);
    (sent, each)
}

fn latencies(
    acked: &HashMap<String, Instant>,
    arrived: &HashMap<String, Instant>,
) -> Vec<Duration> {
    acked
        .iter()
        .filter_map(|(body, at)| {
            arrived
                .get(body)
                .map(|got| got.saturating_duration_since(*at))
        })
        .collect()
}

#[actix_web::test]
async fn two_regions_deliver_through_the_replica_and_survive_losing_the_home_region() {
    let primary = PrivatePostgres::start().await;
    let link = SlowProxy::start(&format!("127.0.0.1:{}", primary.port())).await;
    let replica = PrivatePostgres::replica_of(link.port).await;
    link.set_delay(LINK_DELAY);
    let db = format!("aisocial_regions_{}", unique_name());

    // Region A: the primary, read directly; region B: writes cross the link, reads and the
    // event log come from the local replica. Each has its own Redis key space.
    let a_database = format!("--database-url={}/{db}", primary.base_url());
    let home = spawn_app_with(&[a_database.as_str(), "--event-log-poll-ms=100"]).await;
    let b_database = format!(
        "--database-url=postgres://postgres@127.0.0.1:{}/{db}",
        link.port
    );
    let b_replica = format!("--database-read-urls={}", replica.base_url());
    let far = spawn_app_with(&[
        b_database.as_str(),
        b_replica.as_str(),
        "--event-log-reads=replica",
        "--event-log-poll-ms=50",
        "--database-read-check-ms=100",
    ])
    .await;
    assert_ne!(home.redis_prefix, far.redis_prefix);
    wait_for_replica(&far).await;

    let ana = home.sign_in("ana").await;
    let near_reader = home.sign_in("near_reader").await;
    let far_reader = far.sign_in("far_reader").await;
    assert_eq!(home.follow(&near_reader, "ana").await, 204);
    assert_eq!(far.follow(&far_reader, "ana").await, 204);
    assert_eq!(home.follow(&near_reader, "far_reader").await, 204);
    let (mut near_ws, _) = home.ws(&near_reader, None).await;
    let (mut far_ws, _) = far.ws(&far_reader, None).await;

    // Posts written in A reach a follower in each region, in order, once each.
    let bodies: Vec<String> = (0..POSTS).map(|i| format!("from home {i}")).collect();
    let ((acked, home_write_each), (near_got, near_ids), (far_got, far_ids)) = futures_util::join!(
        post_all(&home, &ana, &bodies, Duration::from_millis(50)),
        collect(&mut near_ws, &bodies, Duration::from_secs(30)),
        collect(&mut far_ws, &bodies, Duration::from_secs(30)),
    );
    assert_increasing(&near_ids, "the home follower");
    assert_increasing(&far_ids, "the far follower");
    let near_latency = summary(latencies(&acked, &near_got));
    let far_latency = summary(latencies(&acked, &far_got));

    // A write from B crosses the link to the primary; A's follower hears of it through A's
    // own reading of the log (no Redis is shared).
    let far_bodies: Vec<String> = (0..10).map(|i| format!("from far {i}")).collect();
    let ((far_acked, far_write_each), (from_far, from_far_ids)) = futures_util::join!(
        post_all(&far, &far_reader, &far_bodies, Duration::from_millis(20)),
        collect(&mut near_ws, &far_bodies, Duration::from_secs(30)),
    );
    assert_increasing(&from_far_ids, "the home follower (posts from B)");
    let far_to_home = summary(latencies(&far_acked, &from_far));

    // Resume in B: away while three posts are written in A, back with `since`.
    let last_far_id = far_ids.last().copied().unwrap_or_default();
    drop(far_ws);
    let missed: Vec<String> = (0..3).map(|i| format!("while away {i}")).collect();
    post_all(&home, &ana, &missed, Duration::ZERO).await;
    let (mut far_ws, hello) = far.ws(&far_reader, Some(last_far_id)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed", "{hello}");
    let (_, resumed_ids) = collect(&mut far_ws, &missed, Duration::from_secs(10)).await;
    assert_increasing(&resumed_ids, "the resumed far follower");
    let far_last_seen = resumed_ids.last().copied().unwrap_or(last_far_id);

    // Region A is lost with posts acknowledged that never crossed the link: replication is
    // held up, A takes posts, then A's primary dies.
    link.set_delay(Duration::from_secs(3600));
    let lost: Vec<String> = (0..3).map(|i| format!("lost with A {i}")).collect();
    post_all(&home, &ana, &lost, Duration::ZERO).await;
    let (_, lost_ids) = collect(&mut near_ws, &lost, Duration::from_secs(10)).await;
    let near_last_seen = lost_ids.last().copied().unwrap_or_default();
    primary.kill9();
    drop(link);
    let failover = Instant::now();
    replica.promote();
    replica.wait_until_writable().await;
    let promoted_in = failover.elapsed();
    drop(far_ws);
    drop(far);
    // B's node comes back on the promoted replica, now the primary.
    let b_promoted = format!("--database-url={}/{db}", replica.base_url());
    let far = spawn_app_with(&[b_promoted.as_str()]).await;
    let back_in = failover.elapsed();

    // The far follower saw everything B's replica had: it resumes with nothing missing.
    let (mut far_ws, hello) = far.ws(&far_reader, Some(far_last_seen)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed", "{hello}");
    assert_eq!(hello["data"]["resume"]["replayed"], 0, "{hello}");
    // The home follower had seen posts that were lost: it is told to refetch.
    let (_, hello) = far.ws(&near_reader, Some(near_last_seen)).await;
    assert_eq!(
        hello["data"]["resume"]["status"], "resync_required",
        "{hello}"
    );
    let (status, page) = far.get_json(&far_reader, "/api/v1/timeline").await;
    assert_eq!(status, 200);
    let kept: Vec<&str> = page["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|p| p["body"].as_str()).collect())
        .unwrap_or_default();
    let lost_count = lost.iter().filter(|b| !kept.contains(&b.as_str())).count();
    assert_eq!(
        lost_count,
        lost.len(),
        "nothing written after the link stopped was replicated"
    );
    // New writes continue after the last replicated id.
    let after = far.create_post(&far_reader, "after the failover").await;
    let (got, ids) = collect(
        &mut far_ws,
        &["after the failover".to_owned()],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(got.len(), 1, "{after}");
    assert!(
        ids.iter().all(|id| *id > far_last_seen),
        "{ids:?} after {far_last_seen}"
    );

    println!(
        "regions (link {} ms each way): a write in A {:.1} ms; from its request, delivered in \
         A {near_latency}, in B {far_latency}; a write from B {:.1} ms, delivered in A \
         {far_to_home}; failover: \
         replica promoted in {:.2} s, B serving again {:.2} s after A was lost; {} acknowledged \
         posts lost (not yet replicated), their reader told resync_required",
        LINK_DELAY.as_millis(),
        home_write_each.as_secs_f64() * 1000.0,
        far_write_each.as_secs_f64() * 1000.0,
        promoted_in.as_secs_f64(),
        back_in.as_secs_f64(),
        lost_count,
    );
    drop(far_ws);
    drop(near_ws);
    drop(far);
    drop(home);
}
