//! Trust and safety, through the real server: suspensions (two nodes, Redis paused, the command
//! line), roles that follow configuration or whoever granted them, and reports.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::auth::me_status;
use crate::helpers::{
    PrivateRedis, TestApp, TestUser, WsEvent, free_port, spawn_app_on, spawn_app_with, spawn_peer,
    spawn_peer_on,
};

/// Sends `body` (if any) with `method` to `path` as `user`: status and JSON answer.
async fn call(
    app: &TestApp,
    method: &str,
    user: &TestUser,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app
        .http
        .request(method, app.url(path))
        .bearer_auth(&user.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

async fn refresh_status(app: &TestApp, user: &TestUser) -> u16 {
    app.http
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": user.refresh }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn dev_sign_in_status(app: &TestApp, handle: &str) -> u16 {
    app.http
        .post(app.url("/api/v1/auth/dev"))
        .json(&json!({ "handle": handle }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The audit log's actions, newest first, as `admin` reads them.
async fn audit_actions(app: &TestApp, admin: &TestUser) -> Vec<(String, Value)> {
    let (status, page) = call(app, "GET", admin, "/admin/audit?limit=100", None).await;
    assert_eq!(status, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["detail"].clone(),
            )
        })
        .collect()
}

/// Waits for the socket to close; its close code and how long it took.
async fn closed(ws: &mut crate::helpers::WsClient, within: Duration) -> (Option<u16>, Duration) {
    let started = Instant::now();
    loop {
        match ws
            .next_event(within.saturating_sub(started.elapsed()))
            .await
        {
            WsEvent::Json(_) => continue,
            WsEvent::Closed(frame) => return (frame.map(|f| u16::from(f.code)), started.elapsed()),
            WsEvent::Timeout => panic!("the socket stayed open for {within:?}"),
        }
    }
}

/// The bar, with Redis unable to carry anything: node B learns of the suspension from
/// the log (its poll), closes the user's socket within 1 s, and refuses their token at once.
#[actix_web::test]
async fn a_suspension_closes_sockets_on_every_node_within_a_second_with_redis_paused() {
    let redis = PrivateRedis::start(free_port());
    redis.wait_up().await;
    let node_a = spawn_app_on(&redis.url(), &["--admin-handles=boss"]).await;
    let node_b = spawn_peer_on(&node_a, &redis.url(), &["--admin-handles=boss"]).await;
    let boss = node_a.sign_in("boss").await;
    let mallory = node_a.sign_in("mallory").await;
    let (mut on_b, _) = node_b.ws(&mallory, None).await;
    let (mut on_a, _) = node_a.ws(&mallory, None).await;
    redis.pause(10_000).await;
    let asked = Instant::now();
    let suspend = {
        let node_a = &node_a;
        let boss = &boss;
        async move {
            call(
                node_a,
                "POST",
                boss,
                "/api/v1/admin/users/mallory/suspend",
                None,
            )
            .await
        }
    };
    let watch_b = async { closed(&mut on_b, Duration::from_secs(5)).await };
    let ((status, body), (code_b, _)) = tokio::join!(suspend, watch_b);
    let closed_b_after = asked.elapsed();
    assert_eq!(status, 204, "{body}");
    assert_eq!(code_b, Some(4003), "closed as suspended");
    let (code_a, _) = closed(&mut on_a, Duration::from_secs(2)).await;
    assert_eq!(code_a, Some(4003));
    println!(
        "suspension (Redis paused): the socket on the other node closed {closed_b_after:?} \
         after the request"
    );
    assert!(
        closed_b_after <= Duration::from_secs(1),
        "within 1 s: {closed_b_after:?}"
    );
    for node in [&node_a, &node_b] {
        assert_eq!(
            me_status(node, &mallory.token).await,
            401,
            "the token is dead"
        );
    }
    // A new socket is refused at the upgrade.
    match node_b.ws_raw(&mallory, None).await {
        Err(aisocial_client::Error::Refused { status: 401, .. }) => {}
        Err(other) => panic!("refused otherwise: {other:?}"),
        Ok(_) => panic!("a suspended user's socket was accepted"),
    }
}

#[actix_web::test]
async fn a_suspension_refuses_sign_in_and_refresh_is_audited_and_can_be_lifted() {
    let app = spawn_app_with(&["--admin-handles=boss,chief"]).await;
    let peer = spawn_peer(&app, &["--admin-handles=boss,chief"]).await;
    let boss = app.sign_in("boss").await;
    let chief = app.sign_in("chief").await;
    let mallory = app.sign_in("mallory").await;
    let carol = app.sign_in("carol").await;
    let suspend = |who: &'static str| format!("/api/v1/admin/users/{who}/suspend");

    // Who may: not a plain user, not a moderator on a moderator, nobody on themselves or on an
    // equal; nobody on the AI account; an unknown handle is 404.
    assert_eq!(
        call(&app, "POST", &carol, &suspend("mallory"), None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&app, "POST", &boss, &suspend("boss"), None).await.0,
        409
    );
    assert_eq!(
        call(&app, "POST", &boss, &suspend("chief"), None).await.0,
        403
    );
    assert_eq!(
        call(&app, "POST", &boss, &suspend("nobody_here"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&app, "POST", &boss, &suspend("NOT A HANDLE"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&app, "POST", &boss, "/api/v1/admin/users/ai/suspend", None)
            .await
            .0,
        404
    );

    assert_eq!(
        call(&app, "POST", &boss, &suspend("mallory"), None).await.0,
        204
    );
    // Refused at once on the node that suspended, not only once its broker has the record.
    assert_eq!(me_status(&app, &mallory.token).await, 401);
    assert_eq!(
        call(&peer, "POST", &boss, &suspend("mallory"), None)
            .await
            .0,
        204,
        "idempotent"
    );
    assert_eq!(
        refresh_status(&peer, &mallory).await,
        401,
        "refresh refused"
    );
    assert_eq!(
        dev_sign_in_status(&peer, "mallory").await,
        403,
        "sign-in refused"
    );
    assert_eq!(me_status(&peer, &mallory.token).await, 401);
    let (status, _) = call(&app, "GET", &carol, "/api/v1/users/mallory", None).await;
    assert_eq!(status, 404, "a suspended profile is not shown");

    let (status, list) = call(&app, "GET", &chief, "/api/v1/admin/users/suspended", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["handle"], "mallory", "{list}");
    let actions = audit_actions(&app, &chief).await;
    let suspensions: Vec<_> = actions.iter().filter(|(a, _)| a == "suspend").collect();
    assert_eq!(
        suspensions.len(),
        1,
        "once, though asked twice: {actions:?}"
    );
    assert_eq!(suspensions[0].1["handle"], "mallory");

    let unsuspend = "/api/v1/admin/users/mallory/unsuspend";
    assert_eq!(call(&peer, "POST", &boss, unsuspend, None).await.0, 204);
    assert_eq!(
        refresh_status(&app, &mallory).await,
        401,
        "the old sessions stay revoked"
    );
    // On the node that lifted it, a new sign-in works at once.
    let back = peer.sign_in("mallory").await;
    assert_eq!(me_status(&peer, &back.token).await, 200, "signed in again");
    assert!(
        audit_actions(&app, &chief)
            .await
            .iter()
            .any(|(a, _)| a == "unsuspend")
    );
}

/// `aisocial admin …` on the command line: the same command, audited, and a running node
/// closes the suspended user's socket from the log.
#[actix_web::test]
async fn the_command_line_suspends_grants_and_revokes() {
    let app = spawn_app_with(&[]).await;
    let dave = app.sign_in("dave").await;
    let erin = app.sign_in("erin").await;
    let (mut ws, _) = app.ws(&dave, None).await;
    let database = format!("postgres://postgres@127.0.0.1:5432/{}", app.db_name);
    let admin = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_aisocial"))
            .arg("admin")
            .arg(format!("--database-url={database}"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, said) = admin(&["suspend", "dave"]);
    assert!(ok, "{said}");
    let (code, after) = closed(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(code, Some(4003));
    println!("command-line suspension: socket closed {after:?} after the command returned");
    assert_eq!(me_status(&app, &dave.token).await, 401);

    let (ok, said) = admin(&["grant", "--role", "moderator", "erin"]);
    assert!(ok, "{said}");
    assert!(said.contains("erin is now moderator"), "{said}");
    let (status, _) = call(&app, "GET", &erin, "/api/v1/admin/reports", None).await;
    assert_eq!(status, 200, "a moderator works the queue at once");
    let (ok, said) = admin(&["revoke", "erin"]);
    assert!(ok, "{said}");
    let (status, _) = call(&app, "GET", &erin, "/api/v1/admin/reports", None).await;
    assert_eq!(status, 403, "and stops at once");

    let (ok, said) = admin(&["suspend", "nobody_here"]);
    assert!(!ok && said.contains("not found"), "{said}");
    let (ok, said) = admin(&["grant", "--role", "emperor", "erin"]);
    assert!(!ok, "{said}");
    let db = app.db().await;
    let rows = db
        .query(
            "SELECT action, detail->>'by' FROM audit_log WHERE action IN \
             ('suspend', 'role_change') ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let audited: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        audited,
        vec![
            ("suspend".to_owned(), "command_line".to_owned()),
            ("role_change".to_owned(), "command_line".to_owned()),
            ("role_change".to_owned(), "command_line".to_owned()),
        ]
    );
}

/// Roles: an admin grants and takes them (not their own), a demotion takes effect at once, and
/// a role configuration granted goes when configuration stops granting it.
#[actix_web::test]
async fn roles_are_granted_by_admins_and_configuration_and_taken_back() {
    let app = spawn_app_with(&["--admin-handles=boss"]).await;
    let boss = app.sign_in("boss").await;
    let carol = app.sign_in("carol").await;
    let role = |who: &str| format!("/api/v1/admin/users/{who}/role");

    let (status, user) = call(
        &app,
        "PUT",
        &boss,
        &role("carol"),
        Some(json!({"role": "moderator"})),
    )
    .await;
    assert_eq!(
        (status, &user["role"]),
        (200, &json!("moderator")),
        "{user}"
    );
    assert_eq!(
        call(&app, "GET", &carol, "/api/v1/admin/reports", None)
            .await
            .0,
        200
    );
    // A moderator is not an admin.
    let (status, _) = call(
        &app,
        "PUT",
        &carol,
        &role("boss"),
        Some(json!({"role": "user"})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(call(&app, "GET", &carol, "/admin/audit", None).await.0, 403);
    // Nobody changes their own role through the API.
    let (status, _) = call(
        &app,
        "PUT",
        &boss,
        &role("boss"),
        Some(json!({"role": "user"})),
    )
    .await;
    assert_eq!(status, 409);
    // Bad input.
    for body in [
        json!({"role": "emperor"}),
        json!({}),
        json!({"role": "user", "x": 1}),
    ] {
        let (status, problem) = call(&app, "PUT", &boss, &role("carol"), Some(body)).await;
        assert_eq!(status, 422, "{problem}");
    }
    assert_eq!(
        call(
            &app,
            "PUT",
            &boss,
            &role("nobody_here"),
            Some(json!({"role": "user"}))
        )
        .await
        .0,
        404
    );
    // Taken back: carol's token still says moderator, the routes do not believe it.
    let (status, _) = call(
        &app,
        "PUT",
        &boss,
        &role("carol"),
        Some(json!({"role": "user"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        call(&app, "GET", &carol, "/api/v1/admin/reports", None)
            .await
            .0,
        403
    );
    let changes: Vec<_> = audit_actions(&app, &boss)
        .await
        .into_iter()
        .filter(|(a, _)| a == "role_change")
        .map(|(_, d)| (d["from"].clone(), d["to"].clone(), d["by"].clone()))
        .collect();
    assert!(
        changes.contains(&(json!("user"), json!("moderator"), json!("api"))),
        "{changes:?}"
    );
    assert!(
        changes.contains(&(json!("moderator"), json!("user"), json!("api"))),
        "{changes:?}"
    );

    // Configuration stops naming boss (a node started without ADMIN_HANDLES): at the next
    // refresh the role configuration gave is gone.
    let plain = spawn_peer(&app, &[]).await;
    let res = plain
        .http
        .post(plain.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": boss.refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["role"], "user", "{body}");
}

#[actix_web::test]
async fn reports_are_checked_queued_once_and_resolved_by_moderators() {
    let app = spawn_app_with(&["--admin-handles=boss"]).await;
    let peer = spawn_peer(&app, &["--admin-handles=boss"]).await;
    let boss = app.sign_in("boss").await;
    let alice = app.sign_in("alice").await;
    let spammer = app.sign_in("spammer").await;
    let bob = app.sign_in("bob").await;
    app.follow(&bob, "spammer").await;
    let post = app.create_post(&spammer, "buy now").await["id"]
        .as_i64()
        .unwrap();
    let report = |body: Value| call(&app, "POST", &alice, "/api/v1/reports", Some(body));

    // Bad input: nothing named, an unknown reason, a long comment, a stray field, a post that
    // does not exist, a handle that is not the post's author, oneself.
    for (body, status) in [
        (json!({"reason": "spam"}), 422),
        (json!({"post_id": post, "reason": "boring"}), 422),
        (
            json!({"post_id": post, "reason": "spam", "comment": "x".repeat(1001)}),
            422,
        ),
        (
            json!({"post_id": post, "reason": "spam", "extra": true}),
            422,
        ),
        (json!({"post_id": -3, "reason": "spam"}), 422),
        (
            json!({"post_id": post, "reason": "spam", "comment": "a\u{0}b"}),
            422,
        ),
        (json!({"post_id": "seven", "reason": "spam"}), 422),
        (json!({"post_id": 1.5, "reason": "spam"}), 422),
        (
            json!({"post_id": null, "handle": "spammer", "reason": "spam"}),
            422,
        ),
        (json!({"post_id": 999_999, "reason": "spam"}), 404),
        (json!({"handle": "nobody_here", "reason": "spam"}), 404),
        (
            json!({"post_id": post, "handle": "bob", "reason": "spam"}),
            409,
        ),
        (json!({"handle": "alice", "reason": "abuse"}), 409),
    ] {
        let (got, problem) = report(body.clone()).await;
        assert_eq!(got, status, "{body} → {problem}");
        assert!(problem["code"].is_string(), "{problem}");
    }
    let (status, first) =
        report(json!({"post_id": post, "reason": "spam", "comment": "ads"})).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["status"], "open");
    assert_eq!(first["target"]["handle"], "spammer");
    assert_eq!(first["post_body"], "buy now");
    let (status, again) = report(json!({"post_id": post, "reason": "spam"})).await;
    assert_eq!(
        (status, &again["id"]),
        (201, &first["id"]),
        "a repeat is the same report"
    );
    let (status, by_handle) = call(
        &app,
        "POST",
        &bob,
        "/api/v1/reports",
        Some(json!({"handle": "spammer", "reason": "abuse"})),
    )
    .await;
    assert_eq!(status, 201, "{by_handle}");

    // Reports are rate-limited per reporter: a flood gets 429 with Retry-After.
    let carol = app.sign_in("carol").await;
    let mut limited = 0;
    for _ in 0..15 {
        let res = app
            .http
            .post(app.url("/api/v1/reports"))
            .bearer_auth(&carol.token)
            .json(&json!({"handle": "spammer", "reason": "spam"}))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            assert!(res.headers().contains_key("retry-after"));
            limited += 1;
        } else {
            assert_eq!(res.status(), 201);
        }
    }
    assert!(
        limited >= 4,
        "at most 10 reports a minute: {limited} of 15 limited"
    );

    // The queue is for moderators and admins, oldest first.
    assert_eq!(
        call(&app, "GET", &alice, "/api/v1/admin/reports", None)
            .await
            .0,
        403
    );
    let (status, queue) = call(
        &peer,
        "GET",
        &boss,
        "/api/v1/admin/reports?status=open",
        None,
    )
    .await;
    assert_eq!(status, 200, "{queue}");
    let ids: Vec<i64> = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "alice's, bob's and carol's (once): {queue}");
    assert_eq!(
        ids[..2],
        [
            first["id"].as_i64().unwrap(),
            by_handle["id"].as_i64().unwrap()
        ]
    );
    assert_eq!(
        call(
            &app,
            "GET",
            &boss,
            "/api/v1/admin/reports?status=maybe",
            None
        )
        .await
        .0,
        400
    );

    // Resolving: a bad action, a missing report; removing the post tells its readers.
    let resolve = |user: &TestUser, report: &Value, action: &str| {
        let path = format!("/api/v1/admin/reports/{}/resolve", report["id"]);
        let body = json!({ "action": action });
        let app = &app;
        let user = user.clone();
        async move { call(app, "POST", &user, &path, Some(body)).await }
    };
    let (mut bob_ws, _) = app.ws(&bob, None).await;
    assert_eq!(resolve(&boss, &first, "ban").await.0, 422);
    let missing = json!({"id": 999_999});
    assert_eq!(resolve(&boss, &missing, "dismiss").await.0, 404);
    assert_eq!(resolve(&alice, &first, "dismiss").await.0, 403);
    let (status, done) = resolve(&boss, &first, "remove_post").await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["status"].clone(), done["action"].clone()),
        (json!("resolved"), json!("remove_post"))
    );
    assert_eq!(done["resolved_by"]["handle"], "boss");
    let frame = bob_ws.next_json_skipping_presence().await;
    assert_eq!(
        (frame["type"].clone(), frame["data"]["id"].clone()),
        (json!("post.deleted"), json!(post))
    );
    assert_eq!(resolve(&boss, &first, "dismiss").await.0, 409);
    // A report of a user has no post to remove; suspending its target works.
    assert_eq!(resolve(&boss, &by_handle, "remove_post").await.0, 422);
    let (status, done) = resolve(&boss, &by_handle, "suspend").await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["target_suspended"], true, "{done}");
    assert_eq!(me_status(&app, &spammer.token).await, 401);
    let (_, resolved) = call(
        &app,
        "GET",
        &boss,
        "/api/v1/admin/reports?status=resolved",
        None,
    )
    .await;
    assert_eq!(
        resolved["items"].as_array().map(Vec::len),
        Some(2),
        "{resolved}"
    );
    let audited = audit_actions(&app, &boss).await;
    assert_eq!(
        audited
            .iter()
            .filter(|(a, _)| a == "report_resolve")
            .count(),
        2
    );
    assert_eq!(audited.iter().filter(|(a, _)| a == "report").count(), 3);
}
