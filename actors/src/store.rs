//! PostgreSQL access shared by the actors and the HTTP layer: the read pool type and the
//! mapping of rows to domain records.

use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::{NoTls, Row};

use crate::ids::{PostId, UserId};
use crate::model::{Author, Post, Report, ReportAction, ReportReason, ReportStatus, Role, User};

/// The pool every read goes through.
pub type ReadPool = bb8::Pool<PostgresConnectionManager<NoTls>>;

/// The select list that [`post_from_row`] reads: a post `p` joined with its author `u`
/// ([`POST_COLUMN_COUNT`] columns; a query may select more after them).
pub const POST_COLUMNS: &str = "p.id, p.author_id, u.handle, u.display_name, p.body, p.reply_to, \
     p.root_id, p.reply_count, p.like_count, p.created_at, u.handle = 'ai'";

/// How many columns [`POST_COLUMNS`] selects.
pub const POST_COLUMN_COUNT: usize = 11;

/// Reads a post from a row selected with [`POST_COLUMNS`].
pub fn post_from_row(row: &Row) -> Result<Post, tokio_postgres::Error> {
    Ok(Post {
        id: PostId(row.try_get(0)?),
        author: Author {
            id: UserId(row.try_get(1)?),
            handle: row.try_get(2)?,
            display_name: row.try_get(3)?,
        },
        body: row.try_get(4)?,
        reply_to: row.try_get::<_, Option<i64>>(5)?.map(PostId),
        root_id: row.try_get::<_, Option<i64>>(6)?.map(PostId),
        reply_count: row.try_get(7)?,
        like_count: row.try_get(8)?,
        created_at: row.try_get(9)?,
        ai_generated: row.try_get(10)?,
    })
}

/// The select list that [`user_from_row`] reads from `users`.
pub const USER_COLUMNS: &str = "id, handle, display_name, role";

/// Reads a user from a row selected with [`USER_COLUMNS`]; an unknown role reads as `user`.
pub fn user_from_row(row: &Row) -> Result<User, tokio_postgres::Error> {
    let role: String = row.try_get(3)?;
    Ok(User {
        id: UserId(row.try_get(0)?),
        handle: row.try_get(1)?,
        display_name: row.try_get(2)?,
        role: Role::parse(&role).unwrap_or(Role::User),
    })
}

/// Selects reports `r` for [`report_from_row`]; append a `WHERE` on `r`.
pub const REPORT_SELECT: &str = "SELECT r.id, r.reporter_id, ru.handle, ru.display_name, \
     r.target_user_id, tu.handle, tu.display_name, tu.disabled_at IS NOT NULL, r.post_id, \
     r.post_body, r.reason, r.comment, r.action, r.resolved_by, mu.handle, mu.display_name, \
     r.created_at, r.resolved_at \
     FROM reports r JOIN users tu ON tu.id = r.target_user_id \
     LEFT JOIN users ru ON ru.id = r.reporter_id LEFT JOIN users mu ON mu.id = r.resolved_by";

/// Reads a report from a row selected with [`REPORT_SELECT`]; a reason or action this build
/// does not know reads as `other` and as none.
pub fn report_from_row(row: &Row) -> Result<Report, tokio_postgres::Error> {
    let person = |id: usize| -> Result<Option<Author>, tokio_postgres::Error> {
        let Some(user) = row.try_get::<_, Option<i64>>(id)? else {
            return Ok(None);
        };
        Ok(Some(Author {
            id: UserId(user),
            handle: row
                .try_get::<_, Option<String>>(id + 1)?
                .unwrap_or_default(),
            display_name: row
                .try_get::<_, Option<String>>(id + 2)?
                .unwrap_or_default(),
        }))
    };
    let reason: String = row.try_get(10)?;
    let action: Option<String> = row.try_get(12)?;
    let resolved_at: Option<chrono::DateTime<chrono::Utc>> = row.try_get(17)?;
    Ok(Report {
        id: row.try_get(0)?,
        reporter: person(1)?,
        target: Author {
            id: UserId(row.try_get(4)?),
            handle: row.try_get(5)?,
            display_name: row.try_get(6)?,
        },
        target_suspended: row.try_get(7)?,
        post_id: row.try_get::<_, Option<i64>>(8)?.map(PostId),
        post_body: row.try_get(9)?,
        reason: ReportReason::parse(&reason).unwrap_or(ReportReason::Other),
        comment: row.try_get(11)?,
        status: if resolved_at.is_some() {
            ReportStatus::Resolved
        } else {
            ReportStatus::Open
        },
        action: action.as_deref().and_then(ReportAction::parse),
        resolved_by: person(13)?,
        created_at: row.try_get(16)?,
        resolved_at,
    })
}
