//! Whether the node is serving or draining; shared by readiness, the upgrade and shutdown.

use std::sync::atomic::{AtomicBool, Ordering};

/// Serving until shutdown starts draining; never serving again after that.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}
