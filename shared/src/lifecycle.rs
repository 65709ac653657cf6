//! The end of a process or of an invocation, for work that must not outlive it: the lock
//! demo's hold releases its lock when the runner is stopping ([`Shutdown`]) and never holds
//! past the Lambda invocation's deadline ([`InvocationDeadline`]), after which the
//! environment may be frozen with the lock still taken.

use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Set once the process has been asked to stop (SIGTERM, Ctrl-C). Cheap to clone; every
/// clone sees the same signal.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Sender<bool>);

impl Default for Shutdown {
    fn default() -> Self {
        Self(watch::Sender::new(false))
    }
}

impl Shutdown {
    /// Signals every waiter that the process is stopping.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the process is stopping (at once if it already is).
    pub async fn triggered(&self) {
        let mut rx = self.0.subscribe();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|stopping| *stopping).await;
    }
}

/// When the current Lambda invocation must have answered (from the runtime's deadline), as
/// a request extension set by [`crate::lambda::handler`]. Absent in the runner.
#[derive(Clone, Copy, Debug)]
pub struct InvocationDeadline(pub Instant);

impl InvocationDeadline {
    /// The deadline `deadline_ms` (milliseconds since the Unix epoch, as the runtime gives
    /// it), as an `Instant`.
    pub fn from_epoch_ms(deadline_ms: u64) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self(Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
    }

    /// Time left before the deadline, less `margin` for answering.
    pub fn remaining(&self, margin: Duration) -> Duration {
        self.0
            .saturating_duration_since(Instant::now())
            .saturating_sub(margin)
    }
}
