//! `PUT/DELETE /api/v1/users/{handle}/follow`: follow and unfollow, idempotent, 204.

use actix_web::{HttpResponse, web};
use aisocial_actors::db_writer::{Follow, Unfollow};
use aisocial_actors::ids::Handle;

use crate::auth::AuthUser;
use crate::cache;
use crate::problem::ApiError;
use crate::state::AppState;

fn target(raw: &str) -> Result<Handle, ApiError> {
    // A string that cannot be a handle names no user.
    Handle::parse(raw).map_err(|_| ApiError::NotFound("user not found".into()))
}

pub async fn follow_user(
    state: web::Data<AppState>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let followee = target(&path)?;
    let followee_handle = followee.as_str().to_owned();
    state
        .writer
        .send(Follow {
            follower: me.id,
            followee,
        })
        .await??;
    cache::invalidate_profiles(&state, &[&me.handle, &followee_handle]).await;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn unfollow_user(
    state: web::Data<AppState>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let followee = target(&path)?;
    let followee_handle = followee.as_str().to_owned();
    state
        .writer
        .send(Unfollow {
            follower: me.id,
            followee,
        })
        .await??;
    cache::invalidate_profiles(&state, &[&me.handle, &followee_handle]).await;
    Ok(HttpResponse::NoContent().finish())
}
