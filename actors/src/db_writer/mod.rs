//! The DbWriter: the only actor that writes to PostgreSQL.
//!
//! Commands queue in arrival order. While one batch is committing, the next accumulates; when
//! the commit returns, everything waiting (up to `max_batch`) goes into the next transaction
//! (group commit: many commands, one COMMIT, one fsync). Each command is answered only after its
//! transaction committed, and the committed changes go to the FeedBroker in commit order.
//! A database error in a batch rolls it back and replays its commands one transaction each, so
//! one bad command fails alone.

mod apply;
pub mod commands;
mod conn;

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use prometheus::{Histogram, IntCounterVec};
use tokio::sync::oneshot;
use tokio_postgres::SimpleQueryMessage;

pub use self::apply::{
    AI_HANDLE, MAX_MENTIONS, NotificationKind, handle_candidate, mentions, mentions_ai,
};
use self::apply::{ApplyError, Change, Command, Output};
pub use self::commands::{
    CreatePost, CreatedPost, DeletePost, Drain, Follow, LikePost, NewRefresh, PurgeEvents,
    RecordAiUsage, RecordAudit, RevokeFamily, RotateRefresh, SignInDev, SignInGoogle, SignedIn,
    Unfollow, UnlikePost, UpdateProfile, WriteError,
};
use self::conn::WriterConn;
use crate::committed::{Committed, Logged};
use crate::event_log;
use crate::lsn::{CommitWatermark, Lsn};
use crate::meter::{self, ActorMeter, MeteredRecipient};
use crate::metered_handler;

/// How the DbWriter reaches PostgreSQL and how much it holds.
#[derive(Clone, Debug)]
pub struct DbWriterConfig {
    pub database: tokio_postgres::Config,
    /// Commands per transaction at most.
    pub max_batch: usize,
    /// Commands waiting at most; past it callers get [`WriteError::Overloaded`].
    pub max_queue: usize,
    pub connect_timeout: Duration,
    /// A batch that has not committed by then is abandoned (its connection dropped, so the
    /// server rolls it back) and its commands fail as unavailable.
    pub batch_timeout: Duration,
    /// How long a statement waits for a row lock before it fails (`lock_timeout`).
    pub lock_timeout: Duration,
    /// Raised after every COMMIT to the primary's WAL position (one more statement in the
    /// COMMIT's round trip), for read replicas' read-your-writes; `None` when there are none.
    pub commit_watermark: Option<Arc<CommitWatermark>>,
}

impl DbWriterConfig {
    /// The defaults of the server's settings, for `database`.
    pub fn new(database: tokio_postgres::Config) -> Self {
        Self {
            database,
            max_batch: 256,
            max_queue: 10_000,
            connect_timeout: Duration::from_secs(2),
            batch_timeout: Duration::from_secs(15),
            lock_timeout: Duration::from_secs(5),
            commit_watermark: None,
        }
    }
}

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
static OUTCOMES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_db_writer_commands_total",
        "DbWriter commands by outcome (committed, refused, overloaded, unavailable, failed).",
        &["outcome"],
    )
});

/// Counts one answered command; `None` is a commit.
fn count_outcome(error: Option<&WriteError>) {
    let outcome = match error {
        None => "committed",
        Some(
            WriteError::NotFound(_)
            | WriteError::Invalid { .. }
            | WriteError::Unauthorized(_)
            | WriteError::Forbidden(_)
            | WriteError::Conflict(_)
            | WriteError::RefreshReused { .. },
        ) => "refused",
        Some(WriteError::Overloaded) => "overloaded",
        Some(WriteError::Unavailable(_)) => "unavailable",
        Some(WriteError::Failed(_)) => "failed",
    };
    OUTCOMES.with_label_values(&[outcome]).inc();
}

/// The DbWriter actor.
pub struct DbWriter {
    meter: ActorMeter,
    config: DbWriterConfig,
    /// Taken by the batch in flight and given back when it ends; `None` also after a failure,
    /// so the next batch reconnects.
    conn: Option<WriterConn>,
    pending: VecDeque<Command>,
    flushing: bool,
    drained: Vec<oneshot::Sender<()>>,
    committed_to: MeteredRecipient<Committed>,
}

impl DbWriter {
    pub const KIND: &'static str = "db_writer";

    pub fn new(config: DbWriterConfig, committed_to: MeteredRecipient<Committed>) -> Self {
        Self {
            meter: ActorMeter::new(Self::KIND),
            config,
            conn: None,
            pending: VecDeque::new(),
            flushing: false,
            drained: Vec::new(),
            committed_to,
        }
    }

    pub fn meter() -> ActorMeter {
        ActorMeter::new(Self::KIND)
    }

    fn enqueue(&mut self, command: Command, ctx: &mut Context<Self>) {
        if self.pending.len() >= self.config.max_queue {
            count_outcome(Some(&WriteError::Overloaded));
            command.respond(Err(WriteError::Overloaded));
            return;
        }
        self.pending.push_back(command);
        self.flush(ctx);
    }

    /// Starts the next batch unless one is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing {
            return;
        }
        if self.pending.is_empty() {
            for waiter in self.drained.drain(..) {
                let _ = waiter.send(());
            }
            return;
        }
        let n = self.pending.len().min(self.config.max_batch);
        let batch: Vec<Command> = self.pending.drain(..n).collect();
        self.flushing = true;
        let conn = self.conn.take();
        let config = self.config.clone();
        let committed_to = self.committed_to.clone();
        ctx.spawn(
            run_batch(conn, config, batch, committed_to)
                .into_actor(self)
                .map(|conn, writer, ctx| {
                    writer.conn = conn;
                    writer.flushing = false;
                    writer.flush(ctx);
                }),
        );
    }
}

impl Actor for DbWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The queue lives in `pending`, bounded by `max_queue`; the mailbox only hands over.
        ctx.set_mailbox_capacity(1024);
    }
}

macro_rules! command_handler {
    ($msg:ident, $out:ty) => {
        impl Handler<$msg> for DbWriter {
            type Result = ResponseFuture<Result<$out, WriteError>>;

            fn handle(&mut self, msg: $msg, ctx: &mut Self::Context) -> Self::Result {
                let (tx, rx) = oneshot::channel();
                self.enqueue(Command::$msg(msg, tx), ctx);
                Box::pin(async move {
                    rx.await.unwrap_or_else(|_| {
                        Err(WriteError::Unavailable("the writer stopped".into()))
                    })
                })
            }
        }
        metered_handler!(DbWriter, $msg);
    };
}

command_handler!(SignInDev, SignedIn);
command_handler!(SignInGoogle, SignedIn);
command_handler!(RotateRefresh, SignedIn);
command_handler!(RevokeFamily, ());
command_handler!(UpdateProfile, crate::model::User);
command_handler!(RecordAudit, ());
command_handler!(PurgeEvents, u64);
command_handler!(RecordAiUsage, ());
command_handler!(CreatePost, CreatedPost);
command_handler!(LikePost, ());
command_handler!(UnlikePost, ());
command_handler!(DeletePost, ());
command_handler!(Follow, ());
command_handler!(Unfollow, ());

impl Handler<Drain> for DbWriter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drained.push(tx);
        self.flush(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
metered_handler!(DbWriter, Drain);

fn fail_all(batch: Vec<Command>, error: &WriteError) {
    for command in batch {
        count_outcome(Some(error));
        command.respond(Err(error.clone()));
    }
}

/// Commits one batch; returns the connection when it is still good for the next one.
async fn run_batch(
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
                tracing::warn!(error = %e, commands = batch.len(), "DbWriter cannot reach PostgreSQL");
                fail_all(batch, &WriteError::Unavailable(e));
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
            announce(&committed_to, changes);
            for (command, output) in batch.into_iter().zip(outputs) {
                count_outcome(output.as_ref().err());
                command.respond(output);
            }
            Some(conn)
        }
        Ok(Err(e)) => {
            let _ = conn.batch("ROLLBACK").await;
            if conn.is_closed() {
                tracing::warn!(error = %e, "DbWriter lost its connection during a batch");
                fail_all(batch, &WriteError::Unavailable(e.to_string()));
                return None;
            }
            tracing::info!(error = %e, commands = batch.len(), "batch failed; committing its commands one by one");
            apply_one_by_one(conn, &config, batch, &committed_to).await
        }
        Err(_) => {
            tracing::warn!(timeout = ?config.batch_timeout, "a DbWriter batch did not commit in time");
            fail_all(
                batch,
                &WriteError::Unavailable("the database did not answer in time".into()),
            );
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
        apply::create_posts_together(conn, &plain)
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
                        "a post went missing".into(),
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

/// The slow path after a failed batch: one transaction per command.
async fn apply_one_by_one(
    mut conn: WriterConn,
    config: &DbWriterConfig,
    batch: Vec<Command>,
    committed_to: &MeteredRecipient<Committed>,
) -> Option<WriterConn> {
    let mut rest = batch.into_iter();
    while let Some(command) = rest.next() {
        let alone = async {
            conn.batch("BEGIN").await.map_err(ApplyError::Database)?;
            let (output, changes) = command.apply(&mut conn).await?;
            let committed = commit(&mut conn, changes, config.commit_watermark.as_deref()).await?;
            Ok::<_, ApplyError>((output, committed))
        };
        let result = match tokio::time::timeout(config.batch_timeout, alone).await {
            Ok(result) => result,
            Err(_) => Err(ApplyError::Refused(WriteError::Unavailable(
                "the database did not answer in time".into(),
            ))),
        };
        let result = match result {
            Ok((output, committed)) => {
                announce(committed_to, committed);
                Ok(output)
            }
            Err(e) => {
                let _ = conn.batch("ROLLBACK").await;
                match e {
                    ApplyError::Refused(e) => Err(e),
                    ApplyError::Database(e) if conn.is_closed() => {
                        Err(WriteError::Unavailable(e.to_string()))
                    }
                    ApplyError::Database(e) => {
                        tracing::warn!(error = %e, command = command.name(), "a write failed alone");
                        Err(WriteError::Failed(db_message(&e)))
                    }
                }
            }
        };
        count_outcome(result.as_ref().err());
        command.respond(result);
        if conn.is_closed() {
            fail_all(
                rest.collect(),
                &WriteError::Unavailable("the database connection was lost".into()),
            );
            return None;
        }
    }
    Some(conn)
}

fn announce(committed_to: &MeteredRecipient<Committed>, entries: Vec<Logged>) {
    if !entries.is_empty() {
        committed_to.do_send(Committed {
            entries,
            committed_at: Instant::now(),
        });
    }
}

fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|db| db.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}
