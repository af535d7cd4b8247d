//! `POST /api/v1/auth/refresh` (rotate the pair; reuse of an old token revokes the session) and
//! `POST /api/v1/auth/logout` (revoke the session and close its websockets).

use actix_web::{HttpResponse, web};
use aisocial_actors::db_writer::{RevokeFamily, RotateRefresh, WriteError};
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::auth::opaque;
use crate::auth::pair::{REFRESH_PREFIX, token_pair};
use crate::problem::ApiError;
use crate::routes::body::JsonBody;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

pub async fn refresh(
    state: web::Data<AppState>,
    body: JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    if !opaque::well_formed(&body.refresh_token, REFRESH_PREFIX) {
        return Err(ApiError::Unauthorized("unknown refresh token".into()));
    }
    let next = opaque::generate(REFRESH_PREFIX);
    let rotated = state
        .writer
        .send(RotateRefresh {
            presented: opaque::hash(&body.refresh_token),
            next: next.hash,
        })
        .await?;
    match rotated {
        Ok(signed_in) => Ok(HttpResponse::Ok().json(token_pair(&state, signed_in, next)?)),
        Err(WriteError::RefreshReused { user, family }) => {
            tracing::warn!(%user, family, "a rotated refresh token was reused; session revoked");
            state.revocations.revoke(user, family).await;
            Err(WriteError::RefreshReused { user, family }.into())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(state: web::Data<AppState>, me: AuthUser) -> Result<HttpResponse, ApiError> {
    state
        .writer
        .send(RevokeFamily {
            user: me.id,
            family: me.family,
        })
        .await??;
    state.revocations.revoke(me.id, me.family).await;
    Ok(HttpResponse::NoContent().finish())
}
