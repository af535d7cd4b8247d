//! `GET /api/v1/timeline`: own and followees' posts, newest first, keyset-paginated.

use actix_web::{HttpResponse, web};

use crate::auth::AuthUser;
use crate::cursor::Page;
use crate::cursor::{Order, PageQuery};
use crate::problem::{ApiError, Problem};
use crate::reads::{HOME_TIMELINE, PostView, post_page, reader_for};
use crate::replicas::ReadRouting;

#[utoipa::path(
    get,
    path = "/api/v1/timeline",
    tag = "posts",
    summary = "Own and followees' posts, newest first",
    params(PageQuery),
    responses((status = 200, body = Page<PostView>), (status = 400, description = "malformed JSON, query or cursor", body = Problem, content_type = "application/problem+json"), (status = 401, description = "missing, invalid, expired or revoked access token", body = Problem, content_type = "application/problem+json"), (status = 422, description = "a field breaks a documented rule (field names it)", body = Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited (Retry-After, RateLimit-* headers)", body = Problem, content_type = "application/problem+json"), (status = 503, description = "a dependency is unavailable or the node is draining (Retry-After)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
pub async fn home_timeline(
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (before, limit) = query.bounds(Order::NewestFirst)?;
    let reader = reader_for(&reads, me.id).await;
    let page = post_page(
        &reader,
        me.id,
        HOME_TIMELINE.as_str(),
        &[&me.id.0, &before, &limit],
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}
