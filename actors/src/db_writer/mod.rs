//! The DbWriter: the only actor that writes to PostgreSQL.
//!
//! Commands queue in arrival order. While one batch is committing, the next accumulates; when
//! the commit returns, everything waiting (up to `max_batch`) goes into the next transaction
//! (group commit: many commands, one COMMIT, one fsync). Each command is answered only after its
//! transaction committed, and the committed changes go to the FeedBroker in commit order.
//! A database error in a batch rolls it back and replays its commands one transaction each, so
//! one bad command fails alone. Every wait on PostgreSQL has a deadline (`batch.rs`), and so has
//! the drain at shutdown: nothing the database does or fails to do can wedge the writer.
//!
//! # Layout
//! - `commands.rs`: one message per intent, and [`WriteError`].
//! - `apply.rs`: the SQL of each command, inside a transaction the caller opened.
//! - `moderation.rs`: the SQL of roles, suspensions and reports.
//! - `batch.rs`: one batch, together or one by one, each step under a deadline.
//! - `conn.rs`: the writer's connection, its session settings and prepared statements.

mod apply;
mod batch;
pub mod commands;
mod conn;
mod moderation;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use self::apply::Command;
pub use self::apply::{
    AI_HANDLE, MAX_MENTIONS, NotificationKind, handle_candidate, mentions, mentions_ai,
};
use self::batch::{count_outcome, fail_all, run_batch};
pub use self::commands::{
    BLOCKED, Block, CreatePost, CreateReport, CreatedPost, DeletePost, Drain, ExpireMutes, Follow,
    LikePost, Moderator, Mute, NOT_A_DEV_ACCOUNT, NewRefresh, PurgeEvents, RecordAiUsage,
    RecordAudit, ResolveReport, RevokeFamily, RotateRefresh, SetRole, SetSuspended, SignInDev,
    SignInGoogle, SignedIn, Unblock, Unfollow, UnlikePost, Unmute, UpdateProfile, WriteError,
    WriteFailure, WriteUnavailable,
};
use self::conn::WriterConn;
pub use self::conn::{ConnectError, IDLE_IN_TRANSACTION};
use crate::committed::Committed;
use crate::lsn::CommitWatermark;
use crate::meter::{ActorMeter, MeteredRecipient};
use crate::metered_handler;

/// How the DbWriter reaches PostgreSQL and how much it holds.
#[derive(Clone, Debug)]
pub struct DbWriterConfig {
    pub database: tokio_postgres::Config,
    /// Commands per transaction at most.
    pub max_batch: usize,
    /// Commands waiting at most; past it callers get [`WriteError::Overloaded`].
    pub max_queue: usize,
    /// Round trips a healthy server answers at once: connecting with the session settings,
    /// and a ROLLBACK. Past it the connection is dropped and the commands fail as unavailable.
    pub connect_timeout: Duration,
    /// A batch that has not committed by then is abandoned (its connection dropped, so the
    /// server rolls it back) and its commands fail as unavailable. The one-by-one retry of a
    /// failed batch gets as long again, for all its commands together; each statement is
    /// cancelled by the server after two thirds of it.
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
                    rx.await
                        .unwrap_or(Err(WriteError::Unavailable(WriteUnavailable::Stopped)))
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
command_handler!(SetRole, crate::model::User);
command_handler!(SetSuspended, crate::ids::UserId);
command_handler!(CreateReport, crate::model::Report);
command_handler!(ResolveReport, crate::model::Report);
command_handler!(Block, ());
command_handler!(Unblock, ());
command_handler!(Mute, ());
command_handler!(Unmute, ());
command_handler!(ExpireMutes, u64);

impl Handler<Drain> for DbWriter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drained.push(tx);
        self.flush(ctx);
        if !self.drained.is_empty() {
            ctx.run_later(msg.within, |writer, _| writer.stop_waiting());
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
metered_handler!(DbWriter, Drain);

impl DbWriter {
    /// The drain's time is up: whatever still waits is answered unavailable, and the drain
    /// resolves even with a batch in flight (bounded by its own deadline; when the writer
    /// stops first, its callers hear "the writer stopped", unavailable too).
    fn stop_waiting(&mut self) {
        if self.drained.is_empty() {
            return;
        }
        if !self.pending.is_empty() || self.flushing {
            tracing::warn!(
                waiting = self.pending.len(),
                in_flight = self.flushing,
                "the DbWriter's drain ran out of time; answering what waits as unavailable"
            );
        }
        fail_all(
            self.pending.drain(..),
            &WriteError::Unavailable(WriteUnavailable::ShuttingDown),
        );
        for waiter in self.drained.drain(..) {
            let _ = waiter.send(());
        }
    }
}
