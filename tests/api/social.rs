//! The social core over HTTP and websockets: likes, deletes, notifications, profiles, lists.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, spawn_app, spawn_app_with};

async fn send(app: &TestApp, method: &str, user: &TestUser, path: &str) -> u16 {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or_default();
    app.http
        .request(method, app.url(path))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn reply(app: &TestApp, user: &TestUser, parent: i64, body: &str) -> Value {
    let res = app
        .http
        .post(app.url("/api/v1/posts"))
        .bearer_auth(&user.token)
        .json(&json!({"body": body, "reply_to": parent}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json().await.unwrap_or_default()
}

#[actix_web::test]
async fn a_hundred_concurrent_likes_count_exactly() {
    let app = spawn_app_with(&["--rate-limit-auth-per-min=1000"]).await;
    let author = app.sign_in("author").await;
    let post = app.create_post(&author, "like me").await;
    let id = post["id"].as_i64().unwrap_or_default();
    let mut fans = Vec::new();
    for n in 0..100 {
        fans.push(app.sign_in(&format!("fan_{n}")).await);
    }
    let path = format!("/api/v1/posts/{id}/like");
    let likes = fans.iter().map(|fan| send(&app, "PUT", fan, &path));
    let statuses = join_all(likes).await;
    assert!(statuses.iter().all(|s| *s == 204));
    // Liking again changes nothing; the author's own like notifies no one.
    assert_eq!(send(&app, "PUT", &fans[0], &path).await, 204);
    assert_eq!(send(&app, "PUT", &author, &path).await, 204);
    let (_, body) = app.get_json(&author, &format!("/api/v1/posts/{id}")).await;
    assert_eq!(body["like_count"], 101);
    let unlikes = fans[..40]
        .iter()
        .map(|fan| send(&app, "DELETE", fan, &path));
    join_all(unlikes).await;
    assert_eq!(send(&app, "DELETE", &fans[0], &path).await, 204);
    let (_, body) = app.get_json(&author, &format!("/api/v1/posts/{id}")).await;
    assert_eq!(body["like_count"], 61);
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM likes), \
             (SELECT count(*) FROM notifications WHERE kind = 'like')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 61);
    assert_eq!(
        row.get::<_, i64>(1),
        100,
        "one notification per fan, none for the author"
    );
    assert_eq!(
        send(&app, "PUT", &fans[0], "/api/v1/posts/999999/like").await,
        404
    );
}

#[actix_web::test]
async fn fifty_concurrent_follows_count_exactly() {
    let app = spawn_app_with(&["--rate-limit-auth-per-min=1000"]).await;
    let star = app.sign_in("star").await;
    let mut fans = Vec::new();
    for n in 0..50 {
        fans.push(app.sign_in(&format!("fan_{n}")).await);
    }
    let follows = fans.iter().map(|fan| app.follow(fan, "star"));
    assert!(join_all(follows).await.iter().all(|s| *s == 204));
    let unfollows = fans[..20]
        .iter()
        .map(|fan| send(&app, "DELETE", fan, "/api/v1/users/star/follow"));
    assert!(join_all(unfollows).await.iter().all(|s| *s == 204));
    let (_, profile) = app.get_json(&star, "/api/v1/users/star").await;
    assert_eq!(profile["followers_count"], 30);
    let (_, fan) = app.get_json(&star, "/api/v1/users/fan_0").await;
    assert_eq!(fan["following_count"], 0);
    let (_, fan) = app.get_json(&star, "/api/v1/users/fan_49").await;
    assert_eq!(fan["following_count"], 1);
}

#[actix_web::test]
async fn notifications_arrive_live_and_list_newest_first() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let (mut alice_ws, _) = app.ws(&alice, None).await;

    assert_eq!(app.follow(&bob, "alice").await, 204);
    let post = app.create_post(&alice, "hello").await;
    let id = post["id"].as_i64().unwrap_or_default();
    // Alice sees her own post first.
    assert_eq!(alice_ws.next_json().await["type"], "notification");
    assert_eq!(alice_ws.next_json().await["type"], "post.created");
    assert_eq!(
        send(&app, "PUT", &bob, &format!("/api/v1/posts/{id}/like")).await,
        204
    );
    reply(&app, &bob, id, "nice, @alice").await;
    app.create_post(&bob, "hey @alice, and @nobody_at_all")
        .await;

    let mut kinds = Vec::new();
    let mut last = 0;
    while kinds.len() < 3 {
        let frame = alice_ws.next_json().await;
        let event = frame["id"].as_i64().unwrap_or_default();
        assert!(event > last);
        last = event;
        if frame["type"] == "notification" {
            kinds.push(
                frame["data"]["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            assert_eq!(frame["data"]["actor"]["handle"], "bob");
        }
    }
    // Then the like, the reply (which names her, but a reply is not also a mention), the mention.
    assert_eq!(kinds, ["like", "reply", "mention"]);

    let (status, page) = app.get_json(&alice, "/api/v1/notifications").await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = page["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|n| n["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed, vec!["mention", "reply", "like", "follow"]);
    // Bob has none: his own actions never notify him.
    let (_, page) = app.get_json(&bob, "/api/v1/notifications").await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0));
}

#[actix_web::test]
async fn deleting_is_for_the_author_or_an_admin_and_is_announced() {
    let app = spawn_app_with(&["--admin-handles=moderator"]).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let moderator = app.sign_in("moderator").await;
    app.follow(&bob, "alice").await;
    let first = app.create_post(&alice, "first").await;
    let second = app.create_post(&alice, "second").await;
    let a = first["id"].as_i64().unwrap_or_default();
    let b = second["id"].as_i64().unwrap_or_default();
    let r = reply(&app, &bob, a, "a reply").await["id"]
        .as_i64()
        .unwrap_or_default();
    let (_, parent) = app.get_json(&alice, &format!("/api/v1/posts/{a}")).await;
    assert_eq!(parent["reply_count"], 1);

    let (mut bob_ws, _) = app.ws(&bob, None).await;
    assert_eq!(
        send(&app, "DELETE", &bob, &format!("/api/v1/posts/{a}")).await,
        403
    );
    assert_eq!(
        send(&app, "DELETE", &alice, &format!("/api/v1/posts/{a}")).await,
        204
    );
    let frame = bob_ws.next_json().await;
    assert_eq!(frame["type"], "post.deleted");
    assert_eq!(frame["data"]["id"], a);
    assert_eq!(
        send(&app, "DELETE", &alice, &format!("/api/v1/posts/{a}")).await,
        404
    );
    let (status, _) = app.get_json(&alice, &format!("/api/v1/posts/{a}")).await;
    assert_eq!(status, 404);
    // An admin may delete anyone's post; a reply's deletion uncounts it.
    assert_eq!(
        send(&app, "DELETE", &moderator, &format!("/api/v1/posts/{b}")).await,
        204
    );
    assert_eq!(
        send(&app, "DELETE", &bob, &format!("/api/v1/posts/{r}")).await,
        204
    );
    let (_, timeline) = app.get_json(&bob, "/api/v1/timeline").await;
    assert_eq!(
        timeline["items"].as_array().map(Vec::len),
        Some(0),
        "{timeline}"
    );
    let (_, profile) = app.get_json(&bob, "/api/v1/users/alice").await;
    assert_eq!(profile["posts_count"], 0);
    let db = app.db().await;
    let audits: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'post_delete'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audits, 3);
}

#[actix_web::test]
async fn profiles_and_lists_stay_current_and_page_cleanly() {
    let app = spawn_app().await;
    let star = app.sign_in("star").await;
    let (_, profile) = app.get_json(&star, "/api/v1/users/star").await;
    assert_eq!(profile["followers_count"], 0);
    let mut fans = Vec::new();
    for n in 0..7 {
        let fan = app.sign_in(&format!("fan_{n}")).await;
        assert_eq!(app.follow(&fan, "star").await, 204);
        fans.push(fan);
    }
    // The cached profile was invalidated by each follow.
    let (_, profile) = app.get_json(&star, "/api/v1/users/star").await;
    assert_eq!(profile["followers_count"], 7);
    let (_, fan0) = app.get_json(&star, "/api/v1/users/fan_0").await;
    assert_eq!(fan0["following_count"], 1);
    assert!(fan0.get("email").is_none());

    let mut seen = Vec::new();
    let mut path = "/api/v1/users/star/followers?limit=3".to_owned();
    loop {
        let (status, page) = app.get_json(&star, &path).await;
        assert_eq!(status, 200);
        for item in page["items"].as_array().cloned().unwrap_or_default() {
            seen.push(item["handle"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/users/star/followers?limit=3&cursor={c}"),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (7, 7));
    let (_, following) = app.get_json(&star, "/api/v1/users/fan_3/following").await;
    assert_eq!(following["items"][0]["handle"], "star");

    // A user's posts, under concurrent inserts.
    for n in 0..9 {
        app.create_post(&star, &format!("p{n}")).await;
    }
    let mut got = Vec::new();
    let mut path = "/api/v1/users/star/posts?limit=4".to_owned();
    loop {
        let (_, page) = app.get_json(&star, &path).await;
        for item in page["items"].as_array().cloned().unwrap_or_default() {
            got.push(item["body"].as_str().unwrap_or_default().to_owned());
        }
        app.create_post(&star, "written while paging").await;
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/users/star/posts?limit=4&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..9).rev().map(|n| format!("p{n}")).collect();
    assert_eq!(got, expected);
    assert_eq!(
        app.get_json(&star, "/api/v1/users/nobody_here").await.0,
        404
    );
}

#[actix_web::test]
async fn replies_list_oldest_first() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let root = app.create_post(&alice, "root").await["id"]
        .as_i64()
        .unwrap_or_default();
    let mut ids = Vec::new();
    for n in 0..5 {
        let who = if n % 2 == 0 { &bob } else { &alice };
        ids.push(
            reply(&app, who, root, &format!("r{n}")).await["id"]
                .as_i64()
                .unwrap_or_default(),
        );
    }
    let nested = reply(&app, &alice, ids[0], "nested").await;
    assert_eq!(nested["root_id"], root);
    assert_eq!(nested["reply_to"], ids[0]);
    let (_, first) = app
        .get_json(&bob, &format!("/api/v1/posts/{root}/replies?limit=3"))
        .await;
    let cursor = first["next_cursor"].as_str().unwrap_or_default().to_owned();
    let (_, second) = app
        .get_json(
            &bob,
            &format!("/api/v1/posts/{root}/replies?limit=3&cursor={cursor}"),
        )
        .await;
    let listed: Vec<i64> = first["items"]
        .as_array()
        .into_iter()
        .chain(second["items"].as_array())
        .flatten()
        .filter_map(|p| p["id"].as_i64())
        .collect();
    assert_eq!(listed, ids);
    let (_, post) = app.get_json(&bob, &format!("/api/v1/posts/{root}")).await;
    assert_eq!(post["reply_count"], 5);
    assert_eq!(
        app.get_json(&bob, "/api/v1/posts/424242/replies").await.0,
        404
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[actix_web::test]
async fn a_follow_list_read_at_connect_is_never_stale() {
    let app = spawn_app().await;
    let bob = app.sign_in("bob").await;
    let alice = app.sign_in("alice").await;
    let carol = app.sign_in("carol").await;
    app.follow(&bob, "alice").await;
    let (ws, _) = app.ws(&bob, None).await;
    drop(ws);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A change after bob's last connection; the next connection sees carol.
    app.follow(&bob, "carol").await;
    let (mut ws, _) = app.ws(&bob, None).await;
    app.create_post(&carol, "from carol").await;
    app.create_post(&alice, "from alice").await;
    assert_eq!(ws.next_json().await["data"]["body"], "from carol");
    assert_eq!(ws.next_json().await["data"]["body"], "from alice");
}

#[actix_web::test]
async fn a_full_write_queue_answers_503_with_retry_after() {
    let app = spawn_app_with(&["--db-writer-max-batch=1", "--db-writer-max-queue=1"]).await;
    let alice = app.sign_in("alice").await;
    let (app, alice) = (&app, &alice);
    let posts = (0..200).map(|n| async move {
        let res = app.post(alice, &format!("burst {n}")).await;
        let status = res.status().as_u16();
        let retry = res.headers().get("retry-after").is_some();
        let body: Value = res.json().await.unwrap_or_default();
        (status, retry, body)
    });
    let results = join_all(posts).await;
    let overloaded: Vec<&(u16, bool, Value)> =
        results.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(
        !overloaded.is_empty(),
        "200 concurrent posts against a queue of 1"
    );
    for (_, retry, body) in &overloaded {
        assert!(*retry);
        assert_eq!(body["code"], "overloaded");
    }
    let created: HashSet<i64> = results
        .iter()
        .filter(|(s, _, _)| *s == 201)
        .filter_map(|(_, _, b)| b["id"].as_i64())
        .collect();
    assert_eq!(created.len() + overloaded.len(), 200);
    let stored: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM posts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored as usize,
        created.len(),
        "only acknowledged posts exist"
    );
}

#[actix_web::test]
async fn every_post_read_says_whether_the_reader_likes_it() {
    let app = spawn_app().await;
    let author = app.sign_in("author").await;
    let fan = app.sign_in("fan").await;
    app.follow(&fan, "author").await;
    let post = app.create_post(&author, "like me").await;
    let id = post["id"].as_i64().unwrap_or_default();
    let answer = reply(&app, &author, id, "a reply").await;
    let reply_id = answer["id"].as_i64().unwrap_or_default();
    for liked in [id, reply_id] {
        let path = format!("/api/v1/posts/{liked}/like");
        assert_eq!(send(&app, "PUT", &fan, &path).await, 204);
    }
    let liked = |body: &Value, post: i64| -> Option<bool> {
        let item = if body["items"].is_array() {
            body["items"]
                .as_array()
                .and_then(|items| items.iter().find(|p| p["id"] == post))?
        } else {
            body
        };
        item["liked_by_me"].as_bool()
    };
    for (reader, expect) in [(&fan, true), (&author, false)] {
        let reads = [
            (format!("/api/v1/posts/{id}"), id),
            ("/api/v1/timeline".to_owned(), id),
            ("/api/v1/users/author/posts".to_owned(), id),
            (format!("/api/v1/posts/{id}/replies"), reply_id),
        ];
        for (path, post) in reads {
            let (status, body) = app.get_json(reader, &path).await;
            assert_eq!(status, 200, "{path}");
            assert_eq!(
                liked(&body, post),
                Some(expect),
                "{} reads {path}: {body}",
                reader.handle
            );
        }
    }
    // Unliking shows at once.
    let path = format!("/api/v1/posts/{id}/like");
    assert_eq!(send(&app, "DELETE", &fan, &path).await, 204);
    let (_, body) = app.get_json(&fan, &format!("/api/v1/posts/{id}")).await;
    assert_eq!(body["liked_by_me"], false);
}

/// Liking and unliking, or following and unfollowing, over and over notifies once: a repeat of
/// the same person's like of the same post, or follow, within the hour makes no new
/// notification (nor a frame).
#[actix_web::test]
async fn toggling_a_like_or_a_follow_notifies_once() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let post = app.create_post(&alice, "like me, then don't").await;
    let id = post["id"].as_i64().unwrap_or_default();
    let (mut alices_socket, _) = app.ws(&alice, None).await;
    for _ in 0..3 {
        assert_eq!(
            send(&app, "PUT", &bob, &format!("/api/v1/posts/{id}/like")).await,
            204
        );
        assert_eq!(
            send(&app, "DELETE", &bob, &format!("/api/v1/posts/{id}/like")).await,
            204
        );
        assert_eq!(
            send(&app, "PUT", &bob, "/api/v1/users/alice/follow").await,
            204
        );
        assert_eq!(
            send(&app, "DELETE", &bob, "/api/v1/users/alice/follow").await,
            204
        );
    }
    let (status, list) = app.get_json(&alice, "/api/v1/notifications").await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    println!("security: 3 like/unlike and follow/unfollow toggles notified {kinds:?}");
    assert_eq!(kinds, vec!["follow", "like"], "one of each, newest first");
    let mut frames = 0;
    while let crate::helpers::WsEvent::Json(frame) =
        alices_socket.next_event(Duration::from_millis(500)).await
    {
        if frame["type"] == "notification" {
            frames += 1;
        }
    }
    assert_eq!(frames, 2, "one frame for each");
}
