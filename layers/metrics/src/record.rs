//! One call's record: what happens when it ends, exactly once.

use crate::table::MethodMetrics;
use std::sync::Arc;
use std::time::Instant;
use tonic::Code;
use tonic_blueprint_core::{CallEnd, CallHook};

/// One call in the metrics: ended when the call's observer reports its end, or as
/// `Canceled` when dropped first.
pub(crate) struct CallRecord {
    metrics: Option<Arc<MethodMetrics>>,
    started: Instant,
}

impl CallRecord {
    pub(crate) fn start(metrics: Arc<MethodMetrics>) -> Self {
        metrics.started.increment(1);
        metrics.in_flight.increment(1.0);
        Self {
            metrics: Some(metrics),
            started: Instant::now(),
        }
    }

    /// A call whose request stream failed ended because the client went away, whatever the
    /// handler made of the broken stream: the observer reports it `Canceled`.
    fn end(&mut self, code: Code) {
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

impl CallHook for CallRecord {
    fn on_end(&mut self, end: &CallEnd) {
        self.end(end.code);
    }

    fn on_messages_received(&mut self, count: u64) {
        if let Some(m) = &self.metrics {
            m.msg_received.increment(count);
        }
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
