//! Locks held by someone else. A write that waits too long for a row lock answers 503 with
//! `Retry-After` (a passing condition, never a 500), the one-by-one retry of a failed batch is
//! bounded as a whole, and a read that waits on a table lock is cancelled by PostgreSQL when the
//! client gives up, instead of staying on a pooled connection.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, retry_after, spawn_app_with};

/// Holds a lock in an open transaction on a connection of its own until dropped.
async fn hold(app: &TestApp, sql: &str) -> tokio_postgres::Client {
    let db = app.db().await;
    db.batch_execute(&format!("BEGIN; {sql}")).await.unwrap();
    db
}

async fn rename(app: &TestApp, user: &TestUser, name: &str) -> (u16, u64, Value, Duration) {
    let started = Instant::now();
    let res = app
        .http
        .patch(app.url("/api/v1/me"))
        .bearer_auth(&user.token)
        .json(&json!({ "display_name": name }))
        .timeout(Duration::from_secs(40))
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer after {:?}: {e}", started.elapsed()));
    let status = res.status().as_u16();
    let retry = retry_after(&res);
    let body = res.json().await.unwrap_or_default();
    (status, retry, body, started.elapsed())
}

#[actix_web::test]
async fn a_write_that_times_out_on_a_row_lock_answers_503_with_retry_after() {
    let app = spawn_app_with(&["--db-writer-lock-timeout-ms=300"]).await;
    let alice = app.sign_in("alice").await;
    let locker = hold(
        &app,
        "SELECT 1 FROM users WHERE handle = 'alice' FOR UPDATE",
    )
    .await;
    let (status, retry, body, took) = rename(&app, &alice, "Alice").await;
    assert_eq!(status, 503, "{body}");
    assert!(retry >= 1, "no Retry-After");
    assert_eq!(body["status"], 503);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    locker.batch_execute("ROLLBACK").await.unwrap();
    let (status, _, body, _) = rename(&app, &alice, "Alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["display_name"], "Alice");
    println!(
        "a write on a locked row: 503 with Retry-After {retry} s after {took:?}; 200 once free"
    );
}

#[actix_web::test]
async fn the_one_by_one_retry_of_a_failed_batch_is_bounded_as_a_whole() {
    let app = spawn_app_with(&[
        "--db-writer-lock-timeout-ms=1000",
        "--db-writer-batch-timeout-ms=2500",
    ])
    .await;
    let alice = app.sign_in("alice").await;
    let locker = hold(
        &app,
        "SELECT 1 FROM users WHERE handle = 'alice' FOR UPDATE",
    )
    .await;
    // Twelve writes that each wait out the lock timeout: one after another that would be twelve
    // seconds and more for the last; the retry's deadline answers the rest at once.
    let renames = (0..12).map(|n| rename(&app, &alice, ["A", "B"][n % 2]));
    let answers = join_all(renames).await;
    let slowest = answers.iter().map(|a| a.3).max().unwrap_or_default();
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert!(
        slowest < Duration::from_secs(9),
        "the last answer took {slowest:?} ({statuses:?})"
    );
    assert!(statuses.iter().all(|s| *s == 503), "{statuses:?}");
    assert!(
        answers.iter().all(|a| a.1 >= 1),
        "a 503 without Retry-After"
    );
    locker.batch_execute("ROLLBACK").await.unwrap();
    let (status, _, body, _) = rename(&app, &alice, "Alice").await;
    assert_eq!(status, 200, "{body}");
    println!("12 writes queued on a locked row: all 503, the last after {slowest:?}");
}

#[actix_web::test]
async fn an_abandoned_read_is_cancelled_by_postgres_not_left_running() {
    let app = spawn_app_with(&["--database-read-timeout-ms=500"]).await;
    let alice = app.sign_in("alice").await;
    app.create_post(&alice, "hello").await;
    let locker = hold(&app, "LOCK TABLE posts IN ACCESS EXCLUSIVE MODE").await;
    let started = Instant::now();
    let res = app
        .http
        .get(app.url("/api/v1/users/alice/posts"))
        .bearer_auth(&alice.token)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let gave_up = started.elapsed();
    // The client gave up; the query must not go on waiting on its pooled connection.
    let observer = app.db().await;
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'";
    let cancelled = loop {
        let n: i64 = observer.query_one(waiting, &[]).await.unwrap().get(0);
        if n == 0 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{n} abandoned read(s) still waiting on the lock 4 s later"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    locker.batch_execute("ROLLBACK").await.unwrap();
    let (status, _) = app.get_json(&alice, "/api/v1/users/alice/posts").await;
    assert_eq!(status, 200);
    println!(
        "a read behind a table lock: 503 after {gave_up:?}, cancelled by the server {cancelled:?} \
         after it began"
    );
}
