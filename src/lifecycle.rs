//! Whether the process has been told to stop, for the two things that must
//! change as soon as it is: `/healthcheck` answers 503, so that load
//! balancers and readiness probes take the instance out of rotation, and
//! every response carries `Connection: close`, so that clients reconnect to
//! another instance instead of reusing a connection that is about to close.
//!
//! With `--shutdown-delay`, the server keeps accepting and serving in this
//! state for that long before it stops accepting and drains (`startup.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Default)]
pub struct Lifecycle {
    stopping: Arc<AtomicBool>,
}

impl Lifecycle {
    /// From now on the instance is on its way out.
    pub fn begin_shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}
