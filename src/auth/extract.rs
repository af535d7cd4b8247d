//! The `AuthUser` extractor: a route that takes one requires `Authorization: Bearer <token>`.

use std::future::{Ready, ready};

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use aisocial_actors::ids::UserId;
use aisocial_actors::model::Role;

use crate::problem::ApiError;
use crate::state::AppState;

/// The verified caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub handle: String,
    pub role: Role,
}

/// The token in an `Authorization: Bearer …` header, if there is one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))?;
    let token = bearer_token(req).ok_or_else(|| {
        ApiError::Unauthorized("send Authorization: Bearer <access token>".into())
    })?;
    let claims = state.tokens.verify(token).map_err(|e| {
        tracing::debug!(error = %e, "access token refused");
        ApiError::Unauthorized("the access token is invalid or expired".into())
    })?;
    let id = claims
        .user_id()
        .ok_or_else(|| ApiError::Unauthorized("the access token is invalid".into()))?;
    Ok(AuthUser {
        id,
        handle: claims.handle,
        role: claims.role,
    })
}

impl AuthUser {
    /// Authenticates from the request head alone (for handlers that cannot take an extractor).
    pub fn extract_from(req: &HttpRequest) -> Result<Self, ApiError> {
        authenticate(req)
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}
