//! Who receives what is ordered with the events: follow and unfollow are records of the log, so
//! a lost or late Redis message about them never changes who receives an event, live or on
//! resume, and a record this node does not know never stops delivery.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::PrivateRedis;
use crate::helpers::{
    TestApp, WsClient, WsEvent, spawn_app_with, spawn_node_with_prefix, spawn_peer, unique_name,
};

/// The next durable `post.created` frame's post id (skipping presence and other frames).
async fn next_post(ws: &mut WsClient) -> i64 {
    loop {
        match ws.next_event(Duration::from_secs(10)).await {
            WsEvent::Json(frame) if frame["type"] == "post.created" => {
                return frame["data"]["id"].as_i64().unwrap_or_default();
            }
            WsEvent::Json(_) => {}
            other => panic!("expected a post, got {other:?}"),
        }
    }
}

/// Asserts no durable frame arrives for `wait` (presence may).
async fn no_durable_frame(ws: &mut WsClient, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.next_event(left).await {
            WsEvent::Timeout => return,
            WsEvent::Json(frame) if frame.get("id").is_none() => {}
            other => panic!("expected no durable frame, got {other:?}"),
        }
    }
}

fn id_of(post: &Value) -> i64 {
    post["id"].as_i64().unwrap_or_default()
}

async fn follow_status(node: &TestApp, who: &crate::helpers::TestUser, whom: &str, on: bool) {
    let method = if on {
        reqwest::Method::PUT
    } else {
        reqwest::Method::DELETE
    };
    let res = node
        .http
        .request(method, node.url(&format!("/api/v1/users/{whom}/follow")))
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[actix_web::test]
async fn a_follow_whose_redis_message_is_lost_still_routes_the_next_post_live() {
    let a = spawn_app_with(&[]).await;
    // Node B shares the database but not the Redis prefix: every message between the two is
    // lost.
    let b = spawn_node_with_prefix(&a, &format!("aisocial-test:{}:", unique_name())).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    let (mut ws, _) = a.ws(&bob, None).await;
    follow_status(&b, &bob, "alice", true).await;
    let post = a.create_post(&alice, "after the follow").await;
    assert_eq!(next_post(&mut ws).await, id_of(&post));

    // And an unfollow that A never hears of through Redis stops the next post just the same.
    follow_status(&b, &bob, "alice", false).await;
    a.create_post(&alice, "after the unfollow").await;
    no_durable_frame(&mut ws, Duration::from_millis(1500)).await;
    follow_status(&b, &bob, "alice", true).await;
    let again = a.create_post(&alice, "following again").await;
    assert_eq!(next_post(&mut ws).await, id_of(&again));
}

#[actix_web::test]
async fn a_follow_made_while_redis_is_paused_routes_the_next_post_live() {
    let port = crate::helpers::free_port();
    let redis = PrivateRedis::start(port);
    redis.wait_up().await;
    let url = format!("--redis-url=redis://127.0.0.1:{port}");
    let a = spawn_app_with(&[&url]).await;
    let b = spawn_peer(&a, &[&url]).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    let (mut ws, _) = a.ws(&bob, None).await;

    // Redis is slow for a moment: B's message about the follow cannot go out in time.
    redis.pause(1500).await;
    follow_status(&b, &bob, "alice", true).await;
    let post = a.create_post(&alice, "while redis is paused").await;
    assert_eq!(next_post(&mut ws).await, id_of(&post));
    drop(redis);
}

#[actix_web::test]
async fn a_resume_replays_each_event_to_the_audience_as_it_stood_then() {
    let a = spawn_app_with(&[]).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    let (mut first, _) = a.ws(&bob, None).await;
    a.create_post(&bob, "bob's own").await;
    let last = loop {
        if let WsEvent::Json(frame) = first.next_event(Duration::from_secs(10)).await
            && frame["type"] == "post.created"
        {
            break frame["id"].as_i64().unwrap_or_default();
        }
    };
    drop(first);

    follow_status(&a, &bob, "alice", true).await;
    let seen = a.create_post(&alice, "while followed").await;
    follow_status(&a, &bob, "alice", false).await;
    a.create_post(&alice, "while not followed").await;
    follow_status(&a, &bob, "alice", true).await;
    let seen_again = a.create_post(&alice, "followed again").await;

    let (mut ws, hello) = a.ws(&bob, Some(last)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed");
    assert_eq!(next_post(&mut ws).await, id_of(&seen));
    assert_eq!(next_post(&mut ws).await, id_of(&seen_again));
    assert_eq!(hello["data"]["resume"]["replayed"], 2);
    no_durable_frame(&mut ws, Duration::from_millis(300)).await;

    // A user who followed and then unfollowed gets, on resume, what reached them meanwhile.
    follow_status(&a, &bob, "alice", false).await;
    let (mut again, hello) = a.ws(&bob, Some(last)).await;
    assert_eq!(hello["data"]["resume"]["replayed"], 2);
    assert_eq!(next_post(&mut again).await, id_of(&seen));
    assert_eq!(next_post(&mut again).await, id_of(&seen_again));
}

#[actix_web::test]
async fn a_record_of_a_kind_this_node_does_not_know_is_skipped_not_waited_for() {
    let a = spawn_app_with(&[]).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    follow_status(&a, &bob, "alice", true).await;
    let (mut ws, _) = a.ws(&bob, None).await;
    // A newer node wrote a record of a kind this build does not know (the log's next id, as
    // its DbWriter would).
    let db = a.db().await;
    db.batch_execute(
        "BEGIN; \
         WITH c AS (UPDATE event_counter SET last_id = last_id + 1 RETURNING last_id) \
         INSERT INTO events (id, kind, recipient_id, payload, version) \
           SELECT c.last_id, 'poll.created', (SELECT id FROM users WHERE handle = 'bob'), '{}', 1 FROM c; \
         COMMIT;",
    )
    .await
    .unwrap();
    let post = a.create_post(&alice, "after the unknown record").await;
    assert_eq!(next_post(&mut ws).await, id_of(&post));
    // A resume from before it skips it too.
    let (mut resumed, hello) = a.ws(&bob, Some(0)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed");
    assert_eq!(next_post(&mut resumed).await, id_of(&post));
    assert!(
        a.metrics()
            .await
            .lines()
            .any(|l| l.starts_with("aisocial_log_unknown_records_total ") && !l.ends_with(" 0")),
        "unknown records are counted"
    );
}
