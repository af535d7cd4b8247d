//! Blocks and mutes (issue 20): each is a routing record of the log, so it takes effect on every
//! node at the same id, live and on resume; reads filter by the same state; a follow, reply or
//! like across a block is refused with 403 `blocked`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::bad_input::{case, check};
use crate::helpers::{TestApp, TestUser, WsClient, WsEvent, spawn_app, spawn_peer};

/// The next durable frame (one with an `id`), skipping presence and ephemeral frames.
async fn next_durable(ws: &mut WsClient) -> Value {
    loop {
        match ws.next_event(Duration::from_secs(10)).await {
            WsEvent::Json(frame) if frame.get("id").is_some() => return frame,
            WsEvent::Json(_) => {}
            other => panic!("expected a durable frame, got {other:?}"),
        }
    }
}

/// The next frame of type `kind`, skipping every other.
async fn next_of(ws: &mut WsClient, kind: &str) -> Value {
    loop {
        match ws.next_event(Duration::from_secs(10)).await {
            WsEvent::Json(frame) if frame["type"] == kind => return frame,
            WsEvent::Json(_) => {}
            other => panic!("expected {kind}, got {other:?}"),
        }
    }
}

/// Asserts that the next durable frame is `post`'s `post.created` (so nothing addressed
/// before it, such as a hidden user's post, arrived).
async fn next_is_post(ws: &mut WsClient, post: &Value) {
    let frame = next_durable(ws).await;
    assert_eq!(frame["type"], "post.created", "{frame}");
    assert_eq!(frame["data"]["id"], post["id"], "{frame}");
}

/// Reads durable frames up to `post`'s `post.created`: none of those before it may come from
/// `hidden` (as a post's author or a notification's actor), nor be a later post. (Frames
/// addressed before the socket opened, such as a follow's notification, may still arrive first
/// when the node had not yet released them.)
async fn until_post(ws: &mut WsClient, post: &Value, hidden: Option<&str>) -> Value {
    loop {
        let frame = next_durable(ws).await;
        let from = frame["data"]["author"]["handle"]
            .as_str()
            .or_else(|| frame["data"]["actor"]["handle"].as_str());
        assert!(
            hidden.is_none() || from != hidden,
            "a frame from a hidden user: {frame}"
        );
        if frame["type"] == "post.created" {
            if frame["data"]["id"] == post["id"] {
                return frame;
            }
            assert!(
                frame["data"]["id"].as_i64() < post["id"].as_i64(),
                "a later post first: {frame}"
            );
        }
    }
}

/// `PUT`/`DELETE` (per `on`) of `/api/v1/users/{whom}/{what}` with an optional JSON body: the
/// status and the problem document (if any).
async fn set(
    node: &TestApp,
    who: &TestUser,
    what: &str,
    whom: &str,
    on: bool,
    body: Option<Value>,
) -> (u16, Value) {
    let method = if on {
        reqwest::Method::PUT
    } else {
        reqwest::Method::DELETE
    };
    let mut req = node
        .http
        .request(method, node.url(&format!("/api/v1/users/{whom}/{what}")))
        .bearer_auth(&who.token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

async fn ok(node: &TestApp, who: &TestUser, what: &str, whom: &str, on: bool) {
    let (status, body) = set(node, who, what, whom, on, None).await;
    assert_eq!(status, 204, "{what} {whom} ({on}): {body}");
}

async fn refused_as_blocked(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 403, "{what}");
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(body["code"], "blocked", "{what}: {body}");
}

fn handles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            i["handle"]
                .as_str()
                .or_else(|| i["author"]["handle"].as_str())
                .or_else(|| i["actor"]["handle"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

async fn list(node: &TestApp, who: &TestUser, path: &str) -> Value {
    let (status, page) = node.get_json(who, path).await;
    assert_eq!(status, 200, "{path}: {page}");
    page
}

async fn like(node: &TestApp, who: &TestUser, post: &Value) -> reqwest::Response {
    node.http
        .put(node.url(&format!("/api/v1/posts/{}/like", post["id"])))
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap()
}

async fn reply(node: &TestApp, who: &TestUser, to: &Value, body: &str) -> reqwest::Response {
    node.http
        .post(node.url("/api/v1/posts"))
        .bearer_auth(&who.token)
        .json(&json!({"body": body, "reply_to": to["id"]}))
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn a_block_through_one_node_stops_live_delivery_both_ways_on_the_other() {
    let a = spawn_app().await;
    let b = spawn_peer(&a, &[]).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    let carol = a.sign_in("carol").await;
    for (who, whom) in [
        (&bob, "alice"),
        (&alice, "bob"),
        (&bob, "carol"),
        (&alice, "carol"),
    ] {
        assert_eq!(a.follow(who, whom).await, 204);
    }
    let (mut bob_ws, _) = b.ws(&bob, None).await;
    let (mut alice_ws, _) = a.ws(&alice, None).await;
    let before = a.create_post(&alice, "before the block").await;
    until_post(&mut bob_ws, &before, None).await;
    until_post(&mut alice_ws, &before, None).await;

    ok(&a, &alice, "block", "bob", true).await;
    // The follows ended both ways.
    assert!(handles(&list(&a, &alice, "/api/v1/users/alice/followers").await).is_empty());
    assert_eq!(
        handles(&list(&a, &bob, "/api/v1/users/bob/following").await),
        ["carol"]
    );
    assert_eq!(
        handles(&list(&a, &alice, "/api/v1/me/blocks").await),
        ["bob"]
    );

    // Alice posts on A: bob, on B, gets nothing of it, only carol's post after it.
    a.create_post(&alice, "after the block").await;
    // Bob posts on B mentioning alice: no post, no notification reaches her.
    let mention = b.create_post(&bob, "hey @alice, still there?").await;
    let sentinel = a.create_post(&carol, "carol after both").await;
    until_post(&mut bob_ws, &mention, Some("alice")).await;
    until_post(&mut bob_ws, &sentinel, Some("alice")).await;
    until_post(&mut alice_ws, &sentinel, Some("bob")).await;
    // The mention made no notification at all (not merely one the reads leave out).
    let made: i64 = a
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND actor_id = $2 \
             AND kind = 'mention'",
            &[&alice.id, &bob.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(made, 0);
    let notifications = list(&a, &alice, "/api/v1/notifications").await;
    assert!(
        !handles(&notifications).contains(&"bob".to_owned()),
        "no notification from bob: {notifications}"
    );
}

#[actix_web::test]
async fn follows_replies_and_likes_across_a_block_are_refused_and_blocks_are_idempotent() {
    let a = spawn_app().await;
    let b = spawn_peer(&a, &[]).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    let post = a.create_post(&alice, "alice's post").await;
    ok(&a, &alice, "block", "bob", true).await;
    ok(&b, &alice, "block", "bob", true).await;

    for (node, who, whom) in [(&a, &bob, "alice"), (&b, &alice, "bob")] {
        let res = node
            .client()
            .follow_request(&who.token, whom)
            .send()
            .await
            .unwrap();
        refused_as_blocked(res, "follow").await;
    }
    refused_as_blocked(like(&b, &bob, &post).await, "like").await;
    refused_as_blocked(reply(&b, &bob, &post, "a reply").await, "reply").await;
    let bobs = b.create_post(&bob, "bob's post").await;
    refused_as_blocked(like(&a, &alice, &bobs).await, "the blocker's like").await;
    // Nothing was written.
    let (_, fetched) = a
        .get_json(&alice, &format!("/api/v1/posts/{}", post["id"]))
        .await;
    assert_eq!(fetched["like_count"], 0);
    assert_eq!(fetched["reply_count"], 0);

    ok(&b, &alice, "block", "bob", false).await;
    ok(&a, &alice, "block", "bob", false).await;
    assert!(handles(&list(&a, &alice, "/api/v1/me/blocks").await).is_empty());
    assert_eq!(a.follow(&bob, "alice").await, 204);
    assert_eq!(like(&b, &bob, &post).await.status(), 204);
}

#[actix_web::test]
async fn a_resume_after_a_block_and_the_lists_leave_out_the_other_side() {
    let a = spawn_app().await;
    let b = spawn_peer(&a, &[]).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    let carol = a.sign_in("carol").await;
    assert_eq!(a.follow(&bob, "alice").await, 204);
    assert_eq!(a.follow(&bob, "carol").await, 204);
    let root = a.create_post(&carol, "carol's thread").await;
    let (mut first, hello) = b.ws(&bob, None).await;
    assert_eq!(hello["data"]["resume"]["status"], "fresh", "{hello}");
    let seen = a.create_post(&alice, "seen before the block").await;
    let last = until_post(&mut first, &seen, None).await;
    // Alice replies to carol before the block (the reply list shows it to bob until then).
    let early = reply(&a, &alice, &root, "alice in carol's thread").await;
    assert_eq!(early.status(), 201);
    drop(first);

    ok(&a, &bob, "block", "alice", true).await;
    a.create_post(&alice, "after the block").await;
    assert_eq!(like(&a, &alice, &root).await.status(), 204);
    let after = a.create_post(&carol, "carol after the block").await;

    // Bob resumes on B after `seen`: alice's reply (before the block) and carol's post; not
    // alice's post after the block.
    let (mut ws, hello) = b.ws(&bob, last["id"].as_i64()).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed", "{hello}");
    let frame = next_durable(&mut ws).await;
    assert_eq!(frame["data"]["body"], "alice in carol's thread", "{frame}");
    next_is_post(&mut ws, &after).await;

    // Reads: no reply of alice's in carol's thread, no alice in the timeline.
    let replies = list(&b, &bob, &format!("/api/v1/posts/{}/replies", root["id"])).await;
    assert!(handles(&replies).is_empty(), "{replies}");
    let timeline = list(&b, &bob, "/api/v1/timeline").await;
    assert!(
        !handles(&timeline).contains(&"alice".to_owned()),
        "{timeline}"
    );
    // Carol still sees both.
    let replies = list(&a, &carol, &format!("/api/v1/posts/{}/replies", root["id"])).await;
    assert_eq!(handles(&replies), ["alice"]);

    // A thread subscription on B hears carol's reply, not alice's.
    ws.send_text(
        &json!({"op": "subscribe", "topic": format!("thread:{}", root["id"])}).to_string(),
    )
    .await;
    next_of(&mut ws, "subscribed").await;
    assert_eq!(reply(&a, &alice, &root, "alice again").await.status(), 201);
    assert_eq!(
        reply(&a, &carol, &root, "carol replies").await.status(),
        201
    );
    let heard = next_of(&mut ws, "thread.reply").await;
    assert_eq!(heard["data"]["author"]["handle"], "carol", "{heard}");
}

#[actix_web::test]
async fn a_mute_hides_the_muted_users_posts_and_notifications_from_the_muter_only() {
    let a = spawn_app().await;
    let b = spawn_peer(&a, &[]).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    let carol = a.sign_in("carol").await;
    for (who, whom) in [(&bob, "alice"), (&alice, "bob"), (&bob, "carol")] {
        assert_eq!(a.follow(who, whom).await, 204);
    }
    let bobs = a.create_post(&bob, "bob's post").await;
    let (mut bob_ws, _) = b.ws(&bob, None).await;
    let (mut alice_ws, _) = a.ws(&alice, None).await;

    ok(&a, &bob, "mute", "alice", true).await;
    let mutes = list(&b, &bob, "/api/v1/me/mutes").await;
    assert_eq!(handles(&mutes), ["alice"]);
    assert!(mutes["items"][0]["until"].is_null(), "{mutes}");
    // The follows stand; alice notices nothing.
    assert_eq!(
        handles(&list(&a, &alice, "/api/v1/users/alice/followers").await),
        ["bob"]
    );

    let muted = a.create_post(&alice, "while muted").await;
    assert_eq!(like(&a, &alice, &bobs).await.status(), 204);
    let sentinel = a.create_post(&carol, "carol").await;
    until_post(&mut bob_ws, &sentinel, Some("alice")).await;
    // Alice still receives bob's posts.
    let to_alice = b.create_post(&bob, "bob to alice").await;
    until_post(&mut alice_ws, &muted, None).await;
    until_post(&mut alice_ws, &to_alice, None).await;
    until_post(&mut bob_ws, &to_alice, Some("alice")).await;

    let timeline = list(&b, &bob, "/api/v1/timeline").await;
    assert!(
        !handles(&timeline).contains(&"alice".to_owned()),
        "{timeline}"
    );
    let notifications = list(&b, &bob, "/api/v1/notifications").await;
    assert!(
        !handles(&notifications).contains(&"alice".to_owned()),
        "{notifications}"
    );

    // Unmuted through B: alice's next post reaches bob on B, and the reads show her again.
    ok(&b, &bob, "mute", "alice", false).await;
    assert!(handles(&list(&a, &bob, "/api/v1/me/mutes").await).is_empty());
    let after = a.create_post(&alice, "after the unmute").await;
    until_post(&mut bob_ws, &after, None).await;
    let timeline = list(&b, &bob, "/api/v1/timeline").await;
    assert!(
        handles(&timeline).contains(&"alice".to_owned()),
        "{timeline}"
    );
    let notifications = list(&b, &bob, "/api/v1/notifications").await;
    assert!(
        handles(&notifications).contains(&"alice".to_owned()),
        "{notifications}"
    );
    // A resume from the start on B agrees with live delivery: alice's follow (before the
    // mute), not her post or like while muted.
    let (mut resumed, hello) = b.ws(&bob, Some(0)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed", "{hello}");
    let mut seen = Vec::new();
    for _ in 0..5 {
        let frame = next_durable(&mut resumed).await;
        let what = &frame["data"];
        seen.push(format!(
            "{} {}",
            frame["type"].as_str().unwrap_or_default(),
            what["body"]
                .as_str()
                .or_else(|| what["kind"].as_str())
                .unwrap_or_default()
        ));
    }
    assert_eq!(
        seen,
        [
            "notification follow",
            "post.created bob's post",
            "post.created carol",
            "post.created bob to alice",
            "post.created after the unmute"
        ]
    );
}

#[actix_web::test]
async fn a_timed_mute_ends_by_itself_live_and_on_resume() {
    let a = spawn_app().await;
    let b = spawn_peer(&a, &[]).await;
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    assert_eq!(a.follow(&bob, "alice").await, 204);
    let (mut bob_ws, _) = b.ws(&bob, None).await;
    let start = a.create_post(&bob, "bob starts").await;
    until_post(&mut bob_ws, &start, None).await;

    let (status, body) = set(
        &a,
        &bob,
        "mute",
        "alice",
        true,
        Some(json!({"duration_secs": 2})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let mutes = list(&b, &bob, "/api/v1/me/mutes").await;
    assert!(mutes["items"][0]["until"].is_string(), "{mutes}");
    a.create_post(&alice, "while muted").await;
    let own = b.create_post(&bob, "bob meanwhile").await;
    until_post(&mut bob_ws, &own, Some("alice")).await;

    // The sweep ends the mute on its own; the next post of alice's reaches bob live on B.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(handles(&list(&b, &bob, "/api/v1/me/mutes").await).is_empty());
    let after = a.create_post(&alice, "after the mute").await;
    until_post(&mut bob_ws, &after, None).await;

    // A resume from the start agrees: not the post made while muted.
    let (mut resumed, hello) = b.ws(&bob, Some(0)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed", "{hello}");
    let mut bodies = Vec::new();
    for _ in 0..3 {
        bodies.push(next_durable(&mut resumed).await["data"]["body"].clone());
    }
    assert_eq!(
        bodies,
        [
            json!("bob starts"),
            json!("bob meanwhile"),
            json!("after the mute")
        ]
    );
}

#[actix_web::test]
async fn the_block_and_mute_routes_answer_bad_input_with_a_problem_document() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    app.sign_in("bob").await;
    let t = alice.token.as_str();
    let cases = vec![
        case(
            "block: no token",
            "PUT",
            "/api/v1/users/bob/block",
            401,
            "unauthorized",
        ),
        case(
            "block: unknown",
            "PUT",
            "/api/v1/users/ghost_user/block",
            404,
            "not_found",
        )
        .token(t),
        case(
            "block: not a handle",
            "PUT",
            "/api/v1/users/A'B/block",
            404,
            "not_found",
        )
        .token(t),
        case(
            "block: self",
            "PUT",
            "/api/v1/users/alice/block",
            409,
            "conflict",
        )
        .token(t),
        case(
            "unblock: unknown",
            "DELETE",
            "/api/v1/users/ghost_user/block",
            404,
            "not_found",
        )
        .token(t),
        case(
            "unblock: self",
            "DELETE",
            "/api/v1/users/alice/block",
            409,
            "conflict",
        )
        .token(t),
        case(
            "mute: unknown",
            "PUT",
            "/api/v1/users/ghost_user/mute",
            404,
            "not_found",
        )
        .token(t),
        case(
            "mute: self",
            "PUT",
            "/api/v1/users/alice/mute",
            409,
            "conflict",
        )
        .token(t),
        case(
            "unmute: unknown",
            "DELETE",
            "/api/v1/users/ghost_user/mute",
            404,
            "not_found",
        )
        .token(t),
        case(
            "mute: malformed",
            "PUT",
            "/api/v1/users/bob/mute",
            400,
            "invalid_json",
        )
        .token(t)
        .body("{"),
        case(
            "mute: zero",
            "PUT",
            "/api/v1/users/bob/mute",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"duration_secs":0}"#),
        case(
            "mute: negative",
            "PUT",
            "/api/v1/users/bob/mute",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"duration_secs":-5}"#),
        case(
            "mute: too long",
            "PUT",
            "/api/v1/users/bob/mute",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"duration_secs":99999999999}"#),
        case(
            "mute: a string",
            "PUT",
            "/api/v1/users/bob/mute",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"duration_secs":"forever"}"#),
        case(
            "mute: unknown field",
            "PUT",
            "/api/v1/users/bob/mute",
            422,
            "validation_failed",
        )
        .token(t)
        .body(r#"{"duration":5}"#),
        case(
            "mute: not json",
            "PUT",
            "/api/v1/users/bob/mute",
            415,
            "unsupported_media_type",
        )
        .token(t)
        .header("content-type", "text/plain")
        .body("5"),
        case(
            "blocks: bad cursor",
            "GET",
            "/api/v1/me/blocks?cursor=%%%",
            400,
            "invalid_cursor",
        )
        .token(t),
        case(
            "mutes: bad limit",
            "GET",
            "/api/v1/me/mutes?limit=0",
            422,
            "validation_failed",
        )
        .token(t),
    ];
    for c in cases {
        check(&app, c).await;
    }
    // The field at fault is named.
    let (status, body) = set(
        &app,
        &alice,
        "mute",
        "bob",
        true,
        Some(json!({"duration_secs": 0})),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "duration_secs", "{body}");
    // The document allows a `null` body (no end), as it allows none.
    let res = app
        .http
        .put(app.url("/api/v1/users/bob/mute"))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}
