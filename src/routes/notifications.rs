//! `GET /api/v1/notifications`: likes, follows, replies and mentions, newest first.

use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use aisocial_actors::ids::{PostId, UserId};
use aisocial_actors::model::{Author, Notification};

use crate::auth::AuthUser;
use crate::cursor::{Order, Page, PageQuery};
use crate::problem::ApiError;
use crate::reads::{hidden_by, reader_for, rows_to};
use crate::replicas::ReadRouting;
use crate::routes::problems;

/// None caused by someone the reader hides (blocked either way, or muted now).
static NOTIFICATIONS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT n.id, n.kind, n.post_id, n.created_at, u.id, u.handle, \
         u.display_name FROM notifications n JOIN users u ON u.id = n.actor_id \
         WHERE n.user_id = $1 AND n.id < $2 AND NOT {} ORDER BY n.id DESC LIMIT $3",
        hidden_by("$1", "n.actor_id", true)
    )
});

#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "users",
    summary = "Likes, follows, replies and mentions, newest first",
    params(PageQuery),
    responses(
        (status = 200, body = Page<Notification>),
        problems::Bearer, problems::Malformed, problems::Invalid, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn list(
    reads: web::Data<ReadRouting>,
    me: AuthUser,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (before, limit) = page.bounds(Order::NewestFirst)?;
    let reader = reader_for(&reads, me.id).await;
    let rows = reader
        .query(NOTIFICATIONS.as_str(), &[&me.id.0, &before, &limit])
        .await?;
    let items = rows_to(&rows, |r| {
        Ok(Notification {
            id: r.try_get(0)?,
            kind: r.try_get(1)?,
            post_id: r.try_get::<_, Option<i64>>(2)?.map(PostId),
            created_at: r.try_get(3)?,
            actor: Author {
                id: UserId(r.try_get(4)?),
                handle: r.try_get(5)?,
                display_name: r.try_get(6)?,
            },
        })
    })?;
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |n| n.id)))
}
