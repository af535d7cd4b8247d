//! Where the FeedBroker learns whom a user follows: PostgreSQL by default, or any source the
//! server provides (it puts a Redis cache in front).

use futures_util::future::BoxFuture;

use crate::ids::UserId;
use crate::store::ReadPool;

/// Whom a user follows, right now.
pub trait FollowGraph: Send + Sync + 'static {
    fn followees(&self, user: UserId) -> BoxFuture<'static, Result<Vec<UserId>, String>>;
}

/// Reads `follows` through the pool.
#[derive(Clone)]
pub struct PgFollowGraph {
    pub pool: ReadPool,
}

/// The followees of `user`, from PostgreSQL.
pub async fn followees_from_pg(pool: &ReadPool, user: UserId) -> Result<Vec<UserId>, String> {
    let conn = pool.get().await.map_err(|e| e.to_string())?;
    let rows = conn
        .query(
            "SELECT followee_id FROM follows WHERE follower_id = $1",
            &[&user.0],
        )
        .await
        .map_err(|e| e.to_string())?;
    rows.iter()
        .map(|r| r.try_get::<_, i64>(0).map(UserId))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

impl FollowGraph for PgFollowGraph {
    fn followees(&self, user: UserId) -> BoxFuture<'static, Result<Vec<UserId>, String>> {
        let pool = self.pool.clone();
        Box::pin(async move { followees_from_pg(&pool, user).await })
    }
}
