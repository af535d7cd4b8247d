//! Read replicas: which replica a read may go to, and the primary whenever none may.
//!
//! Writes, resume replays, the broker's log reads and anything that must see the latest commit
//! use the primary pool. Reads that opt in (timelines, profiles, lists) go to a replica that is
//! in rotation (answering, still replaying, lagging less than `DATABASE_READ_MAX_LAG_MS`) and
//! has replayed the reader's own last write (read-your-writes, see [`sticky`]); else, or when
//! the replica fails, to the primary.
//!
//! # Layout
//! - [`config`]: the settings.
//! - [`lag`]: replication lag in time from sampled WAL positions.
//! - [`monitor`]: the check loop that keeps each replica's position, lag and rotation.
//! - [`sticky`]: each user's last write position, shared by every node through Redis.
//! - [`reader`]: a resolved route and queries on it, with the fallback to the primary.
//! - [`events`]: the broker's event log read from a replica (a region far from the primary).

pub mod events;
pub mod lag;
pub mod monitor;
pub mod reader;
pub mod sticky;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use aisocial_actors::error_chain::Chain;
use aisocial_actors::ids::UserId;
use aisocial_actors::lsn::{CommitWatermark, Lsn};
use aisocial_actors::meter;
use aisocial_actors::store::ReadPool;
use bb8_postgres::PostgresConnectionManager;
use prometheus::IntCounterVec;
use tokio_postgres::NoTls;

pub use self::reader::Reader;
use self::sticky::Sticky;
pub use crate::config::replicas::{EventLogReads, ReplicaArgs, ReplicaSettings};

static READS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_db_reads_total",
        "Replica-eligible reads by where they went: replica, or the primary and why \
         (primary_sticky: the reader's own last write is not replayed yet; primary_no_replica: \
         none in rotation; primary_fallback: the replica failed; primary_marker_unknown: the \
         reader's last write position could not be read).",
        &["target"],
    )
});

/// One replica and what the last check found.
pub struct Replica {
    pub name: String,
    pool: ReadPool,
    in_rotation: AtomicBool,
    /// The replay position the last check read (a lower bound of the real one).
    replayed: AtomicU64,
    lag_ms: AtomicU64,
    lag_bytes: AtomicU64,
    error: Mutex<Option<String>>,
}

/// What readiness shows of a replica.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ReplicaState {
    pub name: String,
    pub in_rotation: bool,
    pub lag_ms: u64,
    pub lag_bytes: u64,
    /// The replay position last read, as PostgreSQL prints it.
    pub replayed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Replica {
    fn new(name: String, pool: ReadPool) -> Self {
        Self {
            name,
            pool,
            in_rotation: AtomicBool::new(false),
            replayed: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            lag_bytes: AtomicU64::new(0),
            error: Mutex::new(Some("not checked yet".into())),
        }
    }

    pub fn in_rotation(&self) -> bool {
        self.in_rotation.load(Ordering::Acquire)
    }

    fn replayed(&self) -> Lsn {
        Lsn(self.replayed.load(Ordering::Acquire))
    }

    /// Takes the replica out of rotation at once (a read on it failed); the next good check
    /// puts it back.
    fn suspend(&self, why: String) {
        if self.in_rotation.swap(false, Ordering::AcqRel) {
            tracing::warn!(replica = %self.name, error = %why, "read replica out of rotation");
        }
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
    }

    pub fn state(&self) -> ReplicaState {
        ReplicaState {
            name: self.name.clone(),
            in_rotation: self.in_rotation(),
            lag_ms: self.lag_ms.load(Ordering::Relaxed),
            lag_bytes: self.lag_bytes.load(Ordering::Relaxed),
            replayed: self.replayed().to_string(),
            error: self
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// The primary and the replicas, with what routes a read between them.
pub struct ReadRouting {
    primary: ReadPool,
    replicas: Vec<Arc<Replica>>,
    /// Raised by the DbWriter after each COMMIT (only when there are replicas).
    watermark: Arc<CommitWatermark>,
    sticky: Option<Sticky>,
    next: AtomicUsize,
    read_timeout: Duration,
    /// The lag bound of a replica in rotation.
    max_lag: Duration,
}

impl ReadRouting {
    /// Every read on the primary.
    pub fn primary_only(primary: ReadPool, read_timeout: Duration) -> Self {
        Self {
            primary,
            replicas: Vec::new(),
            watermark: Arc::default(),
            sticky: None,
            next: AtomicUsize::new(0),
            read_timeout,
            max_lag: Duration::ZERO,
        }
    }

    /// With the replicas of `settings` (out of rotation until their first good check; a
    /// replica that cannot be reached never stops start-up), sharing users' write positions
    /// through `sticky`.
    pub fn with_replicas(
        primary: ReadPool,
        read_timeout: Duration,
        settings: &ReplicaSettings,
        pool_size: u32,
        sticky: Sticky,
    ) -> Self {
        let replicas = settings
            .replicas
            .iter()
            .map(|target| {
                let config = crate::database::with_statement_timeout(&target.config, read_timeout);
                let manager = PostgresConnectionManager::new(config, NoTls);
                let pool = bb8::Pool::builder()
                    .max_size(pool_size)
                    .min_idle(Some(1))
                    .connection_timeout(Duration::from_secs(2))
                    .build_unchecked(manager);
                Arc::new(Replica::new(target.name.clone(), pool))
            })
            .collect();
        Self {
            primary,
            replicas,
            watermark: Arc::default(),
            sticky: Some(sticky),
            next: AtomicUsize::new(0),
            read_timeout,
            max_lag: settings.max_lag,
        }
    }

    pub fn primary(&self) -> &ReadPool {
        &self.primary
    }

    pub fn replicas(&self) -> &[Arc<Replica>] {
        &self.replicas
    }

    pub fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    /// The watermark the DbWriter must raise (`None` without replicas: no LSN is asked then).
    pub fn watermark(&self) -> Option<Arc<CommitWatermark>> {
        self.has_replicas().then(|| Arc::clone(&self.watermark))
    }

    pub fn states(&self) -> Vec<ReplicaState> {
        self.replicas.iter().map(|r| r.state()).collect()
    }

    /// A replica in rotation that has replayed `at_least`, round robin.
    fn pick(&self, at_least: Lsn) -> Option<Arc<Replica>> {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.replicas[(start + i) % n])
            .find(|r| r.in_rotation() && r.replayed() >= at_least)
            .cloned()
    }

    /// A reader on the primary (reads that must see the latest commit).
    pub fn primary_reader(&self) -> Reader<'_> {
        Reader::primary(self)
    }

    /// Where a replica-eligible read for `viewer` goes.
    pub async fn reader(&self, viewer: Option<UserId>) -> Reader<'_> {
        if !self.has_replicas() {
            return Reader::primary(self);
        }
        let needed = match (viewer, &self.sticky) {
            (Some(user), Some(sticky)) => match sticky.position(user).await {
                Ok(position) => position.unwrap_or_default(),
                Err(e) => {
                    tracing::debug!(error = %Chain(&e), "cannot read a user's write position; reading the primary");
                    READS.with_label_values(&["primary_marker_unknown"]).inc();
                    return Reader::primary(self);
                }
            },
            _ => Lsn::default(),
        };
        if let Some(replica) = self.pick(needed) {
            return Reader::replica(self, replica);
        }
        if needed > Lsn::default() && self.pick(Lsn::default()).is_some() {
            READS.with_label_values(&["primary_sticky"]).inc();
            return Reader::own_writes(self);
        }
        READS.with_label_values(&["primary_no_replica"]).inc();
        Reader::primary(self)
    }

    /// Remembers that `user` just had a write acknowledged, so that their reads see it: until
    /// a replica has replayed it, they go to the primary. Call after the write's answer and
    /// before answering the client.
    pub async fn wrote(&self, user: UserId) {
        let (Some(sticky), Some(position)) = (&self.sticky, self.watermark.get()) else {
            return;
        };
        if let Err(e) = sticky.raise(user, position).await {
            // This user may then be served a replica that lacks the write, for at most the
            // lag bound (a replica further behind is out of rotation).
            tracing::warn!(error = %Chain(&e), "cannot record a user's write position");
        }
    }
}
