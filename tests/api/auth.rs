//! Our tokens and sessions: refresh rotation and reuse, logout, tickets, /me, roles, rate limits.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestUser, WsEvent, retry_after, spawn_app, spawn_app_with, spawn_peer, status_of,
    wait_for_subscribers,
};

async fn refresh(app: &TestApp, token: &str) -> (u16, Value) {
    let res = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

pub(crate) async fn me_status(app: &TestApp, access: &str) -> u16 {
    status_of(app.http.get(app.url("/api/v1/me")).bearer_auth(access)).await
}

#[actix_web::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let (status, first) = refresh(&app, &alice.refresh).await;
    assert_eq!(status, 200, "{first}");
    let rotated = first["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(rotated, alice.refresh);
    let access = first["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(me_status(&app, &access).await, 200);
    // The new token is used: from now on nothing can pass the old one off as a duplicate.
    let (status, second) = refresh(&app, &rotated).await;
    assert_eq!(status, 200, "{second}");
    let newest = second["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // The old token again: refused, and the whole family with it.
    let (status, body) = refresh(&app, &alice.refresh).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = refresh(&app, &newest).await;
    assert_eq!(
        status, 401,
        "the newest token of a revoked family is dead too"
    );
    assert_eq!(me_status(&app, &access).await, 401, "its access tokens too");
    // Another sign-in session of the same user is untouched.
    let other = app.sign_in("alice").await;
    assert_eq!(me_status(&app, &other.token).await, 200);
    let (status, _) = refresh(&app, &other.refresh).await;
    assert_eq!(status, 200);
    println!("security item 6: 0 successes after a reuse");

    let db = app.db().await;
    let reuse: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'refresh_reuse'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reuse, 1);
    // Only hashes are stored: no row holds a token we handed out, every row a 32-byte digest.
    let rows = db
        .query("SELECT token_hash FROM refresh_tokens", &[])
        .await
        .unwrap();
    let plaintext = rows
        .iter()
        .filter(|r| {
            let h: Vec<u8> = r.get(0);
            [&alice.refresh, &rotated, &other.refresh]
                .iter()
                .any(|t| h == t.as_bytes() || String::from_utf8_lossy(&h).contains(t.as_str()))
        })
        .count();
    println!("security item 6: {plaintext} plaintext refresh tokens in the database");
    assert_eq!(plaintext, 0);
    assert!(rows.iter().all(|r| r.get::<_, Vec<u8>>(0).len() == 32));
}

#[actix_web::test]
async fn a_hundred_concurrent_refreshes_make_one_rotation_and_keep_the_user_signed_in() {
    let app = spawn_app_with(&["--rate-limit-auth-per-min=10000"]).await;
    let alice = app.sign_in("alice").await;
    let attempts = (0..100).map(|_| refresh(&app, &alice.refresh));
    let results = join_all(attempts).await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    let successors: std::collections::HashSet<&str> = results
        .iter()
        .filter_map(|(_, body)| body["refresh_token"].as_str())
        .collect();
    println!(
        "security item 6: 100 concurrent refreshes of one token: {} answered 200, {} successor(s)",
        statuses.iter().filter(|s| **s == 200).count(),
        successors.len()
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        successors.len(),
        1,
        "one rotation, answered to every duplicate"
    );
    // The pair they share still works afterwards: nobody was signed out by the race.
    let access = results[0].1["access_token"].as_str().unwrap_or_default();
    assert_eq!(me_status(&app, access).await, 200);
    let shared = successors.into_iter().next().unwrap_or_default().to_owned();
    let (status, next) = refresh(&app, &shared).await;
    assert_eq!(status, 200, "{next}");
    // And a duplicate once the new token was used is reuse: the session ends.
    let (status, _) = refresh(&app, &alice.refresh).await;
    assert_eq!(status, 401);
    let next_access = next["access_token"].as_str().unwrap_or_default();
    assert_eq!(me_status(&app, next_access).await, 401);
}

async fn refresh_with_key(app: &TestApp, token: &str, key: &str) -> (u16, Value) {
    let res = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .header("idempotency-key", key)
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

fn text(value: &Value, field: &str) -> String {
    value[field].as_str().unwrap_or_default().to_owned()
}

#[actix_web::test]
async fn a_refresh_retried_with_its_key_gets_the_same_token_but_reuse_still_revokes() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let (status, first) = refresh_with_key(&app, &alice.refresh, "key-1").await;
    assert_eq!(status, 200, "{first}");
    // Its answer may not have arrived: the same token with the same key is answered again,
    // with the same refresh token (and a working access token).
    let (status, again) = refresh_with_key(&app, &alice.refresh, "key-1").await;
    assert_eq!(status, 200, "the retry: {again}");
    assert_eq!(text(&again, "refresh_token"), text(&first, "refresh_token"));
    assert_eq!(me_status(&app, &text(&again, "access_token")).await, 200);
    // The rotated token with another key is no retry: reuse, and the session ends.
    let other = app.sign_in("alice").await;
    let (status, _) = refresh_with_key(&app, &other.refresh, "key-a").await;
    assert_eq!(status, 200);
    let (status, body) = refresh_with_key(&app, &other.refresh, "key-b").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(me_status(&app, &other.token).await, 401);

    // Once the new token has been used, the old one is reuse even with its key.
    let (status, third) = refresh_with_key(&app, &text(&first, "refresh_token"), "key-2").await;
    assert_eq!(status, 200, "{third}");
    let (status, body) = refresh_with_key(&app, &alice.refresh, "key-1").await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = refresh(&app, &text(&third, "refresh_token")).await;
    assert_eq!(status, 401, "the family is revoked");
    assert_eq!(me_status(&app, &text(&third, "access_token")).await, 401);
    let reuse: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'refresh_reuse'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reuse, 2);
}

#[actix_web::test]
async fn a_keyed_refresh_retry_after_the_grace_is_reuse() {
    let app = spawn_app_with(&["--refresh-retry-grace-secs=1"]).await;
    let alice = app.sign_in("alice").await;
    let (status, first) = refresh_with_key(&app, &alice.refresh, "key-1").await;
    assert_eq!(status, 200, "{first}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = refresh_with_key(&app, &alice.refresh, "key-1").await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = refresh(&app, &text(&first, "refresh_token")).await;
    assert_eq!(status, 401, "the family is revoked");
}

#[actix_web::test]
async fn a_malformed_refresh_idempotency_key_is_refused() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let (status, body) = refresh_with_key(&app, &alice.refresh, &"k".repeat(256)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "Idempotency-Key");
    let (status, _) = refresh(&app, &alice.refresh).await;
    assert_eq!(status, 200, "the token was not spent");
}

#[actix_web::test]
async fn logout_revokes_the_session_and_closes_its_websockets_within_a_second() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let elsewhere = app.sign_in("alice").await;
    let (mut ws, _) = app.ws(&alice, None).await;
    let (mut other_ws, _) = app.ws(&elsewhere, None).await;

    let started = Instant::now();
    let res = app
        .http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let code = match ws.next_event(Duration::from_secs(1)).await {
        WsEvent::Closed(frame) => frame.map(|f| u16::from(f.code)),
        other => panic!("the socket was not closed within 1 s: {other:?}"),
    };
    println!(
        "security item 7: websocket closed {:?} after logout",
        started.elapsed()
    );
    assert_eq!(code, Some(1008));
    assert_eq!(me_status(&app, &alice.token).await, 401);
    let (status, _) = refresh(&app, &alice.refresh).await;
    assert_eq!(status, 401);
    // The other sign-in session keeps its socket and its token.
    other_ws.send_text(r#"{"op":"ping"}"#).await;
    assert_eq!(other_ws.next_json().await["type"], "pong");
    assert_eq!(me_status(&app, &elsewhere.token).await, 200);
}

#[actix_web::test]
async fn logout_on_one_node_closes_the_sockets_on_another() {
    let node_a = spawn_app().await;
    let node_b = spawn_peer(&node_a, &[]).await;
    let alice = node_a.sign_in("alice").await;
    let (mut ws_on_b, _) = node_b.ws(&alice, None).await;
    // Node B subscribes to revocations in the background after start-up.
    wait_for_subscribers(&node_a, "revocations", 2).await;
    let started = Instant::now();
    let res = node_a
        .http
        .post(node_a.url("/api/v1/auth/logout"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    match ws_on_b.next_event(Duration::from_secs(1)).await {
        WsEvent::Closed(frame) => assert_eq!(frame.map(|f| u16::from(f.code)), Some(1008)),
        other => panic!("node B did not close the socket within 1 s: {other:?}"),
    }
    println!(
        "security item 7: socket on another node closed {:?} after logout",
        started.elapsed()
    );
    assert_eq!(
        me_status(&node_b, &alice.token).await,
        401,
        "node B refuses the token too"
    );
}

async fn ticket(app: &TestApp, user: &TestUser) -> String {
    let res = app
        .client()
        .ws_ticket_request(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(body["expires_in"], 60);
    body["ticket"].as_str().unwrap_or_default().to_owned()
}

async fn connect_with_ticket(app: &TestApp, ticket: &str) -> Result<(), u16> {
    let options = aisocial_client::ws::Connect::default();
    match aisocial_client::ws::upgrade_with_ticket(&app.address, ticket, None, &options).await {
        Ok(_) => Ok(()),
        Err(aisocial_client::Error::Refused { status, .. }) => Err(status),
        Err(e) => panic!("{e}"),
    }
}

#[actix_web::test]
async fn tickets_are_single_use_and_short_lived() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let t = ticket(&app, &alice).await;
    assert!(connect_with_ticket(&app, &t).await.is_ok());
    let second = connect_with_ticket(&app, &t).await;
    println!("security item 8: second use of a ticket -> {second:?}");
    assert_eq!(second, Err(401));
    assert_eq!(connect_with_ticket(&app, "tk_forged").await, Err(401));
    // Stored with a TTL of at most 60 s, under the deployment's prefix.
    let t2 = ticket(&app, &alice).await;
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}ticket:*", app.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    assert_eq!(keys.len(), 1, "one unused ticket");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap_or(-1);
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    assert!(!keys[0].contains(&t2), "the ticket itself is not the key");
    // A ticket of a revoked session is refused.
    app.http
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(connect_with_ticket(&app, &t2).await, Err(401));
}

#[actix_web::test]
async fn the_profile_reads_and_patches() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let (status, me) = app.get_json(&alice, "/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["handle"], "alice");
    assert_eq!(me["posts_count"], 0);
    let patch = |body: Value| {
        app.http
            .patch(app.url("/api/v1/me"))
            .bearer_auth(&alice.token)
            .json(&body)
            .send()
    };
    let res = patch(json!({"display_name": "  Alice A.  ", "bio": "<b>hi</b>"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(body["display_name"], "Alice A.");
    assert_eq!(
        body["bio"], "<b>hi</b>",
        "stored as text, escaped by clients"
    );
    for (bad, field) in [
        (json!({"display_name": ""}), "display_name"),
        (json!({"display_name": "x".repeat(101)}), "display_name"),
        (json!({"display_name": "two\nlines"}), "display_name"),
        (json!({"bio": "b".repeat(501)}), "bio"),
        (json!({"bio": "bell\u{7}"}), "bio"),
        (json!({"role": "admin"}), "role"),
        (json!({"display_name": 5}), "display_name"),
    ] {
        let res = patch(bad.clone()).await.unwrap();
        assert_eq!(res.status(), 422, "{bad}");
        let body: Value = res.json().await.unwrap_or_default();
        assert_eq!(body["field"], field, "{bad}: {body}");
    }
}

#[actix_web::test]
async fn admin_routes_answer_403_to_users() {
    let app = spawn_app_with(&["--admin-handles=boss"]).await;
    let boss = app.sign_in("boss").await;
    let alice = app.sign_in("alice").await;
    let (status, body) = app.get_json(&boss, "/admin/actors").await;
    assert_eq!(status, 200);
    let writer = body["actors"]
        .as_array()
        .and_then(|kinds| kinds.iter().find(|k| k["kind"] == "db_writer"))
        .unwrap_or_else(|| panic!("the DbWriter is listed: {body}"));
    assert!(writer["mailbox_depth"].is_number(), "{body}");
    assert!(body["sessions"]["deepest"].is_array(), "{body}");
    let (status, body) = app.get_json(&boss, "/admin/live").await;
    assert_eq!(status, 200);
    assert!(body["ai"]["status"].is_string(), "{body}");
    for path in ["/admin/actors", "/admin/live", "/admin/audit"] {
        let (status, body) = app.get_json(&alice, path).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(body["code"], "forbidden", "{path}");
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
    }
}

#[actix_web::test]
async fn admins_read_the_audit_log_newest_first_and_nobody_else_does() {
    let app = spawn_app_with(&["--admin-handles=boss"]).await;
    let boss = app.sign_in("boss").await;
    let alice = app.sign_in("alice").await;
    let post = app.create_post(&alice, "soon gone").await;
    let res = app
        .http
        .delete(app.url(&format!("/api/v1/posts/{}", post["id"])))
        .bearer_auth(&boss.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    let (status, page) = app.get_json(&boss, "/admin/audit").await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions[0], "post_delete", "newest first: {actions:?}");
    assert!(actions.contains(&"role_change") && actions.contains(&"sign_in"));
    assert_eq!(page["items"][0]["actor_handle"], "boss");

    // Filtered, and paged without skipping or repeating.
    let (_, signins) = app
        .get_json(&boss, "/admin/audit?action=sign_in&limit=1")
        .await;
    assert_eq!(signins["items"][0]["action"], "sign_in");
    let cursor = signins["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, next) = app
        .get_json(
            &boss,
            &format!("/admin/audit?action=sign_in&limit=1&cursor={cursor}"),
        )
        .await;
    assert_eq!(next["items"][0]["action"], "sign_in");
    assert_ne!(next["items"][0]["id"], signins["items"][0]["id"]);

    let (status, body) = app
        .get_json(&boss, "/admin/audit?action=DROP%20TABLE")
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "action");
    let (status, _) = app.get_json(&boss, "/admin/audit?cursor=nonsense").await;
    assert_eq!(status, 400);
    let (status, body) = app.get_json(&alice, "/admin/audit").await;
    assert_eq!(status, 403, "{body}");
    let res = app.http.get(app.url("/admin/audit")).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[actix_web::test]
async fn rate_limits_answer_429_and_a_spoofed_forwarded_for_does_not_bypass_them() {
    let app = spawn_app_with(&["--rate-limit-user-per-min=5", "--rate-limit-ip-per-min=40"]).await;
    let alice = app.sign_in("alice").await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let res = app
            .http
            .get(app.url("/api/v1/timeline"))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            let retry = retry_after(&res);
            assert!((1..=60).contains(&retry));
            assert_eq!(
                res.headers()
                    .get("ratelimit-limit")
                    .and_then(|v| v.to_str().ok()),
                Some("5")
            );
            let body: Value = res.json().await.unwrap_or_default();
            assert_eq!(body["code"], "rate_limited");
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429, 429]);

    // Per IP: 40 a minute; pretending to be 40 other clients through X-Forwarded-For from an
    // untrusted peer changes nothing.
    let mut bypasses = 0;
    let mut limited = 0;
    for n in 0..60 {
        let res = app
            .http
            .get(app.url("/api/v1/nothing-here"))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            429 => limited += 1,
            _ if n >= 40 => bypasses += 1,
            _ => {}
        }
    }
    println!(
        "security item 10: {bypasses} bypasses by a spoofed X-Forwarded-For ({limited} limited)"
    );
    assert_eq!(bypasses, 0);
    assert!(limited >= 20);
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit() {
    let app = spawn_app_with(&["--rate-limit-ip-per-min=3", "--trusted-proxies=127.0.0.1"]).await;
    for client in ["203.0.113.1", "203.0.113.2"] {
        for n in 0..4 {
            let res = app.http.get(app.url("/health/live")).send().await.unwrap();
            assert_eq!(res.status(), 200, "health is never limited");
            let res = app
                .http
                .get(app.url("/api/v1/nothing-here"))
                .header("x-forwarded-for", client)
                .send()
                .await
                .unwrap();
            let expected = if n < 3 { 404 } else { 429 };
            assert_eq!(res.status().as_u16(), expected, "{client} request {n}");
        }
    }
}

/// Whoever holds one IPv6 address usually holds its whole /64: per-IP limits count the
/// network, so walking through its addresses gains nothing.
#[actix_web::test]
async fn ipv6_addresses_of_one_network_share_one_limit() {
    let app = spawn_app_with(&["--rate-limit-ip-per-min=3", "--trusted-proxies=127.0.0.1"]).await;
    let status = |client: String| {
        status_of(
            app.http
                .get(app.url("/api/v1/nothing-here"))
                .header("x-forwarded-for", client),
        )
    };
    let mut statuses = Vec::new();
    for n in 1..=5 {
        statuses.push(status(format!("2001:db8:1:2::{n:x}")).await);
    }
    println!("security item 10 (IPv6): one /64 through five addresses answered {statuses:?}");
    assert_eq!(statuses, vec![404, 404, 404, 429, 429]);
    assert_eq!(
        status("2001:db8:1:3::1".into()).await,
        404,
        "another /64 is another client"
    );
}

/// A response carrying tokens must never sit in a cache on the way (security: token
/// responses carry `Cache-Control: no-store`).
#[actix_web::test]
async fn token_responses_are_never_cached() {
    let app = spawn_app().await;
    let no_store = |res: &reqwest::Response| {
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let signed_in = app
        .client()
        .sign_in_dev_request("cachy")
        .send()
        .await
        .expect("the server answers");
    assert_eq!(signed_in.status(), 200);
    assert_eq!(
        no_store(&signed_in).as_deref(),
        Some("no-store"),
        "dev sign-in"
    );
    let pair: Value = signed_in.json().await.expect("a token pair");
    let refreshed = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": pair["refresh_token"] }))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(refreshed.status(), 200);
    assert_eq!(no_store(&refreshed).as_deref(), Some("no-store"), "refresh");
}

/// A ticket presented to an upgrade that is refused for another reason (a foreign `Origin`,
/// a bad `since`) is used up all the same: whoever saw it cannot try again with it.
#[actix_web::test]
async fn a_ticket_is_used_up_by_a_refused_upgrade() {
    let app = spawn_app_with(&["--ws-allowed-origins=https://good.example"]).await;
    let alice = app.sign_in("alice").await;
    let open = |query: String, origin: Option<&'static str>| {
        let url = format!("ws://127.0.0.1:{}/api/v1/ws?{query}", app.port);
        async move {
            let mut request =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                    .expect("a websocket request");
            if let Some(origin) = origin {
                request
                    .headers_mut()
                    .insert("origin", origin.parse().expect("a header value"));
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok(_) => 101,
                Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
                Err(e) => panic!("the upgrade failed below HTTP: {e}"),
            }
        }
    };
    let t = ticket(&app, &alice).await;
    assert_eq!(open(format!("ticket={t}&since=x"), None).await, 422);
    assert_eq!(
        open(format!("ticket={t}"), None).await,
        401,
        "used by the 422"
    );
    let t = ticket(&app, &alice).await;
    assert_eq!(
        open(format!("ticket={t}"), Some("https://evil.example")).await,
        403
    );
    assert_eq!(
        open(format!("ticket={t}"), None).await,
        401,
        "used by the 403"
    );
    let t = ticket(&app, &alice).await;
    assert_eq!(
        open(format!("ticket={t}"), Some("https://good.example")).await,
        101
    );
}

/// Health checks and metrics are public, so they are limited too: per IP, apart from the
/// API's limit, so that a scraper cannot starve the API nor the API a probe.
#[actix_web::test]
async fn health_and_metrics_have_a_per_ip_limit_of_their_own() {
    let app = spawn_app_with(&["--rate-limit-ops-per-min=4", "--rate-limit-ip-per-min=3"]).await;
    let get = |path: &'static str| status_of(app.http.get(app.url(path)));
    let mut statuses = Vec::new();
    for path in [
        "/health/live",
        "/health/ready",
        "/metrics",
        "/health/system",
        "/metrics",
    ] {
        statuses.push(get(path).await);
    }
    println!("security: health and metrics, limit 4 a minute per IP: {statuses:?}");
    assert_eq!(statuses, vec![200, 200, 200, 200, 429]);
    assert_eq!(
        get("/api/v1/nothing-here").await,
        404,
        "the API's limit is its own"
    );
}

/// Metrics tell an attacker the shape of the load; an operator can require a token for them
/// (`METRICS_TOKEN`) or serve them on a private address of their own (`METRICS_BIND`).
#[actix_web::test]
async fn metrics_can_require_a_token_or_listen_apart() {
    let token = "metrics-token-0123456789";
    let app = spawn_app_with(&[&format!("--metrics-token={token}")]).await;
    let scrape = |url: String, bearer: Option<&'static str>| {
        let mut request = app.http.get(url);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        async move {
            let res = request.send().await.expect("the server answers");
            let status = res.status().as_u16();
            (status, res.text().await.unwrap_or_default())
        }
    };
    assert_eq!(scrape(app.url("/metrics"), None).await.0, 401);
    assert_eq!(
        scrape(app.url("/metrics"), Some("wrong-token-0123456789"))
            .await
            .0,
        401
    );
    let (status, text) = scrape(app.url("/metrics"), Some("metrics-token-0123456789")).await;
    assert_eq!(status, 200);
    assert!(text.contains("aisocial_"), "{text:.200}");

    let port = crate::helpers::free_port();
    let apart = spawn_app_with(&[&format!("--metrics-bind=127.0.0.1:{port}")]).await;
    let res = apart
        .http
        .get(apart.url("/metrics"))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(res.status(), 404, "not on the main listener");
    let (status, text) = scrape(format!("http://127.0.0.1:{port}/metrics"), None).await;
    assert_eq!(status, 200, "{text:.200}");
    assert!(text.contains("aisocial_"));
}

/// The stricter per-IP sign-in limit guards sign-in and token routes only: a logout (which
/// needs a token) is answered for what it is even when a neighbour spent that limit.
#[actix_web::test]
async fn logout_is_not_charged_to_the_sign_in_limit() {
    let app = spawn_app_with(&["--rate-limit-auth-per-min=2"]).await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let sign_in = app.client().sign_in_dev_request(&format!("neighbour_{n}"));
        statuses.push(status_of(sign_in).await);
    }
    assert_eq!(statuses, vec![200, 200, 429]);
    assert_eq!(
        status_of(app.http.post(app.url("/api/v1/auth/logout"))).await,
        401,
        "no credentials: 401, not the sign-in limit's 429"
    );
}
