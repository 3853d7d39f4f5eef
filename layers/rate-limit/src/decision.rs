//! The outcome of one check.

use std::time::Duration;

/// Whether a call may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; `remaining` more calls would be admitted right now.
    Allowed {
        /// Calls left in the current window (or burst).
        remaining: u32,
    },
    /// Refused; a retry is pointless before `retry_after`.
    Refused {
        /// How long until a call can be admitted again.
        retry_after: Duration,
    },
}
