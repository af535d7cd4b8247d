//! `PUT/DELETE /api/v1/users/{handle}/follow`: follow and unfollow, idempotent, 204.

use actix_web::{HttpResponse, web};
use aisocial_actors::db_writer::{Follow, Unfollow};
use aisocial_actors::ids::Handle;

use super::Writer;
use crate::auth::AuthUser;
use crate::cache::Cache;
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::replicas::ReadRouting;
use crate::routes::problems;

/// After a committed follow change: both cached profiles (their counts) are dropped. (Brokers
/// learn of the change from the log, in order.)
async fn follow_changed(reads: &ReadRouting, cache: &Cache, me: &AuthUser, followee: &str) {
    reads.wrote(me.id).await;
    cache.invalidate_profiles(&[&me.handle, followee]).await;
}

fn target(raw: &str) -> Result<Handle, ApiError> {
    // A string that cannot be a handle names no user.
    Handle::parse(raw).map_err(|_| ApiError::NotFound("user not found".into()))
}

#[utoipa::path(
    put,
    path = "/api/v1/users/{handle}/follow",
    tag = "users",
    summary = "Follow a user (idempotent)",
    params(("handle" = String, Path, description = "a user handle")),
    responses(
        (status = 204, description = "following"),
        (status = 409, description = "you cannot follow yourself", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Bearer, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn follow_user(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    cache: web::Data<Cache>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let followee = target(&path)?;
    let followee_handle = followee.as_str().to_owned();
    writer
        .send(Follow {
            follower: me.id,
            followee,
        })
        .await??;
    follow_changed(&reads, &cache, &me, &followee_handle).await;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{handle}/follow",
    tag = "users",
    summary = "Unfollow a user (idempotent)",
    params(("handle" = String, Path, description = "a user handle")),
    responses(
        (status = 204, description = "not following"),
        (status = 409, description = "you cannot unfollow yourself", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Bearer, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn unfollow_user(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    cache: web::Data<Cache>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let followee = target(&path)?;
    let followee_handle = followee.as_str().to_owned();
    writer
        .send(Unfollow {
            follower: me.id,
            followee,
        })
        .await??;
    follow_changed(&reads, &cache, &me, &followee_handle).await;
    Ok(HttpResponse::NoContent().finish())
}
