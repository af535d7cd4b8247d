//! The DbWriter under faults (issue 17): PostgreSQL stops answering at the worst moments (the
//! session settings after connecting, a ROLLBACK, a COMMIT, the start of a transaction during
//! shutdown) and a COMMIT lands but its answer is lost. Every write is answered in bounded time
//! (503 with Retry-After), the writer recovers by itself, a frozen writer session does not keep
//! its locks, and a refresh whose answer was lost is retried without revoking the session.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fault_proxy::{Fault, FaultProxy};
use crate::helpers::{TestApp, TestUser, drop_database_blocking, spawn_app_with};

/// A node whose every PostgreSQL connection crosses a [`FaultProxy`], on a database of its own
/// (dropped with it).
struct Through {
    proxy: FaultProxy,
    app: TestApp,
    db_name: String,
}

async fn through_proxy(extra: &[&str]) -> Through {
    let proxy = FaultProxy::start("127.0.0.1:5432").await;
    let db_name = format!("aisocial_test_{}", crate::helpers::unique_name());
    let url = format!(
        "--database-url=postgres://postgres@127.0.0.1:{}/{db_name}",
        proxy.port
    );
    let mut args = vec![url.as_str()];
    args.extend_from_slice(extra);
    let app = spawn_app_with(&args).await;
    Through {
        proxy,
        app,
        db_name,
    }
}

impl Through {
    /// A connection of the test's own, straight to PostgreSQL.
    async fn db(&self) -> tokio_postgres::Client {
        crate::helpers::connect_db(&self.db_name).await
    }
}

impl Drop for Through {
    fn drop(&mut self) {
        drop_database_blocking(&self.db_name);
    }
}

/// Status, `Retry-After` and time of an answer; a request that gets none in 20 s fails the
/// test (that is the hang under test).
async fn timed(request: reqwest::RequestBuilder) -> (u16, u64, Duration) {
    let started = Instant::now();
    let res = request
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer after {:?}: {e}", started.elapsed()));
    let retry = crate::helpers::retry_after(&res);
    (res.status().as_u16(), retry, started.elapsed())
}

fn post(app: &TestApp, user: &TestUser, body: &str) -> reqwest::RequestBuilder {
    app.http
        .post(app.url("/api/v1/posts"))
        .bearer_auth(&user.token)
        .json(&json!({ "body": body }))
}

fn rename(app: &TestApp, user: &TestUser, name: &str) -> reqwest::RequestBuilder {
    app.http
        .patch(app.url("/api/v1/me"))
        .bearer_auth(&user.token)
        .json(&json!({ "display_name": name }))
}

/// Retries `request` until it answers `status`, for up to 15 s; how long that took.
async fn until_status(status: u16, request: impl Fn() -> reqwest::RequestBuilder) -> Duration {
    let started = Instant::now();
    loop {
        let (got, _, _) = timed(request()).await;
        if got == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still {got} instead of {status} after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const WRITER_SESSIONS: &str = "SELECT pid FROM pg_stat_activity \
     WHERE datname = current_database() AND application_name = 'aisocial-dbwriter'";

#[actix_web::test]
async fn a_stalled_session_setup_answers_503_in_time_and_the_writer_recovers() {
    let t = through_proxy(&[]).await;
    let alice = t.app.sign_in("alice").await;
    // Every new writer connection now stalls on its session settings, and the one it has goes.
    t.proxy.arm("synchronous_commit", Fault::Freeze);
    let db = t.db().await;
    db.execute(
        &format!("SELECT pg_terminate_backend(pid) FROM ({WRITER_SESSIONS}) w"),
        &[],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut slowest = Duration::ZERO;
    for n in 0..3 {
        let (status, retry, took) = timed(post(&t.app, &alice, &format!("stalled {n}"))).await;
        assert_eq!(status, 503, "write {n}");
        assert!(retry >= 1, "write {n} has no Retry-After");
        assert!(took < Duration::from_secs(4), "write {n} took {took:?}");
        slowest = slowest.max(took);
    }
    assert!(t.proxy.fired() >= 1, "the setup never stalled");
    t.proxy.disarm();
    let recovered = until_status(201, || post(&t.app, &alice, "after")).await;
    println!(
        "writer session setup stalled: 3 writes answered 503 in at most {slowest:?}; 201 again \
         {recovered:?} after the stall ended"
    );
}

#[actix_web::test]
async fn a_stalled_rollback_answers_503_in_time_and_the_writer_recovers() {
    let t = through_proxy(&["--db-writer-lock-timeout-ms=300"]).await;
    let alice = t.app.sign_in("alice").await;
    let db = t.db().await;
    // Alice's row is locked by someone else: her rename fails on the lock, then its ROLLBACK
    // meets a server that no longer answers.
    db.batch_execute("BEGIN; SELECT 1 FROM users WHERE handle = 'alice' FOR UPDATE")
        .await
        .unwrap();
    t.proxy.arm("ROLLBACK", Fault::Freeze);
    let (status, retry, took) = timed(rename(&t.app, &alice, "Alice")).await;
    assert_eq!(status, 503);
    assert!(retry >= 1);
    assert!(took < Duration::from_secs(5), "the rename took {took:?}");
    assert_eq!(t.proxy.fired(), 1, "the ROLLBACK was never stalled");
    db.batch_execute("ROLLBACK").await.unwrap();
    t.proxy.disarm();
    let recovered = until_status(200, || rename(&t.app, &alice, "Alice")).await;
    println!("stalled ROLLBACK: the write answered 503 in {took:?}; 200 again {recovered:?} after");
}

#[actix_web::test]
async fn a_writer_frozen_mid_transaction_does_not_keep_its_locks() {
    let t = through_proxy(&[
        "--db-writer-batch-timeout-ms=1500",
        "--db-writer-lock-timeout-ms=1000",
    ])
    .await;
    let alice = t.app.sign_in("alice").await;
    // The COMMIT never reaches the server: its transaction (holding the event counter's row
    // lock, which every write of every node needs) sits idle, and the writer's close never
    // arrives either (a partition).
    t.proxy.arm("COMMIT", Fault::Freeze);
    let (status, _, took) = timed(post(&t.app, &alice, "frozen")).await;
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(4), "the post took {took:?}");
    t.proxy.disarm();
    let frozen_at = Instant::now();
    let db = t.db().await;
    let idle = format!("{WRITER_SESSIONS} AND state LIKE 'idle in transaction%'");
    loop {
        let left = db.query(&idle, &[]).await.unwrap().len();
        if left == 0 {
            break;
        }
        assert!(
            frozen_at.elapsed() < Duration::from_secs(10),
            "the frozen writer session still holds its transaction after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let released = frozen_at.elapsed();
    let recovered = until_status(201, || post(&t.app, &alice, "after")).await;
    println!(
        "writer frozen mid-transaction: its session ended {released:?} after the write gave up; \
         201 again {recovered:?} later"
    );
}

#[actix_web::test]
async fn shutdown_is_not_held_up_by_a_writer_that_gets_no_answer() {
    let mut t = through_proxy(&["--shutdown-timeout-secs=2", "--db-writer-max-batch=1"]).await;
    let alice = t.app.sign_in("alice").await;
    t.proxy.arm("BEGIN", Fault::Freeze);
    let mut writes = Vec::new();
    for n in 0..3 {
        let request = post(&t.app, &alice, &format!("in flight {n}"));
        writes.push(actix_rt::spawn(async move { request.send().await }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let trigger = t.app.shutdown_trigger();
    let started = Instant::now();
    let drained = tokio::time::timeout(Duration::from_secs(20), trigger.pull()).await;
    let took = started.elapsed();
    assert!(
        drained.is_ok(),
        "shutdown still waiting on the writer after 20 s"
    );
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    for write in writes {
        let _ = write.await;
    }
    println!("a writer without answers: shutdown (2 s timeout) took {took:?}");
}

async fn refresh_with_key(app: &TestApp, token: &str, key: &str) -> (u16, Value) {
    let res = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .header("idempotency-key", key)
        .json(&json!({ "refresh_token": token }))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

#[actix_web::test]
async fn a_refresh_whose_commit_landed_but_whose_answer_was_lost_is_retried_without_revoking() {
    let t = through_proxy(&[]).await;
    let alice = t.app.sign_in("alice").await;
    let db = t.db().await;
    // The rotation's COMMIT reaches the server, which commits; the answer never comes back.
    t.proxy.arm("COMMIT", Fault::CutAfter);
    let (status, body) = refresh_with_key(&t.app, &alice.refresh, "retry-1").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(t.proxy.fired(), 1);
    t.proxy.disarm();
    let rotated: bool = db
        .query_one(
            "SELECT rotated_at IS NOT NULL FROM refresh_tokens \
             WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
            &[&alice.refresh],
        )
        .await
        .unwrap()
        .get(0);
    assert!(rotated, "the rotation was meant to have committed");

    // The client retries what it was told to retry: the same token, the same key.
    let (status, pair) = refresh_with_key(&t.app, &alice.refresh, "retry-1").await;
    assert_eq!(status, 200, "the retry: {pair}");
    let access = pair["access_token"].as_str().unwrap_or_default();
    let next = pair["refresh_token"].as_str().unwrap_or_default();
    let me = t
        .app
        .http
        .get(t.app.url("/api/v1/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200, "the retry's access token works");
    let (status, body) = refresh_with_key(&t.app, next, "retry-2").await;
    assert_eq!(status, 200, "the retry's refresh token works: {body}");

    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM audit_log WHERE action = 'refresh_reuse'").await,
        0
    );
    println!(
        "a refresh whose COMMIT landed and whose answer was lost: retried, 200, no revocation"
    );
}
