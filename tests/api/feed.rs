//! A post travels from HTTP through the DbWriter and the FeedBroker to followers' websockets.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;

use crate::helpers::{WsEvent, rows_read, spawn_app, spawn_app_with};

#[actix_web::test]
async fn a_followers_websocket_receives_the_post() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let carol = app.sign_in("carol").await;
    assert_eq!(app.follow(&bob, "alice").await, 204);

    let (mut bob_ws, hello) = app.ws(&bob, None).await;
    assert_eq!(hello["data"]["user"]["handle"], "bob");
    assert_eq!(hello["data"]["user"]["id"], bob.id);
    assert_eq!(hello["data"]["resume"]["status"], "fresh");
    assert!(
        hello["data"]["heartbeat_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0)
    );
    let (mut alice_ws, _) = app.ws(&alice, None).await;
    let (mut carol_ws, _) = app.ws(&carol, None).await;

    let post = app.create_post(&alice, "  hello, followers  ").await;
    assert_eq!(post["body"], "hello, followers", "bodies are trimmed");

    for ws in [&mut bob_ws, &mut alice_ws] {
        let frame = ws.next_json_skipping_presence().await;
        assert_eq!(frame["type"], "post.created");
        assert!(frame["id"].as_i64().is_some_and(|id| id > 0));
        assert_eq!(frame["data"]["id"], post["id"]);
        assert_eq!(frame["data"]["body"], "hello, followers");
        assert_eq!(frame["data"]["author"]["handle"], "alice");
    }
    // Carol follows nobody: she sees nothing.
    carol_ws.assert_quiet(Duration::from_millis(300)).await;

    // A follow made while online takes effect for the next post.
    assert_eq!(app.follow(&carol, "alice").await, 204);
    let second = app.create_post(&alice, "second").await;
    let frame = carol_ws.next_json().await;
    assert_eq!(frame["data"]["id"], second["id"]);

    // And an unfollow stops it.
    let res = app
        .http
        .delete(app.url("/api/v1/users/alice/follow"))
        .bearer_auth(&carol.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    app.create_post(&alice, "third").await;
    let frame = bob_ws.next_json().await;
    assert_eq!(frame["data"]["body"], "second");
    let frame = bob_ws.next_json().await;
    assert_eq!(frame["data"]["body"], "third");
    carol_ws.assert_quiet(Duration::from_millis(300)).await;

    // The actors are metered and exported.
    let metrics = app.metrics().await;
    for name in [
        "aisocial_actor_mailbox_depth{actor=\"db_writer\"}",
        "aisocial_actor_messages_handled_total{actor=\"feed_broker\",message=\"Committed\"}",
        "aisocial_actor_messages_handled_total{actor=\"session\",message=\"Deliver\"}",
        "aisocial_actor_mailbox_wait_seconds_bucket{actor=\"db_writer\"",
        "aisocial_actor_handle_seconds_bucket{actor=\"feed_broker\"",
        "aisocial_db_writer_batch_size_bucket",
        "aisocial_delivery_latency_seconds_bucket",
        "aisocial_websocket_connections",
        "aisocial_http_requests_total{method=\"POST\",route=\"/api/v1/posts\",status=\"201\"}",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
}

#[actix_web::test]
async fn concurrent_posts_all_commit_and_all_arrive_in_order() {
    let app = spawn_app().await;
    let reader = app.sign_in("reader").await;
    let mut authors = Vec::new();
    for i in 0..8 {
        let author = app.sign_in(&format!("author_{i}")).await;
        assert_eq!(app.follow(&reader, &author.handle).await, 204);
        authors.push(author);
    }
    let (mut ws, _) = app.ws(&reader, None).await;
    let (mut ws2, _) = app.ws(&reader, None).await;

    const PER_AUTHOR: usize = 25;
    let posts = authors.iter().flat_map(|author| {
        let app = &app;
        (0..PER_AUTHOR).map(move |n| async move {
            let res = app.post(author, &format!("{} #{n}", author.handle)).await;
            assert_eq!(res.status(), 201);
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            body["id"].as_i64().unwrap_or_default()
        })
    });
    let ids: HashSet<i64> = join_all(posts).await.into_iter().collect();
    let total = authors.len() * PER_AUTHOR;
    assert_eq!(ids.len(), total, "every acknowledged post has its own id");

    for ws in [&mut ws, &mut ws2] {
        let mut seen = HashSet::new();
        let mut last_event = 0;
        while seen.len() < total {
            match ws.next_event(Duration::from_secs(10)).await {
                WsEvent::Json(frame) => {
                    assert_eq!(frame["type"], "post.created");
                    let event = frame["id"].as_i64().unwrap_or_default();
                    assert!(
                        event > last_event,
                        "event ids increase: {event} after {last_event}"
                    );
                    last_event = event;
                    assert!(
                        seen.insert(frame["data"]["id"].as_i64().unwrap_or_default()),
                        "duplicate"
                    );
                }
                other => panic!("after {} of {total} posts: {other:?}", seen.len()),
            }
        }
        assert_eq!(seen, ids);
    }

    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT count(*), (SELECT count(*) FROM events WHERE kind = 'post.created') FROM posts",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), total as i64);
    assert_eq!(row.get::<_, i64>(1), total as i64);
    // Ids in the log are dense: 1..=count.
    let row = db
        .query_one("SELECT max(id), count(*) FROM events", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), row.get::<_, i64>(1));
}

#[actix_web::test]
async fn resuming_with_since_replays_exactly_what_was_missed() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    app.follow(&bob, "alice").await;

    let (mut ws, _) = app.ws(&bob, None).await;
    app.create_post(&alice, "seen live").await;
    let live = ws.next_json().await;
    let last_seen = live["id"].as_i64().unwrap_or_default();
    drop(ws);

    let mut missed = Vec::new();
    for n in 0..3 {
        missed.push(app.create_post(&alice, &format!("missed {n}")).await["id"].clone());
    }
    let (mut ws, hello) = app.ws(&bob, Some(last_seen)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed");
    assert_eq!(hello["data"]["resume"]["since"], last_seen);
    assert_eq!(hello["data"]["resume"]["replayed"], 3);
    let mut last = last_seen;
    for expected in &missed {
        let frame = ws.next_json().await;
        assert_eq!(&frame["data"]["id"], expected);
        let id = frame["id"].as_i64().unwrap_or_default();
        assert!(id > last);
        last = id;
    }
    // Then live, without a gap or a duplicate at the seam.
    let after = app.create_post(&alice, "live again").await;
    let frame = ws.next_json().await;
    assert_eq!(frame["data"]["id"], after["id"]);
    assert_eq!(frame["id"].as_i64(), Some(last + 1));

    // Nothing missed: an empty replay.
    let (_, hello) = app.ws(&bob, Some(last + 1)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed");
    assert_eq!(hello["data"]["resume"]["replayed"], 0);

    // A `since` from the future (another deployment) asks for a resync.
    let (_, hello) = app.ws(&bob, Some(1_000_000)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resync_required");
}

#[actix_web::test]
async fn a_since_older_than_the_retention_window_requires_a_resync() {
    let app = spawn_app_with(&["--event-purge-interval-ms=100"]).await;
    let alice = app.sign_in("alice").await;
    for n in 0..3 {
        app.create_post(&alice, &format!("old {n}")).await;
    }
    // Nothing is old yet: a resume from the start is exact.
    let (_, hello) = app.ws(&alice, Some(0)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed");
    assert_eq!(hello["data"]["resume"]["replayed"], 3);
    // Age the first two events beyond the 72 h window; the purge removes them by id.
    let db = app.db().await;
    db.execute(
        "UPDATE events SET created_at = now() - interval '100 hours' WHERE id <= 2",
        &[],
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let floor: i64 = db
            .query_one("SELECT purged_through FROM event_retention", &[])
            .await
            .map(|r| r.get(0))
            .unwrap();
        if floor == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not purged: {floor}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left: i64 = db
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .map(|r| r.get(0))
        .unwrap();
    assert_eq!(left, 1, "the purge deletes the old rows");
    let (_, hello) = app.ws(&alice, Some(0)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resync_required");
    let (mut ws, hello) = app.ws(&alice, Some(2)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed");
    assert_eq!(hello["data"]["resume"]["replayed"], 1);
    assert_eq!(ws.next_json().await["data"]["body"], "old 2");
}

#[actix_web::test]
async fn thread_subscribers_receive_replies() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let root = app.create_post(&alice, "a thread").await;
    let root_id = root["id"].as_i64().unwrap_or_default();

    let (mut ws, _) = app.ws(&bob, None).await;
    ws.send_text(&format!(
        r#"{{"op":"subscribe","topic":"thread:{root_id}"}}"#
    ))
    .await;
    let ack = ws.next_json().await;
    assert_eq!(ack["type"], "subscribed");
    assert_eq!(ack["data"]["topic"], format!("thread:{root_id}"));

    let res = app
        .http
        .post(app.url("/api/v1/posts"))
        .bearer_auth(&alice.token)
        .json(&serde_json::json!({"body": "a reply", "reply_to": root_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let frame = ws.next_json().await;
    assert_eq!(frame["type"], "thread.reply");
    assert!(frame.get("id").is_none(), "thread.reply is ephemeral");
    assert_eq!(frame["data"]["reply_to"], root_id);
    assert_eq!(frame["data"]["root_id"], root_id);

    ws.send_text(r#"{"op":"subscribe","topic":"thread:999999"}"#)
        .await;
    let err = ws.next_json().await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["data"]["code"], "not_found");

    ws.send_text(&format!(
        r#"{{"op":"unsubscribe","topic":"thread:{root_id}"}}"#
    ))
    .await;
    assert_eq!(ws.next_json().await["type"], "unsubscribed");
}

/// A resume costs what the user receives, not what the log holds: with 100,000 events of 200
/// other authors in the log, a user who receives a handful reads about that many rows, under
/// custom and generic plans, analysed or not.
#[actix_web::test]
async fn a_resume_reads_what_the_user_receives_not_the_log() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    assert_eq!(app.follow(&bob, "alice").await, 204);
    let mut expected = Vec::new();
    for n in 0..5 {
        expected.push(format!("before {n}"));
        app.create_post(&alice, &format!("before {n}")).await;
    }
    let db = app.db().await;
    // The crowd's volume, with ids from the counter as the DbWriter would take them.
    db.batch_execute(
        "INSERT INTO users (handle) SELECT 'crowd_' || n FROM generate_series(1, 200) n; \
         BEGIN; \
         WITH c AS (UPDATE event_counter SET last_id = last_id + 100000 RETURNING last_id) \
         INSERT INTO events (id, kind, author_id, payload) \
         SELECT c.last_id - 100000 + g, 'post.created', \
           (SELECT id FROM users WHERE handle = 'crowd_' || (1 + g % 200)), '{}'::jsonb \
         FROM c, generate_series(1, 100000) g; \
         COMMIT;",
    )
    .await
    .unwrap();
    for n in 0..3 {
        expected.push(format!("after {n}"));
        app.create_post(&alice, &format!("after {n}")).await;
    }
    let (mut ws, hello) = app.ws(&bob, Some(0)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed");
    assert_eq!(hello["data"]["resume"]["replayed"], 8);
    for body in &expected {
        assert_eq!(&ws.next_json().await["data"]["body"], body.as_str());
    }

    let row = db
        .query_one(
            "SELECT (SELECT id FROM users WHERE handle = 'bob'), \
             (SELECT id FROM users WHERE handle = 'alice'), \
             (SELECT last_id FROM event_counter)",
            &[],
        )
        .await
        .unwrap();
    let (bob_id, alice_id, head): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    db.batch_execute(&format!(
        "PREPARE own(bigint, bigint, bigint, bigint) AS {}; \
         PREPARE authors(bigint[], bigint, bigint, bigint) AS {}",
        aisocial_actors::event_log::OWN_RECORDS.as_str(),
        aisocial_actors::event_log::AUTHORS_EVENTS.as_str()
    ))
    .await
    .unwrap();
    for (when, setup) in [
        (
            "unanalysed, custom",
            "SET plan_cache_mode = force_custom_plan",
        ),
        (
            "unanalysed, generic",
            "SET plan_cache_mode = force_generic_plan",
        ),
        (
            "analysed, custom",
            "ANALYZE; SET plan_cache_mode = force_custom_plan",
        ),
        (
            "analysed, generic",
            "SET plan_cache_mode = force_generic_plan",
        ),
    ] {
        db.batch_execute(setup).await.unwrap();
        for explain in [
            format!("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE own({bob_id}, 0, {head}, 2000)"),
            format!(
                "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE authors(ARRAY[{alice_id}, {bob_id}]::bigint[], 0, {head}, 2000)"
            ),
        ] {
            let row = db.query_one(&explain, &[]).await.unwrap();
            let plan: serde_json::Value = row.try_get(0).unwrap();
            let read = rows_read(&plan[0]["Plan"], "events");
            assert!(
                read <= 20.0,
                "{when}: a resume receiving 8 events read {read} rows of events: {plan:#}"
            );
        }
    }
}
