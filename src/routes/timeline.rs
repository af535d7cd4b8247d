//! `GET /api/v1/timeline`: own and followees' posts, newest first, keyset-paginated.

use actix_web::{HttpResponse, web};

use crate::auth::AuthUser;
use crate::cursor::Page;
use crate::cursor::{Order, PageQuery};
use crate::problem::ApiError;
use crate::reads::{HOME_TIMELINE, PostView, post_page, reader_for};
use crate::replicas::ReadRouting;
use crate::routes::problems;

#[utoipa::path(
    get,
    path = "/api/v1/timeline",
    tag = "posts",
    summary = "Own and followees' posts, newest first",
    params(PageQuery),
    responses(
        (status = 200, body = Page<PostView>),
        problems::Bearer, problems::Malformed, problems::Invalid, problems::Busy,
    ),
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
