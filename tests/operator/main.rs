//! The operator's view, in a test process of its own so that the process-wide meters move only
//! with what these tests do (one test at a time): metric names and labels after traffic,
//! handled counts equal to the messages sent, mailbox depth rising under a stalled consumer,
//! the admin views.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use helpers::{TestApp, WsEvent, spawn_app_with};
use serde_json::Value;
use tokio::sync::Mutex;

/// One test at a time: the meters are the process's.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The value of one series (`name{labels}` exactly as exported), 0 when absent.
fn series(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find(|l| {
            l.strip_prefix(name_and_labels)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `check` on the admin view until it holds or `within` passes.
async fn admin_until(
    app: &TestApp,
    admin: &helpers::TestUser,
    path: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = app.get_json(admin, path).await;
        assert_eq!(status, 200, "{body}");
        if check(&body) || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kind<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["actors"]
        .as_array()
        .and_then(|kinds| kinds.iter().find(|k| k["kind"] == name))
        .unwrap_or_else(|| panic!("{name} is not listed: {view}"))
}

#[actix_web::test]
async fn handled_counts_equal_the_messages_sent_and_every_metric_is_named() {
    let _serial = SERIAL.lock().await;
    let app = spawn_app_with(&["--admin-handles=boss"]).await;
    let boss = app.sign_in("boss").await;
    let ann = app.sign_in("ann").await;
    let bob = app.sign_in("bob").await;
    app.follow(&bob, "ann").await;
    let (mut socket, _hello) = app.ws(&bob, None).await;
    // An upgrade from a foreign origin, refused.
    let refused = app
        .http
        .get(app.url("/api/v1/ws"))
        .header("origin", "https://evil.example")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let before = app.metrics().await;
    let admin_before = app.get_json(&boss, "/admin/actors").await.1;
    const POSTS: usize = 25;
    for i in 0..POSTS {
        app.create_post(&ann, &format!("post {i}")).await;
    }
    let mut seen = 0;
    while seen < POSTS {
        match socket.next_event(Duration::from_secs(10)).await {
            WsEvent::Json(frame) if frame["type"] == "post.created" => seen += 1,
            WsEvent::Json(_) => {}
            other => panic!("the follower's socket ended after {seen} posts: {other:?}"),
        }
    }
    let after = app.metrics().await;
    let delta = |s: &str| series(&after, s) - series(&before, s);
    let posts = POSTS as f64;
    assert_eq!(
        delta(r#"aisocial_actor_messages_handled_total{actor="db_writer",message="CreatePost"}"#),
        posts
    );
    assert_eq!(
        delta(r#"aisocial_actor_messages_handled_total{actor="session",message="Deliver"}"#),
        posts,
        "one Deliver per post to the one follower online"
    );
    assert_eq!(delta("aisocial_broker_deliveries_total"), posts);
    assert_eq!(
        delta(r#"aisocial_http_requests_total{method="POST",route="/api/v1/posts",status="201"}"#),
        posts
    );
    // Each post reaches the broker from this node's commit (timed from COMMIT), or, when the
    // broker's poll of the log head read it from PostgreSQL first (a busy machine delays the
    // commit's announcement), as a repair, whose commit time the broker does not know.
    let timed = delta("aisocial_delivery_latency_seconds_count");
    let repaired = delta("aisocial_broker_gap_repairs_total");
    assert!(
        timed + repaired >= posts,
        "{timed} timed deliveries and {repaired} repairs for {posts} posts"
    );
    assert!(
        series(
            &after,
            r#"aisocial_websocket_upgrades_total{outcome="accepted"}"#
        ) >= 1.0
    );
    assert!(
        series(
            &after,
            r#"aisocial_websocket_upgrades_total{outcome="forbidden"}"#
        ) >= 1.0
    );
    assert!(series(&after, "aisocial_websocket_connections") >= 1.0);

    // The admin view counts the same messages.
    let admin_after = app.get_json(&boss, "/admin/actors").await.1;
    let create = |view: &Value| {
        kind(view, "db_writer")["by_message"]["CreatePost"]
            .as_f64()
            .unwrap_or(0.0)
    };
    assert_eq!(create(&admin_after) - create(&admin_before), posts);
    assert_eq!(kind(&admin_after, "feed_broker")["actors"], 1);
    assert_eq!(kind(&admin_after, "feed_broker")["name"], "feed_broker");
    let workers = kind(&admin_after, "ai_worker");
    let names: Vec<&str> = workers["instances"]
        .as_array()
        .map(|i| i.iter().filter_map(|w| w["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        names.len() as u64,
        workers["actors"].as_u64().unwrap_or(0),
        "{workers}"
    );
    assert!(names.contains(&"ai_worker-0"), "{workers}");
    assert_eq!(
        kind(&admin_after, "session")["instances"],
        serde_json::json!([]),
        "sessions are never listed one by one"
    );
    assert!(kind(&admin_after, "session")["actors"].as_u64() >= Some(1));

    // Every family the operators' dashboards and alerts use is exported, with its labels.
    // (The sampler sets some once a second.)
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let metrics = app.metrics().await;
    for family in [
        r#"aisocial_actor_mailbox_depth{actor="feed_broker"}"#,
        r#"aisocial_actor_oldest_message_age_seconds{actor="db_writer"}"#,
        r#"aisocial_actor_mailbox_wait_seconds_bucket{actor="session",le="0.001"}"#,
        r#"aisocial_actor_handle_seconds_count{actor="db_writer"}"#,
        r#"aisocial_sessions_by_mailbox_depth{le="+Inf"}"#,
        "aisocial_sessions_slow",
        "aisocial_delivery_latency_seconds_bucket{le=\"+Inf\"}",
        "aisocial_db_writer_batch_size_count",
        "aisocial_db_writer_commit_seconds_count",
        r#"aisocial_db_pool_connections{state="idle"}"#,
        r#"aisocial_db_pool_gets_total{outcome="direct"}"#,
        "aisocial_db_pool_wait_seconds_total",
        r#"aisocial_redis_command_seconds_count{op="rate_limit_flush"}"#,
        r#"aisocial_ai_status{status="ok"}"#,
        r#"aisocial_ai_budget_limit{limit="requests_per_minute"}"#,
        r#"aisocial_ai_budget_used{limit="requests_per_day"}"#,
        "aisocial_ai_in_flight",
        "aisocial_ready",
        "aisocial_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/posts\"}",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        let name = family.split('{').next().unwrap_or(family);
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(family) || (family == name && l.starts_with(name))),
            "{family} is not exported"
        );
    }
    assert_eq!(series(&metrics, "aisocial_ready"), 1.0);
    assert_eq!(series(&metrics, r#"aisocial_ai_status{status="ok"}"#), 1.0);
    // Base units and conventions: no series per connection, counters end in _total.
    assert!(!metrics.contains("session_id="), "no series per session");
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("# TYPE aisocial_"))
    {
        if line.ends_with(" counter") {
            let name = line.split(' ').nth(2).unwrap_or_default();
            assert!(name.ends_with("_total"), "{line}");
        }
    }

    drop(socket);
    let closes = admin_until(&app, &boss, "/admin/actors", Duration::from_secs(5), |v| {
        kind(v, "session")["actors"].as_u64() == Some(0)
    })
    .await;
    assert_eq!(kind(&closes, "session")["actors"], 0, "{closes}");
}

#[actix_web::test]
async fn a_stalled_consumer_shows_as_a_deep_old_mailbox_and_recovers() {
    let _serial = SERIAL.lock().await;
    let app = spawn_app_with(&[
        "--admin-handles=boss",
        "--ws-outbound-limit=100000",
        "--rate-limit-user-per-min=100000",
        "--rate-limit-ip-per-min=1000000",
    ])
    .await;
    let boss = app.sign_in("boss").await;
    let ann = app.sign_in("ann").await;
    let slow = app.sign_in("slowpoke").await;
    app.follow(&slow, "ann").await;
    let mut stalled = app.stalled_ws(&slow).await;

    // Posts until the session cannot write and its mailbox fills.
    let body = "x".repeat(900);
    let mut posted = 0;
    let deep = |v: &Value| {
        v["sessions"]["deepest"]
            .as_array()
            .and_then(|d| d.first())
            .is_some_and(|s| s["handle"] == "slowpoke" && s["depth"].as_i64() >= Some(200))
    };
    loop {
        let batch = (0..50).map(|_| app.post(&ann, &body));
        for res in futures_util::future::join_all(batch).await {
            assert_eq!(res.status(), 201);
        }
        posted += 50;
        let (_, view) = app.get_json(&boss, "/admin/actors").await;
        if deep(&view) {
            break;
        }
        assert!(posted < 8000, "{posted} posts never backed up: {view}");
    }
    // The mailbox stays deep and ages while nothing is read; the sampler reports it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let view = app.get_json(&boss, "/admin/actors").await.1;
    let worst = &view["sessions"]["deepest"][0];
    assert_eq!(worst["handle"], "slowpoke", "{view}");
    assert_eq!(worst["user_id"], slow.id, "{view}");
    assert!(worst["node"].is_string(), "{view}");
    assert!(
        worst["oldest_message_age_seconds"].as_f64() >= Some(1.0),
        "{view}"
    );
    let session = kind(&view, "session");
    assert!(session["mailbox_depth"].as_i64() >= Some(200), "{view}");
    assert!(
        session["oldest_message_age_seconds"].as_f64() >= Some(1.0),
        "{view}"
    );
    let metrics = app.metrics().await;
    assert!(
        series(&metrics, r#"aisocial_actor_mailbox_depth{actor="session"}"#) >= 200.0,
        "the depth gauge rose"
    );
    assert!(
        series(
            &metrics,
            r#"aisocial_actor_oldest_message_age_seconds{actor="session"}"#
        ) > 0.0,
        "the sampler's age gauge rose"
    );
    let all = series(&metrics, r#"aisocial_sessions_by_mailbox_depth{le="+Inf"}"#);
    let shallow = series(&metrics, r#"aisocial_sessions_by_mailbox_depth{le="64"}"#);
    assert!(
        all - shallow >= 1.0,
        "one session deeper than 64: {all} {shallow}"
    );

    // The client reads again: the mailbox drains and the view says so.
    let mut read = 0;
    while read < posted {
        match stalled.next_event(Duration::from_secs(10)).await {
            WsEvent::Json(frame) if frame["type"] == "post.created" => read += 1,
            WsEvent::Json(_) => {}
            other => panic!("the slow socket ended after {read} of {posted}: {other:?}"),
        }
    }
    let view = admin_until(&app, &boss, "/admin/actors", Duration::from_secs(5), |v| {
        v["sessions"]["deepest"]
            .as_array()
            .is_some_and(|d| d.is_empty())
    })
    .await;
    assert_eq!(view["sessions"]["deepest"], serde_json::json!([]), "{view}");
    assert_eq!(kind(&view, "session")["oldest_message_age_seconds"], 0.0);
}

#[actix_web::test]
async fn the_live_view_shows_latency_connections_and_the_ai_budget() {
    let _serial = SERIAL.lock().await;
    let app = spawn_app_with(&["--admin-handles=boss"]).await;
    let boss = app.sign_in("boss").await;
    let ann = app.sign_in("ann").await;
    let (mut socket, _) = app.ws(&boss, None).await;
    app.follow(&boss, "ann").await;
    // Deliveries during a sampled second show as a rate and percentiles.
    let view = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            app.create_post(&ann, "hello").await;
            let _ = socket.next_event(Duration::from_secs(5)).await;
            let (_, view) = app.get_json(&boss, "/admin/live").await;
            if view["delivery_latency_seconds"]["per_second"].as_f64() > Some(0.0)
                || Instant::now() > deadline
            {
                break view;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    };
    let latency = &view["delivery_latency_seconds"];
    assert!(latency["per_second"].as_f64() > Some(0.0), "{view}");
    assert!(latency["p99"].as_f64() >= latency["p50"].as_f64(), "{view}");
    assert!(
        view["connections"]["websockets"].as_u64() >= Some(1),
        "{view}"
    );
    assert!(
        view["connections"]["online_users"].as_u64() >= Some(1),
        "{view}"
    );
    assert_eq!(view["ai"]["status"], "ok", "{view}");
    let budget = view["ai"]["budget"].as_array().cloned().unwrap_or_default();
    let limits: Vec<&str> = budget.iter().filter_map(|l| l["limit"].as_str()).collect();
    assert_eq!(
        limits,
        [
            "requests_per_minute",
            "tokens_per_minute",
            "requests_per_day"
        ],
        "{view}"
    );
    assert!(budget.iter().all(|l| l["max"].as_u64() > Some(0)), "{view}");
    assert!(view["node"].is_string() && view["at_ms"].as_u64() > Some(0));
}

#[actix_web::test]
async fn the_pages_are_served_with_a_strict_policy_and_unknown_files_are_404() {
    let _serial = SERIAL.lock().await;
    let app = spawn_app_with(&[]).await;
    for (path, content_type) in [
        ("/", "text/html"),
        ("/admin/dashboard", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/dashboard.js", "text/javascript"),
        ("/static/chart.js", "text/javascript"),
        ("/static/session.js", "text/javascript"),
        ("/static/style.css", "text/css"),
    ] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        let policy = header("content-security-policy");
        assert!(policy.contains("script-src 'self'"), "{path}");
        // The page talks to its own origin only (its websocket too): no other host, no
        // scheme-wide `ws:`/`wss:` source.
        let connect = policy
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("connect-src"))
            .unwrap_or_default();
        assert_eq!(connect, "connect-src 'self'", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    for bad in [
        "/static/nope.js",
        "/static/..%2fCargo.toml",
        "/static/%00",
        "/static/app.js.map",
    ] {
        let res = app.http.get(app.url(bad)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{bad}");
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{bad}"
        );
    }
    let (status, methods) = {
        let res = app
            .http
            .get(app.url("/api/v1/auth/methods"))
            .send()
            .await
            .unwrap();
        (res.status(), res.json::<Value>().await.unwrap_or_default())
    };
    assert_eq!(status, 200);
    assert_eq!(methods["dev"], true, "{methods}");
    assert_eq!(methods["google_browser"], false, "{methods}");
}
