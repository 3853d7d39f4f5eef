//! Capturing what a test process logs and counts.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// A log sink that keeps everything written to it, for a test subscriber's writer.
///
/// ```
/// use tonic_blueprint_testkit::Captured;
/// let logs = Captured::default();
/// let writer = logs.clone();
/// let _subscriber = move || writer.clone(); // a `MakeWriter` for tracing-subscriber
/// assert_eq!(logs.text(), "");
/// ```
#[derive(Clone, Default, Debug)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// The process's global subscriber, writing JSON lines in the shape of the kit's logs
    /// (events flattened, with their current span, no span list) at `max_level` and more
    /// severe, into one capture. The first call installs it; later calls return the same
    /// capture, at the first call's level.
    pub fn global_json(max_level: tracing::Level) -> &'static Captured {
        static LOGS: OnceLock<Captured> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Captured::default();
            let writer = logs.clone();
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_max_level(max_level)
                .with_writer(move || writer.clone())
                .init();
            logs
        })
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The values of counter `name` in a `metrics-util` debugging snapshot, by `grpc_method`
/// label, sorted.
pub fn counters_by_method(
    snapshotter: &metrics_util::debugging::Snapshotter,
    name: &str,
) -> Vec<(String, u64)> {
    let mut counted: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == name)
        .filter_map(|(key, _, _, value)| {
            let method = key
                .key()
                .labels()
                .find(|l| l.key() == tonic_blueprint_core::names::LABEL_METHOD)?
                .value()
                .to_owned();
            match value {
                metrics_util::debugging::DebugValue::Counter(n) => Some((method, n)),
                _ => None,
            }
        })
        .collect();
    counted.sort();
    counted
}

/// A unary request for the test service as an HTTP request, for calling a service in
/// process (benchmarks).
pub fn unary_http_request(message: &crate::pb::TestRequest) -> http::Request<tonic::body::Body> {
    grpc_http_request(crate::UNARY, message)
}

/// A one-message gRPC request to `path` as an HTTP request (any method, any message).
pub fn grpc_http_request<M: prost::Message>(
    path: &'static str,
    message: &M,
) -> http::Request<tonic::body::Body> {
    use bytes::BufMut;
    let encoded = message.encode_to_vec();
    let mut frame = bytes::BytesMut::with_capacity(5 + encoded.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(encoded.len()).unwrap_or(u32::MAX));
    frame.put_slice(&encoded);
    let mut request = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(
        frame.freeze(),
    )));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(path);
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    request
        .headers_mut()
        .insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    request
}
