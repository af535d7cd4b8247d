//! Posts, follows and the timeline over HTTP.

use std::collections::HashSet;

use crate::helpers::{rows_read, spawn_app};

#[actix_web::test]
async fn an_idempotency_key_never_makes_a_second_post() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let send = || async {
        app.http
            .post(app.url("/api/v1/posts"))
            .bearer_auth(&alice.token)
            .header("Idempotency-Key", "key-1")
            .json(&serde_json::json!({"body": "once"}))
            .send()
            .await
            .unwrap()
    };
    // Twenty concurrent retries of one request, then one more.
    let mut responses = futures_util::future::join_all((0..20).map(|_| send())).await;
    responses.push(send().await);
    let mut ids = HashSet::new();
    for res in responses {
        assert_eq!(res.status(), 201);
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        ids.insert(body["id"].as_i64().unwrap_or_default());
    }
    assert_eq!(ids.len(), 1, "one post for one key");
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT count(*), (SELECT count(*) FROM events) FROM posts",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (1, 1));
    // Once that post is deleted, a retry with its key is a conflict, not a ghost post.
    let post_id = ids.iter().next().copied().unwrap_or_default();
    let res = app
        .http
        .delete(app.url(&format!("/api/v1/posts/{post_id}")))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = send().await;
    assert_eq!(res.status(), 409);
    // Another user may use the same key.
    let bob = app.sign_in("bob").await;
    let res = app
        .http
        .post(app.url("/api/v1/posts"))
        .bearer_auth(&bob.token)
        .header("Idempotency-Key", "key-1")
        .json(&serde_json::json!({"body": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[actix_web::test]
async fn follows_are_idempotent_and_checked() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    app.sign_in("bob").await;
    assert_eq!(app.follow(&alice, "bob").await, 204);
    assert_eq!(app.follow(&alice, "bob").await, 204);
    assert_eq!(app.follow(&alice, "alice").await, 409);
    assert_eq!(app.follow(&alice, "nobody_here").await, 404);
    assert_eq!(app.follow(&alice, "NOT-A-HANDLE").await, 404);
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM follows), \
                    (SELECT followers_count FROM users WHERE handle = 'bob'), \
                    (SELECT following_count FROM users WHERE handle = 'alice')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (1, 1, 1)
    );
    for _ in 0..2 {
        let res = app
            .http
            .delete(app.url("/api/v1/users/bob/follow"))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM follows), \
                    (SELECT followers_count FROM users WHERE handle = 'bob')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (0, 0));
}

#[actix_web::test]
async fn the_timeline_pages_without_skips_or_repeats() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let stranger = app.sign_in("stranger").await;
    app.follow(&alice, "bob").await;
    let mut expected = Vec::new();
    for n in 0..13 {
        let author = if n % 2 == 0 { &alice } else { &bob };
        expected.push(
            app.create_post(author, &format!("post {n}")).await["id"]
                .as_i64()
                .unwrap_or_default(),
        );
        app.create_post(&stranger, "not in alice's timeline").await;
    }
    expected.reverse();
    let mut got = Vec::new();
    let mut path = "/api/v1/timeline?limit=5".to_owned();
    loop {
        let (status, page) = app.get_json(&alice, &path).await;
        assert_eq!(status, 200);
        for item in page["items"].as_array().cloned().unwrap_or_default() {
            got.push(item["id"].as_i64().unwrap_or_default());
            // Posts written after the first page do not disturb the next pages.
            if got.len() == 1 {
                app.create_post(&bob, "newer than the first page").await;
            }
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/timeline?limit=5&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(got, expected);
}

/// The soak's rising p99 was the timeline reading every live post once the table had outgrown
/// the planner's statistics: a page must cost authors × page size index entries plus the page's
/// own rows, whatever the table holds and whether or not it has been analysed, under both
/// custom and generic plans.
#[actix_web::test]
async fn a_timeline_page_reads_a_bounded_number_of_posts_however_many_exist() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    app.follow(&alice, "bob").await;
    for n in 0..30 {
        app.create_post(&bob, &format!("bob {n}")).await;
    }
    let db = app.db().await;
    // Volume that is not alice's to read, from 200 other authors, interleaved in time as it
    // would be (tests may write directly; the server never does).
    db.batch_execute(
        "INSERT INTO users (handle) SELECT 'crowd_' || n FROM generate_series(1, 200) n; \
         INSERT INTO posts (author_id, body) \
         SELECT u.id, 'crowd ' || n FROM generate_series(1, 100) n, users u \
         WHERE u.handle LIKE 'crowd\\_%' ORDER BY n, u.id",
    )
    .await
    .unwrap();
    let alice_id: i64 = db
        .query_one("SELECT id FROM users WHERE handle = 'alice'", &[])
        .await
        .and_then(|row| row.try_get(0))
        .unwrap();
    let sql = format!(
        "PREPARE home(bigint, bigint, bigint) AS {}",
        aisocial::reads::HOME_TIMELINE.as_str()
    );
    db.batch_execute(&sql).await.unwrap();
    let page = 20.0;
    let authors = 2.0;
    for (when, setup) in [
        (
            "unanalysed, custom plan",
            "SET plan_cache_mode = force_custom_plan",
        ),
        (
            "unanalysed, generic plan",
            "SET plan_cache_mode = force_generic_plan",
        ),
        (
            "analysed, custom plan",
            "ANALYZE; SET plan_cache_mode = force_custom_plan",
        ),
        (
            "analysed, generic plan",
            "SET plan_cache_mode = force_generic_plan",
        ),
    ] {
        db.batch_execute(setup).await.unwrap();
        let explain = format!(
            "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE home({alice_id}, {}, 20)",
            i64::MAX
        );
        let row = db.query_one(&explain, &[]).await.unwrap();
        let plan: serde_json::Value = row.try_get(0).unwrap();
        let read = rows_read(&plan[0]["Plan"], "posts");
        assert!(
            read <= authors * page + page,
            "{when}: a 20-post page read {read} rows of posts: {plan:#}"
        );
    }
    let (status, timeline) = app.get_json(&alice, "/api/v1/timeline").await;
    assert_eq!(status, 200, "{timeline}");
    let bodies: Vec<&str> = timeline["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|p| p["body"].as_str()).collect())
        .unwrap_or_default();
    let newest_first: Vec<String> = (10..30).rev().map(|n| format!("bob {n}")).collect();
    assert_eq!(bodies, newest_first);
}
