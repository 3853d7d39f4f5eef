//! Metric and label names (go-grpc-prometheus).

/// Calls started.
pub const STARTED: &str = "grpc_server_started_total";
/// Calls completed, by status code.
pub const HANDLED: &str = "grpc_server_handled_total";
/// Request messages received.
pub const MSG_RECEIVED: &str = "grpc_server_msg_received_total";
/// Response messages sent.
pub const MSG_SENT: &str = "grpc_server_msg_sent_total";
/// Time from the request to the final status, in seconds.
pub const HANDLING_SECONDS: &str = "grpc_server_handling_seconds";
/// Calls started and not yet ended.
pub const IN_FLIGHT: &str = "grpc_server_in_flight_calls";

/// Label: `unary`, `client_stream`, `server_stream`, `bidi_stream` (or `unknown`).
pub const LABEL_TYPE: &str = "grpc_type";
/// Label: the status code in Go's spelling.
pub const LABEL_CODE: &str = "grpc_code";

/// The histogram buckets of go-grpc-prometheus (Prometheus' defaults), in seconds.
pub const HANDLING_SECONDS_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
