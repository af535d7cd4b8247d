//! Locks held by someone else: a read that waits on a table lock is cancelled by PostgreSQL
//! when the client gives up, instead of staying on a pooled connection.

use std::time::{Duration, Instant};

use crate::helpers::{TestApp, spawn_app_with};

/// Holds a lock in an open transaction on a connection of its own until dropped.
async fn hold(app: &TestApp, sql: &str) -> tokio_postgres::Client {
    let db = app.db().await;
    db.batch_execute(&format!("BEGIN; {sql}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db
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
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.status(), 503);
    let gave_up = started.elapsed();
    // The client gave up; the query must not go on waiting on its pooled connection.
    let observer = app.db().await;
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'";
    let cancelled = loop {
        let n: i64 = observer
            .query_one(waiting, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .get(0);
        if n == 0 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{n} abandoned read(s) still waiting on the lock 4 s later"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    locker
        .batch_execute("ROLLBACK")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, _) = app.get_json(&alice, "/api/v1/users/alice/posts").await;
    assert_eq!(status, 200);
    println!(
        "a read behind a table lock: 503 after {gave_up:?}, cancelled by the server {cancelled:?} \
         after it began"
    );
}
