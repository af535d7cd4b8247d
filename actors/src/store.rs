//! PostgreSQL access shared by the actors and the HTTP layer: the read pool type and the
//! mapping of rows to domain records.

use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::{NoTls, Row};

use crate::ids::{PostId, UserId};
use crate::model::{Author, Post, Role, User};

/// The pool every read goes through.
pub type ReadPool = bb8::Pool<PostgresConnectionManager<NoTls>>;

/// The select list that [`post_from_row`] reads: a post `p` joined with its author `u`.
pub const POST_COLUMNS: &str = "p.id, p.author_id, u.handle, u.display_name, p.body, p.reply_to, \
     p.root_id, p.reply_count, p.like_count, p.created_at";

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
