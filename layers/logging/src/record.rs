//! One call's log record: the finishing event, exactly once.

use crate::layer::Levels;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};
use tonic::Code;
use tonic_blueprint_core::events::{GrpcRequest, grpc_request};
use tonic_blueprint_core::trace::{self, Attribute, FinishedSpan, SpanKind};
use tonic_blueprint_core::{
    CurrentCall, OnOutcome, Outcome, RequestId, RpcIdentity, RpcKind, code_label,
};

/// One call in the logs: logged when the outcome observer reports, or as `Canceled` when
/// dropped first. Opaque; it appears in [`RequestLogging`](crate::RequestLogging)'s response
/// body type.
pub struct LogRecord {
    pub(crate) span: tracing::Span,
    pub(crate) levels: Levels,
    pub(crate) id: RpcIdentity,
    pub(crate) kind: RpcKind,
    pub(crate) peer: Option<std::net::SocketAddr>,
    pub(crate) request_id: RequestId,
    pub(crate) started: Instant,
    pub(crate) received: Arc<AtomicU64>,
    pub(crate) done: bool,
    /// The call's trace, request id and caller, when the layer joins traces.
    pub(crate) call: Option<CurrentCall>,
    /// Set when the server span is recorded (sampled, a recorder installed).
    pub(crate) recorded: Option<Recorded>,
}

/// What the recorded server span needs beyond the log line.
pub(crate) struct Recorded {
    pub(crate) start: SystemTime,
    /// The `:authority` the client called (`server.address`, `server.port`).
    pub(crate) authority: Option<http::uri::Authority>,
}

/// The bit of [`LogRecord::received`] that says the request stream failed.
const REQUEST_FAILED: u64 = 1 << 63;

/// The request side of a call: counts the messages received into the record's counter, and
/// marks it when the request stream fails (the client reset it or went away).
pub(crate) struct Received(pub(crate) Arc<AtomicU64>);

impl tonic_blueprint_core::RequestEvents for Received {
    fn messages(&mut self, count: u64) {
        self.0.fetch_add(count, Ordering::Relaxed);
    }

    fn failed(&mut self) {
        self.0.fetch_or(REQUEST_FAILED, Ordering::Relaxed);
    }
}

impl LogRecord {
    pub(crate) fn finish(mut self, code: Code, messages_sent: u64) {
        self.log(code, messages_sent);
    }

    fn log(&mut self, code: Code, messages_sent: u64) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let received = self.received.load(Ordering::Relaxed);
        // A call whose request stream failed ended because the client went away, whatever
        // the handler made of the broken stream: `Canceled`, never `Unknown` at error.
        let code = if received & REQUEST_FAILED != 0 {
            Code::Cancelled
        } else {
            code
        };
        let level = self.levels.level(code);
        let entered = self.span.enter();
        let mut buffer = [0u8; PEER_TEXT_MAX];
        let peer = self.peer.and_then(|addr| peer_text(addr, &mut buffer));
        grpc_request(
            level,
            &GrpcRequest {
                service: self.id.service(),
                method: self.id.method(),
                method_type: self.kind.as_str(),
                code: code_label(code),
                duration: self.started.elapsed(),
                messages_received: received & !REQUEST_FAILED,
                messages_sent,
                peer,
                request_id: Some(self.request_id.as_str()),
            },
        );
        drop(entered);
        if let (Some(recorded), Some(call)) = (self.recorded.take(), &self.call) {
            self.record_span(&recorded, call, code);
        }
    }

    /// The OpenTelemetry server span of the call, with the RPC semantic conventions.
    fn record_span(&self, recorded: &Recorded, call: &CurrentCall, code: Code) {
        let name = format!("{}/{}", self.id.service(), self.id.method());
        let mut attributes: Vec<Attribute<'_>> = Vec::with_capacity(10);
        attributes.extend([
            Attribute::str("rpc.system", "grpc"),
            Attribute::str("rpc.service", self.id.service()),
            Attribute::str("rpc.method", self.id.method()),
            Attribute::i64("rpc.grpc.status_code", i64::from(i32::from(code))),
        ]);
        if let Some(authority) = &recorded.authority {
            attributes.push(Attribute::str("server.address", authority.host()));
            if let Some(port) = authority.port_u16() {
                attributes.push(Attribute::i64("server.port", i64::from(port)));
            }
        }
        let peer_ip = self.peer.map(|addr| addr.ip().to_string());
        if let (Some(ip), Some(addr)) = (&peer_ip, self.peer) {
            attributes.push(Attribute::str("network.peer.address", ip));
            attributes.push(Attribute::i64("network.peer.port", i64::from(addr.port())));
        }
        if let Some(identity) = call.identity() {
            attributes.push(Attribute::str("enduser.id", identity.subject()));
        }
        attributes.push(Attribute::str("request_id", self.request_id.as_str()));
        trace::record(&FinishedSpan {
            name: &name,
            kind: SpanKind::Server,
            context: call.trace(),
            start: recorded.start,
            end: SystemTime::now(),
            attributes: &attributes,
            error: server_error(code).then(|| code_label(code)),
        });
    }
}

/// The codes OpenTelemetry's RPC conventions mark a server span as failed for: those the
/// server causes (the others are the client's doing).
pub(crate) fn server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// Room for the longest socket address text (`[v6%scope]:port` is at most 58 bytes).
const PEER_TEXT_MAX: usize = 64;

/// `addr` as text in `buffer`, without an allocation.
fn peer_text(addr: std::net::SocketAddr, buffer: &mut [u8; PEER_TEXT_MAX]) -> Option<&str> {
    use std::io::Write as _;
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    write!(cursor, "{addr}").ok()?;
    let len = usize::try_from(cursor.position()).ok()?;
    std::str::from_utf8(buffer.get(..len)?).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_fits_the_longest_address() {
        let mut buffer = [0u8; PEER_TEXT_MAX];
        let v4: std::net::SocketAddr = "255.255.255.255:65535".parse().expect("v4");
        assert_eq!(peer_text(v4, &mut buffer), Some("255.255.255.255:65535"));
        let v6 = std::net::SocketAddr::V6(std::net::SocketAddrV6::new(
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .expect("v6"),
            65535,
            0,
            u32::MAX,
        ));
        assert_eq!(peer_text(v6, &mut buffer), Some(v6.to_string().as_str()));
    }
}
