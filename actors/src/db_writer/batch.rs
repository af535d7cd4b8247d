//! One batch of the DbWriter, every step under a deadline: all commands in one transaction;
//! after a database error, a ROLLBACK and then one transaction per command, the whole retry
//! bounded too. Whatever does not finish in time is answered "unavailable" and the connection
//! it was on is dropped (the server rolls back what it held).

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use prometheus::{Histogram, IntCounterVec};
use tokio_postgres::SimpleQueryMessage;

use super::DbWriterConfig;
use super::apply::{ApplyError, Change, Command, Output};
use super::commands::{CreatePost, WriteError, WriteFailure, WriteUnavailable};
use super::conn::WriterConn;
use crate::committed::{Committed, Logged};
use crate::db_error;
use crate::error_chain::Chain;
use crate::event_log;
use crate::lsn::{CommitWatermark, Lsn};
use crate::meter::{self, MeteredRecipient};

static BATCH_SIZE: LazyLock<Histogram> = LazyLock::new(|| {
    meter::histogram(
        "aisocial_db_writer_batch_size",
        "Commands committed together in one DbWriter transaction.",
        meter::exponential(1.0, 2.0, 10),
    )
});
static COMMIT_TIME: LazyLock<Histogram> = LazyLock::new(|| {
    meter::histogram(
        "aisocial_db_writer_commit_seconds",
        "Time from BEGIN to the end of COMMIT for one DbWriter batch.",
        meter::exponential(0.000_25, 2.0, 16),
    )
});
static BROKER_WAITS: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_db_writer_broker_waits_total",
        "Commits the DbWriter had to hold because the FeedBroker's mailbox was full (backpressure).",
    )
});
static BROKER_GAVE_UP: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_db_writer_broker_gave_up_total",
        "Commits not handed to a FeedBroker that took nothing for 2 s (it reads them from the log).",
    )
});
static OUTCOMES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_db_writer_commands_total",
        "DbWriter commands by outcome (committed, refused, overloaded, unavailable, transient, failed).",
        &["outcome"],
    )
});

/// Counts one answered command; `None` is a commit.
pub(super) fn count_outcome(error: Option<&WriteError>) {
    let outcome = match error {
        None => "committed",
        Some(
            WriteError::NotFound(_)
            | WriteError::Invalid { .. }
            | WriteError::Unauthorized(_)
            | WriteError::Forbidden(_)
            | WriteError::Suspended
            | WriteError::Blocked(_)
            | WriteError::Conflict(_)
            | WriteError::RefreshReused { .. },
        ) => "refused",
        Some(WriteError::Overloaded) => "overloaded",
        Some(WriteError::Unavailable(_)) => "unavailable",
        Some(WriteError::Transient(_)) => "transient",
        Some(WriteError::Failed(_)) => "failed",
    };
    OUTCOMES.with_label_values(&[outcome]).inc();
}

pub(super) fn fail_all(batch: impl IntoIterator<Item = Command>, error: &WriteError) {
    for command in batch {
        count_outcome(Some(error));
        command.respond(Err(error.clone()));
    }
}

/// Commits one batch; returns the connection when it is still good for the next one.
pub(super) async fn run_batch(
    conn: Option<WriterConn>,
    config: DbWriterConfig,
    batch: Vec<Command>,
    committed_to: MeteredRecipient<Committed>,
) -> Option<WriterConn> {
    let mut conn = match conn {
        Some(conn) if !conn.is_closed() => conn,
        _ => match WriterConn::connect(&config).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %Chain(&e), commands = batch.len(), "DbWriter cannot reach PostgreSQL");
                fail_all(
                    batch,
                    &WriteError::Unavailable(WriteUnavailable::Connect(Arc::new(e))),
                );
                return None;
            }
        },
    };
    let started = Instant::now();
    let watermark = config.commit_watermark.as_deref();
    let together = tokio::time::timeout(
        config.batch_timeout,
        apply_together(&mut conn, &batch, watermark),
    )
    .await;
    match together {
        Ok(Ok((outputs, changes))) => {
            COMMIT_TIME.observe(started.elapsed().as_secs_f64());
            BATCH_SIZE.observe(batch.len() as f64);
            announce(&committed_to, changes).await;
            for (command, output) in batch.into_iter().zip(outputs) {
                count_outcome(output.as_ref().err());
                command.respond(output);
            }
            Some(conn)
        }
        Ok(Err(e)) => {
            if !conn.rollback(config.connect_timeout).await {
                tracing::warn!(error = %Chain(&e), "DbWriter lost its connection during a batch");
                fail_all(
                    batch,
                    &WriteError::Unavailable(WriteUnavailable::Connection(Arc::new(e))),
                );
                return None;
            }
            tracing::info!(error = %Chain(&e), commands = batch.len(), "batch failed; committing its commands one by one");
            apply_one_by_one(conn, &config, batch, &committed_to).await
        }
        Err(_) => {
            tracing::warn!(timeout = ?config.batch_timeout, "a DbWriter batch did not commit in time");
            fail_all(batch, &WriteError::Unavailable(WriteUnavailable::NoAnswer));
            None
        }
    }
}

type Outputs = Vec<Result<Output, WriteError>>;

/// All commands in one transaction. An `Err` means the transaction is aborted.
async fn apply_together(
    conn: &mut WriterConn,
    batch: &[Command],
    watermark: Option<&CommitWatermark>,
) -> Result<(Outputs, Vec<Logged>), tokio_postgres::Error> {
    conn.batch("BEGIN").await?;
    // Plain posts go in together (one multi-row insert); everything else one by one. Their
    // changes are then announced in command order, whatever order they were written in.
    let plain: Vec<&CreatePost> = batch.iter().filter_map(Command::plain_post).collect();
    let mut together = if plain.len() > 1 {
        super::apply::create_posts_together(conn, &plain)
            .await?
            .into_iter()
    } else {
        Vec::new().into_iter()
    };
    let mut outputs = Vec::with_capacity(batch.len());
    let mut changes = Vec::new();
    for command in batch {
        let applied = match command.plain_post() {
            Some(_) if plain.len() > 1 => together.next().map_or_else(
                || {
                    Err(ApplyError::Refused(WriteError::Failed(
                        WriteFailure::Inconsistent("a post went missing"),
                    )))
                },
                Ok,
            ),
            _ => command.apply(conn).await,
        };
        match applied {
            Ok((output, c)) => {
                outputs.push(Ok(output));
                changes.extend(c);
            }
            Err(ApplyError::Refused(e)) => outputs.push(Err(e)),
            Err(ApplyError::Database(e)) => return Err(e),
        }
    }
    let committed = commit(conn, changes, watermark).await?;
    Ok((outputs, committed))
}

/// Appends `changes` to the log (in command order) and commits; with a `watermark`, raises it
/// to the WAL position right after the COMMIT (asked in the same round trip).
async fn commit(
    conn: &mut WriterConn,
    changes: Vec<Change>,
    watermark: Option<&CommitWatermark>,
) -> Result<Vec<Logged>, tokio_postgres::Error> {
    let logged = event_log::append(conn.client(), changes).await?;
    match watermark {
        None => conn.batch("COMMIT").await?,
        Some(watermark) => {
            // A later statement of one simple query runs only if the earlier ones succeeded.
            let messages = conn
                .client()
                .simple_query("COMMIT; SELECT pg_current_wal_flush_lsn()::text")
                .await?;
            for message in messages {
                if let SimpleQueryMessage::Row(row) = message
                    && let Some(lsn) = row.get(0).and_then(Lsn::parse)
                {
                    watermark.raise(lsn);
                }
            }
        }
    }
    Ok(logged)
}

/// One command in a transaction of its own.
async fn apply_alone(
    conn: &mut WriterConn,
    command: &Command,
    watermark: Option<&CommitWatermark>,
) -> Result<(Output, Vec<Logged>), ApplyError> {
    conn.batch("BEGIN").await?;
    let (output, changes) = command.apply(conn).await?;
    let committed = commit(conn, changes, watermark).await?;
    Ok((output, committed))
}

/// The slow path after a failed batch: one transaction per command, all of them within one
/// `batch_timeout`; commands not reached by then are answered unavailable.
async fn apply_one_by_one(
    mut conn: WriterConn,
    config: &DbWriterConfig,
    batch: Vec<Command>,
    committed_to: &MeteredRecipient<Committed>,
) -> Option<WriterConn> {
    let deadline = Instant::now() + config.batch_timeout;
    let watermark = config.commit_watermark.as_deref();
    let mut rest = batch.into_iter();
    while let Some(command) = rest.next() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(
                commands = rest.len() + 1,
                "the one-by-one retry ran out of time"
            );
            fail_all(
                std::iter::once(command).chain(rest),
                &WriteError::Unavailable(WriteUnavailable::NoAnswer),
            );
            return Some(conn);
        }
        let (result, usable) =
            match tokio::time::timeout(left, apply_alone(&mut conn, &command, watermark)).await {
                Ok(Ok((output, committed))) => {
                    announce(committed_to, committed).await;
                    (Ok(output), true)
                }
                Ok(Err(e)) => {
                    let usable = conn.rollback(config.connect_timeout).await;
                    (Err(failure(e, usable, command.name())), usable)
                }
                // A statement is still in flight on this connection: it goes.
                Err(_) => (
                    Err(WriteError::Unavailable(WriteUnavailable::NoAnswer)),
                    false,
                ),
            };
        count_outcome(result.as_ref().err());
        command.respond(result);
        if !usable {
            fail_all(
                rest,
                &WriteError::Unavailable(WriteUnavailable::ConnectionLost),
            );
            return None;
        }
    }
    Some(conn)
}

/// What the caller of a command that failed alone hears; `usable`: whether its connection
/// survived (if not, a failed COMMIT may still have landed). PostgreSQL's error travels as
/// the answer's source; whoever answers the request logs it.
fn failure(e: ApplyError, usable: bool, command: &str) -> WriteError {
    match e {
        ApplyError::Refused(e) => e,
        ApplyError::Database(e) if !usable || e.is_closed() => {
            WriteError::Unavailable(WriteUnavailable::Connection(Arc::new(e)))
        }
        ApplyError::Database(e) if db_error::is_transient(&e) => {
            tracing::debug!(command, "a write met a passing condition");
            WriteError::Transient(Arc::new(e))
        }
        ApplyError::Database(e) => {
            tracing::debug!(command, "a write failed alone");
            WriteError::Failed(WriteFailure::Database(Arc::new(e)))
        }
    }
}

/// Hands what committed to the broker, waiting while its mailbox is full: the writer slows to
/// the broker's pace rather than growing the broker's mailbox without bound.
async fn announce(committed_to: &MeteredRecipient<Committed>, entries: Vec<Logged>) {
    if entries.is_empty() {
        return;
    }
    let committed = Committed {
        entries,
        committed_at: Instant::now(),
    };
    // Bounded too: a broker that takes nothing for this long gets nothing from here; it reads
    // these records from the log at its next look at the head.
    match tokio::time::timeout(BROKER_WAIT_LIMIT, committed_to.queue(committed)).await {
        Ok(Ok(waits)) if waits > 0 => BROKER_WAITS.inc(),
        Ok(_) => {}
        Err(_) => BROKER_GAVE_UP.inc(),
    }
}

/// The longest the writer waits for room in the broker's mailbox.
const BROKER_WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);
