//! Sign in with Google: `POST /api/v1/auth/google` with an ID token, and the browser's
//! authorization-code flow with PKCE (`/login` → Google → `/callback`). `state` and `nonce` are
//! single-use (kept in Redis for 10 minutes, taken with GETDEL) and bound to the browser that
//! started the flow by a short-lived HttpOnly cookie.

use std::sync::Arc;
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aisocial_actors::db_writer::{RecordAudit, SignInGoogle};
use aisocial_actors::error_chain::Chain;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Writer;
use super::tokens_issued;
use crate::auth::google::{GoogleIdentity, handle_hint};
use crate::auth::opaque;
use crate::auth::pair::{TokenPair, new_refresh, token_pair};
use crate::auth::{Accounts, Google};
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::redis_store::redis_error;
use crate::redis_store::{self, Keyspace};
use crate::routes::body::JsonBody;
use crate::routes::problems;

const FLOW_COOKIE: &str = "aisocial_oauth";
const FLOW_TTL_SECS: u64 = 600;
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

fn google(accounts: &Accounts) -> Result<&Google, ApiError> {
    accounts
        .google
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("Google sign-in is not configured".into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdTokenSignIn {
    id_token: String,
}

/// Verifies `id_token` (with `nonce` in the code flow) and signs the user in.
async fn sign_in(
    accounts: &Accounts,
    writer: &Writer,
    google: &Google,
    id_token: &str,
    nonce: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let identity: GoogleIdentity = match google.verifier.verify(id_token, nonce).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::info!(error = %e, "a Google ID token was refused");
            let detail = serde_json::json!({"method": "google", "reason": e.to_string()});
            writer.do_send(RecordAudit {
                actor: None,
                action: "sign_in_failed",
                detail,
            });
            return Err(ApiError::Unauthorized(
                "the Google ID token is not valid".into(),
            ));
        }
    };
    let (refresh, new) = new_refresh(accounts);
    let hint = handle_hint(&identity);
    let signed_in = writer
        .send(SignInGoogle {
            display_name: identity.name.clone().unwrap_or_else(|| hint.clone()),
            sub: identity.sub,
            email: identity.trusted_email,
            handle_hint: hint,
            refresh: new,
            grants: Arc::clone(&accounts.grants),
        })
        .await??;
    Ok(tokens_issued(token_pair(accounts, signed_in, refresh)?))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/google",
    tag = "auth",
    summary = "Sign in with a Google ID token",
    request_body = IdTokenSignIn,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "the ID token is not valid", body = Problem,
         content_type = PROBLEM_JSON),
        (status = 403, description = "`account_suspended`: the account is suspended",
         body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "Google sign-in is not configured", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Malformed, problems::JsonBody, problems::Invalid, problems::Busy,
    )
)]
pub async fn sign_in_with_id_token(
    accounts: web::Data<Accounts>,
    writer: Writer,
    body: JsonBody<IdTokenSignIn>,
) -> Result<HttpResponse, ApiError> {
    let google = google(&accounts)?;
    sign_in(&accounts, &writer, google, &body.id_token, None).await
}

/// What the server remembers about a flow between `/login` and `/callback`.
#[derive(Serialize, Deserialize)]
struct PendingFlow {
    nonce: String,
    verifier: String,
    /// SHA-256 of the browser's cookie value, hex.
    browser: String,
}

fn flow_key(keys: &Keyspace, flow_state: &str) -> String {
    keys.key(&format!("oauth:{}", hex::encode(opaque::hash(flow_state))))
}

fn flow_cookie(value: String, secure: bool, max_age: time::Duration) -> Cookie<'static> {
    Cookie::build(FLOW_COOKIE, value)
        .path("/api/v1/auth/google")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(max_age)
        .finish()
}

fn code_flow(google: &Google) -> Result<(&str, &str), ApiError> {
    match (
        &google.settings.redirect_url,
        &google.settings.client_secret,
    ) {
        (Some(redirect), Some(secret)) => Ok((redirect.as_str(), secret.expose())),
        _ => Err(ApiError::NotFound(
            "the browser sign-in flow is not configured (GOOGLE_REDIRECT_URL)".into(),
        )),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/google/login",
    tag = "auth",
    summary = "Start the browser sign-in flow (redirects to Google)",
    responses(
        (status = 302,
         description = "redirect to Google with PKCE, state and nonce; sets the flow cookie"),
        problems::CodeFlowOff, problems::Busy,
    )
)]
pub async fn login(
    accounts: web::Data<Accounts>,
    keys: web::Data<Keyspace>,
) -> Result<HttpResponse, ApiError> {
    let google = google(&accounts)?;
    let (redirect_url, _) = code_flow(google)?;
    let flow_state = opaque::generate("");
    let nonce = opaque::generate("");
    let verifier = opaque::generate("");
    let browser = opaque::generate("");
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.text.as_bytes()));
    let pending = PendingFlow {
        nonce: nonce.text.clone(),
        verifier: verifier.text,
        browser: hex::encode(browser.hash),
    };
    let value = serde_json::to_string(&pending).map_err(|e| ApiError::Internal(e.into()))?;
    let mut store = redis::cmd("SET");
    store
        .arg(flow_key(&keys, &flow_state.text))
        .arg(value)
        .arg("EX")
        .arg(FLOW_TTL_SECS);
    redis_store::run::<()>(keys.conn(), store, REDIS_TIMEOUT)
        .await
        .map_err(redis_error)?;
    let mut location =
        url::Url::parse(&google.settings.auth_url).map_err(|e| ApiError::Internal(e.into()))?;
    location
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &google.settings.client_id)
        .append_pair("redirect_uri", redirect_url)
        .append_pair("scope", "openid email profile")
        .append_pair("state", &flow_state.text)
        .append_pair("nonce", &nonce.text)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let secure = redirect_url.starts_with("https://");
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, location.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(flow_cookie(
            browser.text,
            secure,
            time::Duration::seconds(FLOW_TTL_SECS as i64),
        ))
        .finish())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct TokenEndpointResponse {
    id_token: Option<String>,
}

fn invalid_state() -> ApiError {
    ApiError::bad_request(
        "invalid_state",
        "this sign-in link is unknown, expired, already used, or from another browser; start again",
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/google/callback",
    tag = "auth",
    summary = "Finish the browser sign-in flow",
    params(CallbackQuery),
    responses(
        (status = 200, body = TokenPair),
        (status = 400, description = "unknown, used or foreign state; Google declined",
         body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "the code or ID token was refused", body = Problem,
         content_type = PROBLEM_JSON),
        (status = 403, description = "`account_suspended`: the account is suspended",
         body = Problem, content_type = PROBLEM_JSON),
        problems::CodeFlowOff, problems::Busy,
    )
)]
pub async fn callback(
    accounts: web::Data<Accounts>,
    writer: Writer,
    keys: web::Data<Keyspace>,
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let google = google(&accounts)?;
    let (redirect_url, secret) = code_flow(google)?;
    let flow_state = query
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 128);
    let Some(flow_state) = flow_state else {
        return Err(invalid_state());
    };
    // Single use: the flow is taken out whatever happens next.
    let mut take = redis::cmd("GETDEL");
    take.arg(flow_key(&keys, flow_state));
    let pending = redis_store::run::<Option<String>>(keys.conn(), take, REDIS_TIMEOUT)
        .await
        .map_err(redis_error)?
        .ok_or_else(invalid_state)?;
    let pending: PendingFlow = serde_json::from_str(&pending).map_err(|_| invalid_state())?;
    let browser = req
        .cookie(FLOW_COOKIE)
        .map(|c| hex::encode(opaque::hash(c.value())));
    if browser.as_deref() != Some(pending.browser.as_str()) {
        return Err(invalid_state());
    }
    if let Some(error) = &query.error {
        let error: String = error.chars().take(100).collect();
        return Err(ApiError::bad_request(
            "google_denied",
            format!("Google did not sign you in ({error})"),
        ));
    }
    let code = query
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| ApiError::bad_request("invalid_code", "the callback carries no code"))?;
    let exchange = google
        .http
        .post(&google.settings.token_url)
        .timeout(EXCHANGE_TIMEOUT)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_url),
            ("client_id", google.settings.client_id.as_str()),
            ("client_secret", secret),
            ("code_verifier", pending.verifier.as_str()),
        ])
        .send()
        .await
        .map_err(|e| ApiError::dependency("Google's token endpoint", e, 5))?;
    if !exchange.status().is_success() {
        let status = exchange.status();
        return Err(ApiError::Unauthorized(format!(
            "Google refused the sign-in code ({status})"
        )));
    }
    let tokens: TokenEndpointResponse = exchange.json().await.map_err(|e| {
        tracing::info!(error = %Chain(&e), "Google's token response is unreadable");
        ApiError::Unauthorized("Google's token response is unreadable".into())
    })?;
    let id_token = tokens
        .id_token
        .ok_or_else(|| ApiError::Unauthorized("Google returned no ID token".into()))?;
    let mut response = sign_in(&accounts, &writer, google, &id_token, Some(&pending.nonce)).await?;
    let secure = redirect_url.starts_with("https://");
    let _ = response.add_cookie(&flow_cookie(String::new(), secure, time::Duration::ZERO));
    Ok(response)
}

/// The ways to sign in that this node offers, for a client deciding what buttons to show.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SignInMethods {
    /// `POST /api/v1/auth/dev` is on (`AUTH_DEV_LOGIN=true`).
    dev: bool,
    /// `POST /api/v1/auth/google` takes Google ID tokens.
    google_id_token: bool,
    /// The browser flow at `GET /api/v1/auth/google/login` is configured.
    google_browser: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/methods",
    tag = "auth",
    summary = "Which sign-in methods this node offers",
    responses((status = 200, body = SignInMethods))
)]
pub async fn methods(accounts: web::Data<Accounts>) -> HttpResponse {
    HttpResponse::Ok().json(SignInMethods {
        dev: accounts.dev_login,
        google_id_token: accounts.google.is_some(),
        google_browser: accounts
            .google
            .as_ref()
            .is_some_and(|g| code_flow(g).is_ok()),
    })
}
