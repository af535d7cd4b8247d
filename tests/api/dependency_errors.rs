//! A failed dependency is answered with its code's fixed detail, never with the dependency's
//! own error text (that goes to the server's log): PostgreSQL refusing a write for a passing
//! reason, and Redis gone.

use std::time::Duration;

use aisocial::problem::UNAVAILABLE_DETAIL;
use serde_json::{Value, json};

use crate::helpers::{PrivateRedis, free_port, retry_after, spawn_app_with};

/// What no dependency text may show through in a problem document.
fn assert_fixed_unavailable(body: &Value, leaks: &[&str]) {
    assert_eq!(body["status"], 503, "{body}");
    assert_eq!(body["code"], "unavailable", "{body}");
    assert_eq!(body["detail"], UNAVAILABLE_DETAIL, "{body}");
    let text = body.to_string().to_lowercase();
    for leak in leaks {
        assert!(!text.contains(leak), "{leak:?} leaked into {body}");
    }
}

#[actix_web::test]
async fn a_write_refused_by_postgresql_answers_the_fixed_detail_without_its_text() {
    let app = spawn_app_with(&["--db-writer-lock-timeout-ms=300"]).await;
    let alice = app.sign_in("alice").await;
    let locker = app.db().await;
    locker
        .batch_execute("BEGIN; SELECT 1 FROM users WHERE handle = 'alice' FOR UPDATE")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let res = app
        .http
        .patch(app.url("/api/v1/me"))
        .bearer_auth(&alice.token)
        .json(&json!({ "display_name": "Alice" }))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.status(), 503);
    assert!(retry_after(&res) >= 1, "no Retry-After");
    let body: Value = res.json().await.unwrap_or_default();
    // PostgreSQL says "canceling statement due to lock timeout".
    assert_fixed_unavailable(&body, &["lock", "canceling", "statement", "database"]);
    locker
        .batch_execute("ROLLBACK")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[actix_web::test]
async fn redis_gone_answers_the_fixed_detail_without_its_text() {
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    redis.wait_up().await;
    let url = format!("--redis-url={}", redis.url());
    let app = spawn_app_with(&[&url]).await;
    let alice = app.sign_in("alice").await;
    redis.kill();
    let res = app
        .http
        .post(app.url("/api/v1/ws/ticket"))
        .bearer_auth(&alice.token)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.status(), 503);
    assert!(retry_after(&res) >= 1, "no Retry-After");
    let body: Value = res.json().await.unwrap_or_default();
    assert_fixed_unavailable(
        &body,
        &[
            "redis",
            "refused",
            "os error",
            "within",
            "broken pipe",
            "io error",
        ],
    );
}
