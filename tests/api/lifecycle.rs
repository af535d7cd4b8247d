//! Start-up errors that say what is wrong, and the drain on shutdown.

use std::time::Duration;

use aisocial::startup::Application;
use futures_util::future::join_all;

use crate::helpers::{
    ServerProcess, dev_token, drop_database, spawn_app, test_settings, unique_name,
};

/// What `Application::build` says when it refuses to start (empty if it started).
async fn start_up_error(settings: aisocial::config::Settings) -> String {
    Application::build(settings)
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default()
}

#[actix_web::test]
async fn start_up_names_an_unreachable_dependency() {
    let id = unique_name();
    let settings = test_settings(
        "unused",
        "x:",
        &["--database-url=postgres://postgres@127.0.0.1:1/aisocial_nowhere"],
    )
    .unwrap();
    let err = start_up_error(settings).await;
    assert!(
        err.contains("PostgreSQL") && err.contains("127.0.0.1:1"),
        "{err}"
    );

    let db = format!("aisocial_test_{id}");
    let settings = test_settings(&db, "x:", &["--redis-url=redis://127.0.0.1:1"]).unwrap();
    let err = start_up_error(settings).await;
    assert!(
        err.contains("Redis") && err.contains("127.0.0.1:1"),
        "{err}"
    );
    // Several URLs are cluster seeds: single servers listed so are refused, saying why.
    let settings = test_settings(
        &db,
        "x:",
        &["--redis-url=redis://127.0.0.1:6379,redis://localhost:6379"],
    )
    .unwrap();
    let err = start_up_error(settings).await;
    assert!(err.contains("not Redis Cluster nodes"), "{err}");
    // The database it created on the way is removed again.
    drop_database(&db).await;
}

#[actix_web::test]
async fn shutdown_drains_every_acknowledged_post_and_closes_sockets_with_1001() {
    let mut app = spawn_app().await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    app.follow(&bob, "alice").await;
    let (mut ws, _) = app.ws(&bob, None).await;

    // Posts in flight while the drain starts.
    let trigger = app.shutdown_trigger();
    let posts = (0..200).map(|n| {
        let app = &app;
        let alice = &alice;
        async move {
            // Once the listener is closed a request cannot connect: status 0, never acknowledged.
            let sent = app
                .http
                .post(app.url("/api/v1/posts"))
                .bearer_auth(&alice.token)
                .header("Idempotency-Key", format!("k{n}"))
                .json(&serde_json::json!({ "body": format!("post {n}") }))
                .send()
                .await;
            match sent {
                Err(_) => (0, None),
                Ok(res) => {
                    let status = res.status().as_u16();
                    let body: serde_json::Value = res.json().await.unwrap_or_default();
                    (status, body["id"].as_i64())
                }
            }
        }
    });
    let (results, report) = futures_util::join!(join_all(posts), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        trigger.pull().await
    });
    assert!(report.drain_time < Duration::from_secs(10), "{report:?}");
    assert!(report.sockets_closed >= 1);

    let acknowledged: Vec<i64> = results
        .iter()
        .filter(|(status, _)| *status == 201)
        .filter_map(|(_, id)| *id)
        .collect();
    for (status, _) in &results {
        assert!(
            *status == 201 || *status == 0 || *status == 503,
            "a request during the drain got {status}"
        );
    }
    assert!(
        !acknowledged.is_empty(),
        "some posts were acknowledged before the drain"
    );
    let db = app.db().await;
    let stored: Vec<i64> = db
        .query("SELECT id FROM posts", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in &acknowledged {
        assert!(
            stored.contains(id),
            "acknowledged post {id} is not in the database"
        );
    }
    assert_eq!(ws.closed_with().await, Some(1001));
}

/// The real binary: `serve` logs `listening` with the real port, and SIGTERM drains and exits 0.
#[actix_web::test]
async fn the_binary_serves_and_exits_cleanly_on_sigterm() {
    let mut server = ServerProcess::start(&[]).await;
    let address = server.address.clone();
    assert!(
        !address.ends_with(":0"),
        "the real port is logged: {address}"
    );

    let http = reqwest::Client::new();
    let token = dev_token(&http, &format!("http://{address}"), "alice").await;
    assert!(!token.is_empty());
    let res = http
        .get(format!("http://{address}/api/v1/timeline?cursor=x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Websockets opened with a ticket in the query string, accepted and refused: the access
    // log keeps the path, never the query.
    let mut tickets = Vec::new();
    for query in ["", "&since=x"] {
        let ticket: serde_json::Value = http
            .post(format!("http://{address}/api/v1/ws/ticket"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("a ticket")
            .json()
            .await
            .expect("a ticket document");
        let ticket = ticket["ticket"].as_str().unwrap_or_default().to_owned();
        assert!(ticket.starts_with("tk_"), "{ticket}");
        let url = format!("ws://{address}/api/v1/ws?ticket={ticket}{query}");
        match tokio_tungstenite::connect_async(url).await {
            Ok((mut socket, _)) => {
                assert!(query.is_empty(), "a bad since was accepted");
                let _ = futures_util::SinkExt::close(&mut socket).await;
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert_eq!(res.status(), 422, "{query}");
            }
            Err(e) => panic!("the upgrade failed below HTTP: {e}"),
        }
        tickets.push(ticket);
    }

    let pid = nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).unwrap_or_default());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut status = None;
    for _ in 0..300 {
        if let Ok(Some(exit)) = server.child.try_wait() {
            status = Some(exit);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("the server did not exit within 15 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
    // Give the log reader a moment to pass on the last lines.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = server.collect_log().to_vec();
    assert!(
        log.iter().any(|l| l.contains("\"drained\"")),
        "no drain line: {log:#?}"
    );
    // The access log never carries a token.
    assert!(
        log.iter().any(|l| l.contains("\"target\":\"access\"")),
        "no access log"
    );
    assert!(
        !log.iter().any(|l| l.contains(&token)),
        "a token reached the log"
    );
    for ticket in &tickets {
        assert!(
            !log.iter().any(|l| l.contains(ticket.as_str())),
            "a ticket reached the log"
        );
    }
    assert!(
        log.iter()
            .any(|l| l.contains("\"target\":\"access\"") && l.contains("/api/v1/ws")),
        "the upgrades are in the access log: {log:#?}"
    );
}

#[actix_web::test]
async fn migrate_check_says_whether_the_schema_matches_the_binary() {
    let db_name = format!("aisocial_test_{}", crate::helpers::unique_name());
    let url = format!("{}/{db_name}", crate::helpers::PG_BASE);
    let aisocial = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_aisocial"))
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, out) = aisocial(&["migrate"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = aisocial(&["migrate", "--check"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("matches"), "{out}");

    let db = {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        actix_rt::spawn(async move {
            let _ = connection.await;
        });
        client
    };
    // A newer release's migration in the history: this binary is the older one.
    db.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
         VALUES (99, 'future', now()::text, '1')",
        &[],
    )
    .await
    .unwrap();
    let (code, out) = aisocial(&["migrate", "--check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the database is newer") && out.contains("V99__future"),
        "{out}"
    );
    // One of this binary's migrations not applied, and one applied differently.
    db.execute(
        "DELETE FROM refinery_schema_history WHERE version IN (3, 99)",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE refinery_schema_history SET checksum = '42' WHERE version = 2",
        &[],
    )
    .await
    .unwrap();
    let (code, out) = aisocial(&["migrate", "--check"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("pending") && out.contains("V3__ai"), "{out}");
    assert!(out.contains("changed") && out.contains("V2__"), "{out}");
    drop(db);
    crate::helpers::drop_database(&db_name).await;
}
