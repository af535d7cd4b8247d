//! Faults on purpose, in a test process of its own: PostgreSQL killed with SIGKILL in the
//! middle of a write load, then started again. The promise under test: no acknowledged write is
//! lost, a retried write (same `Idempotency-Key`) is never stored twice, the node says it is not
//! ready (503 with `Retry-After`, no hang) while the database is gone, and recovers by itself.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod backup;
mod fault_proxy;
mod nodes;
mod private_postgres;
mod regions;
mod replicas;
mod resume;
mod slow;
mod slow_proxy;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use helpers::{TestUser, spawn_app_with};
use private_postgres::PrivatePostgres;
use serde_json::Value;
use tokio::sync::Mutex;

/// Every attempt: when it was sent, how long its answer took, the status (0: no answer).
type Attempts = std::sync::Mutex<Vec<(Instant, Duration, u16)>>;

/// One posting client: retries each post with its key until the server acknowledges it.
async fn post_until_acknowledged(
    http: &reqwest::Client,
    url: &str,
    user: &TestUser,
    key: &str,
    body: &str,
    server_errors: &AtomicUsize,
    attempts: &Attempts,
) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(Instant::now() < deadline, "{key} never acknowledged");
        let sent_at = Instant::now();
        let sent = http
            .post(format!("{url}/api/v1/posts"))
            .bearer_auth(&user.token)
            .header("idempotency-key", key)
            .json(&serde_json::json!({ "body": body }))
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        let status = sent.as_ref().map_or(0, |r| r.status().as_u16());
        attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((sent_at, sent_at.elapsed(), status));
        match sent {
            Ok(res) if res.status() == 201 => {
                let post: Value = res.json().await.unwrap_or_default();
                return post["id"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("no id: {post}"));
            }
            Ok(res) if res.status() == 503 || res.status() == 429 => {
                let wait = helpers::retry_after(&res).clamp(1, 5);
                tokio::time::sleep(Duration::from_millis(200 * wait)).await;
            }
            Ok(res) => {
                let status = res.status();
                if status.is_server_error() {
                    server_errors.fetch_add(1, Ordering::Relaxed);
                }
                let text = res.text().await.unwrap_or_default();
                // A 500 would be a broken promise; anything else is a bug in the test.
                assert!(status.is_server_error(), "{key}: {status} {text}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[actix_web::test]
async fn postgres_killed_mid_write_loses_no_acknowledged_post_and_stores_none_twice() {
    let pg = PrivatePostgres::start().await;
    let db_url = format!("--database-url={}/aisocial_faults", pg.base_url());
    let app = spawn_app_with(&[
        db_url.as_str(),
        "--rate-limit-user-per-min=1000000",
        "--rate-limit-ip-per-min=10000000",
    ])
    .await;
    const CLIENTS: usize = 20;
    const POSTS_PER_CLIENT: usize = 50;
    let mut users = Vec::new();
    for n in 0..CLIENTS {
        users.push(app.sign_in(&format!("writer_{n}")).await);
    }

    let acknowledged: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let server_errors = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let attempts: Arc<Attempts> = Arc::default();
    let mut clients = Vec::new();
    for (n, user) in users.iter().cloned().enumerate() {
        let http = app.http.clone();
        let url = app.address.clone();
        let acknowledged = Arc::clone(&acknowledged);
        let server_errors = Arc::clone(&server_errors);
        let started = Arc::clone(&started);
        let attempts = Arc::clone(&attempts);
        clients.push(actix_rt::spawn(async move {
            for i in 0..POSTS_PER_CLIENT {
                let key = format!("client-{n}-post-{i}");
                started.fetch_add(1, Ordering::Relaxed);
                let id = post_until_acknowledged(
                    &http,
                    &url,
                    &user,
                    &key,
                    &format!("post {i} of writer {n}"),
                    &server_errors,
                    &attempts,
                )
                .await;
                acknowledged.lock().await.insert(key, id);
            }
        }));
    }

    // A third of the way in, PostgreSQL dies without warning.
    while started.load(Ordering::Relaxed) < CLIENTS * POSTS_PER_CLIENT / 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pg.kill9();
    let down_since = Instant::now();
    // While it is down the node says so, quickly, with Retry-After.
    let saw_not_ready = Arc::new(AtomicBool::new(false));
    loop {
        let asked = Instant::now();
        let res = app
            .http
            .get(app.url("/health/ready"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("readiness hung or failed while PostgreSQL was down");
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "readiness took {:?}",
            asked.elapsed()
        );
        if res.status() == 503 {
            assert!(helpers::retry_after(&res) >= 1);
            saw_not_ready.store(true, Ordering::Relaxed);
            break;
        }
        assert!(
            down_since.elapsed() < Duration::from_secs(10),
            "still ready 10 s after PostgreSQL died"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let up_again = Instant::now();
    pg.restart().await;

    // Ready again by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = app.http.get(app.url("/health/ready")).send().await;
        if res.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready 30 s after PostgreSQL came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = up_again.elapsed();
    for client in clients {
        client.await.unwrap();
    }

    let acknowledged = acknowledged.lock().await.clone();
    assert_eq!(acknowledged.len(), CLIENTS * POSTS_PER_CLIENT);
    assert!(saw_not_ready.load(Ordering::Relaxed));
    assert_eq!(server_errors.load(Ordering::Relaxed), 0, "no 5xx but 503");
    // Every acknowledged post is stored, once.
    let db = pg.client("aisocial_faults").await;
    let rows = db.query("SELECT id, body FROM posts", &[]).await.unwrap();
    let stored: HashMap<i64, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut bodies: Vec<&String> = stored.values().collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), stored.len(), "a post was stored twice");
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|(_, id)| !stored.contains_key(id))
        .map(|(key, _)| key)
        .collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    assert_eq!(
        stored.len(),
        CLIENTS * POSTS_PER_CLIENT,
        "nothing stored that was not asked for"
    );
    // Latency of the answers while PostgreSQL was down, and the time to recover.
    let mut down: Vec<Duration> = attempts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|(at, _, _)| *at >= down_since && *at < up_again)
        .map(|(_, took, _)| *took)
        .collect();
    down.sort();
    let p99 = down
        .get((down.len() * 99 / 100).min(down.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    println!(
        "postgres SIGKILL: {} posts acknowledged, {} stored, 0 lost, 0 duplicated, 0 5xx but 503; \
         while down {} answers, p99 {p99:?}; ready again {recovered:?} after the restart began",
        acknowledged.len(),
        stored.len(),
        down.len()
    );
}
