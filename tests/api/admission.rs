//! Admission before the 101: per-user and per-IP caps answer 429, a full node 503, both with
//! `Retry-After`; a place is freed when its socket closes.

use aisocial_client::Error as WsError;

use crate::helpers::{TestApp, TestUser, WsClient, spawn_app_with};

/// The status and `Retry-After` of a refused upgrade.
async fn refused(app: &TestApp, user: &TestUser) -> (u16, u64) {
    match app.ws_raw(user, None).await {
        Err(WsError::Refused {
            status,
            retry_after,
        }) => {
            let retry = retry_after.and_then(|v| v.parse().ok()).unwrap_or(0);
            (status, retry)
        }
        Ok(_) => panic!("the upgrade was accepted"),
        Err(e) => panic!("{e}"),
    }
}

async fn open(app: &TestApp, user: &TestUser) -> WsClient {
    app.ws(user, None).await.0
}

#[actix_web::test]
async fn a_user_past_the_cap_is_refused_with_429_before_the_101() {
    let app = spawn_app_with(&["--ws-max-per-user=2"]).await;
    let alice = app.sign_in("alice").await;
    let bob = app.sign_in("bob").await;
    let first = open(&app, &alice).await;
    let _second = open(&app, &alice).await;
    let (status, retry) = refused(&app, &alice).await;
    assert_eq!(status, 429);
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    // Another user is not affected; a closed socket frees its place.
    let _bob = open(&app, &bob).await;
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match app.ws_raw(&alice, None).await {
            Ok(_) => break,
            Err(WsError::Refused { status: 429, .. }) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the place was not freed"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[actix_web::test]
async fn an_address_past_the_cap_is_refused_with_429() {
    let app = spawn_app_with(&["--ws-max-per-ip=2"]).await;
    let mut users = Vec::new();
    for n in 0..3 {
        users.push(app.sign_in(&format!("user_{n}")).await);
    }
    let _a = open(&app, &users[0]).await;
    let _b = open(&app, &users[1]).await;
    assert_eq!(refused(&app, &users[2]).await.0, 429);
}

#[actix_web::test]
async fn a_full_node_refuses_with_503_and_a_jittered_retry_after() {
    let app = spawn_app_with(&["--ws-max-sessions=2"]).await;
    let mut users = Vec::new();
    for n in 0..3 {
        users.push(app.sign_in(&format!("user_{n}")).await);
    }
    let _a = open(&app, &users[0]).await;
    let _b = open(&app, &users[1]).await;
    let (status, retry) = refused(&app, &users[2]).await;
    assert_eq!(status, 503);
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    assert!(
        app.metrics()
            .await
            .contains("aisocial_websocket_admission_refused_total{reason=\"node_full\"} 1")
    );
}

#[actix_web::test]
async fn a_bearer_upgrade_counts_against_the_users_request_rate() {
    let app = spawn_app_with(&["--rate-limit-user-per-min=3"]).await;
    let alice = app.sign_in("alice").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        match app.ws_raw(&alice, None).await {
            Ok(_) => statuses.push(101),
            Err(WsError::Refused { status, .. }) => statuses.push(status),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}
