//! A call in the metrics: counted when it starts, recorded when its observer reports the end
//! (exactly once; `Canceled` when the call is dropped first).
//!
//! The method's handles serve every call as a [`SharedCallHook`]: joining a call's observer
//! costs no allocation.

use crate::table::MethodMetrics;
use std::sync::Arc;
use std::time::Instant;
use tonic_blueprint_core::CallEnd;
use tonic_blueprint_core::observer::SharedCallHook;

/// Counts a call of `metrics` as started and in flight; the hook that records its end.
pub(crate) fn start(metrics: Arc<MethodMetrics>) -> Arc<dyn SharedCallHook> {
    metrics.started.increment(1);
    metrics.in_flight.increment(1.0);
    metrics
}

impl SharedCallHook for MethodMetrics {
    fn on_messages_received(&self, count: u64) {
        self.msg_received.increment(count);
    }

    fn on_messages_sent(&self, count: u64) {
        self.msg_sent.increment(count);
    }

    /// A call whose request stream failed ended because the client went away, whatever the
    /// handler made of the broken stream: the observer reports it `Canceled`.
    fn on_end(&self, started: Instant, end: &CallEnd) {
        self.handled(end.code).increment(1);
        self.handling.record(started.elapsed().as_secs_f64());
        self.in_flight.decrement(1.0);
    }
}
