//! One call's record: what happens when it ends, exactly once.

use crate::table::MethodMetrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tonic::Code;
use tonic_blueprint_core::{OnOutcome, Outcome};

/// One call in the metrics: ended when the outcome observer reports, or as `Canceled` when
/// dropped first. Opaque; it appears in [`Metrics`](crate::Metrics)' response body type.
pub struct CallRecord {
    metrics: Option<Arc<MethodMetrics>>,
    started: Instant,
    /// Set when the request stream fails: the client reset it or went away.
    request_failed: Arc<AtomicBool>,
}

/// The request side of a call: counts the messages received, and marks the call when the
/// request stream fails.
pub(crate) struct RequestSide {
    pub(crate) received: metrics::Counter,
    pub(crate) failed: Arc<AtomicBool>,
}

impl tonic_blueprint_core::RequestEvents for RequestSide {
    fn messages(&mut self, count: u64) {
        self.received.increment(count);
    }

    fn failed(&mut self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

impl CallRecord {
    pub(crate) fn start(metrics: Arc<MethodMetrics>) -> Self {
        metrics.started.increment(1);
        metrics.in_flight.increment(1.0);
        Self {
            metrics: Some(metrics),
            started: Instant::now(),
            request_failed: Arc::default(),
        }
    }

    pub(crate) fn request_failed(&self) -> Arc<AtomicBool> {
        self.request_failed.clone()
    }

    pub(crate) fn finish(mut self, code: Code) {
        self.end(code);
    }

    fn end(&mut self, code: Code) {
        // A call whose request stream failed ended because the client went away, whatever
        // the handler made of the broken stream.
        let code = if self.request_failed.load(Ordering::Relaxed) {
            Code::Cancelled
        } else {
            code
        };
        if let Some(m) = self.metrics.take() {
            m.handled(code).increment(1);
            m.handling.record(self.started.elapsed().as_secs_f64());
            m.in_flight.decrement(1.0);
        }
    }
}

impl std::fmt::Debug for CallRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRecord")
            .field("ended", &self.metrics.is_none())
            .finish()
    }
}

impl OnOutcome for CallRecord {
    fn on_outcome(mut self, outcome: Outcome) {
        self.end(outcome.code);
    }

    fn on_messages_sent(&mut self, count: u64) {
        if let Some(m) = &self.metrics {
            m.msg_sent.increment(count);
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.end(Code::Cancelled);
    }
}
