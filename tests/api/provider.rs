//! A local stand-in for Google's identity endpoints: a JWKS server (with the test keys of
//! `tests/fixtures`), an authorization endpoint that answers with what it was asked, and a token
//! endpoint that checks the PKCE verifier and returns an ID token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "test-client.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "test-client-secret";

/// A code the provider will exchange: the PKCE challenge it was issued under and the claims of
/// the ID token it yields.
struct Grant {
    challenge: String,
    claims: Value,
}

#[derive(Default)]
pub struct ProviderState {
    pub jwks_fetches: AtomicUsize,
    /// Serve key 2 instead of key 1 (rotation).
    pub rotated: AtomicBool,
    /// Answer 500 on the JWKS endpoint.
    pub jwks_down: AtomicBool,
    grants: Mutex<HashMap<String, Grant>>,
    /// When set, `/auth` approves at once as a browser would after the user consents:
    /// a redirect back with a code for these claims.
    auto_approve: Mutex<Option<Value>>,
}

pub struct Provider {
    pub base: String,
    pub state: Arc<ProviderState>,
    server: actix_web::dev::ServerHandle,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let server = self.server.clone();
        actix_rt::spawn(async move { server.stop(false).await });
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn jwk(key: &str) -> Value {
    let all: Value = serde_json::from_slice(&fixture("google_test_jwks.json")).unwrap_or_default();
    all[key].clone()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Claims of a valid ID token for `sub`.
pub fn claims(sub: &str, email: &str) -> Value {
    let now = now();
    json!({
        "iss": "https://accounts.google.com",
        "aud": CLIENT_ID,
        "azp": CLIENT_ID,
        "sub": sub,
        "email": email,
        "email_verified": true,
        "name": "Test Person",
        "iat": now,
        "exp": now + 3600,
    })
}

/// Signs `claims` with test key `n` (1 or 2) under `kid`.
pub fn sign(claims: &Value, key: u8, kid: &str) -> String {
    let der = fixture(&format!("google_test_key_{key}.der"));
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(&der)).expect("signing")
}

/// A valid token signed with key 1.
pub fn id_token(sub: &str, email: &str) -> String {
    sign(&claims(sub, email), 1, "test-key-1")
}

impl Provider {
    pub async fn start() -> Self {
        let state = Arc::new(ProviderState::default());
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/certs", web::get().to(certs))
                .route("/auth", web::get().to(authorize))
                .route("/token", web::post().to(token))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Provider {
            base: format!("http://{addr}"),
            state,
            server: handle,
        }
    }

    /// Flags for `spawn_app_with` pointing the server at this provider.
    pub fn flags(&self) -> Vec<String> {
        vec![
            format!("--google-client-id={CLIENT_ID}"),
            format!("--google-client-secret={CLIENT_SECRET}"),
            "--google-redirect-url=http://127.0.0.1:9/api/v1/auth/google/callback".to_owned(),
            format!("--google-jwks-url={}/certs", self.base),
            format!("--google-auth-url={}/auth", self.base),
            format!("--google-token-url={}/token", self.base),
        ]
    }

    /// Every browser sent to `/auth` from now on is approved at once as this user.
    #[allow(
        dead_code,
        reason = "used by the browser tests, which include this module"
    )]
    pub fn approve_every_sign_in_as(&self, claims: Value) {
        *self
            .state
            .auto_approve
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(claims);
    }

    /// The user approves: the provider issues `code` for the flow described by `authorize`
    /// (the query of the redirect to /auth), yielding an ID token with these claims (the
    /// flow's nonce is added unless `claims` has one).
    pub fn approve(&self, code: &str, authorize: &HashMap<String, String>, mut claims: Value) {
        if claims.get("nonce").is_none() {
            claims["nonce"] = json!(authorize.get("nonce").cloned().unwrap_or_default());
        }
        let grant = Grant {
            challenge: authorize.get("code_challenge").cloned().unwrap_or_default(),
            claims,
        };
        self.state
            .grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(code.to_owned(), grant);
    }
}

async fn certs(state: web::Data<ProviderState>) -> HttpResponse {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.jwks_down.load(Ordering::SeqCst) {
        return HttpResponse::InternalServerError().finish();
    }
    let key = if state.rotated.load(Ordering::SeqCst) {
        "key2"
    } else {
        "key1"
    };
    HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=3600, must-revalidate"))
        .json(json!({ "keys": [jwk(key)] }))
}

async fn authorize(
    state: web::Data<ProviderState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let query = query.into_inner();
    let approve_as = state
        .auto_approve
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(mut claims) = approve_as else {
        return HttpResponse::Ok().json(query);
    };
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    claims["nonce"] = json!(query.get("nonce").cloned().unwrap_or_default());
    state
        .grants
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            code.clone(),
            Grant {
                challenge: query.get("code_challenge").cloned().unwrap_or_default(),
                claims,
            },
        );
    let mut back = reqwest::Url::parse(&query.get("redirect_uri").cloned().unwrap_or_default())
        .expect("redirect_uri");
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &query.get("state").cloned().unwrap_or_default());
    HttpResponse::Found()
        .insert_header(("location", back.as_str()))
        .finish()
}

async fn token(
    state: web::Data<ProviderState>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let form = form.into_inner();
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    if field("grant_type") != "authorization_code"
        || field("client_id") != CLIENT_ID
        || field("client_secret") != CLIENT_SECRET
    {
        return HttpResponse::BadRequest().json(json!({"error": "invalid_client"}));
    }
    let grant = state
        .grants
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&field("code"));
    let Some(grant) = grant else {
        return HttpResponse::BadRequest().json(json!({"error": "invalid_grant"}));
    };
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if computed != grant.challenge {
        return HttpResponse::BadRequest()
            .json(json!({"error": "invalid_grant", "error_description": "PKCE"}));
    }
    HttpResponse::Ok().json(json!({
        "access_token": "ya29.test",
        "token_type": "Bearer",
        "expires_in": 3599,
        "id_token": sign(&grant.claims, 1, "test-key-1"),
    }))
}
