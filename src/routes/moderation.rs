//! Trust and safety at the HTTP edge: `POST /api/v1/reports` for everyone; the report queue
//! and its resolution for moderators and admins (`/api/v1/admin/reports…`); suspensions, the
//! suspended list and roles for admins (`/api/v1/admin/users…`). Every change goes through the
//! DbWriter, which audits it; a suspension also goes through the ordered log to every node.

use actix_web::{HttpResponse, web};
use aisocial_actors::db_writer::{CreateReport, Moderator, ResolveReport, SetRole, SetSuspended};
use aisocial_actors::ids::{PostId, UserId};
use aisocial_actors::model::{
    Author, Report, ReportAction, ReportReason, ReportStatus, Role, User,
};
use aisocial_actors::store::{REPORT_SELECT, report_from_row};
use serde::{Deserialize, Serialize};

use super::Writer;
use super::body::{JsonBody, trimmed_text};
use super::users::path_handle;
use crate::auth::AuthUser;
use crate::auth::extract::{AdminUser, StaffUser};
use crate::cache::Cache;
use crate::cursor::{Order, Page, PageQuery};
use crate::problem::{ApiError, PROBLEM_JSON, Problem};
use crate::rate_limit::RateLimiting;
use crate::reads::{query, rows_to};
use crate::replicas::ReadRouting;
use crate::revocation::Revocations;
use crate::routes::problems;

/// The longest report comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;

/// Reports one user may file per minute (on top of the request limits): a report is cheap to
/// send and costs a moderator's time.
const REPORTS_PER_MIN: u32 = 10;

/// `POST /api/v1/reports`, as read (documented as [`ReportRequest`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    /// The reported post (its author is the reported user): absent, or a number (`null` is
    /// refused, as the document says).
    #[serde(default, deserialize_with = "super::body::present_integral")]
    post_id: Option<i64>,
    /// The reported user (with `post_id`, it must be the post's author).
    handle: Option<String>,
    reason: ReportReason,
    #[serde(default)]
    comment: String,
}

/// What `POST /api/v1/reports` takes, as documented: a post (its author may be named too) or a
/// user. The handler reads it as [`NewReport`], whose refusals name the field at fault.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "a schema for the document, never built")]
enum ReportRequest {
    Post(PostReport),
    User(UserReport),
}

/// A report of a post.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "a schema for the document, never built")]
struct PostReport {
    #[schema(minimum = 1)]
    post_id: i64,
    /// The post's author, if named.
    #[schema(pattern = "^[a-z0-9_]{3,30}$")]
    handle: Option<String>,
    reason: ReportReason,
    /// At most 1000 characters; no NUL.
    #[serde(default)]
    #[schema(max_length = 1000)]
    comment: String,
}

/// A report of a user.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "a schema for the document, never built")]
struct UserReport {
    #[schema(pattern = "^[a-z0-9_]{3,30}$")]
    handle: String,
    reason: ReportReason,
    /// At most 1000 characters; no NUL.
    #[serde(default)]
    #[schema(max_length = 1000)]
    comment: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/reports",
    tag = "moderation",
    summary = "Report a post or a user to the moderators (a repeat answers the open report)",
    request_body = ReportRequest,
    responses(
        (status = 201, body = Report),
        (status = 409, description = "you cannot report yourself; the handle is not the \
         post's author", body = Problem, content_type = PROBLEM_JSON),
        problems::Bearer, problems::Missing, problems::Malformed, problems::Invalid,
        problems::JsonBody, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn create_report(
    writer: Writer,
    limits: web::Data<RateLimiting>,
    me: AuthUser,
    body: JsonBody<NewReport>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let comment = if body.comment.trim().is_empty() {
        ""
    } else {
        trimmed_text("comment", "a comment", &body.comment, MAX_COMMENT_CHARS)?
    };
    let post = body
        .post_id
        .map(|id| {
            (id > 0)
                .then_some(PostId(id))
                .ok_or_else(|| ApiError::validation("post_id", "a post id is a positive integer"))
        })
        .transpose()?;
    // A handle that cannot be one names no user.
    let handle = body.handle.as_deref().map(path_handle).transpose()?;
    if post.is_none() && handle.is_none() {
        return Err(ApiError::validation(
            "post_id",
            "name the post_id or the handle you report",
        ));
    }
    limits.charge("report", &me.id.to_string(), REPORTS_PER_MIN)?;
    let report = writer
        .send(CreateReport {
            reporter: me.id,
            post,
            handle,
            reason: body.reason,
            comment: comment.to_owned(),
        })
        .await??;
    Ok(HttpResponse::Created().json(report))
}

/// `?status=` of the report queue.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportFilter {
    /// `open` (the queue, oldest first; the default) or `resolved` (newest first).
    status: Option<ReportStatus>,
}

static OPEN_REPORTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("{REPORT_SELECT} WHERE r.resolved_at IS NULL AND r.id > $1 ORDER BY r.id LIMIT $2")
});
static RESOLVED_REPORTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{REPORT_SELECT} WHERE r.resolved_at IS NOT NULL AND r.id < $1 ORDER BY r.id DESC LIMIT $2"
    )
});

#[utoipa::path(
    get,
    path = "/api/v1/admin/reports",
    tag = "moderation",
    summary = "The report queue (moderators and admins)",
    params(PageQuery, ReportFilter),
    responses(
        (status = 200, body = Page<Report>),
        problems::StaffOnly, problems::Malformed, problems::Invalid, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn list_reports(
    reads: web::Data<ReadRouting>,
    _staff: StaffUser,
    page: web::Query<PageQuery>,
    filter: web::Query<ReportFilter>,
) -> Result<HttpResponse, ApiError> {
    let (sql, order) = match filter.status {
        None | Some(ReportStatus::Open) => (OPEN_REPORTS.as_str(), Order::OldestFirst),
        Some(ReportStatus::Resolved) => (RESOLVED_REPORTS.as_str(), Order::NewestFirst),
    };
    let (position, limit) = page.bounds(order)?;
    let rows = query(&reads, sql, &[&position, &limit]).await?;
    let items = rows_to(&rows, report_from_row)?;
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |r| r.id)))
}

/// `POST /api/v1/admin/reports/{id}/resolve`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolution {
    action: ReportAction,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/reports/{id}/resolve",
    tag = "moderation",
    summary = "Resolve a report: dismiss it, remove the post, or suspend the reported user \
               (moderators and admins; audited)",
    params(("id" = i64, Path, description = "a report id")),
    request_body = Resolution,
    responses(
        (status = 200, body = Report),
        (status = 409, description = "the report was already resolved", body = Problem,
         content_type = PROBLEM_JSON),
        problems::StaffOnly, problems::Missing, problems::Malformed, problems::Invalid,
        problems::JsonBody, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn resolve_report(
    writer: Writer,
    revocations: web::Data<Revocations>,
    reads: web::Data<ReadRouting>,
    staff: StaffUser,
    path: web::Path<String>,
    body: JsonBody<Resolution>,
) -> Result<HttpResponse, ApiError> {
    let report = path
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound("report not found".into()))?;
    let by = staff_moderator(&staff.0);
    let report = writer
        .send(ResolveReport {
            report,
            action: body.action,
            by,
        })
        .await??;
    if report.action == Some(ReportAction::Suspend) && report.target_suspended {
        revocations.suspension_committed(report.target.id, true);
    }
    reads.wrote(staff.0.id).await;
    Ok(HttpResponse::Ok().json(report))
}

fn staff_moderator(user: &AuthUser) -> Moderator {
    Moderator::Staff {
        user: user.id,
        role: user.role,
    }
}

/// Both suspension routes.
async fn set_suspended(
    writer: &Writer,
    revocations: &Revocations,
    cache: &Cache,
    admin: &AdminUser,
    raw: &str,
    suspended: bool,
) -> Result<HttpResponse, ApiError> {
    let target = path_handle(raw)?;
    let handle = target.as_str().to_owned();
    let user = writer
        .send(SetSuspended {
            target,
            suspended,
            by: staff_moderator(&admin.0),
            reason: None,
        })
        .await??;
    revocations.suspension_committed(user, suspended);
    cache.invalidate_profiles(&[&handle]).await;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{handle}/suspend",
    tag = "moderation",
    summary = "Suspend an account: sign-in refused, every session revoked, its sockets closed \
               on every node (admins; idempotent; audited)",
    params(("handle" = String, Path, description = "a user handle")),
    responses(
        (status = 204, description = "suspended"),
        (status = 409, description = "you cannot suspend yourself", body = Problem,
         content_type = PROBLEM_JSON),
        problems::AdminOnly, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn suspend(
    writer: Writer,
    revocations: web::Data<Revocations>,
    cache: web::Data<Cache>,
    admin: AdminUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_suspended(&writer, &revocations, &cache, &admin, &path, true).await
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{handle}/unsuspend",
    tag = "moderation",
    summary = "End a suspension (admins; idempotent; audited); the user signs in again",
    params(("handle" = String, Path, description = "a user handle")),
    responses(
        (status = 204, description = "not suspended"),
        (status = 409, description = "you cannot unsuspend yourself", body = Problem,
         content_type = PROBLEM_JSON),
        problems::AdminOnly, problems::Missing, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn unsuspend(
    writer: Writer,
    revocations: web::Data<Revocations>,
    cache: web::Data<Cache>,
    admin: AdminUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_suspended(&writer, &revocations, &cache, &admin, &path, false).await
}

/// A suspended account, for the dashboard.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuspendedAccount {
    #[serde(flatten)]
    user: Author,
    suspended_at: chrono::DateTime<chrono::Utc>,
}

const SUSPENDED: &str = "SELECT id, handle, display_name, disabled_at FROM users \
     WHERE disabled_at IS NOT NULL AND id < $1 ORDER BY id DESC LIMIT $2";

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/suspended",
    tag = "moderation",
    summary = "The suspended accounts (moderators and admins)",
    params(PageQuery),
    responses(
        (status = 200, body = Page<SuspendedAccount>),
        problems::StaffOnly, problems::Malformed, problems::Invalid, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn suspended(
    reads: web::Data<ReadRouting>,
    _staff: StaffUser,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (before, limit) = page.bounds(Order::NewestFirst)?;
    let rows = query(&reads, SUSPENDED, &[&before, &limit]).await?;
    let items = rows_to(&rows, |r| {
        Ok(SuspendedAccount {
            user: Author {
                id: UserId(r.try_get(0)?),
                handle: r.try_get(1)?,
                display_name: r.try_get(2)?,
            },
            suspended_at: r.try_get(3)?,
        })
    })?;
    Ok(HttpResponse::Ok().json(Page::new(items, limit, |a| a.user.id.0)))
}

/// `PUT /api/v1/admin/users/{handle}/role`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    role: Role,
}

#[utoipa::path(
    put,
    path = "/api/v1/admin/users/{handle}/role",
    tag = "moderation",
    summary = "Set a user's role: user, moderator or admin (admins, not their own; audited)",
    params(("handle" = String, Path, description = "a user handle")),
    request_body = RoleChange,
    responses(
        (status = 200, body = User),
        (status = 409, description = "you cannot change your own role", body = Problem,
         content_type = PROBLEM_JSON),
        problems::AdminOnly, problems::Missing, problems::Malformed, problems::Invalid,
        problems::JsonBody, problems::Busy,
    ),
    security(("bearer" = []))
)]
pub async fn set_role(
    writer: Writer,
    cache: web::Data<Cache>,
    admin: AdminUser,
    path: web::Path<String>,
    body: JsonBody<RoleChange>,
) -> Result<HttpResponse, ApiError> {
    let target = path_handle(&path)?;
    let handle = target.as_str().to_owned();
    let user = writer
        .send(SetRole {
            target,
            role: body.role,
            by: staff_moderator(&admin.0),
        })
        .await??;
    cache.invalidate_profiles(&[&handle]).await;
    Ok(HttpResponse::Ok().json(user))
}
