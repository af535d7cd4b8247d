//! The SQL of roles, suspensions and reports: who may do what to whom, each change audited,
//! suspensions written to the log as `route.account` records.

use std::sync::LazyLock;

use super::apply::{Applied, ApplyError, Change, Output, audit, delete_post, refuse};
use super::commands::{
    CreateReport, DeletePost, Moderator, ResolveReport, SetRole, SetSuspended, WriteError,
    WriteFailure,
};
use super::conn::WriterConn;
use crate::ids::{PostId, UserId};
use crate::log_record::AccountChange;
use crate::model::{ReportAction, Role, User};
use crate::roles::{Identity, RoleGrants, RoleSource, reconcile};
use crate::store::{REPORT_SELECT, USER_COLUMNS, report_from_row, user_from_row};

use super::apply::AI_HANDLE;

/// What the role rule needs of an account, locked for the transaction.
const ROLE_FACTS: &str = "SELECT role, role_source, google_sub, email, \
     dev_account AND google_sub IS NULL, handle FROM users WHERE id = $1 FOR UPDATE";
static SET_ROLE_BY_ID: LazyLock<String> = LazyLock::new(|| {
    format!("UPDATE users SET role = $2, role_source = $3 WHERE id = $1 RETURNING {USER_COLUMNS}")
});

/// Reconciles `user`'s role with what configuration grants now (at a sign-in or a refresh);
/// a change is audited. Answers the user as they now stand.
pub(super) async fn sync_configured_role(
    conn: &mut WriterConn,
    user: User,
    grants: &RoleGrants,
) -> Result<User, ApplyError> {
    let Some(row) = conn.query_opt(ROLE_FACTS, &[&user.id.0]).await? else {
        return Ok(user);
    };
    let role = Role::parse(row.try_get(0)?).unwrap_or(Role::User);
    let source = row
        .try_get::<_, Option<&str>>(1)?
        .and_then(RoleSource::parse);
    let is_dev: bool = row.try_get(4)?;
    let identity = Identity {
        google_sub: row.try_get(2)?,
        email: row.try_get(3)?,
        dev_handle: if is_dev { row.try_get(5)? } else { None },
    };
    let Some((new_role, new_source)) = reconcile(role, source, grants.configured(identity)) else {
        return Ok(user);
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [
        &user.id.0,
        &new_role.as_str(),
        &new_source.map(RoleSource::as_str),
    ];
    let Some(row) = conn.query_opt(SET_ROLE_BY_ID.as_str(), &params).await? else {
        return Ok(user);
    };
    let detail = serde_json::json!({
        "handle": user.handle, "from": role.as_str(), "to": new_role.as_str(), "by": "config",
    });
    audit(conn, Some(user.id), "role_change", &detail).await?;
    Ok(user_from_row(&row)?)
}

/// A target account by handle, whatever its state, locked for the transaction.
const TARGET: &str =
    "SELECT id, role, disabled_at IS NOT NULL FROM users WHERE handle = $1 FOR UPDATE";

struct Target {
    id: UserId,
    role: Role,
    suspended: bool,
}

async fn target(conn: &mut WriterConn, handle: &str) -> Result<Target, ApplyError> {
    if handle == AI_HANDLE {
        return Err(refuse(WriteError::Forbidden(
            "the AI account's role and standing are fixed",
        )));
    }
    let row = conn
        .query_opt(TARGET, &[&handle])
        .await?
        .ok_or_else(|| refuse(WriteError::NotFound("user")))?;
    Ok(Target {
        id: UserId(row.try_get(0)?),
        role: Role::parse(row.try_get(1)?).unwrap_or(Role::User),
        suspended: row.try_get(2)?,
    })
}

fn by_label(by: Moderator) -> &'static str {
    match by {
        Moderator::CommandLine => "command_line",
        Moderator::Staff { .. } => "api",
    }
}

pub(super) async fn set_role(conn: &mut WriterConn, cmd: &SetRole) -> Applied {
    let target = target(conn, cmd.target.as_str()).await?;
    let source = match cmd.by {
        Moderator::CommandLine => RoleSource::CommandLine,
        Moderator::Staff { user, role } => {
            if role != Role::Admin {
                return Err(refuse(WriteError::Forbidden(
                    "only an admin may grant roles",
                )));
            }
            if user == target.id {
                return Err(refuse(WriteError::Conflict(
                    "you cannot change your own role (another admin, or the command line, can)",
                )));
            }
            RoleSource::Admin
        }
    };
    let source = (cmd.role != Role::User).then_some(source);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [
        &target.id.0,
        &cmd.role.as_str(),
        &source.map(RoleSource::as_str),
    ];
    let row = conn
        .query_opt(SET_ROLE_BY_ID.as_str(), &params)
        .await?
        .ok_or_else(|| refuse(WriteError::NotFound("user")))?;
    let user = user_from_row(&row)?;
    let detail = serde_json::json!({
        "handle": user.handle, "from": target.role.as_str(), "to": cmd.role.as_str(),
        "by": by_label(cmd.by),
    });
    audit(conn, cmd.by.user(), "role_change", &detail).await?;
    Ok((Output::User(user), Vec::new()))
}

const SUSPEND: &str = "UPDATE users SET disabled_at = now() WHERE id = $1";
const UNSUSPEND: &str = "UPDATE users SET disabled_at = NULL WHERE id = $1";
const REVOKE_ALL: &str =
    "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL";

pub(super) async fn set_suspended(conn: &mut WriterConn, cmd: &SetSuspended) -> Applied {
    let target = target(conn, cmd.target.as_str()).await?;
    let (_, changes) = suspend_target(
        conn,
        &target,
        cmd.target.as_str(),
        cmd.suspended,
        cmd.by,
        cmd.reason.as_deref(),
    )
    .await?;
    Ok((Output::Account(target.id), changes))
}

async fn suspend_target(
    conn: &mut WriterConn,
    target: &Target,
    handle: &str,
    suspended: bool,
    by: Moderator,
    reason: Option<&str>,
) -> Applied {
    if let Moderator::Staff { user, role } = by {
        if user == target.id {
            return Err(refuse(WriteError::Conflict("you cannot suspend yourself")));
        }
        if !role.moderates() || target.role >= role {
            return Err(refuse(WriteError::Forbidden(
                "only a higher role may suspend this account (an admin suspends moderators; \
                 the command line, admins)",
            )));
        }
    }
    if target.suspended == suspended {
        return Ok((Output::Done, Vec::new()));
    }
    let mut detail = serde_json::json!({"handle": handle, "by": by_label(by), "reason": reason});
    if suspended {
        conn.execute(SUSPEND, &[&target.id.0]).await?;
        let revoked = conn.execute(REVOKE_ALL, &[&target.id.0]).await?;
        detail["tokens_revoked"] = revoked.into();
    } else {
        conn.execute(UNSUSPEND, &[&target.id.0]).await?;
    }
    let action = if suspended { "suspend" } else { "unsuspend" };
    audit(conn, by.user(), action, &detail).await?;
    let change = AccountChange {
        user: target.id,
        suspended,
    };
    Ok((Output::Done, vec![Change::Account(change)]))
}

const REPORTED_POST: &str =
    "SELECT author_id, body FROM posts WHERE id = $1 AND deleted_at IS NULL";
const REPORTED_USER: &str = "SELECT id FROM users WHERE handle = $1";
const INSERT_REPORT: &str = "INSERT INTO reports \
     (reporter_id, target_user_id, post_id, post_body, reason, comment) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id";
const OPEN_REPORT: &str = "SELECT id FROM reports WHERE reporter_id = $1 \
     AND target_user_id = $2 AND COALESCE(post_id, 0) = COALESCE($3::bigint, 0) AND resolved_at IS NULL";
static REPORT_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("{REPORT_SELECT} WHERE r.id = $1"));

pub(super) async fn create_report(conn: &mut WriterConn, cmd: &CreateReport) -> Applied {
    let (target, post_body) = match (cmd.post, &cmd.handle) {
        (Some(post), handle) => {
            let row = conn
                .query_opt(REPORTED_POST, &[&post.0])
                .await?
                .ok_or_else(|| refuse(WriteError::NotFound("post")))?;
            let author = UserId(row.try_get(0)?);
            if let Some(handle) = handle {
                let named = conn.query_opt(REPORTED_USER, &[&handle.as_str()]).await?;
                if named.map(|r| r.try_get::<_, i64>(0)).transpose()? != Some(author.0) {
                    return Err(refuse(WriteError::Conflict(
                        "the handle names someone other than the post's author",
                    )));
                }
            }
            (author, Some(row.try_get::<_, String>(1)?))
        }
        (None, Some(handle)) => {
            let row = conn
                .query_opt(REPORTED_USER, &[&handle.as_str()])
                .await?
                .ok_or_else(|| refuse(WriteError::NotFound("user")))?;
            (UserId(row.try_get(0)?), None)
        }
        (None, None) => {
            return Err(refuse(WriteError::Invalid {
                field: "post_id",
                detail: "name a post_id or a handle to report".into(),
            }));
        }
    };
    if target == cmd.reporter {
        return Err(refuse(WriteError::Conflict("you cannot report yourself")));
    }
    let post = cmd.post.map(|p| p.0);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &cmd.reporter.0,
        &target.0,
        &post,
        &post_body,
        &cmd.reason.as_str(),
        &cmd.comment,
    ];
    let id: i64 = match conn.query_opt(INSERT_REPORT, &params).await? {
        Some(row) => {
            let id = row.try_get(0)?;
            let detail = serde_json::json!({"report": id, "reason": cmd.reason.as_str()});
            audit(conn, Some(cmd.reporter), "report", &detail).await?;
            id
        }
        None => conn
            .query_opt(OPEN_REPORT, &[&cmd.reporter.0, &target.0, &post])
            .await?
            .ok_or_else(|| {
                refuse(WriteError::Failed(WriteFailure::Inconsistent(
                    "a report conflicted with no open report",
                )))
            })?
            .try_get(0)?,
    };
    report_output(conn, id).await
}

async fn report_output(conn: &mut WriterConn, id: i64) -> Applied {
    let row = conn
        .query_opt(REPORT_BY_ID.as_str(), &[&id])
        .await?
        .ok_or_else(|| refuse(WriteError::NotFound("report")))?;
    Ok((Output::Report(report_from_row(&row)?), Vec::new()))
}

const REPORT_FOR_RESOLVE: &str = "SELECT r.post_id, r.target_user_id, r.resolved_at IS NOT NULL, \
     u.handle, u.role, u.disabled_at IS NOT NULL \
     FROM reports r JOIN users u ON u.id = r.target_user_id WHERE r.id = $1 FOR UPDATE OF r";
const RESOLVE: &str =
    "UPDATE reports SET resolved_at = now(), resolved_by = $2, action = $3 WHERE id = $1";

pub(super) async fn resolve_report(conn: &mut WriterConn, cmd: &ResolveReport) -> Applied {
    let Moderator::Staff {
        user: moderator,
        role,
    } = cmd.by
    else {
        return Err(refuse(WriteError::Forbidden(
            "reports are resolved through the API",
        )));
    };
    if !role.moderates() {
        return Err(refuse(WriteError::Forbidden(
            "only moderators resolve reports",
        )));
    }
    let row = conn
        .query_opt(REPORT_FOR_RESOLVE, &[&cmd.report])
        .await?
        .ok_or_else(|| refuse(WriteError::NotFound("report")))?;
    if row.try_get::<_, bool>(2)? {
        return Err(refuse(WriteError::Conflict(
            "this report was already resolved",
        )));
    }
    let post: Option<i64> = row.try_get(0)?;
    let target = Target {
        id: UserId(row.try_get(1)?),
        role: Role::parse(row.try_get(4)?).unwrap_or(Role::User),
        suspended: row.try_get(5)?,
    };
    let handle: String = row.try_get(3)?;
    let mut changes = Vec::new();
    match cmd.action {
        ReportAction::Dismiss => {}
        ReportAction::RemovePost => {
            let post = post.ok_or_else(|| {
                refuse(WriteError::Invalid {
                    field: "action",
                    detail: "this report names no post to remove".into(),
                })
            })?;
            let delete = DeletePost {
                actor: moderator,
                actor_moderates: true,
                post: PostId(post),
            };
            match delete_post(conn, &delete).await {
                Ok((_, deleted)) => changes.extend(deleted),
                // Already deleted (by its author, or another report's action): done.
                Err(ApplyError::Refused(WriteError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        ReportAction::Suspend => {
            let reason = format!("report {}", cmd.report);
            let (_, suspended) =
                suspend_target(conn, &target, &handle, true, cmd.by, Some(&reason)).await?;
            changes.extend(suspended);
        }
    }
    conn.execute(RESOLVE, &[&cmd.report, &moderator.0, &cmd.action.as_str()])
        .await?;
    let detail = serde_json::json!({"report": cmd.report, "action": cmd.action.as_str()});
    audit(conn, Some(moderator), "report_resolve", &detail).await?;
    let (output, _) = report_output(conn, cmd.report).await?;
    Ok((output, changes))
}
