//! The durable event log (`events`): appended by the DbWriter inside its transactions, read back
//! by sessions that resume with `since` and by brokers that fill gaps. It holds the events
//! clients receive and the routing records that decide who receives them (see
//! [`crate::log_record`] for each record's shape).
//!
//! Ids come from the single row of `event_counter`, updated inside the writing transaction just
//! before COMMIT. The row lock serialises every committing writer on every node, so ids are
//! dense (a rolled-back transaction rolls its ids back too) and in commit order: once id N is
//! visible, every id below N is visible too. That is what makes `since` resume exact.

use std::sync::{Arc, LazyLock};

use prometheus::IntCounter;
use tokio_postgres::Client;

pub use crate::audience::Audience;
use crate::audience::{Followees, RouteChange, followees_at, select_for_user};
use crate::committed::{LogEntry, Logged};
use crate::db_error::ReadError;
use crate::ids::{EventId, UserId};
use crate::log_record::{self, Decoded, FilterChange, FilterKind, FollowChange, StoredRecord};
use crate::meter;
use crate::protocol::EventKind;

static UNKNOWN_RECORDS: LazyLock<IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_log_unknown_records_total",
        "Log records of a kind or version this node does not know (written by a newer node), skipped.",
    )
});

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

impl CommittedEvent {
    /// Who caused it (a post's author, a notification's actor): whom a block or mute hides.
    pub fn actor(&self) -> Option<UserId> {
        log_record::actor_of(self.kind, self.audience, &self.payload)
    }

    /// A rough size in bytes (the body dominates), for bounding what is held in memory.
    pub fn weight(&self) -> usize {
        let body = self
            .payload
            .get("body")
            .and_then(|b| b.as_str())
            .map_or(0, str::len);
        256 + body
    }
}

/// A record a command writes, before its transaction assigned it an id.
#[derive(Debug, Clone)]
pub enum NewRecord {
    Event(NewEvent),
    Follow(FollowChange),
    Account(log_record::AccountChange),
    Filter(FilterChange),
}

const ALLOCATE_IDS: &str =
    "UPDATE event_counter SET last_id = last_id + $1 WHERE singleton RETURNING last_id";
const INSERT_EVENTS: &str = "INSERT INTO events (id, kind, author_id, recipient_id, payload, version) \
     SELECT *, $6::smallint FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::jsonb[])";

/// Appends `records` inside the caller's open transaction, in order; call it last before
/// COMMIT so the counter row is locked as briefly as possible.
pub async fn append(
    client: &Client,
    records: Vec<NewRecord>,
) -> Result<Vec<Logged>, tokio_postgres::Error> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let n = i64::try_from(records.len()).unwrap_or(i64::MAX);
    let last: i64 = client.query_one(ALLOCATE_IDS, &[&n]).await?.try_get(0)?;
    let first = last - n + 1;
    let ids: Vec<i64> = (first..=last).collect();
    let mut kinds = Vec::with_capacity(records.len());
    let mut authors: Vec<Option<i64>> = Vec::with_capacity(records.len());
    let mut recipients: Vec<Option<i64>> = Vec::with_capacity(records.len());
    let mut payloads = Vec::with_capacity(records.len());
    for record in &records {
        match record {
            NewRecord::Event(e) => {
                kinds.push(e.kind.as_str());
                let (author, recipient) = match e.audience {
                    Audience::FollowersOf(u) => (Some(u.0), None),
                    Audience::User(u) => (None, Some(u.0)),
                };
                authors.push(author);
                recipients.push(recipient);
                payloads.push(e.payload.clone());
            }
            NewRecord::Follow(f) => {
                kinds.push(log_record::FOLLOW_KIND);
                authors.push(None);
                recipients.push(Some(f.follower.0));
                payloads.push(log_record::follow(f));
            }
            NewRecord::Account(a) => {
                kinds.push(log_record::ACCOUNT_KIND);
                authors.push(None);
                recipients.push(Some(a.user.0));
                payloads.push(log_record::account(a));
            }
            NewRecord::Filter(f) => {
                kinds.push(log_record::FILTER_KIND);
                authors.push(None);
                recipients.push(Some(f.user.0));
                payloads.push(log_record::filter(f));
            }
        }
    }
    client
        .execute(
            INSERT_EVENTS,
            &[
                &ids,
                &kinds,
                &authors,
                &recipients,
                &payloads,
                &log_record::VERSION,
            ],
        )
        .await?;
    Ok(records
        .into_iter()
        .zip(ids)
        .map(|(record, id)| {
            let id = EventId(id);
            let entry = match record {
                NewRecord::Event(e) => LogEntry::Event(Arc::new(CommittedEvent {
                    id,
                    kind: e.kind,
                    audience: e.audience,
                    payload: e.payload,
                })),
                NewRecord::Follow(f) => LogEntry::Follow(f),
                NewRecord::Account(a) => LogEntry::Account(a),
                NewRecord::Filter(f) => LogEntry::Filter(f),
            };
            Logged { id, entry }
        })
        .collect())
}

/// What a resume must send.
#[derive(Debug)]
pub enum Replay {
    /// The ids of every event for the user after `since`, in id order; their bodies are read
    /// page by page ([`read_events`]) as the client takes them.
    Events(Vec<EventId>),
    /// `since` is older than what the log retains, newer than anything written, or more events
    /// are missing than one replay carries: the client must refetch over HTTP.
    ResyncRequired,
}

const HEAD: &str = "SELECT last_id FROM event_counter WHERE singleton";
const HEAD_AND_FLOOR: &str = "SELECT c.last_id, r.purged_through FROM event_counter c, event_retention r \
     WHERE c.singleton AND r.singleton";
const FOLLOWEES: &str = "SELECT followee_id FROM follows WHERE follower_id = $1";
/// The same columns, with the payload only where a resume's plan needs it (routing records,
/// and notifications, whose actor a block or mute hides; both small): the plan of a long resume
/// holds ids, not bodies.
const PLAN_COLUMNS: &str = "id, kind, version, author_id, recipient_id, \
     CASE WHEN kind IN ('route.follow', 'route.filter', 'notification') THEN payload \
     ELSE 'null'::jsonb END";
/// Whom `$1` hides now, by the routing state (a mute past its `until` counts until the sweep
/// ends it in the log): 0 blocked by them, 1 blocking them, 2 muted by them.
const HIDDEN: &str = "SELECT blocked_id, 0::smallint FROM blocks WHERE blocker_id = $1 \
     UNION ALL SELECT blocker_id, 1::smallint FROM blocks WHERE blocked_id = $1 \
     UNION ALL SELECT muted_id, 2::smallint FROM mutes WHERE muter_id = $1";
/// The user's own records after `since`: notifications and routing records, through the
/// recipient index (ordered as the index is, so that no plan walks the primary key instead).
pub static OWN_RECORDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {PLAN_COLUMNS} FROM events WHERE recipient_id = $1 AND id > $2 AND id <= $3 \
         ORDER BY recipient_id, id LIMIT $4"
    )
});
/// Events by the given authors after `since`: one walk of the author index per author, each
/// stopping at the page, so a resume reads what the user may receive, never the log.
pub static AUTHORS_EVENTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT e.* FROM unnest($1::bigint[]) a (author), LATERAL \
         (SELECT {PLAN_COLUMNS} FROM events WHERE author_id = a.author AND id > $2 AND id <= $3 \
          ORDER BY author_id, id LIMIT $4) e ORDER BY e.id LIMIT $4"
    )
});
/// Rows one resume query reads at most before it reads on from the last.
const REPLAY_PAGE: i64 = 2_000;

fn stored(row: &tokio_postgres::Row) -> Result<StoredRecord, tokio_postgres::Error> {
    Ok(StoredRecord {
        id: EventId(row.try_get(0)?),
        kind: row.try_get(1)?,
        version: row.try_get(2)?,
        author: row.try_get(3)?,
        recipient: row.try_get(4)?,
        payload: row.try_get(5)?,
    })
}

/// What one stored record's id holds (counting kinds this build does not know).
pub fn logged(record: StoredRecord) -> Logged {
    let id = record.id;
    let entry = match log_record::decode(record) {
        Decoded::Event(e) => LogEntry::Event(Arc::new(e)),
        Decoded::Follow(f) => LogEntry::Follow(f),
        Decoded::Account(a) => LogEntry::Account(a),
        Decoded::Filter(f) => LogEntry::Filter(f),
        Decoded::Unknown => {
            UNKNOWN_RECORDS.inc();
            LogEntry::Skip
        }
    };
    Logged { id, entry }
}

/// Reads `sql` (bound to `first`, a lower bound exclusive, `head` and a page size) page by
/// page until it is exhausted or `max_rows` rows were read.
async fn read_pages(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    first: &(dyn tokio_postgres::types::ToSql + Sync),
    since: EventId,
    head: EventId,
    max_rows: usize,
) -> Result<(Vec<Logged>, bool), tokio_postgres::Error> {
    let mut out = Vec::new();
    let mut after = since.0;
    loop {
        let rows = tx
            .query(sql, &[first, &after, &head.0, &REPLAY_PAGE])
            .await?;
        let full = rows.len() as i64 == REPLAY_PAGE;
        for row in &rows {
            let record = logged(stored(row)?);
            after = record.id.0;
            out.push(record);
        }
        if out.len() > max_rows {
            return Ok((out, true));
        }
        if !full {
            return Ok((out, false));
        }
    }
}

/// Plans a resume: the ids of every event addressed to `user` after `since`, at most `limit`
/// of them, each to the audience as it stood at its id ([`select_for_user`], the broker's own
/// decision).
///
/// It reads what the user may receive, not the log: the user's own records (notifications and
/// follow changes, through the recipient index) and the events of the authors the user
/// followed at some point after `since` (through the author index), in one snapshot.
pub async fn replay(
    client: &mut Client,
    user: UserId,
    since: EventId,
    limit: usize,
) -> Result<Replay, tokio_postgres::Error> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let row = tx.query_one(HEAD_AND_FLOOR, &[]).await?;
    let head = EventId(row.try_get(0)?);
    let purged_through: i64 = row.try_get(1)?;
    if since > head || since.0 < 0 || since.0 < purged_through {
        return Ok(Replay::ResyncRequired);
    }
    if since == head {
        return Ok(Replay::Events(Vec::new()));
    }
    let now: Vec<UserId> = tx
        .query(FOLLOWEES, &[&user.0])
        .await?
        .iter()
        .map(|r| r.try_get(0).map(UserId))
        .collect::<Result<_, _>>()?;
    let mut hidden = Vec::new();
    for row in tx.query(HIDDEN, &[&user.0]).await? {
        if let Some(kind) = FilterKind::from_code(row.try_get(1)?) {
            hidden.push((UserId(row.try_get(0)?), kind));
        }
    }
    // The user's own records: a notification beyond the limit means a resync anyway, and
    // routing records are few (each is a request of the user's, or a block of them).
    let (own, _) = read_pages(&tx, &OWN_RECORDS, &user.0, since, head, usize::MAX).await?;
    let records: Vec<(EventId, RouteChange)> = own
        .iter()
        .filter_map(|l| RouteChange::of_user(&l.entry, user).map(|c| (l.id, c)))
        .collect();
    let mut authors: Vec<i64> = now.iter().map(|u| u.0).collect();
    authors.extend(records.iter().filter_map(|(_, c)| match c {
        RouteChange::Follow(f) => Some(f.followee.0),
        RouteChange::Filter(_) => None,
    }));
    authors.push(user.0);
    authors.sort_unstable();
    authors.dedup();
    let now = Followees::new(now).with_hidden(hidden);
    let at_since = followees_at(user, now, &records, since);
    let (by_authors, over) = read_pages(
        &tx,
        &AUTHORS_EVENTS,
        &authors,
        since,
        head,
        limit.saturating_mul(4),
    )
    .await?;
    tx.commit().await?;
    let mut entries = own;
    entries.extend(by_authors);
    entries.sort_by_key(|l| l.id);
    entries.dedup_by_key(|l| l.id);
    let (selected, _) = select_for_user(user, at_since, &entries);
    if selected.len() > limit || (over && selected.len() >= limit) {
        return Ok(Replay::ResyncRequired);
    }
    Ok(Replay::Events(
        selected
            .into_iter()
            .filter(|l| matches!(l.entry, LogEntry::Event(_)))
            .map(|l| l.id)
            .collect(),
    ))
}

const EVENTS_BY_ID: &str = "SELECT id, kind, version, author_id, recipient_id, payload \
     FROM events WHERE id = ANY($1) ORDER BY id";

/// The events with these ids, in id order, ready to send (an id no longer there, purged since
/// the plan, or of a kind this build does not know is left out).
pub async fn read_events(
    client: &Client,
    ids: &[EventId],
) -> Result<Vec<(EventId, EventKind, serde_json::Value)>, tokio_postgres::Error> {
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let rows = client.query(EVENTS_BY_ID, &[&ids]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        if let LogEntry::Event(e) = logged(stored(row)?).entry {
            out.push((e.id, e.kind, e.payload.clone()));
        }
    }
    Ok(out)
}

/// What a range read found: every id from its start through `through`, each an event, a
/// routing record or [`LogEntry::Skip`] (no row: purged; or a kind this node does not know).
#[derive(Debug, Default)]
pub struct RangeRead {
    pub entries: Vec<Logged>,
    /// The last id the read covers (the log's head when it ended before `to`).
    pub through: EventId,
}

/// One snapshot: the head and the rows of `[from, min(to, head + 1))`, at most `max_rows`.
const RANGE: &str = "SELECT h.last_id, e.id, e.kind, e.version, e.author_id, e.recipient_id, e.payload \
     FROM (SELECT last_id FROM event_counter WHERE singleton) h \
     LEFT JOIN LATERAL (SELECT * FROM events WHERE id >= $1 AND id < $2 AND id <= h.last_id \
       ORDER BY id LIMIT $3) e ON true ORDER BY e.id";

/// Every id in `from..to` up to the log's head (at most `max_rows` rows), in id order, with a
/// [`LogEntry::Skip`] for each id that has no row. Ids below the head are all committed (they
/// are dense in commit order), so an id without a row was purged: it is never waited for.
pub async fn range(
    client: &Client,
    from: EventId,
    to: EventId,
    max_rows: usize,
) -> Result<RangeRead, tokio_postgres::Error> {
    let max = i64::try_from(max_rows.max(1)).unwrap_or(i64::MAX);
    let rows = client.query(RANGE, &[&from.0, &to.0, &max]).await?;
    let mut head = EventId(0);
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        head = EventId(row.try_get(0)?);
        let id: Option<i64> = row.try_get(1)?;
        if id.is_none() {
            continue;
        }
        let record = StoredRecord {
            id: EventId(row.try_get(1)?),
            kind: row.try_get(2)?,
            version: row.try_get(3)?,
            author: row.try_get(4)?,
            recipient: row.try_get(5)?,
            payload: row.try_get(6)?,
        };
        found.push(record);
    }
    let full = found.len() as i64 == max;
    let through = match found.last() {
        Some(last) if full => last.id,
        _ => EventId((to.0 - 1).min(head.0)),
    };
    let mut entries = Vec::with_capacity(found.len());
    let mut next = from;
    for record in found {
        while next < record.id {
            entries.push(Logged {
                id: next,
                entry: LogEntry::Skip,
            });
            next = EventId(next.0 + 1);
        }
        next = EventId(record.id.0 + 1);
        entries.push(logged(record));
    }
    while next <= through {
        entries.push(Logged {
            id: next,
            entry: LogEntry::Skip,
        });
        next = EventId(next.0 + 1);
    }
    Ok(RangeRead { entries, through })
}

/// The newest committed event id (0 before the first).
pub async fn head(client: &Client) -> Result<EventId, tokio_postgres::Error> {
    Ok(EventId(client.query_one(HEAD, &[]).await?.try_get(0)?))
}

/// Where the broker reads the log: the head at start-up and ranges to fill gaps.
pub trait EventSource: Send + Sync + 'static {
    fn head(&self) -> futures_util::future::BoxFuture<'static, Result<EventId, ReadError>>;
    /// See [`range`].
    fn range(
        &self,
        from: EventId,
        to: EventId,
        max_rows: usize,
    ) -> futures_util::future::BoxFuture<'static, Result<RangeRead, ReadError>>;
}

/// The event log in PostgreSQL, through the read pool.
#[derive(Clone)]
pub struct PgEventSource {
    pub pool: crate::store::ReadPool,
}

impl EventSource for PgEventSource {
    fn head(&self) -> futures_util::future::BoxFuture<'static, Result<EventId, ReadError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let conn = pool.get().await?;
            Ok(head(&conn).await?)
        })
    }

    fn range(
        &self,
        from: EventId,
        to: EventId,
        max_rows: usize,
    ) -> futures_util::future::BoxFuture<'static, Result<RangeRead, ReadError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let conn = pool.get().await?;
            Ok(range(&conn, from, to, max_rows).await?)
        })
    }
}
