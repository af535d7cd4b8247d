//! `POST /api/v1/auth/dev`: sign in by handle, only when `AUTH_DEV_LOGIN=true` (which start-up
//! allows only on a loopback address unless overridden), and only into accounts dev login
//! created.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use aisocial_actors::db_writer::{SignInDev, WriteError};
use aisocial_actors::ids::Handle;
use serde::Deserialize;

use super::Writer;
use super::tokens_issued;
use crate::auth::Accounts;
use crate::auth::pair::{TokenPair, new_refresh, token_pair};
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::routes::body::JsonBody;
use crate::routes::problems;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevSignIn {
    #[schema(pattern = "^[a-z0-9_]{3,30}$", min_length = 3, max_length = 30)]
    handle: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/dev",
    tag = "auth",
    summary = "Sign in by handle (only with AUTH_DEV_LOGIN=true)",
    request_body = DevSignIn,
    responses(
        (status = 200, body = TokenPair),
        (status = 403, description = "`not_a_dev_account`: the handle belongs to an account \
         dev login did not create (one that signs in with Google, or a built-in one); \
         `account_suspended`: the account is suspended",
         body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "dev login is off", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Malformed, problems::JsonBody, problems::Invalid, problems::Busy,
    )
)]
pub async fn sign_in_dev(
    accounts: web::Data<Accounts>,
    writer: Writer,
    body: JsonBody<DevSignIn>,
) -> Result<HttpResponse, ApiError> {
    if !accounts.dev_login {
        return Err(ApiError::NotFound("no such resource".into()));
    }
    let handle =
        Handle::parse(&body.handle).map_err(|e| ApiError::validation("handle", e.to_string()))?;
    let (refresh, new) = new_refresh(&accounts);
    let signed_in = writer
        .send(SignInDev {
            handle,
            refresh: new,
            grants: Arc::clone(&accounts.grants),
        })
        .await?
        .map_err(|e| match e {
            WriteError::Forbidden(why) => ApiError::Denied {
                code: "not_a_dev_account",
                detail: why.into(),
            },
            e => e.into(),
        })?;
    Ok(tokens_issued(token_pair(&accounts, signed_in, refresh)?))
}
