//! A session's outbound backlog, shared by the FeedBroker (which counts frames in) and the
//! Session (which counts them out as it writes them). A client that stops reading stops its
//! session from being polled, so the frames pile up here; past the limit the broker stops
//! sending, and the session closes with 1013 as soon as it runs again. Nothing durable is lost:
//! the client resumes with `since`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use prometheus::IntCounterVec;

use crate::meter;

static DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    meter::labelled_counter(
        "aisocial_session_frames_dropped_total",
        "Frames not sent to a lagging session (durable: the session is closed with 1013 and the \
         client resumes; ephemeral: dropped).",
        &["kind"],
    )
});
static SLOW_CLOSES: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    meter::counter(
        "aisocial_session_slow_consumer_closes_total",
        "Sessions whose outbound backlog passed the limit (closed with 1013).",
    )
});

#[derive(Debug, Default)]
pub struct Backlog {
    pending: AtomicUsize,
    overflowed: AtomicBool,
}

/// Whether the broker may hand a frame to the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Send,
    Drop,
    /// Dropped, and this frame is the one that passed the limit: tell the session to close
    /// (it may have nothing else left in its mailbox to notice by).
    DropAndClose,
}

impl Backlog {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Broker side: counts a durable frame in, unless the session is past `limit` (then the
    /// session is marked for closing and nothing more is sent to it).
    pub fn admit_durable(&self, limit: usize) -> Admit {
        if self.overflowed.load(Ordering::Relaxed) {
            DROPPED.with_label_values(&["durable"]).inc();
            return Admit::Drop;
        }
        if self.pending.load(Ordering::Relaxed) >= limit {
            DROPPED.with_label_values(&["durable"]).inc();
            if !self.overflowed.swap(true, Ordering::Relaxed) {
                SLOW_CLOSES.inc();
                return Admit::DropAndClose;
            }
            return Admit::Drop;
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        Admit::Send
    }

    /// Broker side: an ephemeral frame is dropped (and counted) once the backlog is half full.
    pub fn admit_ephemeral(&self, limit: usize) -> Admit {
        if self.overflowed.load(Ordering::Relaxed)
            || self.pending.load(Ordering::Relaxed) >= limit / 2
        {
            DROPPED.with_label_values(&["ephemeral"]).inc();
            return Admit::Drop;
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        Admit::Send
    }

    /// Session side: one frame taken off the backlog.
    pub fn taken(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_past_its_limit_stops_admitting() {
        let b = Backlog::new();
        for _ in 0..4 {
            assert_eq!(b.admit_durable(4), Admit::Send);
        }
        assert_eq!(
            b.admit_ephemeral(4),
            Admit::Drop,
            "ephemeral frames go first"
        );
        assert_eq!(
            b.admit_durable(4),
            Admit::DropAndClose,
            "the frame that passes the limit closes the session"
        );
        assert!(b.overflowed());
        b.taken();
        assert_eq!(
            b.admit_durable(4),
            Admit::Drop,
            "an overflowed session gets nothing more"
        );
        assert_eq!(b.pending(), 3);
    }
}
