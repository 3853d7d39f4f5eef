//! One call's log record: the finishing event, exactly once.

use crate::layer::Levels;
use std::time::{Instant, SystemTime};
use tonic::Code;
use tonic_blueprint_core::events::{GrpcRequest, grpc_request};
use tonic_blueprint_core::trace::{self, Attribute, FinishedSpan, SpanKind};
use tonic_blueprint_core::{
    CallEnd, CallHook, CurrentCall, RequestId, RpcIdentity, RpcKind, code_label,
};

/// One call in the logs: logged when the call's observer reports its end, or as `Canceled`
/// when dropped first.
pub(crate) struct LogRecord {
    pub(crate) span: tracing::Span,
    pub(crate) levels: Levels,
    pub(crate) id: RpcIdentity,
    pub(crate) kind: RpcKind,
    pub(crate) peer: Option<std::net::SocketAddr>,
    /// `peer` as text, formatted once for the span and the line (when the span was on).
    pub(crate) peer_text: Option<PeerText>,
    pub(crate) request_id: RequestId,
    pub(crate) started: Instant,
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

impl LogRecord {
    /// A call whose request stream failed ended because the client went away, whatever the
    /// handler made of the broken stream: the observer reports it `Canceled` (at warn), never
    /// `Unknown` at error.
    fn log(&mut self, code: Code, messages_received: u64, messages_sent: u64) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let level = self.levels.level(code);
        if !tracing::level_enabled!(level) {
            return self.record_span_if_sampled(code);
        }
        let entered = self.span.enter();
        let peer_text = self.peer_text.unwrap_or_else(|| PeerText::new(self.peer));
        let peer = peer_text.as_str();
        grpc_request(
            level,
            &GrpcRequest {
                service: self.id.service(),
                method: self.id.method(),
                method_type: self.kind.as_str(),
                code: code_label(code),
                duration: self.started.elapsed(),
                messages_received,
                messages_sent,
                peer,
                request_id: Some(self.request_id.as_str()),
            },
        );
        drop(entered);
        self.record_span_if_sampled(code);
    }

    fn record_span_if_sampled(&mut self, code: Code) {
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

/// A peer address as text, without an allocation: formatted once per call for the span and
/// the finishing line.
#[derive(Clone, Copy)]
pub(crate) struct PeerText {
    buffer: [u8; PEER_TEXT_MAX],
    len: u8,
}

impl PeerText {
    pub(crate) fn new(addr: Option<std::net::SocketAddr>) -> Self {
        let mut text = Self {
            buffer: [0; PEER_TEXT_MAX],
            len: 0,
        };
        match addr {
            Some(std::net::SocketAddr::V4(v4)) => {
                // The common case by hand: the formatting machinery cost more than the rest of
                // the span's fields.
                for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b".");
                    }
                    text.push(itoa::Buffer::new().format(octet).as_bytes());
                }
                text.push(b":");
                text.push(itoa::Buffer::new().format(v4.port()).as_bytes());
            }
            Some(addr) => {
                use std::io::Write as _;
                let mut cursor = std::io::Cursor::new(&mut text.buffer[..]);
                if write!(cursor, "{addr}").is_ok() {
                    text.len = u8::try_from(cursor.position()).unwrap_or(0);
                }
            }
            None => {}
        }
        text
    }

    fn push(&mut self, bytes: &[u8]) {
        let start = usize::from(self.len);
        if let Some(room) = self.buffer.get_mut(start..start + bytes.len()) {
            room.copy_from_slice(bytes);
            self.len += u8::try_from(bytes.len()).unwrap_or(0);
        }
    }

    /// The text, `None` without a peer.
    pub(crate) fn as_str(&self) -> Option<&str> {
        let bytes = self.buffer.get(..usize::from(self.len))?;
        (!bytes.is_empty()).then(|| std::str::from_utf8(bytes).ok())?
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

impl CallHook for LogRecord {
    fn on_end(&mut self, end: &CallEnd) {
        self.log(end.code, end.messages_received, end.messages_sent);
    }
}

impl Drop for LogRecord {
    fn drop(&mut self) {
        self.log(Code::Cancelled, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_fits_the_longest_address() {
        let text = |addr| PeerText::new(Some(addr)).as_str().map(str::to_owned);
        for v4 in [
            "255.255.255.255:65535",
            "0.0.0.0:0",
            "127.0.0.1:50051",
            "10.20.3.40:8",
        ] {
            let addr: std::net::SocketAddr = v4.parse().expect("v4");
            assert_eq!(text(addr).as_deref(), Some(v4));
        }
        assert_eq!(PeerText::new(None).as_str(), None);
        let v6 = std::net::SocketAddr::V6(std::net::SocketAddrV6::new(
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .expect("v6"),
            65535,
            0,
            u32::MAX,
        ));
        assert_eq!(text(v6), Some(v6.to_string()));
    }
}
