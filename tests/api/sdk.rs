//! The Rust SDK's resuming feed against real nodes: it follows its user through a node's drain
//! to another node and through an expired token, handing out every post once and in order, and
//! keeps its thread subscriptions; a suspension ends it instead of a reconnect loop.

use std::collections::BTreeSet;
use std::time::Duration;

use aisocial_client::{
    Backoff, Client, Error, FeedEvent, Frame, ResumingFeed, SharedTokens, TokenPair,
};
use serde_json::json;

use crate::helpers::{TestApp, TestUser, spawn_app_with, spawn_peer};
use crate::revocation::token_living;

fn pair(user: &TestUser, access: String) -> TokenPair {
    TokenPair {
        access_token: access,
        refresh_token: user.refresh.clone(),
        expires_in: 0,
    }
}

fn quick() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(400))
}

/// Reads events until `posts` post ids have come as `post.created` (and the `thread.reply`
/// frames on the way); panics on a repeated or out-of-order durable id.
async fn read_posts(
    feed: &mut ResumingFeed,
    posts: usize,
    nodes_opened: &mut Vec<usize>,
    replies: &mut Vec<i64>,
) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut last = None;
    while seen.len() < posts {
        let event = tokio::time::timeout(Duration::from_secs(15), feed.next())
            .await
            .expect("the feed went quiet")
            .expect("the feed ended");
        match event {
            FeedEvent::Opened { node, .. } => nodes_opened.push(node),
            FeedEvent::Frame(text) => {
                let frame = Frame::parse(&text).unwrap();
                if let Some(id) = frame.id {
                    assert!(last < Some(id), "id {id} after {last:?}");
                    last = Some(id);
                }
                match frame.kind {
                    "post.created" => seen.push(frame.post_id().unwrap()),
                    "thread.reply" => replies.push(frame.post_id().unwrap()),
                    _ => {}
                }
            }
        }
    }
    seen
}

async fn post_many(app: &TestApp, author: &TestUser, prefix: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let post = app.create_post(author, &format!("{prefix} {i}")).await;
        ids.push(post["id"].as_i64().unwrap());
    }
    ids
}

#[actix_web::test]
async fn the_feed_follows_its_user_through_a_drain_to_another_node_and_an_expired_token() {
    let mut a = spawn_app_with(&[]).await;
    let b = spawn_peer(&a, &[]).await;
    let author = b.sign_in("author").await;
    let reader = a.sign_in("reader").await;
    assert_eq!(a.follow(&reader, "author").await, 204);
    let root = b.create_post(&author, "a thread").await["id"]
        .as_i64()
        .unwrap();

    // The reader's access token lives 3 s: the socket closes with 4001 and the feed renews it.
    let short = token_living(&reader, Duration::from_secs(3));
    let tokens = SharedTokens::new(pair(&reader, short.clone()));
    let nodes = vec![a.client(), b.client()];
    let mut feed = ResumingFeed::new(nodes, tokens.clone(), None).with_backoff(quick());
    let mut opened = Vec::new();
    let mut replies = Vec::new();
    // The first event opens the socket on node A.
    match feed.next().await.unwrap() {
        FeedEvent::Opened { node, hello } => {
            assert_eq!(node, 0);
            assert_eq!(hello.user.handle, "reader");
        }
        other => panic!("{other:?}"),
    }
    feed.subscribe(&format!("thread:{root}")).await.unwrap();

    let mut expected = post_many(&b, &author, "before", 5).await;
    let mut got = read_posts(&mut feed, 5, &mut opened, &mut replies).await;

    // Node A drains (its sockets close with 1001) while the author goes on posting through B.
    let drain = a.shutdown_trigger();
    let (_, during) = tokio::join!(drain.pull(), post_many(&b, &author, "during", 10));
    expected.extend(during);
    got.extend(read_posts(&mut feed, 10, &mut opened, &mut replies).await);
    assert!(opened.contains(&1), "the feed moved to node B: {opened:?}");

    // A reply in the subscribed thread reaches the feed on its new node.
    let reply = b
        .http
        .post(b.url("/api/v1/posts"))
        .bearer_auth(&author.token)
        .json(&json!({"body": "a reply", "reply_to": root}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);

    // Past the token's 3 s: the socket closes with 4001, the feed refreshes and resumes.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    expected.extend(post_many(&b, &author, "after", 5).await);
    got.extend(read_posts(&mut feed, 6, &mut opened, &mut replies).await);
    assert_ne!(tokens.access().await, short, "the pair was refreshed");
    // The reply itself is one of the author's posts the reader follows: it counts once.
    expected.push(reply_id(&b, &author, root).await);
    let expected_set: BTreeSet<i64> = expected.iter().copied().collect();
    let got_set: BTreeSet<i64> = got.iter().copied().collect();
    assert_eq!(got.len(), got_set.len(), "no post twice: {got:?}");
    assert_eq!(got_set, expected_set, "every post");
    assert!(
        !replies.is_empty(),
        "the thread subscription survived the switch"
    );
    assert!(
        feed.opened >= 3,
        "opened on A, on B, and on B after the renewal"
    );
    println!(
        "sdk: {} posts once each and in order across a drain, a node switch and a token \
         renewal; {} sockets opened, {} failed attempts",
        got.len(),
        feed.opened,
        feed.failed_attempts
    );
}

async fn reply_id(app: &TestApp, user: &TestUser, root: i64) -> i64 {
    let (_, replies) = app
        .get_json(user, &format!("/api/v1/posts/{root}/replies"))
        .await;
    replies["items"][0]["id"].as_i64().unwrap()
}

#[actix_web::test]
async fn a_suspension_ends_the_feed_instead_of_reconnecting() {
    let app = spawn_app_with(&["--admin-handles=boss"]).await;
    let boss = app.sign_in("boss").await;
    let mallory = app.sign_in("mallory").await;
    let tokens = SharedTokens::new(pair(&mallory, mallory.token.clone()));
    let client: Client = app.client();
    let mut feed = ResumingFeed::new(vec![client], tokens, None).with_backoff(quick());
    assert!(matches!(feed.next().await, Ok(FeedEvent::Opened { .. })));
    let res = app
        .http
        .post(app.url("/api/v1/admin/users/mallory/suspend"))
        .bearer_auth(&boss.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let ended = tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .expect("the feed kept trying");
    assert!(matches!(ended, Err(Error::Ended(4003))), "{ended:?}");
}
