//! `PUT/DELETE /api/v1/users/{handle}/follow`: follow and unfollow, idempotent, 204.

use actix_web::{HttpResponse, web};
use aisocial_actors::db_writer::{Follow, Unfollow};

use super::Writer;
use super::users::path_handle;
use crate::auth::AuthUser;
use crate::cache::Cache;
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::replicas::ReadRouting;
use crate::routes::problems;

/// Both routes: `me` follows (`follow`) or stops following the user `raw` names. After the
/// committed change both cached profiles (their counts) are dropped. (Brokers learn of the
/// change from the log, in order.)
async fn set_following(
    writer: &Writer,
    reads: &ReadRouting,
    cache: &Cache,
    me: &AuthUser,
    raw: &str,
    follow: bool,
) -> Result<HttpResponse, ApiError> {
    let followee = path_handle(raw)?;
    let followee_handle = followee.as_str().to_owned();
    let follower = me.id;
    if follow {
        writer.send(Follow { follower, followee }).await??;
    } else {
        writer.send(Unfollow { follower, followee }).await??;
    }
    reads.wrote(me.id).await;
    cache
        .invalidate_profiles(&[&me.handle, &followee_handle])
        .await;
    Ok(HttpResponse::NoContent().finish())
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
        problems::Bearer, problems::Blocked, problems::Missing, problems::Busy,
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
    set_following(&writer, &reads, &cache, &me, &path, true).await
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
    set_following(&writer, &reads, &cache, &me, &path, false).await
}
