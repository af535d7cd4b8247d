//! `POST /api/v1/auth/dev`: sign in by handle, only when `AUTH_DEV_LOGIN=true`.

use actix_web::{HttpResponse, web};
use aisocial_actors::db_writer::SignInDev;
use aisocial_actors::ids::Handle;
use serde::Deserialize;

use crate::auth::pair::{new_refresh, token_pair};
use crate::problem::ApiError;
use crate::routes::body::JsonBody;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSignIn {
    handle: String,
}

pub async fn sign_in_dev(
    state: web::Data<AppState>,
    body: JsonBody<DevSignIn>,
) -> Result<HttpResponse, ApiError> {
    if !state.dev_login {
        return Err(ApiError::NotFound("no such resource".into()));
    }
    let handle =
        Handle::parse(&body.handle).map_err(|e| ApiError::validation("handle", e.to_string()))?;
    let (refresh, new) = new_refresh(&state);
    let signed_in = state
        .writer
        .send(SignInDev {
            handle,
            refresh: new,
            admin_handles: state.admin_handles.clone(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(token_pair(&state, signed_in, refresh)?))
}
