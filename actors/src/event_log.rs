//! The durable event log (`events`): appended by the DbWriter inside its transactions, read back
//! by sessions that resume with `since`.
//!
//! Ids come from the single row of `event_counter`, updated inside the writing transaction just
//! before COMMIT. The row lock serialises every committing writer on every node, so ids are
//! dense (a rolled-back transaction rolls its ids back too) and in commit order: once id N is
//! visible, every id below N is visible too. That is what makes `since` resume exact.

use std::time::Duration;

use tokio_postgres::Client;

use crate::ids::{EventId, UserId};
use crate::protocol::EventKind;

/// Who a durable event is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The author and everyone following them.
    FollowersOf(UserId),
    /// One user (notifications).
    User(UserId),
}

/// An event written by a command, before its transaction assigned it an id.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventKind,
    pub audience: Audience,
    pub payload: serde_json::Value,
}

/// An event whose transaction committed.
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    pub id: EventId,
    pub kind: EventKind,
    pub audience: Audience,
    pub payload: serde_json::Value,
}

const ALLOCATE_IDS: &str =
    "UPDATE event_counter SET last_id = last_id + $1 WHERE singleton RETURNING last_id";
const INSERT_EVENTS: &str = "INSERT INTO events (id, kind, author_id, recipient_id, payload) \
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::jsonb[])";

/// Appends `events` inside the caller's open transaction; call it last before COMMIT so the
/// counter row is locked as briefly as possible.
pub async fn append(
    client: &Client,
    events: Vec<NewEvent>,
) -> Result<Vec<CommittedEvent>, tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let n = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let last: i64 = client.query_one(ALLOCATE_IDS, &[&n]).await?.try_get(0)?;
    let first = last - n + 1;
    let ids: Vec<i64> = (first..=last).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let authors: Vec<Option<i64>> = events
        .iter()
        .map(|e| match e.audience {
            Audience::FollowersOf(u) => Some(u.0),
            Audience::User(_) => None,
        })
        .collect();
    let recipients: Vec<Option<i64>> = events
        .iter()
        .map(|e| match e.audience {
            Audience::User(u) => Some(u.0),
            Audience::FollowersOf(_) => None,
        })
        .collect();
    let payloads: Vec<&serde_json::Value> = events.iter().map(|e| &e.payload).collect();
    client
        .execute(
            INSERT_EVENTS,
            &[&ids, &kinds, &authors, &recipients, &payloads],
        )
        .await?;
    Ok(events
        .into_iter()
        .zip(ids)
        .map(|(e, id)| CommittedEvent {
            id: EventId(id),
            kind: e.kind,
            audience: e.audience,
            payload: e.payload,
        })
        .collect())
}

/// What a resume found.
#[derive(Debug)]
pub enum Replay {
    /// Every event for the user after `since`, in id order.
    Events(Vec<(EventId, EventKind, serde_json::Value)>),
    /// `since` is older than the retention window, newer than anything written, or more events
    /// are missing than one replay carries: the client must refetch over HTTP.
    ResyncRequired,
}

const HEAD: &str = "SELECT last_id FROM event_counter WHERE singleton";
const OLDEST_RETAINED: &str = "SELECT id FROM events WHERE created_at >= now() - make_interval(secs => $1) \
     ORDER BY created_at, id LIMIT 1";
const EVENTS_FOR_USER: &str = "SELECT id, kind, payload FROM events WHERE id > $1 AND id <= $2 \
     AND (recipient_id = $3 OR author_id = $3 OR author_id IN \
          (SELECT followee_id FROM follows WHERE follower_id = $3)) \
     ORDER BY id LIMIT $4";

/// Reads every event addressed to `user` after `since`, at most `limit` of them, within
/// `retention`.
pub async fn replay(
    client: &Client,
    user: UserId,
    since: EventId,
    retention: Duration,
    limit: usize,
) -> Result<Replay, tokio_postgres::Error> {
    let head: i64 = client.query_one(HEAD, &[]).await?.try_get(0)?;
    if since.0 > head || since.0 < 0 {
        return Ok(Replay::ResyncRequired);
    }
    if since.0 == head {
        return Ok(Replay::Events(Vec::new()));
    }
    let oldest: Option<i64> = client
        .query_opt(OLDEST_RETAINED, &[&retention.as_secs_f64()])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    match oldest {
        // Events after `since` exist but none is inside the window, or the first one after
        // `since` is already outside it.
        None => return Ok(Replay::ResyncRequired),
        Some(oldest) if since.0 + 1 < oldest => return Ok(Replay::ResyncRequired),
        Some(_) => {}
    }
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let rows = client
        .query(EVENTS_FOR_USER, &[&since.0, &head, &user.0, &fetch])
        .await?;
    if rows.len() > limit {
        return Ok(Replay::ResyncRequired);
    }
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get(1)?;
        // A kind this build does not know was written by a newer node: skip it rather than
        // fail the whole resume.
        if let Some(kind) = EventKind::parse(&kind) {
            events.push((EventId(row.try_get(0)?), kind, row.try_get(2)?));
        }
    }
    Ok(Replay::Events(events))
}

const RANGE: &str = "SELECT id, kind, author_id, recipient_id, payload FROM events \
     WHERE id >= $1 AND id < $2 ORDER BY id";

/// Every committed event with `from <= id < to`, in id order (for repairing a gap).
pub async fn range(
    client: &Client,
    from: EventId,
    to: EventId,
) -> Result<Vec<CommittedEvent>, tokio_postgres::Error> {
    let rows = client.query(RANGE, &[&from.0, &to.0]).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get(1)?;
        let author: Option<i64> = row.try_get(2)?;
        let recipient: Option<i64> = row.try_get(3)?;
        let audience = match (author, recipient) {
            (Some(a), _) => Audience::FollowersOf(UserId(a)),
            (None, Some(r)) => Audience::User(UserId(r)),
            (None, None) => continue,
        };
        let Some(kind) = EventKind::parse(&kind) else {
            continue;
        };
        events.push(CommittedEvent {
            id: EventId(row.try_get(0)?),
            kind,
            audience,
            payload: row.try_get(4)?,
        });
    }
    Ok(events)
}

/// The newest committed event id (0 before the first).
pub async fn head(client: &Client) -> Result<EventId, tokio_postgres::Error> {
    Ok(EventId(client.query_one(HEAD, &[]).await?.try_get(0)?))
}

/// Where the broker reads the log: the head at start-up and ranges to fill gaps.
pub trait EventSource: Send + Sync + 'static {
    fn head(&self) -> futures_util::future::BoxFuture<'static, Result<EventId, String>>;
    fn range(
        &self,
        from: EventId,
        to: EventId,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<CommittedEvent>, String>>;
}

/// The event log in PostgreSQL, through the read pool.
#[derive(Clone)]
pub struct PgEventSource {
    pub pool: crate::store::ReadPool,
}

impl EventSource for PgEventSource {
    fn head(&self) -> futures_util::future::BoxFuture<'static, Result<EventId, String>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let conn = pool.get().await.map_err(|e| e.to_string())?;
            head(&conn).await.map_err(|e| e.to_string())
        })
    }

    fn range(
        &self,
        from: EventId,
        to: EventId,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<CommittedEvent>, String>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let conn = pool.get().await.map_err(|e| e.to_string())?;
            range(&conn, from, to).await.map_err(|e| e.to_string())
        })
    }
}
