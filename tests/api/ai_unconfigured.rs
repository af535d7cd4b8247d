//! A node with neither a Gemini key nor `GEMINI_EMULATOR=true` has no AI: the AI routes
//! answer 503 `ai_unavailable`, an `@ai` mention goes unanswered (its author hears
//! `ai.error`), readiness stays 200 and shows the AI as `not_configured`, and the start-up log
//! says so. Everything else works.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{ServerProcess, WsEvent, spawn_app_with};

/// The flag that turns off what the test settings turn on.
const NO_EMULATOR: &str = "--gemini-emulator=false";

#[actix_web::test]
async fn without_a_key_or_the_emulator_the_ai_is_unavailable_and_the_rest_works() {
    let app = spawn_app_with(&[NO_EMULATOR]).await;
    let alice = app.sign_in("alice").await;

    let mut details = Vec::new();
    for (path, body) in [
        (
            "/api/v1/ai/compose",
            json!({ "prompt": "a post about autumn" }),
        ),
        ("/api/v1/ai/summary", Value::Null),
    ] {
        let mut req = app.http.post(app.url(path)).bearer_auth(&alice.token);
        if !body.is_null() {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 503, "{path}");
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{path}"
        );
        let problem: Value = res.json().await.unwrap_or_default();
        assert_eq!(problem["code"], "ai_unavailable", "{path}: {problem}");
        details.push(problem["detail"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(details[0], details[1], "a fixed detail");
    assert!(details[0].contains("not configured"), "{}", details[0]);

    // Still ready: a node without AI serves everything else.
    let res = app.http.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let ready: Value = res.json().await.unwrap_or_default();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["ai"]["health"], "not_configured", "{ready}");

    // A mention of @ai: the post is created, nobody answers, the author hears why.
    let (mut ws, _) = app.ws(&alice, None).await;
    let post = app.create_post(&alice, "@ai what is new?").await;
    let post_id = post["id"].as_i64();
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match ws.next_event(left).await {
            WsEvent::Json(frame)
                if frame["type"] == "ai.error" && frame["data"]["post_id"].as_i64() == post_id =>
            {
                break frame;
            }
            WsEvent::Json(frame) => {
                assert_ne!(frame["type"], "ai.delta", "nothing streams: {frame}");
            }
            other => panic!("waiting for ai.error: {other:?}"),
        }
    };
    assert_eq!(error["data"]["code"], "unavailable", "{error}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, replies) = app
        .get_json(
            &alice,
            &format!("/api/v1/posts/{}/replies", post_id.unwrap_or_default()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(replies["items"], json!([]), "no answer post: {replies}");
    let db = app.db().await;
    let asked: i64 = db
        .query_one("SELECT count(*) FROM ai_usage", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(asked, 0);
}

/// The binary's start-up log names the missing configuration (and no emulator starts).
#[actix_web::test]
async fn the_start_up_log_says_the_ai_is_not_configured() {
    let mut server = ServerProcess::start(&[("GEMINI_EMULATOR", "false")]).await;
    let log = server.collect_log().join("\n");
    assert!(
        log.contains("AI is not configured"),
        "no `AI is not configured` line in {log}"
    );
    assert!(
        !log.contains("bundled Gemini emulator"),
        "the emulator must not start: {log}"
    );
}
