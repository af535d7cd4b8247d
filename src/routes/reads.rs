//! Shared read helpers: run a query on the pool and turn its rows into a page.

use aisocial_actors::model::Post;
use aisocial_actors::store::post_from_row;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::cursor::Page;
use crate::problem::{ApiError, pool_error, read_error};
use crate::state::AppState;

/// Runs `sql` on a pooled connection.
pub async fn query(
    state: &AppState,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, ApiError> {
    let deadline = state.session_config.read_timeout;
    let read = async {
        let conn = state.pool.get().await.map_err(pool_error)?;
        conn.query(sql, params).await.map_err(read_error)
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::unavailable(
                format!("the database did not answer within {deadline:?}"),
                2,
            ))
        })
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

/// A page of posts selected with `POST_COLUMNS` and `LIMIT limit`.
pub async fn post_page(
    state: &AppState,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    limit: i64,
) -> Result<Page<Post>, ApiError> {
    let rows = query(state, sql, params).await?;
    let items = rows_to(&rows, post_from_row)?;
    Ok(Page::new(items, limit, |p| p.id.0))
}
