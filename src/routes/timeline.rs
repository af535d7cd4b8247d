//! `GET /api/v1/timeline`: own and followees' posts, newest first, keyset-paginated.

use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use aisocial_actors::store::POST_COLUMNS;

use crate::auth::AuthUser;
use crate::cursor::{Order, PageQuery};
use crate::problem::ApiError;
use crate::routes::reads::post_page;
use crate::state::AppState;

/// Each followee's newest posts come from `posts_author_idx`; the union is cut to one page.
static HOME: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {POST_COLUMNS} FROM posts p JOIN users u ON u.id = p.author_id \
         WHERE p.deleted_at IS NULL AND p.id < $2 \
           AND (p.author_id = $1 OR p.author_id IN \
                (SELECT followee_id FROM follows WHERE follower_id = $1)) \
         ORDER BY p.id DESC LIMIT $3"
    )
});

pub async fn home_timeline(
    state: web::Data<AppState>,
    me: AuthUser,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (before, limit) = query.bounds(Order::NewestFirst)?;
    let page = post_page(&state, HOME.as_str(), &[&me.id.0, &before, &limit], limit).await?;
    Ok(HttpResponse::Ok().json(page))
}
