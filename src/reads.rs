//! The read queries the routes and services share: run a query on the primary or through a
//! [`Reader`] (which may use a replica), and turn its rows into a page.

use std::collections::HashSet;
use std::sync::LazyLock;

use aisocial_actors::ids::UserId;
use aisocial_actors::model::Post;
use aisocial_actors::store::{POST_COLUMNS, post_from_row};
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::cursor::Page;
use crate::problem::ApiError;
use crate::replicas::{ReadRouting, Reader};

/// Runs `sql` on the primary (bounded by `DATABASE_READ_TIMEOUT_MS`).
pub async fn query(
    reads: &ReadRouting,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, ApiError> {
    reads.primary_reader().query(sql, params).await
}

/// Where `viewer`'s replica-eligible reads go (a replica that shows their own writes, or the
/// primary).
pub async fn reader_for(reads: &ReadRouting, viewer: UserId) -> Reader<'_> {
    reads.reader(Some(viewer)).await
}

/// Maps rows, a bad row being our error (500).
pub fn rows_to<T>(
    rows: &[Row],
    map: impl Fn(&Row) -> Result<T, tokio_postgres::Error>,
) -> Result<Vec<T>, ApiError> {
    rows.iter()
        .map(map)
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("reading a row")))
}

/// A post as the reader sees it: the post, and whether the reader likes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PostView {
    #[serde(flatten)]
    pub post: Post,
    /// The caller has liked this post.
    pub liked_by_me: bool,
}

/// The posts as `viewer` sees them (one lookup of the viewer's likes for all of them).
pub async fn views_of(
    reader: &Reader<'_>,
    viewer: UserId,
    posts: Vec<Post>,
) -> Result<Vec<PostView>, ApiError> {
    let liked: HashSet<i64> = if posts.is_empty() {
        HashSet::new()
    } else {
        let ids: Vec<i64> = posts.iter().map(|p| p.id.0).collect();
        reader
            .query(
                "SELECT post_id FROM likes WHERE user_id = $1 AND post_id = ANY($2)",
                &[&viewer.0, &ids],
            )
            .await?
            .iter()
            .map(|row| row.try_get::<_, i64>(0))
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("reading likes")))?
    };
    Ok(posts
        .into_iter()
        .map(|post| PostView {
            liked_by_me: liked.contains(&post.id.0),
            post,
        })
        .collect())
}

/// SQL (a condition): the viewer (parameter `viewer`, e.g. `$1`) hides the user in column
/// `user`: a block between them either way, or, with `mutes`, a mute by the viewer that stands
/// now (`until IS NULL OR until > now()`: a passed mute hides nothing, even before the sweep
/// removes it). Each is one probe of a primary key.
pub fn hidden_by(viewer: &str, user: &str, mutes: bool) -> String {
    let blocks = format!(
        "EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = {viewer} AND b.blocked_id = {user}) \
         OR (b.blocker_id = {user} AND b.blocked_id = {viewer}))"
    );
    if !mutes {
        return blocks;
    }
    format!(
        "({blocks} OR EXISTS (SELECT 1 FROM mutes m WHERE m.muter_id = {viewer} \
         AND m.muted_id = {user} AND (m.until IS NULL OR m.until > now())))"
    )
}

/// A home timeline's page: `$1` the reader, `$2` the id to read below, `$3` the page size.
/// Each of the reader's authors (themselves and their followees) gives at most one page of their
/// newest post ids through `posts_author_idx` (`author_id, id DESC`, live posts only; an
/// index-only scan where the visibility map allows), the union is cut to one page of ids, and
/// only those posts are read whole. The work is bounded by authors × page size index entries
/// plus one page of rows, whatever the table holds and whatever the planner's statistics say:
/// a plain `author_id IN (…) ORDER BY id DESC LIMIT n` let the planner, with statistics from a
/// smaller table, read every live post and sort them, so the timeline slowed as posts
/// accumulated (the soak's rising p99); and reading every author's page whole made the cost
/// per followee a row fetch, not an index entry (1.9× slower at 38 followees, `BENCHMARKS.md`).
/// Followees the reader hides (muted, or blocked either way) give none.
pub static HOME_TIMELINE: LazyLock<String> = LazyLock::new(|| {
    let hidden = hidden_by("$1", "f.followee_id", true);
    format!(
        "SELECT {POST_COLUMNS} \
         FROM (SELECT t.id \
               FROM (SELECT $1::bigint AS author_id \
                     UNION SELECT f.followee_id FROM follows f WHERE f.follower_id = $1 \
                       AND NOT {hidden}) a \
               CROSS JOIN LATERAL \
                 (SELECT q.id FROM posts q \
                  WHERE q.author_id = a.author_id AND q.deleted_at IS NULL AND q.id < $2 \
                  ORDER BY q.id DESC LIMIT $3) t \
               ORDER BY t.id DESC LIMIT $3) newest \
         JOIN posts p ON p.id = newest.id \
         JOIN users u ON u.id = p.author_id \
         ORDER BY p.id DESC"
    )
});

/// A page of posts selected with `POST_COLUMNS` and `LIMIT limit`, as `viewer` sees them.
pub async fn post_page(
    reader: &Reader<'_>,
    viewer: UserId,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    limit: i64,
) -> Result<Page<PostView>, ApiError> {
    let rows = reader.query(sql, params).await?;
    let posts = rows_to(&rows, post_from_row)?;
    let items = views_of(reader, viewer, posts).await?;
    Ok(Page::new(items, limit, |v| v.post.id.0))
}
