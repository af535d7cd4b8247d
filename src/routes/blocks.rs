//! `PUT/DELETE /api/v1/users/{handle}/block` and `…/mute` (idempotent, 204), and the caller's
//! lists `GET /api/v1/me/blocks` and `GET /api/v1/me/mutes`. The writes go through the DbWriter,
//! which records each change in the log, so brokers and resumes apply it in order.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use aisocial_actors::db_writer::{Block, DbWriter, Mute, Unblock, Unmute, WriteError};
use aisocial_actors::ids::{Handle, UserId};
use aisocial_actors::meter::Envelope;
use aisocial_actors::model::Author;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Writer;
use super::users::path_handle;
use crate::auth::AuthUser;
use crate::cache::Cache;
use crate::cursor::{Order, Page, PageQuery};
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::reads::{reader_for, rows_to};
use crate::replicas::ReadRouting;
use crate::routes::body::optional_json;
use crate::routes::problems;

/// The longest mute with an end: a year (longer is a mute without end).
pub const MAX_MUTE_SECS: i64 = 366 * 24 * 3600;

/// The optional body of `PUT …/mute`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    /// How long the mute lasts, in seconds (1 to 31 622 400); without it, until unmuted.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 31_622_400)]
    pub duration_secs: Option<i64>,
}

/// A user the caller mutes, and until when (`null`: until unmuted).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MutedUser {
    #[serde(flatten)]
    pub user: Author,
    pub until: Option<DateTime<Utc>>,
}

/// After a committed change: the caller reads their own write, and both cached profiles
/// (whose follow counts a block may change) are dropped.
async fn wrote(reads: &ReadRouting, cache: &Cache, me: &AuthUser, other: &str) {
    reads.wrote(me.id).await;
    cache.invalidate_profiles(&[&me.handle, other]).await;
}

/// Every route here but the lists: the command `make` builds for the user `raw` names, then
/// [`wrote`], then 204.
async fn change<M>(
    writer: &Writer,
    reads: &ReadRouting,
    cache: &Cache,
    me: &AuthUser,
    raw: &str,
    make: impl FnOnce(Handle) -> M,
) -> Result<HttpResponse, ApiError>
where
    M: actix::Message<Result = Result<(), WriteError>> + Send + 'static,
    DbWriter: actix::Handler<Envelope<M>>,
{
    let other = path_handle(raw)?;
    let handle = other.as_str().to_owned();
    writer.send(make(other)).await??;
    wrote(reads, cache, me, &handle).await;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    put,
    path = "/api/v1/users/{handle}/block",
    tag = "users",
    summary = "Block a user (idempotent): follows end both ways; neither receives the other's \
               posts, replies, likes, mentions or notifications",
    params(("handle" = String, Path, description = "a user handle")),
    responses(
        (status = 204, description = "blocked"),
        (status = 409, description = "you cannot block yourself", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Bearer, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn block_user(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    cache: web::Data<Cache>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let blocker = me.id;
    change(&writer, &reads, &cache, &me, &path, |blocked| Block {
        blocker,
        blocked,
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{handle}/block",
    tag = "users",
    summary = "Unblock a user (idempotent; follows are not restored)",
    params(("handle" = String, Path, description = "a user handle")),
    responses(
        (status = 204, description = "not blocked"),
        (status = 409, description = "you cannot unblock yourself", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Bearer, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn unblock_user(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    cache: web::Data<Cache>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let blocker = me.id;
    change(&writer, &reads, &cache, &me, &path, |blocked| Unblock {
        blocker,
        blocked,
    })
    .await
}

/// The mute's length from the optional body: `None` for a mute without end.
fn mute_duration(req: &HttpRequest, body: &[u8]) -> Result<Option<Duration>, ApiError> {
    let Some(MuteRequest { duration_secs }) = optional_json::<MuteRequest>(req, body)? else {
        return Ok(None);
    };
    match duration_secs {
        None => Ok(None),
        Some(secs) if (1..=MAX_MUTE_SECS).contains(&secs) => {
            Ok(Some(Duration::from_secs(secs.unsigned_abs())))
        }
        Some(_) => Err(ApiError::validation(
            "duration_secs",
            format!("a mute lasts 1 to {MAX_MUTE_SECS} seconds (omit it for no end)"),
        )),
    }
}

#[utoipa::path(
    put,
    path = "/api/v1/users/{handle}/mute",
    tag = "users",
    summary = "Mute a user (idempotent; again to change its end): the caller stops receiving \
               their posts and the notifications they cause; they notice nothing",
    params(("handle" = String, Path, description = "a user handle")),
    request_body(content = Option<MuteRequest>, content_type = "application/json",
                 description = "optional; without `duration_secs` the mute has no end"),
    responses(
        (status = 204, description = "muted"),
        (status = 409, description = "you cannot mute yourself", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Bearer, problems::Missing, problems::Malformed, problems::Invalid,
        problems::JsonBody, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn mute_user(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    cache: web::Data<Cache>,
    me: AuthUser,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let duration = mute_duration(&req, &body)?;
    let muter = me.id;
    change(&writer, &reads, &cache, &me, &path, |muted| Mute {
        muter,
        muted,
        duration,
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{handle}/mute",
    tag = "users",
    summary = "Unmute a user (idempotent)",
    params(("handle" = String, Path, description = "a user handle")),
    responses(
        (status = 204, description = "not muted"),
        (status = 409, description = "you cannot unmute yourself", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Bearer, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn unmute_user(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    cache: web::Data<Cache>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let muter = me.id;
    change(&writer, &reads, &cache, &me, &path, |muted| Unmute {
        muter,
        muted,
    })
    .await
}

const MY_BLOCKS: &str = "SELECT u.id, u.handle, u.display_name FROM blocks b \
     JOIN users u ON u.id = b.blocked_id \
     WHERE b.blocker_id = $1 AND b.blocked_id < $2 ORDER BY b.blocked_id DESC LIMIT $3";

/// Mutes that stand now (a passed end hides nothing, even before the sweep removes it).
const MY_MUTES: &str = "SELECT u.id, u.handle, u.display_name, m.until FROM mutes m \
     JOIN users u ON u.id = m.muted_id \
     WHERE m.muter_id = $1 AND m.muted_id < $2 AND (m.until IS NULL OR m.until > now()) \
     ORDER BY m.muted_id DESC LIMIT $3";

fn author(r: &tokio_postgres::Row) -> Result<Author, tokio_postgres::Error> {
    Ok(Author {
        id: UserId(r.try_get(0)?),
        handle: r.try_get(1)?,
        display_name: r.try_get(2)?,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/me/blocks",
    tag = "users",
    summary = "Whom the caller blocks",
    params(PageQuery),
    responses(
        (status = 200, body = Page<Author>),
        problems::Bearer, problems::Malformed, problems::Invalid, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn my_blocks(
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (before, limit) = page.bounds(Order::NewestFirst)?;
    let reader = reader_for(&reads, me.id).await;
    let rows = reader
        .query(MY_BLOCKS, &[&me.id.0, &before, &limit])
        .await?;
    let items = rows_to(&rows, author)?;
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |a| a.id.0)))
}

#[utoipa::path(
    get,
    path = "/api/v1/me/mutes",
    tag = "users",
    summary = "Whom the caller mutes now, and until when",
    params(PageQuery),
    responses(
        (status = 200, body = Page<MutedUser>),
        problems::Bearer, problems::Malformed, problems::Invalid, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn my_mutes(
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (before, limit) = page.bounds(Order::NewestFirst)?;
    let reader = reader_for(&reads, me.id).await;
    let rows = reader.query(MY_MUTES, &[&me.id.0, &before, &limit]).await?;
    let items = rows_to(&rows, |r| {
        Ok(MutedUser {
            user: author(r)?,
            until: r.try_get(3)?,
        })
    })?;
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |m| m.user.id.0)))
}
