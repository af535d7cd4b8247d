//! `GET /api/v1/users/{handle}` (profile with counts, cached), and its `followers`,
//! `following` and `posts` lists.

use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use aisocial_actors::ids::{Handle, UserId};
use aisocial_actors::model::Author;
use aisocial_actors::store::POST_COLUMNS;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::cache::{self, Cache};
use crate::cursor::{Order, Page, PageQuery};
use crate::problem::ApiError;
use crate::reads::{PostView, post_page, reader_for, rows_to};
use crate::replicas::{ReadRouting, Reader};
use crate::routes::problems;

/// A public profile.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Profile {
    pub id: i64,
    pub handle: String,
    pub display_name: String,
    pub bio: String,
    pub role: String,
    pub followers_count: i64,
    pub following_count: i64,
    pub posts_count: i64,
    pub created_at: DateTime<Utc>,
}

fn no_user() -> ApiError {
    ApiError::NotFound("user not found".into())
}

/// A path's handle; a string that cannot be a handle names no user.
pub fn path_handle(raw: &str) -> Result<Handle, ApiError> {
    Handle::parse(raw).map_err(|_| no_user())
}

/// A profile from the cache, else through `reader`. A reader bound to the primary by its own
/// recent write skips the cache (another reader may have filled it from a replica that had not
/// replayed that write); a profile read from a replica is cached only for about the lag bound.
async fn load_profile(
    cache: &Cache,
    reader: &Reader<'_>,
    handle: &Handle,
) -> Result<Profile, ApiError> {
    let key = cache.profile_key(handle.as_str());
    if !reader.needs_own_writes()
        && let Some(profile) = cache.get::<Profile>(&key).await
    {
        return Ok(profile);
    }
    let rows = reader
        .query(
            "SELECT id, handle, display_name, bio, role, followers_count, following_count, \
             posts_count, created_at FROM users WHERE handle = $1 AND disabled_at IS NULL",
            &[&handle.as_str()],
        )
        .await?;
    let profiles = rows_to(&rows, |r| {
        Ok(Profile {
            id: r.try_get(0)?,
            handle: r.try_get(1)?,
            display_name: r.try_get(2)?,
            bio: r.try_get(3)?,
            role: r.try_get(4)?,
            followers_count: r.try_get(5)?,
            following_count: r.try_get(6)?,
            posts_count: r.try_get(7)?,
            created_at: r.try_get(8)?,
        })
    })?;
    let profile = profiles.into_iter().next().ok_or_else(no_user)?;
    let ttl = reader.cache_ttl_secs(cache::PROFILE_TTL_SECS);
    cache.put(&key, &profile, ttl).await;
    Ok(profile)
}

async fn user_id(reader: &Reader<'_>, handle: &Handle) -> Result<UserId, ApiError> {
    let rows = reader
        .query(
            "SELECT id FROM users WHERE handle = $1 AND disabled_at IS NULL",
            &[&handle.as_str()],
        )
        .await?;
    rows_to(&rows, |r| r.try_get(0).map(UserId))?
        .into_iter()
        .next()
        .ok_or_else(no_user)
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{handle}",
    tag = "users",
    summary = "A public profile with counts",
    params(("handle" = String, Path, description = "a user handle")),
    responses(
        (status = 200, body = Profile),
        problems::Bearer, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn get_profile(
    reads: web::Data<ReadRouting>,
    cache: web::Data<Cache>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let handle = path_handle(&path)?;
    let reader = reader_for(&reads, me.id).await;
    Ok(HttpResponse::Ok().json(load_profile(&cache, &reader, &handle).await?))
}

const FOLLOWERS: &str = "SELECT u.id, u.handle, u.display_name FROM follows f \
     JOIN users u ON u.id = f.follower_id \
     WHERE f.followee_id = $1 AND f.follower_id < $2 ORDER BY f.follower_id DESC LIMIT $3";
const FOLLOWING: &str = "SELECT u.id, u.handle, u.display_name FROM follows f \
     JOIN users u ON u.id = f.followee_id \
     WHERE f.follower_id = $1 AND f.followee_id < $2 ORDER BY f.followee_id DESC LIMIT $3";

async fn people(
    reader: &Reader<'_>,
    sql: &str,
    raw_handle: &str,
    page: &PageQuery,
) -> Result<Page<Author>, ApiError> {
    let handle = path_handle(raw_handle)?;
    let (before, limit) = page.bounds(Order::NewestFirst)?;
    let user = user_id(reader, &handle).await?;
    let rows = reader.query(sql, &[&user.0, &before, &limit]).await?;
    let items = rows_to(&rows, |r| {
        Ok(Author {
            id: UserId(r.try_get(0)?),
            handle: r.try_get(1)?,
            display_name: r.try_get(2)?,
        })
    })?;
    Ok(Page::new(items, limit, |a| a.id.0))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{handle}/followers",
    tag = "users",
    summary = "Who follows this user",
    params(("handle" = String, Path, description = "a user handle"), PageQuery),
    responses(
        (status = 200, body = Page<Author>),
        problems::Bearer, problems::Missing, problems::Malformed, problems::Invalid,
        problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn followers(
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    path: web::Path<String>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let reader = reader_for(&reads, me.id).await;
    Ok(HttpResponse::Ok().json(people(&reader, FOLLOWERS, &path, &page).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{handle}/following",
    tag = "users",
    summary = "Whom this user follows",
    params(("handle" = String, Path, description = "a user handle"), PageQuery),
    responses(
        (status = 200, body = Page<Author>),
        problems::Bearer, problems::Missing, problems::Malformed, problems::Invalid,
        problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn following(
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    path: web::Path<String>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let reader = reader_for(&reads, me.id).await;
    Ok(HttpResponse::Ok().json(people(&reader, FOLLOWING, &path, &page).await?))
}

static USER_POSTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id \
         WHERE p.author_id = $1 AND p.deleted_at IS NULL AND p.id < $2 \
         ORDER BY p.id DESC LIMIT $3"
    )
});

#[utoipa::path(
    get,
    path = "/api/v1/users/{handle}/posts",
    tag = "posts",
    summary = "This user's posts, newest first",
    params(("handle" = String, Path, description = "a user handle"), PageQuery),
    responses(
        (status = 200, body = Page<PostView>),
        problems::Bearer, problems::Missing, problems::Malformed, problems::Invalid,
        problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn posts(
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    path: web::Path<String>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let handle = path_handle(&path)?;
    let (before, limit) = page.bounds(Order::NewestFirst)?;
    let reader = reader_for(&reads, me.id).await;
    let user = user_id(&reader, &handle).await?;
    let page = post_page(
        &reader,
        me.id,
        USER_POSTS.as_str(),
        &[&user.0, &before, &limit],
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}
