//! Slow dependencies: PostgreSQL and Redis behind proxies that add seconds to every chunk.
//! Every call is bounded by its timeout and answers a 503 problem document, readiness says
//! not ready within its check timeout, and all is well again once the delay goes.

use std::time::{Duration, Instant};

use crate::helpers::{spawn_app_with, unique_name};
use crate::slow_proxy::SlowProxy;

async fn timed(request: reqwest::RequestBuilder) -> (u16, String, Duration) {
    let started = Instant::now();
    let res = request
        .timeout(Duration::from_secs(40))
        .send()
        .await
        .expect("no answer");
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, started.elapsed())
}

#[actix_web::test]
async fn slow_postgres_and_redis_are_bounded_by_timeouts_and_answer_503() {
    let postgres = SlowProxy::start("127.0.0.1:5432").await;
    let redis = SlowProxy::start("127.0.0.1:6379").await;
    let db_name = format!("aisocial_test_{}", unique_name());
    let database = format!(
        "--database-url=postgres://postgres@127.0.0.1:{}/{db_name}",
        postgres.port
    );
    let redis_url = format!("--redis-url=redis://127.0.0.1:{}", redis.port);
    let app = spawn_app_with(&[
        database.as_str(),
        redis_url.as_str(),
        "--database-read-timeout-ms=1000",
    ])
    .await;
    let alice = app.sign_in("alice").await;
    assert_eq!(app.post(&alice, "before").await.status(), 201);
    let timeline = || {
        app.http
            .get(app.url("/api/v1/timeline"))
            .bearer_auth(&alice.token)
    };
    let ticket = || {
        app.http
            .post(app.url("/api/v1/ws/ticket"))
            .bearer_auth(&alice.token)
    };

    // PostgreSQL answers after 3 s per chunk: reads give up at their 1 s deadline.
    postgres.set_delay(Duration::from_secs(3));
    let (status, content_type, took) = timed(timeline()).await;
    assert_eq!(status, 503);
    assert_eq!(content_type, "application/problem+json");
    assert!(took < Duration::from_secs(3), "a read took {took:?}");
    let read_took = took;
    let (status, _, took) = timed(app.http.get(app.url("/health/ready"))).await;
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(3), "readiness took {took:?}");
    postgres.set_delay(Duration::ZERO);

    // Redis answers after 5 s per chunk: a ticket (stored in Redis) gives up at 2 s.
    redis.set_delay(Duration::from_secs(5));
    let (status, content_type, took) = timed(ticket()).await;
    assert_eq!(status, 503);
    assert_eq!(content_type, "application/problem+json");
    assert!(took < Duration::from_secs(4), "a ticket took {took:?}");
    let ticket_took = took;
    let (status, _, took) = timed(app.http.get(app.url("/health/ready"))).await;
    assert_eq!(status, 503);
    assert!(took < Duration::from_secs(3), "readiness took {took:?}");
    redis.set_delay(Duration::ZERO);

    // The delays go; connections that were caught in them are replaced, and all is well.
    let delays_gone = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (read, _, _) = timed(timeline()).await;
        let (issued, _, _) = timed(ticket()).await;
        let (ready, _, _) = timed(app.http.get(app.url("/health/ready"))).await;
        if (read, issued, ready) == (200, 201, 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered: timeline {read}, ticket {issued}, ready {ready}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let recovered = delays_gone.elapsed();
    assert_eq!(app.post(&alice, "after").await.status(), 201);
    println!(
        "slow dependencies: a read behind a 3 s PostgreSQL answered 503 in {read_took:?}, a \
         ticket behind a 5 s Redis 503 in {ticket_took:?}; all 200 again {recovered:?} after the \
         delays went"
    );
    drop(app);
    crate::helpers::drop_database(&db_name).await;
}
