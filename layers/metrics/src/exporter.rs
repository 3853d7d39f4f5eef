//! The Prometheus recorder and the `/metrics` server.
//!
//! [`install`] builds the recorder of
//! [metrics-exporter-prometheus](https://docs.rs/metrics-exporter-prometheus) with the
//! go-grpc-prometheus histogram buckets, describes every blueprint metric (so each comes with
//! HELP and TYPE lines) and installs it as the global `metrics` recorder. [`spawn_server`]
//! serves it at `GET /metrics` on its own address.
//!
//! The server is a few lines over hyper rather than the exporter's own `http-listener`
//! feature, because that listener cannot report the port it bound (`127.0.0.1:0` in tests and
//! ephemeral deployments), has no graceful shutdown, and pulls in a second TLS stack through
//! the exporter's default features.

use crate::names::{
    HANDLED, HANDLING_SECONDS, HANDLING_SECONDS_BUCKETS, IN_FLIGHT, MSG_RECEIVED, MSG_SENT, STARTED,
};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::{KeyName, Recorder, Unit};
pub use metrics_exporter_prometheus::{BuildError, PrometheusHandle, PrometheusRecorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic_blueprint_core::names as shared;

/// How often the server runs the recorder's upkeep (draining histogram buffers).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Every metric the blueprint records, with its type and help text.
pub const DESCRIPTIONS: &[(&str, MetricType, &str)] = &[
    (
        STARTED,
        MetricType::Counter,
        "Total number of RPCs started on the server.",
    ),
    (
        HANDLED,
        MetricType::Counter,
        "Total number of RPCs completed on the server, regardless of success or failure.",
    ),
    (
        MSG_RECEIVED,
        MetricType::Counter,
        "Total number of RPC stream messages received on the server.",
    ),
    (
        MSG_SENT,
        MetricType::Counter,
        "Total number of gRPC stream messages sent by the server.",
    ),
    (
        HANDLING_SECONDS,
        MetricType::Histogram,
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    ),
    (
        IN_FLIGHT,
        MetricType::Gauge,
        "Number of RPCs started on the server and not yet completed.",
    ),
    (
        shared::PANICS_RECOVERED,
        MetricType::Counter,
        "Panics in handlers recovered as INTERNAL.",
    ),
    (
        shared::DEADLINES_EXCEEDED,
        MetricType::Counter,
        "RPCs ended with DEADLINE_EXCEEDED by the Timeout layer.",
    ),
    (
        shared::RATE_LIMITED,
        MetricType::Counter,
        "RPCs refused by the RateLimit layer.",
    ),
    (
        shared::RATE_LIMIT_ALLOWED,
        MetricType::Counter,
        "RPCs the RateLimit layer let through.",
    ),
    (
        shared::RATE_LIMIT_BACKEND_ERRORS,
        MetricType::Counter,
        "Rate-limit checks whose backend failed or timed out.",
    ),
    (
        shared::VALIDATION_FAILURES,
        MetricType::Counter,
        "Requests refused by the RequestValidation layer.",
    ),
    (
        shared::CACHE_HITS,
        MetricType::Counter,
        "Response cache hits.",
    ),
    (
        shared::CACHE_MISSES,
        MetricType::Counter,
        "Response cache misses.",
    ),
    (
        shared::CACHE_SETS,
        MetricType::Counter,
        "Response cache entries stored.",
    ),
    (
        shared::CACHE_DELETES,
        MetricType::Counter,
        "Response cache entries deleted or invalidated.",
    ),
    (
        shared::CACHE_ERRORS,
        MetricType::Counter,
        "Response cache backend errors.",
    ),
    (
        shared::AUTH_FAILURES,
        MetricType::Counter,
        "RPCs refused by the Auth layer, by reason.",
    ),
    (
        shared::SHED,
        MetricType::Counter,
        "RPCs refused at once because too many were in flight (load shedding).",
    ),
];

/// The type of a described metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// A counter.
    Counter,
    /// A gauge.
    Gauge,
    /// A histogram.
    Histogram,
}

/// A Prometheus builder with the handling-time buckets set.
pub fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HANDLING_SECONDS.to_owned()),
            &HANDLING_SECONDS_BUCKETS,
        )
        // Only fails for an empty bucket list; ours is a constant with eleven.
        .unwrap_or_else(|_| PrometheusBuilder::new())
}

/// Describes every blueprint metric to `recorder`.
pub fn describe(recorder: &dyn Recorder) {
    describe_table(recorder, DESCRIPTIONS);
}

/// Describes the metrics of `table` to `recorder` (histograms in seconds).
///
/// For metrics recorded outside the layer crates (the umbrella's database and events
/// helpers, a service's own), so that each comes with HELP and TYPE lines too.
pub fn describe_table(recorder: &dyn Recorder, table: &[(&'static str, MetricType, &'static str)]) {
    for (name, kind, help) in table {
        let key = KeyName::from_const_str(name);
        let help = (*help).into();
        match kind {
            MetricType::Counter => recorder.describe_counter(key, None, help),
            MetricType::Gauge => recorder.describe_gauge(key, None, help),
            MetricType::Histogram => recorder.describe_histogram(key, Some(Unit::Seconds), help),
        }
    }
}

/// Describes the metrics of `table` to the installed `metrics` recorder (see [`install`]);
/// does nothing when none is installed.
pub fn describe_installed(table: &[(&'static str, MetricType, &'static str)]) {
    metrics::with_recorder(|recorder| describe_table(recorder, table));
}

/// A recorder with the buckets set and every metric described, not installed (for a
/// [`MetricsLayer::with_recorder`](crate::MetricsLayer::with_recorder) of its own).
pub fn recorder() -> PrometheusRecorder {
    let recorder = builder().build_recorder();
    describe(&recorder);
    recorder
}

/// Installs [`recorder`] as the global `metrics` recorder and returns its handle.
///
/// Fails when a global recorder is already installed.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let recorder = recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(BuildError::FailedToSetGlobalRecorder)?;
    Ok(handle)
}

/// Binds `addr` and serves `GET /metrics` from `handle` in a background task.
///
/// Returns the bound address (useful with port 0) and the task; abort it to stop.
pub async fn spawn_server(
    addr: SocketAddr,
    handle: PrometheusHandle,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, tokio::spawn(serve(listener, handle))))
}

/// Serves `GET /metrics` from `handle` on `listener` until the task is dropped, running the
/// recorder's upkeep every [`UPKEEP_INTERVAL`].
pub async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    let upkeep = handle.clone();
    let _upkeep = AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    }));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "metrics server: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let handle = handle.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&request, &handle)) }
            });
            let result = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = result {
                tracing::debug!(error = %e, "metrics server: connection ended with an error");
            }
        });
    }
}

fn respond<B>(
    request: &http::Request<B>,
    handle: &PrometheusHandle,
) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::new()));
    match (request.method(), request.uri().path()) {
        (&http::Method::GET, "/metrics") => {
            *response.body_mut() = Full::new(Bytes::from(handle.render()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
        }
        (_, "/metrics") => *response.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED,
        _ => *response.status_mut() = http::StatusCode::NOT_FOUND,
    }
    response
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
