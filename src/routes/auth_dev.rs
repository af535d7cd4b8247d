//! `POST /api/v1/auth/dev`: sign in by handle, only when `AUTH_DEV_LOGIN=true`.

use actix_web::{HttpResponse, web};
use aisocial_actors::db_writer::SignInDev;
use aisocial_actors::ids::Handle;
use aisocial_actors::model::User;
use serde::{Deserialize, Serialize};

use crate::problem::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSignIn {
    handle: String,
}

#[derive(Serialize)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    user: User,
}

pub async fn sign_in_dev(
    state: web::Data<AppState>,
    body: web::Json<DevSignIn>,
) -> Result<HttpResponse, ApiError> {
    if !state.dev_login {
        return Err(ApiError::NotFound("no such resource".into()));
    }
    let handle =
        Handle::parse(&body.handle).map_err(|e| ApiError::validation("handle", e.to_string()))?;
    let user = state.writer.send(SignInDev { handle }).await??;
    let access_token = state
        .tokens
        .issue(&user)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl().as_secs(),
        user,
    }))
}
