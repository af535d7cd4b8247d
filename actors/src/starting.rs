//! Sessions still starting: registered or registering with the broker and replaying what they
//! missed. The node's admission refuses new upgrades while too many are, so a reconnect storm
//! queues at the door (503, Retry-After) instead of inside the node.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct Starting(AtomicUsize);

impl Starting {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// One more session starting, until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> StartingGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        StartingGuard(Arc::clone(self))
    }
}

/// Counts one starting session while it lives.
#[derive(Debug)]
pub struct StartingGuard(Arc<Starting>);

impl Drop for StartingGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_counts_while_it_lives() {
        let starting = Arc::new(Starting::default());
        let a = starting.begin();
        let b = starting.begin();
        assert_eq!(starting.count(), 2);
        drop(a);
        assert_eq!(starting.count(), 1);
        drop(b);
        assert_eq!(starting.count(), 0);
    }
}
