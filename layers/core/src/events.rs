//! Structured log events with fixed field names.
//!
//! The blueprint logs three kinds of event. Every part of the workspace emits them through
//! these functions, so the field names never drift and dashboards and log queries can rely on
//! them:
//!
//! | event | fields |
//! |---|---|
//! | [`grpc_request`] | `grpc.service`, `grpc.method`, `grpc.method_type`, `grpc.code`, `grpc.time_ms`, `grpc.messages_received`, `grpc.messages_sent`, `peer.address`, `request_id` |
//! | [`db_query`] | `db.operation`, `db.time_ms`, `db.rows`, `db.slow`, `error` |
//! | [`cache_operation`] | `cache.operation`, `cache.key_hash`, `cache.hit`, `cache.time_ms`, `error` |
//!
//! Field names follow go-grpc-middleware's logging interceptor.

use std::time::Duration;
use tracing::Level;

/// The finishing event of one RPC.
#[derive(Debug, Clone, Copy)]
pub struct GrpcRequest<'a> {
    /// `pkg.Service`.
    pub service: &'a str,
    /// Method name.
    pub method: &'a str,
    /// `unary`, `client_stream`, `server_stream`, `bidi_stream` or `unknown`.
    pub method_type: &'a str,
    /// The status code, Go spelling (`OK`, `InvalidArgument`, ...).
    pub code: &'a str,
    /// Time from the request to the final status.
    pub duration: Duration,
    /// Request messages read.
    pub messages_received: u64,
    /// Response messages sent.
    pub messages_sent: u64,
    /// The client's address, when known.
    pub peer: Option<&'a str>,
    /// The request id, when known.
    pub request_id: Option<&'a str>,
}

macro_rules! at_level {
    ($level:expr, $($rest:tt)+) => {
        match $level {
            Level::ERROR => tracing::error!($($rest)+),
            Level::WARN => tracing::warn!($($rest)+),
            Level::INFO => tracing::info!($($rest)+),
            Level::DEBUG => tracing::debug!($($rest)+),
            Level::TRACE => tracing::trace!($($rest)+),
        }
    };
}

/// Logs the end of an RPC at `level`.
pub fn grpc_request(level: Level, event: &GrpcRequest<'_>) {
    at_level!(
        level,
        grpc.service = event.service,
        grpc.method = event.method,
        grpc.method_type = event.method_type,
        grpc.code = event.code,
        grpc.time_ms = duration_ms(event.duration),
        grpc.messages_received = event.messages_received,
        grpc.messages_sent = event.messages_sent,
        peer.address = event.peer,
        request_id = event.request_id,
        "finished call"
    );
}

/// Logs a database statement: error level when it failed, warn when slower than the caller's
/// threshold (`slow`), debug otherwise. `operation` names the statement, never its values.
pub fn db_query(
    operation: &str,
    duration: Duration,
    rows: Option<u64>,
    slow: bool,
    error: Option<&dyn std::fmt::Display>,
) {
    let level = match (error.is_some(), slow) {
        (true, _) => Level::ERROR,
        (false, true) => Level::WARN,
        (false, false) => Level::DEBUG,
    };
    at_level!(
        level,
        db.operation = operation,
        db.time_ms = duration_ms(duration),
        db.rows = rows,
        db.slow = slow,
        error = error.map(tracing::field::display),
        "database query"
    );
}

/// Logs a cache operation (`get`, `set`, `delete`, ...) at debug level, or warn when it failed.
/// `key_hash` is the hashed key: raw keys may hold ids or credentials.
pub fn cache_operation(
    operation: &str,
    key_hash: u64,
    hit: Option<bool>,
    duration: Duration,
    error: Option<&dyn std::fmt::Display>,
) {
    let level = if error.is_some() {
        Level::WARN
    } else {
        Level::DEBUG
    };
    at_level!(
        level,
        cache.operation = operation,
        cache.key_hash = format_args!("{key_hash:016x}"),
        cache.hit = hit,
        cache.time_ms = duration_ms(duration),
        error = error.map(tracing::field::display),
        "cache operation"
    );
}

/// Milliseconds with microsecond precision: `0.476`, not `0.47610699999999995`.
fn duration_ms(d: Duration) -> f64 {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    micros as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::duration_ms;
    use std::time::Duration;

    #[test]
    fn durations_are_milliseconds_with_microsecond_precision() {
        assert_eq!(
            duration_ms(Duration::from_nanos(476_107)).to_string(),
            "0.476"
        );
        assert_eq!(
            duration_ms(Duration::from_millis(1_500)).to_string(),
            "1500"
        );
        assert_eq!(duration_ms(Duration::ZERO).to_string(), "0");
    }
}
