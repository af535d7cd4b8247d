//! `GET /api/v1/timeline`: own and followees' posts, newest first, keyset-paginated.

use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use aisocial_actors::model::Post;
use aisocial_actors::store::{POST_COLUMNS, post_from_row};
use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::cursor::{Cursor, page_limit};
use crate::problem::{ApiError, pool_error, read_error};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct PageQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
pub struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

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
    let limit = page_limit(query.limit)?;
    let before = match &query.cursor {
        Some(raw) => Cursor::decode(raw)?.before_id,
        None => i64::MAX,
    };
    let conn = state.pool.get().await.map_err(pool_error)?;
    let rows = conn
        .query(HOME.as_str(), &[&me.id.0, &before, &limit])
        .await
        .map_err(read_error)?;
    let items = rows
        .iter()
        .map(post_from_row)
        .collect::<Result<Vec<Post>, _>>()
        .context("reading a timeline row")?;
    let full = i64::try_from(items.len()).unwrap_or(i64::MAX) == limit;
    let next_cursor = items
        .last()
        .filter(|_| full)
        .map(|p| Cursor { before_id: p.id.0 }.encode());
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}
