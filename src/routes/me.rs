//! `GET /api/v1/me` and `PATCH /api/v1/me`: the caller's own profile.

use actix_web::{HttpResponse, web};
use aisocial_actors::db_writer::UpdateProfile;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Writer;
use crate::auth::AuthUser;
use crate::cache::Cache;
use crate::problem::ApiError;
use crate::replicas::ReadRouting;
use crate::routes::body::JsonBody;
use crate::routes::problems;

pub const MAX_DISPLAY_NAME: usize = 100;
pub const MAX_BIO: usize = 500;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    id: i64,
    handle: String,
    display_name: String,
    bio: String,
    role: String,
    email: Option<String>,
    followers_count: i64,
    following_count: i64,
    posts_count: i64,
    created_at: DateTime<Utc>,
}

async fn load(reads: &ReadRouting, me: &AuthUser) -> Result<Me, ApiError> {
    let row = crate::reads::query(
        reads,
        "SELECT id, handle, display_name, bio, role, email, followers_count, \
         following_count, posts_count, created_at FROM users WHERE id = $1",
        &[&me.id.0],
    )
    .await?
    .into_iter()
    .next()
    .ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    let field = |e: tokio_postgres::Error| ApiError::Internal(e.into());
    Ok(Me {
        id: row.try_get(0).map_err(field)?,
        handle: row.try_get(1).map_err(field)?,
        display_name: row.try_get(2).map_err(field)?,
        bio: row.try_get(3).map_err(field)?,
        role: row.try_get(4).map_err(field)?,
        email: row.try_get(5).map_err(field)?,
        followers_count: row.try_get(6).map_err(field)?,
        following_count: row.try_get(7).map_err(field)?,
        posts_count: row.try_get(8).map_err(field)?,
        created_at: row.try_get(9).map_err(field)?,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "users",
    summary = "The caller's own profile",
    responses(
        (status = 200, body = Me),
        problems::Bearer, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn get_me(reads: web::Data<ReadRouting>, me: AuthUser) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(load(&reads, &me).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// One line, 1 to 100 characters after trimming, no control characters.
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 1,
        max_length = 100
    )]
    display_name: Option<String>,
    /// Up to 500 characters; line breaks allowed, no other control characters.
    #[schema(
        pattern = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$",
        max_length = 500
    )]
    bio: Option<String>,
}

fn clean(
    field: &'static str,
    value: Option<String>,
    max: usize,
    min: usize,
) -> Result<Option<String>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let value = value.trim().to_owned();
    let chars = value.chars().count();
    if chars < min || chars > max {
        return Err(ApiError::validation(
            field,
            format!("{field} is {min} to {max} characters"),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::validation(
            field,
            format!("{field} cannot contain control characters"),
        ));
    }
    Ok(Some(value))
}

#[utoipa::path(
    patch,
    path = "/api/v1/me",
    tag = "users",
    summary = "Change the caller's display name or bio",
    request_body = ProfilePatch,
    responses(
        (status = 200, body = Me),
        problems::Bearer, problems::Malformed, problems::JsonBody, problems::Invalid,
        problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn patch_me(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    cache: web::Data<Cache>,
    me: AuthUser,
    body: JsonBody<ProfilePatch>,
) -> Result<HttpResponse, ApiError> {
    let ProfilePatch { display_name, bio } = body.into_inner();
    let display_name = clean("display_name", display_name, MAX_DISPLAY_NAME, 1)?;
    if display_name.as_deref().is_some_and(|n| n.contains('\n')) {
        return Err(ApiError::validation(
            "display_name",
            "display_name is one line",
        ));
    }
    let bio = clean("bio", bio, MAX_BIO, 0)?;
    writer
        .send(UpdateProfile {
            user: me.id,
            display_name,
            bio,
        })
        .await??;
    reads.wrote(me.id).await;
    cache.invalidate_profiles(&[&me.handle]).await;
    Ok(HttpResponse::Ok().json(load(&reads, &me).await?))
}
