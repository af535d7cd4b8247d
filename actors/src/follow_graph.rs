//! Where the FeedBroker learns whom users follow (and hide) when they come online: one read,
//! for every user arriving together, of their follow lists, blocks and mutes, and their routing
//! records after a position of the log, in one snapshot of PostgreSQL whose log head it names.

use std::collections::HashMap;

use futures_util::future::BoxFuture;

use crate::audience::RouteChange;
use crate::db_error::ReadError;
use crate::ids::{EventId, UserId};
use crate::log_record::{self, FilterKind, StoredRecord};
use crate::store::ReadPool;

/// Follow lists as they stood at `head`, and the routing records of the same users after the
/// position asked for, up to `head`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowSnapshot {
    pub head: EventId,
    pub followees: HashMap<UserId, Vec<UserId>>,
    /// Whom each user hides at `head`, and why (a mute past its end counts until the sweep
    /// writes its end into the log).
    pub hidden: HashMap<UserId, Vec<(UserId, FilterKind)>>,
    /// In id order.
    pub records: Vec<(EventId, RouteChange)>,
}

/// Whom users follow, and how that changed after a position.
pub trait FollowGraph: Send + Sync + 'static {
    fn load(
        &self,
        users: Vec<UserId>,
        after: EventId,
    ) -> BoxFuture<'static, Result<FollowSnapshot, ReadError>>;
}

/// Reads `follows` and the log through the pool (the primary: the snapshot must be at or past
/// the broker's position).
#[derive(Clone)]
pub struct PgFollowGraph {
    pub pool: ReadPool,
}

/// One statement, so one snapshot: the head (tag 0), the follow edges (tag 1), the routing
/// records after `$2` up to the head (tag 2, with their kind) and the filters (tag 3: user,
/// other, [`FilterKind::code`]) of the users in `$1`.
const LOAD: &str = "WITH h AS (SELECT last_id FROM event_counter WHERE singleton) \
     SELECT 0, h.last_id, NULL::bigint, NULL::smallint, NULL::jsonb, NULL::text FROM h \
     UNION ALL SELECT 1, follower_id, followee_id, NULL, NULL, NULL FROM follows WHERE follower_id = ANY($1) \
     UNION ALL SELECT 2, e.id, e.recipient_id, e.version, e.payload, e.kind FROM events e, h \
       WHERE e.recipient_id = ANY($1) AND e.id > $2 AND e.id <= h.last_id AND e.kind = ANY($3) \
     UNION ALL SELECT 3, blocker_id, blocked_id, 0::smallint, NULL, NULL FROM blocks WHERE blocker_id = ANY($1) \
     UNION ALL SELECT 3, blocked_id, blocker_id, 1::smallint, NULL, NULL FROM blocks WHERE blocked_id = ANY($1) \
     UNION ALL SELECT 3, muter_id, muted_id, 2::smallint, NULL, NULL FROM mutes WHERE muter_id = ANY($1)";

/// The snapshot for `users` after `after`, from PostgreSQL.
pub async fn load_from_pg(
    pool: &ReadPool,
    users: &[UserId],
    after: EventId,
) -> Result<FollowSnapshot, ReadError> {
    let conn = pool.get().await?;
    let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
    let rows = conn
        .query(
            LOAD,
            &[
                &ids,
                &after.0,
                &[log_record::FOLLOW_KIND, log_record::FILTER_KIND].as_slice(),
            ],
        )
        .await?;
    let mut snapshot = FollowSnapshot {
        followees: users.iter().map(|u| (*u, Vec::new())).collect(),
        ..FollowSnapshot::default()
    };
    for row in &rows {
        add_row(&mut snapshot, row)?;
    }
    snapshot.records.sort_by_key(|(id, _)| *id);
    Ok(snapshot)
}

fn add_row(
    snapshot: &mut FollowSnapshot,
    row: &tokio_postgres::Row,
) -> Result<(), tokio_postgres::Error> {
    let tag: i32 = row.try_get(0)?;
    let a: i64 = row.try_get(1)?;
    match tag {
        0 => snapshot.head = EventId(a),
        1 => snapshot
            .followees
            .entry(UserId(a))
            .or_default()
            .push(UserId(row.try_get(2)?)),
        2 => {
            let record = StoredRecord {
                id: EventId(a),
                kind: row.try_get(5)?,
                version: row.try_get(3)?,
                author: None,
                recipient: row.try_get(2)?,
                payload: row.try_get(4)?,
            };
            // A record of a newer version is not understood here: the list it changed is
            // read as it stands at the head, which is as good as this node can do.
            match log_record::decode(record) {
                log_record::Decoded::Follow(change) => {
                    snapshot
                        .records
                        .push((EventId(a), RouteChange::Follow(change)));
                }
                log_record::Decoded::Filter(change) => {
                    snapshot
                        .records
                        .push((EventId(a), RouteChange::Filter(change)));
                }
                _ => {}
            }
        }
        _ => {
            if let Some(kind) = FilterKind::from_code(row.try_get(3)?) {
                snapshot
                    .hidden
                    .entry(UserId(a))
                    .or_default()
                    .push((UserId(row.try_get(2)?), kind));
            }
        }
    }
    Ok(())
}

impl FollowGraph for PgFollowGraph {
    fn load(
        &self,
        users: Vec<UserId>,
        after: EventId,
    ) -> BoxFuture<'static, Result<FollowSnapshot, ReadError>> {
        let pool = self.pool.clone();
        Box::pin(async move { load_from_pg(&pool, &users, after).await })
    }
}
