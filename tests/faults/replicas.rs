//! Read replicas against a real streaming replica (`pg_basebackup -R` of a private primary):
//! reads go to the replica, a writer reads its own writes at once, a lagging replica leaves the
//! rotation (reads fall back to the primary) and comes back when it has caught up, and a dead
//! replica costs no failed request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, TestUser, spawn_app_with, unique_name};
use crate::private_postgres::PrivatePostgres;

/// The bodies on a timeline-like page.
fn bodies(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|p| p["body"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn timeline(app: &TestApp, user: &TestUser) -> Vec<String> {
    let (status, page) = app.get_json(user, "/api/v1/timeline").await;
    assert_eq!(status, 200, "{page}");
    bodies(&page)
}

/// Readiness' view of the one replica.
async fn replica_state(app: &TestApp) -> Value {
    let ready: Value = app.public_json("/health/ready").await;
    ready["checks"]["replicas"][0].clone()
}

async fn wait_for_state(app: &TestApp, what: &str, limit: Duration, ok: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let state = replica_state(app).await;
        if ok(&state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// In rotation and caught up with the primary, for two checks in a row.
async fn wait_caught_up(app: &TestApp) {
    for _ in 0..2 {
        wait_for_state(app, "the replica caught up", Duration::from_secs(20), |s| {
            s["in_rotation"] == true && s["lag_bytes"] == 0
        })
        .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn set_replay(replica: &PrivatePostgres, paused: bool) {
    let client = replica.client("postgres").await;
    let call = if paused {
        "SELECT pg_wal_replay_pause()"
    } else {
        "SELECT pg_wal_replay_resume()"
    };
    client
        .simple_query(call)
        .await
        .unwrap_or_else(|e| panic!("{call}: {e}"));
    let want = if paused { "paused" } else { "not paused" };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state: String = client
            .query_one("SELECT pg_get_wal_replay_pause_state()", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or_default();
        if state == want {
            return;
        }
        assert!(Instant::now() < deadline, "replay still {state:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A primary, its replica, and a node reading from the replica.
struct Cluster {
    primary: PrivatePostgres,
    replica: PrivatePostgres,
    app: TestApp,
}

async fn cluster(extra: &[&str]) -> Cluster {
    let primary = PrivatePostgres::start().await;
    let replica = PrivatePostgres::replica_of(primary.port()).await;
    let database = format!(
        "--database-url={}/aisocial_replicas_{}",
        primary.base_url(),
        unique_name()
    );
    let replicas = format!("--database-read-urls={}", replica.base_url());
    let mut args = vec![
        database.as_str(),
        replicas.as_str(),
        "--database-read-check-ms=100",
    ];
    args.extend_from_slice(extra);
    let app = spawn_app_with(&args).await;
    wait_caught_up(&app).await;
    Cluster {
        primary,
        replica,
        app,
    }
}

#[actix_web::test]
async fn reads_go_to_the_replica_and_a_writer_always_reads_its_own_writes() {
    // A generous lag bound: a paused replica stays in rotation, so what it serves shows.
    let Cluster {
        primary,
        replica,
        app,
    } = cluster(&["--database-read-max-lag-ms=60000"]).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    assert_eq!(app.follow(&bob, "alice").await, 204);
    app.create_post(&alice, "first").await;
    wait_caught_up(&app).await;
    assert_eq!(timeline(&app, &bob).await, ["first"]);

    set_replay(&replica, true).await;
    let second = app.create_post(&alice, "second").await;

    // Bob has written nothing since the replica last caught up: his reads go to the replica,
    // which has not replayed the new post.
    assert_eq!(
        timeline(&app, &bob).await,
        ["first"],
        "bob reads the replica"
    );
    let (status, _) = app
        .get_json(&bob, &format!("/api/v1/posts/{}", second["id"]))
        .await;
    assert_eq!(status, 404, "the paused replica does not have the post yet");
    // Alice just wrote: every read of hers shows it, her profile's count included.
    assert_eq!(timeline(&app, &alice).await, ["second", "first"]);
    let (_, posts) = app.get_json(&alice, "/api/v1/users/alice/posts").await;
    assert_eq!(bodies(&posts), ["second", "first"]);
    let (_, profile) = app.get_json(&alice, "/api/v1/users/alice").await;
    assert_eq!(profile["posts_count"], 2, "{profile}");
    let (status, post) = app
        .get_json(&alice, &format!("/api/v1/posts/{}", second["id"]))
        .await;
    assert_eq!(status, 200, "{post}");

    // Bob likes the first post: from now on his reads must show his like, so they go to the
    // primary (which also shows the second post) until the replica has replayed it.
    let first_id = timeline(&app, &alice).await;
    assert_eq!(first_id.len(), 2);
    let (_, page) = app.get_json(&alice, "/api/v1/timeline").await;
    let first = page["items"][1]["id"].clone();
    let liked = app
        .http
        .put(app.url(&format!("/api/v1/posts/{first}/like")))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(liked.status(), 204);
    let (_, page) = app.get_json(&bob, "/api/v1/timeline").await;
    assert_eq!(bodies(&page), ["second", "first"], "bob reads the primary");
    assert_eq!(page["items"][1]["liked_by_me"], true, "{page}");

    // While paused the monitor reports the replica behind (at its next check: within a few
    // checks of 100 ms even on a loaded machine); then it resumes and catches up, and the lag
    // it reported is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lagging = replica_state(&app).await;
        if lagging["lag_bytes"].as_u64().unwrap_or_default() > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a paused replica still reported no lag after 5 s: {lagging}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    set_replay(&replica, false).await;
    wait_caught_up(&app).await;
    let state = replica_state(&app).await;
    assert_eq!(state["lag_ms"], 0, "{state}");
    assert_eq!(timeline(&app, &bob).await, ["second", "first"]);
    drop(app);
    drop(replica);
    drop(primary);
}

#[actix_web::test]
async fn a_lagging_or_dead_replica_leaves_the_rotation_and_reads_fall_back_to_the_primary() {
    let Cluster {
        primary,
        replica,
        app,
    } = cluster(&["--database-read-max-lag-ms=500"]).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    assert_eq!(app.follow(&bob, "alice").await, 204);
    wait_caught_up(&app).await;

    // Replay stops while the primary moves on: past the lag bound the replica is out, and
    // bob (who wrote nothing) reads the primary.
    set_replay(&replica, true).await;
    app.create_post(&alice, "while the replica lags").await;
    let out_since = Instant::now();
    wait_for_state(
        &app,
        "the lagging replica out of rotation",
        Duration::from_secs(10),
        |s| s["in_rotation"] == false && s["lag_ms"].as_u64().unwrap_or_default() > 500,
    )
    .await;
    let took_out = out_since.elapsed();
    let state = replica_state(&app).await;
    assert!(
        state["error"]
            .as_str()
            .unwrap_or_default()
            .contains("lagging"),
        "{state}"
    );
    assert_eq!(timeline(&app, &bob).await, ["while the replica lags"]);
    let ready = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "replicas never decide readiness");

    set_replay(&replica, false).await;
    let back_since = Instant::now();
    wait_caught_up(&app).await;
    let came_back = back_since.elapsed();

    // The replica dies while bob reads without a pause: no read fails.
    let reading = Arc::new(AtomicBool::new(true));
    let failures = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let (reading, failures, reads) = (reading.clone(), failures.clone(), reads.clone());
        let http = app.http.clone();
        let url = app.url("/api/v1/timeline");
        let token = bob.token.clone();
        actix_rt::spawn(async move {
            while reading.load(Ordering::Relaxed) {
                let started = Instant::now();
                let res = http.get(&url).bearer_auth(&token).send().await;
                reads
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(started.elapsed());
                if !res.is_ok_and(|r| r.status() == 200) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    replica.kill9();
    let killed_at = Instant::now();
    wait_for_state(
        &app,
        "the dead replica out of rotation",
        Duration::from_secs(10),
        |s| s["in_rotation"] == false,
    )
    .await;
    let noticed = killed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    reading.store(false, Ordering::Relaxed);
    let _ = reader.await;
    assert_eq!(timeline(&app, &bob).await, ["while the replica lags"]);
    assert_eq!(failures.load(Ordering::Relaxed), 0, "reads failed");
    let reads = reads
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let slowest = reads.iter().max().copied().unwrap_or_default();
    println!(
        "replicas: out of rotation {took_out:?} after the lag began (bound 500 ms, checks every \
         100 ms); back {came_back:?} after replay resumed; a killed replica out after \
         {noticed:?}; {} reads while it died, 0 failed, the slowest {slowest:?}",
        reads.len()
    );
    drop(app);
    drop(primary);
}
