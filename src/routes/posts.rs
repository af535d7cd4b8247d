//! Posts: `POST /api/v1/posts` (201 after COMMIT; honours `Idempotency-Key`),
//! `GET/DELETE /api/v1/posts/{id}`, `GET …/replies` (oldest first), `PUT/DELETE …/like`.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aisocial_actors::db_writer::{CreatePost, DeletePost, LikePost, UnlikePost};
use aisocial_actors::ids::PostId;
use aisocial_actors::model::Post;
use aisocial_actors::store::{POST_COLUMNS, post_from_row};
use serde::Deserialize;

use crate::ai::jobs::AiJobs;
use crate::auth::AuthUser;
use crate::cache::Cache;
use crate::cursor::Page;
use crate::cursor::{Order, PageQuery};
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::reads::{PostView, post_page, reader_for, rows_to, views_of};
use crate::replicas::{ReadRouting, Reader};
use crate::routes::Writer;
use crate::routes::body::{JsonBody, trimmed_text};
use crate::routes::problems;

pub const MAX_BODY_CHARS: usize = 1000;
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    /// 1 to 1000 characters after trimming; no NUL.
    #[schema(
        pattern = "^[^\\u0000]*\\S[^\\u0000]*$",
        min_length = 1,
        max_length = 1000
    )]
    body: String,
    /// The post this one answers.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "crate::routes::body::integral")]
    reply_to: Option<i64>,
}

/// The request's `Idempotency-Key`, checked (posts and refreshes take one).
pub(crate) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::validation(
            "Idempotency-Key",
            format!("1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )
    };
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

#[utoipa::path(
    post,
    path = "/api/v1/posts",
    tag = "posts",
    summary = "Create a post or a reply; 201 after COMMIT",
    params((
        "Idempotency-Key" = Option<String>, Header,
        description = "a retry with the same key returns the same post",
        pattern = "^[\\x21-\\x7e]{1,255}$"
    )),
    request_body = NewPost,
    responses(
        (status = 201, body = Post,
         headers(("location" = String), ("idempotent-replayed" = String))),
        (status = 404, description = "reply_to names no post", body = Problem,
         content_type = PROBLEM_JSON),
        (status = 409,
         description = "the post made with this Idempotency-Key has since been deleted",
         body = Problem, content_type = PROBLEM_JSON),
        problems::Bearer, problems::Blocked, problems::Malformed, problems::JsonBody,
        problems::Invalid, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn create_post(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    cache: web::Data<Cache>,
    jobs: web::Data<AiJobs>,
    me: AuthUser,
    req: HttpRequest,
    body: JsonBody<NewPost>,
) -> Result<HttpResponse, ApiError> {
    let NewPost { body, reply_to } = body.into_inner();
    let text = trimmed_text("body", "a post", &body, MAX_BODY_CHARS)?;
    if reply_to.is_some_and(|id| id <= 0) {
        return Err(ApiError::validation("reply_to", "reply_to is a post id"));
    }
    let key = idempotency_key(&req)?;
    let created = writer
        .send(CreatePost {
            author: me.id,
            body: text.to_owned(),
            reply_to: reply_to.map(PostId),
            idempotency_key: key,
        })
        .await??;
    reads.wrote(me.id).await;
    if created.created {
        cache.invalidate_profile_later(&me.handle);
        crate::ai::jobs::answer_if_mentioned(jobs.into_inner(), created.post.clone());
    }
    let location = format!("/api/v1/posts/{}", created.post.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .insert_header((
            "idempotent-replayed",
            if created.created { "false" } else { "true" },
        ))
        .json(created.post))
}

static ONE_POST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id \
         WHERE p.id = $1 AND p.deleted_at IS NULL"
    )
});

/// None by someone with a block between them and the reader `$4`.
static REPLIES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id \
         WHERE p.reply_to = $1 AND p.deleted_at IS NULL AND p.id > $2 AND NOT {} \
         ORDER BY p.id ASC LIMIT $3",
        crate::reads::hidden_by("$4", "p.author_id", false)
    )
});

fn no_post() -> ApiError {
    ApiError::NotFound("post not found".into())
}

/// A post id from the path; anything that is not a positive integer names no post.
fn path_post(raw: &str) -> Result<PostId, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .map(PostId)
        .ok_or_else(no_post)
}

async fn load_post(reader: &Reader<'_>, id: PostId) -> Result<Post, ApiError> {
    let rows = reader.query(ONE_POST.as_str(), &[&id.0]).await?;
    rows_to(&rows, post_from_row)?
        .into_iter()
        .next()
        .ok_or_else(no_post)
}

#[utoipa::path(
    get,
    path = "/api/v1/posts/{id}",
    tag = "posts",
    summary = "One post",
    params(("id" = i64, Path, description = "a post id")),
    responses(
        (status = 200, body = PostView),
        problems::Bearer, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn get_post(
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_post(&path)?;
    let reader = reader_for(&reads, me.id).await;
    let post = load_post(&reader, id).await?;
    let view = views_of(&reader, me.id, vec![post])
        .await?
        .pop()
        .ok_or_else(no_post)?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(
    delete,
    path = "/api/v1/posts/{id}",
    tag = "posts",
    summary = "Delete a post (its author or an admin)",
    params(("id" = i64, Path, description = "a post id")),
    responses(
        (status = 204, description = "deleted and announced as post.deleted"),
        (status = 403, description = "not allowed for this caller", body = Problem,
         content_type = PROBLEM_JSON),
        problems::Bearer, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn delete_post(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    cache: web::Data<Cache>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_post(&path)?;
    let post = load_post(&reads.primary_reader(), id).await?;
    writer
        .send(DeletePost {
            actor: me.id,
            actor_moderates: me.role.moderates(),
            post: id,
        })
        .await??;
    reads.wrote(me.id).await;
    cache.invalidate_profiles(&[&post.author.handle]).await;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/posts/{id}/replies",
    tag = "posts",
    summary = "Direct replies, oldest first",
    params(("id" = i64, Path, description = "a post id"), PageQuery),
    responses(
        (status = 200, body = Page<PostView>),
        problems::Bearer, problems::Missing, problems::Malformed, problems::Invalid,
        problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn replies(
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    path: web::Path<String>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = path_post(&path)?;
    let (after, limit) = page.bounds(Order::OldestFirst)?;
    let reader = reader_for(&reads, me.id).await;
    load_post(&reader, id).await?;
    let page = post_page(
        &reader,
        me.id,
        REPLIES.as_str(),
        &[&id.0, &after, &limit, &me.id.0],
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(
    put,
    path = "/api/v1/posts/{id}/like",
    tag = "posts",
    summary = "Like a post (idempotent)",
    params(("id" = i64, Path, description = "a post id")),
    responses(
        (status = 204, description = "liked"),
        problems::Bearer, problems::Blocked, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn like(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_liked(&writer, &reads, &me, &path, true).await
}

#[utoipa::path(
    delete,
    path = "/api/v1/posts/{id}/like",
    tag = "posts",
    summary = "Take back a like (idempotent)",
    params(("id" = i64, Path, description = "a post id")),
    responses(
        (status = 204, description = "not liked"),
        problems::Bearer, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn unlike(
    writer: Writer,
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_liked(&writer, &reads, &me, &path, false).await
}

/// Both like routes: `me` likes (`like`) or takes back a like of the post `raw` names.
async fn set_liked(
    writer: &Writer,
    reads: &ReadRouting,
    me: &AuthUser,
    raw: &str,
    like: bool,
) -> Result<HttpResponse, ApiError> {
    let post = path_post(raw)?;
    let user = me.id;
    if like {
        writer.send(LikePost { user, post }).await??;
    } else {
        writer.send(UnlikePost { user, post }).await??;
    }
    reads.wrote(me.id).await;
    Ok(HttpResponse::NoContent().finish())
}
