//! The websocket entry point: authentication, Origin, bad frames, floods, oversize frames.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn upgrade_status(
    app: &TestApp,
    headers: &[(&str, &str)],
    query: &str,
) -> (u16, String, String) {
    let mut req = app
        .http
        .get(app.url(&format!("/api/v1/ws{query}")))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ctype, res.text().await.unwrap_or_default())
}

#[actix_web::test]
async fn upgrades_are_authenticated_and_origin_checked() {
    let app = spawn_app_with(&["--ws-allowed-origins=https://app.example"]).await;
    let alice = app.sign_in("alice").await;
    let bearer = format!("Bearer {}", alice.token);

    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, u16);
    let cases: Vec<Case> = vec![
        ("no token", vec![], "", 401),
        ("bad token", vec![("authorization", "Bearer nope")], "", 401),
        ("basic auth", vec![("authorization", "Basic YTpi")], "", 401),
        (
            "foreign origin",
            vec![
                ("authorization", &bearer),
                ("origin", "https://evil.example"),
            ],
            "",
            403,
        ),
        (
            "origin with path",
            vec![
                ("authorization", &bearer),
                ("origin", "https://app.example.evil"),
            ],
            "",
            403,
        ),
        (
            "bad since",
            vec![("authorization", &bearer)],
            "?since=abc",
            422,
        ),
        (
            "negative since",
            vec![("authorization", &bearer)],
            "?since=-1",
            422,
        ),
        (
            "huge since",
            vec![("authorization", &bearer)],
            "?since=99999999999999999999",
            422,
        ),
    ];
    for (name, headers, query, expected) in cases {
        let (status, ctype, body) = upgrade_status(&app, &headers, query).await;
        assert_eq!(status, expected, "{name}: {body}");
        assert_eq!(ctype, "application/problem+json", "{name}");
    }
    // Not an upgrade at all.
    let res = app
        .http
        .get(app.url("/api/v1/ws"))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    // HTTP's answer to a request for a resource only an upgrade reaches.
    assert_eq!(res.status(), 426);
    assert_eq!(
        res.headers().get("upgrade").and_then(|v| v.to_str().ok()),
        Some("websocket")
    );
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    assert_eq!(body["code"], "upgrade_required");

    // The allowed origin and no origin both work.
    let (status, _, _) = upgrade_status(
        &app,
        &[
            ("authorization", &bearer),
            ("origin", "https://app.example"),
        ],
        "",
    )
    .await;
    assert_eq!(status, 101);
    let (status, _, _) = upgrade_status(&app, &[("authorization", &bearer)], "").await;
    assert_eq!(status, 101);
}

#[actix_web::test]
async fn bad_frames_get_error_frames_not_disconnects() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = app.ws(&alice, None).await;
    let cases = [
        ("not json", "invalid_json"),
        ("[1,2]", "invalid_frame"),
        (r#"{"op":"drop_tables"}"#, "unknown_op"),
        (r#"{"op":"subscribe","topic":"user:1"}"#, "invalid_topic"),
        (r#"{"op":"subscribe"}"#, "invalid_frame"),
        (r#"{"op":"ping","extra":true}"#, "invalid_frame"),
        ("{\"op\":\"<script>alert(1)</script>\"}", "unknown_op"),
    ];
    for (frame, code) in cases {
        ws.send_text(frame).await;
        let reply = ws.next_json().await;
        assert_eq!(reply["type"], "error", "{frame}");
        assert_eq!(reply["data"]["code"], code, "{frame}");
    }
    ws.stream
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(ws.next_json().await["data"]["code"], "unsupported_frame");
    // Still connected and answering.
    ws.send_text(r#"{"op":"ping"}"#).await;
    assert_eq!(ws.next_json().await["type"], "pong");
}

#[actix_web::test]
async fn an_oversized_frame_closes_with_1009() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = app.ws(&alice, None).await;
    let big = format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024));
    ws.send_text(&big).await;
    assert_eq!(ws.closed_with().await, Some(1009));
}

#[actix_web::test]
async fn a_flood_closes_with_1008() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let (mut ws, _) = app.ws(&alice, None).await;
    for _ in 0..500 {
        if ws
            .stream
            .send(Message::text(r#"{"op":"ping"}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(ws.closed_with().await, Some(1008));
}

/// Every frame a client sends costs: pongs the server never asked for too (and binary or
/// continuation frames, which the server refuses).
#[actix_web::test]
async fn a_flood_of_pongs_or_binary_frames_closes_with_1008() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    for flood in [
        Message::Pong(vec![1].into()),
        Message::Binary(vec![1].into()),
    ] {
        let (mut ws, _) = app.ws(&alice, None).await;
        for _ in 0..500 {
            if ws.stream.send(flood.clone()).await.is_err() {
                break;
            }
        }
        assert_eq!(ws.closed_with().await, Some(1008), "{flood:?}");
    }
}

#[actix_web::test]
async fn a_silent_client_is_dropped_after_the_idle_timeout() {
    let app = spawn_app_with(&["--ws-heartbeat-ms=100", "--ws-idle-timeout-ms=300"]).await;
    let alice = app.sign_in("alice").await;
    // tungstenite answers pings only while it is read; this client reads nothing for a while.
    let mut ws = app.ws_raw(&alice, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(ws.next_json().await["type"], "hello");
    assert_eq!(ws.closed_with().await, Some(1001));
}

fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn a_client_that_stops_reading_is_closed_with_1013_and_loses_nothing() {
    use crate::helpers::WsEvent;

    let app = spawn_app_with(&[
        "--ws-outbound-limit=256",
        "--rate-limit-user-per-min=100000",
        "--rate-limit-ip-per-min=1000000",
    ])
    .await;
    let alice = app.sign_in("alice").await;
    let slow_user = app.sign_in("slowpoke").await;
    let fast_user = app.sign_in("speedy").await;
    app.follow(&slow_user, "alice").await;
    app.follow(&fast_user, "alice").await;

    // The slow client has a tiny receive window and stops reading after hello.
    let mut slow = app.stalled_ws(&slow_user).await;

    // The fast client keeps reading on its own task.
    let (mut fast, _) = app.ws(&fast_user, None).await;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let reader = actix_rt::spawn(async move {
        while let WsEvent::Json(frame) = fast.next_event(Duration::from_secs(15)).await {
            if frame["type"] == "post.created"
                && seen_tx
                    .send(frame["id"].as_i64().unwrap_or_default())
                    .is_err()
            {
                break;
            }
        }
    });

    let before = counter(
        &app.metrics().await,
        "aisocial_session_slow_consumer_closes_total",
    );
    let body = "x".repeat(900);
    let mut posted = 0;
    while posted < 6000 {
        let batch = (0..50).map(|_| app.post(&alice, &body));
        for res in futures_util::future::join_all(batch).await {
            assert_eq!(res.status(), 201);
        }
        posted += 50;
        if counter(
            &app.metrics().await,
            "aisocial_session_slow_consumer_closes_total",
        ) > before
        {
            break;
        }
    }
    assert!(
        counter(
            &app.metrics().await,
            "aisocial_session_slow_consumer_closes_total"
        ) > before,
        "{posted} posts did not overflow a client that reads nothing"
    );

    // The slow client reads again: what was buffered, then the close.
    let mut last = 0;
    let code = loop {
        match slow.next_event(Duration::from_secs(10)).await {
            WsEvent::Json(frame) => {
                if let Some(id) = frame["id"].as_i64() {
                    assert!(id > last);
                    last = id;
                }
            }
            WsEvent::Closed(frame) => break frame.map(|f| u16::from(f.code)),
            WsEvent::Timeout => panic!("the slow client was never closed"),
        }
    };
    assert_eq!(code, Some(1013));

    // The fast client got every post meanwhile.
    let mut fast_seen = 0;
    while fast_seen < posted {
        match tokio::time::timeout(Duration::from_secs(10), seen_rx.recv()).await {
            Ok(Some(_)) => fast_seen += 1,
            _ => break,
        }
    }
    assert_eq!(fast_seen, posted, "one slow client never slows the others");
    reader.abort();

    // And the slow one resumes with nothing lost.
    let (mut again, hello) = app.ws(&slow_user, Some(last)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed");
    let missing = hello["data"]["resume"]["replayed"]
        .as_u64()
        .unwrap_or_default() as usize;
    let mut got = 0;
    while got < missing {
        let frame = again.next_json().await;
        let id = frame["id"].as_i64().unwrap_or_default();
        assert!(id > last);
        last = id;
        got += 1;
    }
    let seen_before_close = posted - missing;
    assert!(
        seen_before_close < posted,
        "the close happened before everything was written"
    );
    println!(
        "slow consumer: closed with 1013 after {seen_before_close} of {posted} posts; resumed {missing}"
    );
}

/// The read pool (4 connections here) opens connections on demand, so up to that many more
/// open files are growth of the pool, not a leak (a leak would be one per cycle: 10,000).
const POOL_GROWTH: usize = 4;

/// 10,000 connect/disconnect cycles against the real binary leave no session, open file or
/// memory behind (measured on the server process alone).
#[actix_web::test]
async fn ten_thousand_connect_disconnect_cycles_leave_nothing_behind() {
    let server = crate::helpers::ServerProcess::start(&[
        ("RATE_LIMIT_IP_PER_MIN", "100000000"),
        ("RATE_LIMIT_USER_PER_MIN", "100000000"),
        ("RATE_LIMIT_AUTH_PER_MIN", "100000"),
        ("RUST_LOG", "warn,aisocial::startup=info"),
        ("DATABASE_POOL_SIZE", "4"),
    ])
    .await;
    let mut tokens = Vec::new();
    for n in 0..20 {
        tokens.push(server.sign_in(&format!("churn_{n}")).await);
    }
    let cycle = |token: String, rounds: usize| {
        let address = server.address.clone();
        async move {
            for _ in 0..rounds {
                let mut ws = crate::helpers::ws_upgrade(&address, &token, None)
                    .await
                    .unwrap();
                assert_eq!(ws.next_json().await["type"], "hello");
                let _ = ws.stream.close(None).await;
            }
        }
    };
    // Warm up pools, caches and allocator arenas, then measure.
    futures_util::future::join_all(tokens.iter().map(|t| cycle(t.clone(), 25))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (fds_before, rss_before) = (server.open_files(), server.rss_bytes());
    futures_util::future::join_all(tokens.iter().map(|t| cycle(t.clone(), 500))).await;
    let base = format!("http://{}", server.address);
    server
        .assert_cycles_left_nothing(
            "churn: 10,000 cycles",
            &reqwest::Client::new(),
            &base,
            (fds_before, rss_before),
            POOL_GROWTH,
        )
        .await;
}

/// Upgrades are taken off the HTTP connection by the server's own transport; what it refuses
/// is answered as every other error is: a problem document, with a request id, and the
/// connection closed.
#[actix_web::test]
async fn the_upgrade_transport_answers_every_refusal_with_a_problem_document() {
    let app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let upgrade = |path: &str, method: reqwest::Method| {
        app.http
            .request(method, app.url(path))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("x-request-id", "upgrade-test-1")
            .bearer_auth(&alice.token)
    };
    let cases = [
        ("/api/v1/nowhere", reqwest::Method::GET, 404, "not_found"),
        (
            "/api/v1/ws?since=1&since=2",
            reqwest::Method::GET,
            400,
            "invalid_query",
        ),
        (
            "/api/v1/ws?ticket",
            reqwest::Method::GET,
            401,
            "unauthorized",
        ),
        (
            "/api/v1/ws",
            reqwest::Method::POST,
            400,
            "invalid_handshake",
        ),
    ];
    for (path, method, status, code) in cases {
        let res = upgrade(path, method.clone()).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{method} {path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), "application/problem+json");
        assert_eq!(header("x-request-id"), "upgrade-test-1");
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert_eq!(body["code"], code, "{method} {path}: {body}");
    }
    // Bytes the client sends right behind its request head reach the session: a ping frame
    // written in the same packet as the upgrade request is answered.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let payload = br#"{"op":"ping"}"#;
    let mask = [7u8, 1, 2, 3];
    let mut bytes = format!(
        "GET /api/v1/ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {}\r\n\r\n",
        alice.token
    )
    .into_bytes();
    bytes.extend_from_slice(&[0x81, 0x80 | payload.len() as u8]);
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    raw.write_all(&bytes).await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !String::from_utf8_lossy(&seen).contains(r#""type":"pong""#) {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout_at(deadline, raw.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no pong in {:?}", String::from_utf8_lossy(&seen)))
            .unwrap();
        assert!(
            n > 0,
            "closed before the pong: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 101"));
}
