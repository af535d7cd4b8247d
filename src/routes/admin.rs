//! The admin views (admins only): `GET /admin/actors`, every actor kind's mailbox right now;
//! `GET /admin/live`, the dashboard's data; `GET /admin/audit`, the audit log.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::auth::extract::AdminUser;
use crate::cursor::{Order, Page, PageQuery};
use crate::live::{ActorsView, Live, LiveView};
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::reads::{query, rows_to};
use crate::replicas::ReadRouting;
use crate::routes::problems;

#[utoipa::path(
    get,
    path = "/admin/actors",
    tag = "operations",
    summary = "Every actor kind's mailbox right now, and the deepest sessions (admins only)",
    responses(
        (status = 200, body = ActorsView),
        (status = 503, description = "the role check could not read the database (Retry-After)",
         body = Problem, content_type = PROBLEM_JSON),
        problems::AdminOnly,
    ),
    security(("bearer" = []))
)]
pub async fn actors(
    live: web::Data<Live>,
    reads: web::Data<ReadRouting>,
    _admin: AdminUser,
) -> HttpResponse {
    let mut view = live.actors();
    Live::name_users(&reads, &mut view.sessions.deepest).await;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(view)
}

#[utoipa::path(
    get,
    path = "/admin/live",
    tag = "operations",
    summary = "The dashboard's data: actors, sessions, delivery latency, connections, \
               the AI budget (admins only)",
    responses(
        (status = 200, body = LiveView),
        (status = 503, description = "the role check could not read the database (Retry-After)",
         body = Problem, content_type = PROBLEM_JSON),
        problems::AdminOnly,
    ),
    security(("bearer" = []))
)]
pub async fn live(
    live: web::Data<Live>,
    reads: web::Data<ReadRouting>,
    _admin: AdminUser,
) -> HttpResponse {
    let mut view = live.live();
    Live::name_users(&reads, &mut view.actors.sessions.deepest).await;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(view)
}

/// One audit-log entry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    id: i64,
    at: chrono::DateTime<chrono::Utc>,
    /// Who did it (absent for anonymous attempts, or a deleted user).
    actor_id: Option<i64>,
    actor_handle: Option<String>,
    /// `sign_in`, `refresh_reuse`, `logout`, `post_delete`, `role_change`, `suspend`, `unsuspend`, `report`,
    /// `report_resolve`, …
    action: String,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// `?action=` narrows the log to one kind of entry.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only entries with this action (lowercase letters and underscores, at most 64).
    #[param(pattern = "^[a-z_]{1,64}$", min_length = 1, max_length = 64)]
    action: Option<String>,
}

const AUDIT: &str = "SELECT a.id, a.at, a.actor_id, u.handle, a.action, a.detail \
     FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id \
     WHERE a.id < $1 AND ($2::text IS NULL OR a.action = $2) ORDER BY a.id DESC LIMIT $3";

#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "operations",
    summary = "The audit log, newest first (admins only)",
    params(PageQuery, AuditFilter),
    responses(
        (status = 200, body = Page<AuditEntry>),
        (status = 400, description = "malformed query or cursor", body = Problem,
         content_type = PROBLEM_JSON),
        (status = 503, description = "a dependency is unavailable (Retry-After)", body = Problem,
         content_type = PROBLEM_JSON),
        problems::AdminOnly, problems::Invalid,
    ),
    security(("bearer" = []))
)]
pub async fn audit(
    reads: web::Data<ReadRouting>,
    _admin: AdminUser,
    page: web::Query<PageQuery>,
    filter: web::Query<AuditFilter>,
) -> Result<HttpResponse, ApiError> {
    let (before, limit) = page.bounds(Order::NewestFirst)?;
    let action = filter.action.as_deref();
    if action.is_some_and(|a| {
        a.is_empty() || a.len() > 64 || !a.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    }) {
        return Err(ApiError::validation(
            "action",
            "an action is 1 to 64 lowercase letters and underscores",
        ));
    }
    let rows = query(&reads, AUDIT, &[&before, &action, &limit]).await?;
    let items = rows_to(&rows, |r| {
        Ok(AuditEntry {
            id: r.try_get(0)?,
            at: r.try_get(1)?,
            actor_id: r.try_get(2)?,
            actor_handle: r.try_get(3)?,
            action: r.try_get(4)?,
            detail: r.try_get(5)?,
        })
    })?;
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |e| e.id)))
}
