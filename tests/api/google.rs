//! Sign in with Google against a local provider: forged tokens, the JWKS cache, the code flow.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aisocial::auth::google::{GoogleVerifier, Jwks};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::provider::{self, CLIENT_ID, Provider, claims, id_token, sign};

async fn app_with(provider: &Provider, extra: &[&str]) -> TestApp {
    let mut flags: Vec<String> = provider.flags();
    flags.extend(extra.iter().map(|s| (*s).to_owned()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    spawn_app_with(&flags).await
}

async fn google_sign_in(app: &TestApp, token: &str) -> (u16, Value) {
    let res = app
        .http
        .post(app.url("/api/v1/auth/google"))
        .json(&json!({ "id_token": token }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    if status == 200 {
        assert_eq!(
            res.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "a token pair is never cached"
        );
    }
    (status, res.json().await.unwrap_or_default())
}

fn with(f: impl Fn(&mut Value)) -> Value {
    let mut c = claims("forged-sub", "mallory@gmail.com");
    f(&mut c);
    c
}

#[actix_web::test]
async fn a_valid_google_token_signs_in_and_keys_the_user_by_sub() {
    let provider = Provider::start().await;
    // The operator listed `jane_doe` by handle: under Google sign-in anyone can take a name,
    // so a handle grants nothing to a Google account (it is admin by `sub` below, not here).
    let app = app_with(
        &provider,
        &["--admin-handles=jane_doe", "--admin-subs=sub-2"],
    )
    .await;
    let (status, body) = google_sign_in(&app, &id_token("sub-1", "Jane.Doe@gmail.com")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["handle"], "jane_doe");
    assert_eq!(
        body["user"]["role"], "user",
        "a handle in ADMIN_HANDLES grants no role to a Google account"
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("rt_"))
    );
    let first_id = body["user"]["id"].clone();

    // Same sub, another address: the same user.
    let (_, again) = google_sign_in(&app, &id_token("sub-1", "other@gmail.com")).await;
    assert_eq!(again["user"]["id"], first_id);
    // Another person whose e-mail's local part collides gets another handle.
    let (_, other) = google_sign_in(&app, &id_token("sub-2", "jane.doe@gmail.com")).await;
    assert_ne!(other["user"]["id"], first_id);
    assert_eq!(other["user"]["handle"], "jane_doe_2");
    assert_eq!(other["user"]["role"], "admin", "ADMIN_SUBS grants the role");
    // An address Google is not authoritative for is not stored.
    let mut untrusted = claims("sub-3", "someone@example.org");
    untrusted["name"] = json!("Some One");
    let (status, body) = google_sign_in(&app, &sign(&untrusted, 1, "test-key-1")).await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["handle"], "some_one");
    let db = app.db().await;
    let email: Option<String> = db
        .query_one("SELECT email FROM users WHERE google_sub = 'sub-3'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(email, None);
    let audits: i64 = db
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action IN ('sign_in', 'role_change')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audits, 5);
}

#[actix_web::test]
async fn forged_and_mutated_google_tokens_are_all_refused() {
    let provider = Provider::start().await;
    let app = app_with(&provider, &["--rate-limit-auth-per-min=100000"]).await;
    // Warm the key cache with a good token.
    assert_eq!(
        google_sign_in(&app, &id_token("good", "good@gmail.com"))
            .await
            .0,
        200
    );

    let now = provider::now();
    let good = id_token("x", "x@gmail.com");
    let parts: Vec<&str> = good.split('.').collect();
    let tampered_payload = {
        let mut c = claims("x", "x@gmail.com");
        c["sub"] = json!("admin");
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(c.to_string()),
            parts[2]
        )
    };
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims("x", "x@gmail.com"),
        &jsonwebtoken::EncodingKey::from_secret(b"the-public-modulus-is-not-a-secret"),
    )
    .unwrap_or_default();
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"test-key-1"}"#),
        URL_SAFE_NO_PAD.encode(claims("x", "x@gmail.com").to_string())
    );
    let forged: Vec<(&str, String)> = vec![
        (
            "signed by another key",
            sign(&claims("x", "x@gmail.com"), 2, "test-key-1"),
        ),
        ("unknown kid", sign(&claims("x", "x@gmail.com"), 2, "nope")),
        ("no kid", {
            let der = std::fs::read(format!(
                "{}/tests/fixtures/google_test_key_1.der",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap_or_default();
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
                &claims("x", "x@gmail.com"),
                &jsonwebtoken::EncodingKey::from_rsa_der(&der),
            )
            .unwrap_or_default()
        }),
        ("HS256", hs256),
        ("alg none", alg_none),
        ("tampered payload", tampered_payload),
        ("truncated signature", good[..good.len() - 10].to_owned()),
        (
            "wrong iss",
            sign(
                &with(|c| c["iss"] = json!("https://evil.example")),
                1,
                "test-key-1",
            ),
        ),
        (
            "no iss",
            sign(
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("iss"));
                }),
                1,
                "test-key-1",
            ),
        ),
        (
            "wrong aud",
            sign(
                &with(|c| c["aud"] = json!("another-client")),
                1,
                "test-key-1",
            ),
        ),
        (
            "no aud",
            sign(
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("aud"));
                }),
                1,
                "test-key-1",
            ),
        ),
        (
            "aud list, no azp",
            sign(
                &with(|c| {
                    c["aud"] = json!([CLIENT_ID, "other"]);
                    c.as_object_mut().map(|o| o.remove("azp"));
                }),
                1,
                "test-key-1",
            ),
        ),
        (
            "aud list, wrong azp",
            sign(
                &with(|c| {
                    c["aud"] = json!([CLIENT_ID, "other"]);
                    c["azp"] = json!("other");
                }),
                1,
                "test-key-1",
            ),
        ),
        (
            "expired",
            sign(
                &with(|c| {
                    c["iat"] = json!(now - 7200);
                    c["exp"] = json!(now - 3600);
                }),
                1,
                "test-key-1",
            ),
        ),
        (
            "no exp",
            sign(
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("exp"));
                }),
                1,
                "test-key-1",
            ),
        ),
        (
            "exp as a string",
            sign(
                &with(|c| c["exp"] = json!((now + 3600).to_string())),
                1,
                "test-key-1",
            ),
        ),
        (
            "iat in the future",
            sign(&with(|c| c["iat"] = json!(now + 600)), 1, "test-key-1"),
        ),
        (
            "iat over an hour old",
            sign(&with(|c| c["iat"] = json!(now - 4000)), 1, "test-key-1"),
        ),
        (
            "no iat",
            sign(
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("iat"));
                }),
                1,
                "test-key-1",
            ),
        ),
        (
            "no sub",
            sign(
                &with(|c| {
                    c.as_object_mut().map(|o| o.remove("sub"));
                }),
                1,
                "test-key-1",
            ),
        ),
        (
            "empty sub",
            sign(&with(|c| c["sub"] = json!("")), 1, "test-key-1"),
        ),
        ("our own access token", String::new()),
        ("garbage", "not.a.token".to_owned()),
        ("empty", String::new()),
        ("huge", "a".repeat(10_000)),
    ];
    let alice = app.sign_in("alice").await;
    let mut accepted = 0;
    let total = forged.len();
    for (name, token) in forged {
        let token = if name == "our own access token" {
            alice.token.clone()
        } else {
            token
        };
        let (status, body) = google_sign_in(&app, &token).await;
        if status == 200 {
            accepted += 1;
            eprintln!("ACCEPTED: {name}");
        } else {
            assert_eq!(status, 401, "{name}: {body}");
            assert_eq!(body["code"], "unauthorized");
        }
    }
    println!("security item 1: {accepted} of {total} forged or mutated Google tokens accepted");
    assert_eq!(accepted, 0);
    // And a Google token is never accepted as ours.
    let res = app
        .http
        .get(app.url("/api/v1/me"))
        .bearer_auth(id_token("x", "x@gmail.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    println!("security item 5: 0 cross-acceptances (Google token as ours, ours as Google's)");
    // Refusals are audited without making the caller wait for the commit: wait for them.
    let db = app.db().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let failed: i64 = db
            .query_one(
                "SELECT count(*) FROM audit_log WHERE action = 'sign_in_failed'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if failed >= total as i64 - 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "failed sign-ins are audited ({failed})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_flood_of_unknown_kids_fetches_the_jwks_once() {
    aisocial::install_crypto_provider();
    let provider = Provider::start().await;
    let http = reqwest::Client::new();
    let verifier = GoogleVerifier::new(
        CLIENT_ID.to_owned(),
        Jwks::new(http, format!("{}/certs", provider.base)),
    );
    let tokens: Vec<String> = (0..10_000)
        .map(|n| {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","kid":"random-{n}"}}"#));
            format!("{header}.e30.c2ln")
        })
        .collect();
    let verifications = tokens.iter().map(|t| verifier.verify(t, None));
    let results = futures_util::future::join_all(verifications).await;
    assert!(results.iter().all(Result::is_err));
    let fetches = provider.state.jwks_fetches.load(Ordering::SeqCst);
    println!(
        "security item 2: {fetches} JWKS fetch(es) during a flood of 10000 tokens with random kids"
    );
    assert_eq!(fetches, 1);
    assert_eq!(verifier.jwks().fetches(), 1);
    // A good token still verifies from the cache, with no further fetch.
    assert!(
        verifier
            .verify(&id_token("a", "a@gmail.com"), None)
            .await
            .is_ok()
    );
    assert_eq!(provider.state.jwks_fetches.load(Ordering::SeqCst), 1);
}

#[actix_web::test]
async fn keys_rotate_and_stale_keys_survive_a_failed_refresh() {
    aisocial::install_crypto_provider();
    let provider = Provider::start().await;
    let floor = Duration::from_millis(200);
    let verifier = GoogleVerifier::new(
        CLIENT_ID.to_owned(),
        Jwks::new(reqwest::Client::new(), format!("{}/certs", provider.base))
            .with_min_refetch(floor),
    );
    assert!(
        verifier
            .verify(&id_token("a", "a@gmail.com"), None)
            .await
            .is_ok()
    );
    // Google rotates to key 2: a token with the new kid triggers one refetch (after the floor).
    provider.state.rotated.store(true, Ordering::SeqCst);
    let new_token = sign(&claims("a", "a@gmail.com"), 2, "test-key-2");
    tokio::time::sleep(floor).await;
    assert!(verifier.verify(&new_token, None).await.is_ok());
    // The JWKS endpoint breaks: the keys we have keep working.
    provider.state.jwks_down.store(true, Ordering::SeqCst);
    tokio::time::sleep(floor).await;
    assert!(
        verifier
            .verify(&sign(&claims("b", "b@gmail.com"), 1, "unknown"), None)
            .await
            .is_err()
    );
    assert!(
        verifier.verify(&new_token, None).await.is_ok(),
        "stale keys still serve"
    );
}

/// Runs `/login`, returning the query Google was sent and the flow cookie.
async fn start_flow(app: &TestApp, http: &reqwest::Client) -> (HashMap<String, String>, String) {
    let res = http
        .get(app.url("/api/v1/auth/google/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap_or_default().to_owned();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let url = url::Url::parse(&location).unwrap();
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    (query, cookie)
}

async fn callback(
    app: &TestApp,
    http: &reqwest::Client,
    cookie: &str,
    code: &str,
    state: &str,
) -> (u16, Value) {
    let mut url = url::Url::parse(&app.url("/api/v1/auth/google/callback")).unwrap();
    url.query_pairs_mut()
        .append_pair("code", code)
        .append_pair("state", state);
    let res = http
        .get(url.as_str())
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

#[actix_web::test]
async fn the_code_flow_uses_pkce_and_single_use_browser_bound_state() {
    let provider = Provider::start().await;
    let app = app_with(&provider, &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let (query, cookie) = start_flow(&app, &http).await;
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43);
    assert_eq!(
        query["redirect_uri"],
        "http://127.0.0.1:9/api/v1/auth/google/callback"
    );
    assert!(query["scope"].contains("openid"));
    provider.approve("code-1", &query, claims("flow-user", "flow@gmail.com"));
    let (status, body) = callback(&app, &http, &cookie, "code-1", &query["state"]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["handle"], "flow");

    let mut rejected = 0;
    let mut attempts = 0;
    // Replaying the same state.
    provider.approve("code-2", &query, claims("flow-user", "flow@gmail.com"));
    let (status, body) = callback(&app, &http, &cookie, "code-2", &query["state"]).await;
    attempts += 1;
    if status == 400 && body["code"] == "invalid_state" {
        rejected += 1;
    }
    // Another browser (no cookie, or someone else's) finishing my flow.
    let (query2, cookie2) = start_flow(&app, &http).await;
    let (query3, _) = start_flow(&app, &http).await;
    provider.approve("code-3", &query3, claims("flow-user", "flow@gmail.com"));
    let (status, body) = callback(&app, &http, &cookie2, "code-3", &query3["state"]).await;
    attempts += 1;
    if status == 400 && body["code"] == "invalid_state" {
        rejected += 1;
    }
    let (status, _) = callback(&app, &http, "", "code-3", &query2["state"]).await;
    attempts += 1;
    if status == 400 {
        rejected += 1;
    }
    // A state that was never issued.
    let (status, _) = callback(&app, &http, &cookie2, "code-3", "made-up").await;
    attempts += 1;
    if status == 400 {
        rejected += 1;
    }
    // A mismatched nonce in the ID token.
    let (query4, cookie4) = start_flow(&app, &http).await;
    let mut wrong_nonce = claims("flow-user", "flow@gmail.com");
    wrong_nonce["nonce"] = json!("not-the-one-we-sent");
    provider.approve("code-4", &query4, wrong_nonce);
    let (status, _) = callback(&app, &http, &cookie4, "code-4", &query4["state"]).await;
    attempts += 1;
    if status == 401 {
        rejected += 1;
    }
    // A code issued under another PKCE challenge (an intercepted code).
    let (query5, cookie5) = start_flow(&app, &http).await;
    let mut other = query5.clone();
    other.insert("code_challenge".into(), "A".repeat(43));
    provider.approve("code-5", &other, claims("flow-user", "flow@gmail.com"));
    let (status, _) = callback(&app, &http, &cookie5, "code-5", &query5["state"]).await;
    attempts += 1;
    if status == 401 {
        rejected += 1;
    }
    println!(
        "security item 4: replayed or mismatched state/nonce/PKCE: {rejected} of {attempts} rejected"
    );
    assert_eq!(rejected, attempts);
}

#[actix_web::test]
async fn google_routes_are_not_found_when_not_configured() {
    let app = spawn_app_with(&[]).await;
    let (status, body) = google_sign_in(&app, "x.y.z").await;
    assert_eq!(status, 404, "{body}");
    let res = app
        .http
        .get(app.url("/api/v1/auth/google/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// Dev login signs in only accounts dev login created: never one that signs in with Google
/// (an admin here), whatever its handle, nor the built-in `ai` account. A dev account named
/// in ADMIN_HANDLES still becomes admin, for local use.
#[actix_web::test]
async fn dev_login_refuses_google_accounts_and_the_ai_account() {
    let provider = Provider::start().await;
    let app = app_with(
        &provider,
        &[
            "--admin-handles=jane_doe,local_admin",
            "--admin-emails=JANE.DOE@gmail.com",
        ],
    )
    .await;
    let (status, body) = google_sign_in(&app, &id_token("sub-1", "Jane.Doe@gmail.com")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["user"]["role"], "admin",
        "ADMIN_EMAILS grants the role"
    );

    let dev = |handle: &'static str| {
        let app = &app;
        async move {
            let res = app
                .http
                .post(app.url("/api/v1/auth/dev"))
                .json(&json!({ "handle": handle }))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or_default())
        }
    };
    let (status, body) = dev("jane_doe").await;
    assert_eq!(status, 403, "a Google account through dev login: {body}");
    assert_eq!(body["code"], "not_a_dev_account", "{body}");
    assert!(body["access_token"].is_null());

    // The `ai` account: its handle is not one a person can type, and were it typed, the
    // account is not a dev account either.
    let (status, body) = dev("ai").await;
    assert_eq!(status, 422, "{body}");
    let db = app.db().await;
    let flags: Vec<(String, bool)> = db
        .query(
            "SELECT handle, dev_account FROM users WHERE handle IN ('ai', 'jane_doe') ORDER BY handle",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        flags,
        vec![("ai".to_owned(), false), ("jane_doe".to_owned(), false)]
    );

    // A handle dev login creates is a dev account: it signs in again, and as admin if named.
    let (status, body) = dev("local_admin").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], "admin", "{body}");
    let (status, _) = dev("local_admin").await;
    assert_eq!(status, 200, "a dev account signs in again");
    let made: bool = db
        .query_one(
            "SELECT dev_account FROM users WHERE handle = 'local_admin'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(made);

    // An account that later links a Google identity stops being reachable by dev login.
    db.execute(
        "UPDATE users SET google_sub = 'sub-linked' WHERE handle = 'local_admin'",
        &[],
    )
    .await
    .unwrap();
    let (status, body) = dev("local_admin").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "not_a_dev_account");
}
