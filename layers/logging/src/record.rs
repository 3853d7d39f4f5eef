//! One call's log record: the finishing event, exactly once.

use crate::layer::Config;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tonic::Code;
use tonic_blueprint_core::events::{GrpcRequest, grpc_request};
use tonic_blueprint_core::{OnOutcome, Outcome, RequestId, RpcIdentity, RpcKind, code_label};

/// One call in the logs: logged when the outcome observer reports, or as `Canceled` when
/// dropped first. Opaque; it appears in [`RequestLogging`](crate::RequestLogging)'s response
/// body type.
pub struct LogRecord {
    pub(crate) span: tracing::Span,
    pub(crate) config: Arc<Config>,
    pub(crate) id: RpcIdentity,
    pub(crate) kind: RpcKind,
    pub(crate) peer: Option<std::net::SocketAddr>,
    pub(crate) request_id: RequestId,
    pub(crate) started: Instant,
    pub(crate) received: Arc<AtomicU64>,
    pub(crate) done: bool,
}

impl LogRecord {
    pub(crate) fn finish(mut self, code: Code, messages_sent: u64) {
        self.log(code, messages_sent);
    }

    fn log(&mut self, code: Code, messages_sent: u64) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let level = self.config.level(code);
        let _entered = self.span.enter();
        let peer = self.peer.map(|addr| addr.to_string());
        grpc_request(
            level,
            &GrpcRequest {
                service: self.id.service(),
                method: self.id.method(),
                method_type: self.kind.as_str(),
                code: code_label(code),
                duration: self.started.elapsed(),
                messages_received: self.received.load(Ordering::Relaxed),
                messages_sent,
                peer: peer.as_deref(),
                request_id: Some(self.request_id.as_str()),
            },
        );
    }
}

impl std::fmt::Debug for LogRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRecord")
            .field("rpc", &self.id)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl OnOutcome for LogRecord {
    fn on_outcome(mut self, outcome: Outcome) {
        self.log(outcome.code, outcome.messages_sent);
    }
}

impl Drop for LogRecord {
    fn drop(&mut self) {
        self.log(Code::Cancelled, 0);
    }
}
