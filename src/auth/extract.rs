//! The `AuthUser` extractor: a route that takes one requires a valid, unrevoked access token in
//! `Authorization: Bearer …`, and counts against the caller's rate limit.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use aisocial_actors::ids::UserId;
use aisocial_actors::model::Role;
use futures_util::future::LocalBoxFuture;

use crate::problem::ApiError;
use crate::state::AppState;

/// The verified caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub handle: String,
    pub role: Role,
    /// The sign-in session (refresh-token family) of the token.
    pub family: i64,
}

/// The caller, who must also be an admin (403 otherwise).
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

/// The token in an `Authorization: Bearer …` header, if there is one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    bearer_in(req.headers())
}

/// The token in these headers' `Authorization: Bearer …`, if there is one.
pub fn bearer_in(headers: &header::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

pub fn app_state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))
}

/// Checks the bearer token alone (signature, claims, revocation); no rate limit.
pub fn verify_bearer(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    verify_bearer_in(app_state(req)?, req.headers())
}

/// Checks the bearer token of these headers (signature, claims, revocation); no rate limit.
pub fn verify_bearer_in(
    state: &AppState,
    headers: &header::HeaderMap,
) -> Result<AuthUser, ApiError> {
    let token = bearer_in(headers).ok_or_else(|| {
        ApiError::Unauthorized("send Authorization: Bearer <access token>".into())
    })?;
    let claims = state.tokens.verify(token).map_err(|e| {
        tracing::debug!(error = %e, "access token refused");
        ApiError::Unauthorized("the access token is invalid or expired".into())
    })?;
    if state.revocations.is_revoked(claims.sid) {
        return Err(ApiError::Unauthorized(
            "this sign-in session was revoked; sign in again".into(),
        ));
    }
    let id = claims
        .user_id()
        .ok_or_else(|| ApiError::Unauthorized("the access token is invalid".into()))?;
    Ok(AuthUser {
        id,
        handle: claims.handle,
        role: claims.role,
        family: claims.sid,
    })
}

/// Counts a request against the user's limit.
pub async fn charge_user(state: &AppState, user: &AuthUser) -> Result<(), ApiError> {
    let limit = state.rate_limits.user_per_min;
    let decision = state
        .rate_limiter
        .check("user", &user.id.to_string(), limit);
    if decision.allowed {
        Ok(())
    } else {
        Err(ApiError::RateLimited {
            retry_after_secs: decision.reset_secs,
            limit,
        })
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let user = verify_bearer(&req)?;
            tracing::Span::current().record("user_id", user.id.0);
            charge_user(app_state(&req)?, &user).await?;
            Ok(user)
        })
    }
}

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload);
        Box::pin(async move {
            let user = user.await?;
            if user.role == Role::Admin {
                Ok(AdminUser(user))
            } else {
                Err(ApiError::Forbidden("this route is for admins".into()))
            }
        })
    }
}
