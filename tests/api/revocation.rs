//! Revocation fails closed: a logout reaches every node even when Redis loses its
//! announcement, and no socket outlives its access token unless the client renews it in-band.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aisocial::auth::TokenIssuer;
use aisocial_actors::ids::UserId;
use aisocial_actors::model::User;
use serde_json::json;

use crate::auth::me_status;
use crate::helpers::{
    PrivateRedis, SIGNING_KEY, TestUser, WsEvent, free_port, spawn_app, spawn_app_on,
    spawn_peer_on, wait_for_subscribers_on,
};

/// Security item 7, with Redis unable to carry the news: node B hears of the logout from
/// PostgreSQL within its reload period (`REVOCATION_RELOAD_MS`, 2 s by default).
#[actix_web::test]
async fn a_logout_while_redis_is_paused_closes_the_socket_on_another_node() {
    let redis = PrivateRedis::start(free_port());
    redis.wait_up().await;
    let node_a = spawn_app_on(&redis.url(), &[]).await;
    let node_b = spawn_peer_on(&node_a, &redis.url(), &[]).await;
    let alice = node_a.sign_in("alice").await;
    let (mut ws_on_b, _) = node_b.ws(&alice, None).await;
    wait_for_subscribers_on(&redis.url(), &node_a, "revocations", 2).await;
    // Every Redis client waits, the subscriptions stand: the announcement is lost.
    redis.pause(10_000).await;
    let res = node_a
        .http
        .post(node_a.url("/api/v1/auth/logout"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .expect("node A answers");
    assert_eq!(res.status(), 204);
    let answered = Instant::now();
    match ws_on_b.next_event(Duration::from_secs(5)).await {
        WsEvent::Closed(frame) => assert_eq!(frame.map(|f| u16::from(f.code)), Some(1008)),
        other => panic!("node B kept the revoked socket open: {other:?}"),
    }
    let closed_after = answered.elapsed();
    println!(
        "security item 7 (Redis paused): socket on another node closed {closed_after:?} after \
         the logout was answered"
    );
    assert!(
        closed_after <= Duration::from_secs(3),
        "within the reload period plus 1 s: {closed_after:?}"
    );
    assert_eq!(
        me_status(&node_b, &alice.token).await,
        401,
        "node B refuses the token"
    );
}

/// An access token for `user`'s sign-in session that lives `ttl`.
pub(crate) fn token_living(user: &TestUser, ttl: Duration) -> String {
    let long = TokenIssuer::new(SIGNING_KEY.as_bytes(), Duration::from_secs(900));
    let claims = long.verify(&user.token).expect("the user's token is ours");
    let who = User {
        id: UserId(user.id),
        handle: user.handle.clone(),
        display_name: user.handle.clone(),
        role: claims.role,
    };
    TokenIssuer::new(SIGNING_KEY.as_bytes(), ttl)
        .issue(&who, claims.sid)
        .expect("a token")
}

#[actix_web::test]
async fn a_socket_closes_when_its_token_expires_unless_renewed_in_band() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let short = TestUser {
        token: token_living(&alice, Duration::from_secs(3)),
        ..alice.clone()
    };
    let (mut renewed, _) = app.ws(&short, None).await;
    let (mut left_alone, _) = app.ws(&short, None).await;
    let opened = Instant::now();

    // Refused renewals leave the socket as it was.
    renewed
        .send_text(&json!({"op": "auth", "token": "not-a-token"}).to_string())
        .await;
    let refused = renewed.next_json_skipping_presence().await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["data"]["code"], "auth_invalid");
    renewed
        .send_text(&json!({"op": "auth", "token": bob.token}).to_string())
        .await;
    let mismatch = renewed.next_json_skipping_presence().await;
    assert_eq!(mismatch["data"]["code"], "auth_mismatch", "{mismatch}");

    // A token of the same sign-in session renews it.
    renewed
        .send_text(&json!({"op": "auth", "token": alice.token}).to_string())
        .await;
    let ok = renewed.next_json_skipping_presence().await;
    assert_eq!(ok["type"], "auth.ok", "{ok}");
    assert!(
        ok["data"]["expires_in"].as_u64().is_some_and(|s| s > 600),
        "{ok}"
    );

    match left_alone.next_event(Duration::from_secs(6)).await {
        WsEvent::Closed(frame) => {
            assert_eq!(
                frame.map(|f| u16::from(f.code)),
                Some(4001),
                "token expired"
            )
        }
        other => panic!("the socket outlived its token: {other:?}"),
    }
    let lived = opened.elapsed();
    println!("a socket whose token was not renewed closed after {lived:?} (token lifetime 3 s)");
    // Not before the token's `exp` (whole seconds: the token lives 2 to 3 s from its issue).
    let exp = TokenIssuer::new(SIGNING_KEY.as_bytes(), Duration::from_secs(900))
        .verify(&short.token)
        .expect("our token")
        .exp;
    let closed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    assert!(
        closed_at + Duration::from_millis(50) >= Duration::from_secs(exp),
        "closed at {closed_at:?}, before the token's exp {exp}"
    );

    renewed.send_text(r#"{"op":"ping"}"#).await;
    assert_eq!(
        renewed.next_json_skipping_presence().await["type"],
        "pong",
        "the renewed socket lives on"
    );
}
