//! `POST /api/v1/auth/refresh` (rotate the pair; reuse of an old token revokes the session, a
//! retry with the same `Idempotency-Key` within the grace gets the same new token) and
//! `POST /api/v1/auth/logout` (revoke the session and close its websockets).

use actix_web::{HttpRequest, HttpResponse, web};
use aisocial_actors::db_writer::{RevokeFamily, RotateRefresh, WriteError};
use serde::Deserialize;

use super::Writer;
use super::tokens_issued;
use crate::auth::Accounts;
use crate::auth::AuthUser;
use crate::auth::opaque;
use crate::auth::pair::{REFRESH_PREFIX, TokenPair, token_pair};
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::revocation::Revocations;
use crate::routes::body::JsonBody;
use crate::routes::posts::idempotency_key;
use crate::routes::problems;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    summary = "Rotate the token pair",
    params((
        "Idempotency-Key" = Option<String>, Header,
        description = "the same token with the same key again, within \
                       REFRESH_RETRY_GRACE_SECS and before the new token is used, gets the same \
                       new token (a retry after a lost answer) instead of counting as reuse",
        pattern = "^[\\x21-\\x7e]{1,255}$"
    )),
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401,
         description = "unknown, expired, revoked or reused refresh token \
                        (reuse revokes the session)",
         body = Problem, content_type = PROBLEM_JSON),
        problems::Malformed, problems::JsonBody, problems::Invalid, problems::Busy,
    )
)]
pub async fn refresh(
    accounts: web::Data<Accounts>,
    writer: Writer,
    revocations: web::Data<Revocations>,
    req: HttpRequest,
    body: JsonBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency_key(&req)?;
    if !opaque::well_formed(&body.refresh_token, REFRESH_PREFIX) {
        return Err(ApiError::Unauthorized("unknown refresh token".into()));
    }
    // With a key, the new token is derived from the presented one and the key, so the same
    // request again names the same new token and is recognised as a retry, not as reuse.
    let successors = &accounts.refresh_successors;
    let (next, retry_within) = match key {
        Some(key) => (
            successors.successor(&body.refresh_token, &key),
            successors.retry_within(),
        ),
        None => successors.keyless(&body.refresh_token),
    };
    let rotated = writer
        .send(RotateRefresh {
            presented: opaque::hash(&body.refresh_token),
            next: next.hash,
            retry_within,
            grants: std::sync::Arc::clone(&accounts.grants),
        })
        .await?;
    match rotated {
        Ok(signed_in) => Ok(tokens_issued(token_pair(&accounts, signed_in, next)?)),
        Err(WriteError::RefreshReused { user, family }) => {
            tracing::warn!(%user, family, "a rotated refresh token was reused; session revoked");
            revocations.revoke(user, family).await;
            Err(WriteError::RefreshReused { user, family }.into())
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    summary = "Revoke this sign-in session and close its websockets",
    responses(
        (status = 204, description = "revoked"),
        problems::Bearer, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn logout(
    writer: Writer,
    revocations: web::Data<Revocations>,
    me: AuthUser,
) -> Result<HttpResponse, ApiError> {
    writer
        .send(RevokeFamily {
            user: me.id,
            family: me.family,
        })
        .await??;
    revocations.revoke(me.id, me.family).await;
    Ok(HttpResponse::NoContent().finish())
}
