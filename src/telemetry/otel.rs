//! OpenTelemetry export (feature `otel`): sampled spans to an OTLP/gRPC endpoint.
//!
//! [`init`] installs the process's span recorder
//! ([`SpanRecorder`]): the RequestLogging layer's server
//! spans, the logging crate's `PropagateLayer`'s client spans and the NATS
//! consumers' spans are then exported when sampled. The ids are the ones in the logs
//! (`trace_id`, `span_id`): a log line leads to its span and back.
//!
//! - **Sampling** is decided once, when a span starts, by the configured [`Sampler`]
//!   (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`; default `parentbased_always_on`), and
//!   the decision travels on in `traceparent`. A span that is not sampled costs its ids
//!   and nothing else.
//! - **Export never blocks a call**: a finished span is put in a bounded queue
//!   ([`OtelConfig::queue_size`], 2,048) with a non-blocking send; a full queue drops the span
//!   and counts it ([`SPANS_DROPPED`], and [`OtelGuard::dropped_spans`]). A thread of its own
//!   sends the queue in batches (up to [`OtelConfig::max_batch`] spans, at least every
//!   [`OtelConfig::batch_delay`]) through opentelemetry-otlp's gRPC exporter (tonic), each
//!   export bounded by [`OtelConfig::export_timeout`].
//! - The resource is `service.name` (`OTEL_SERVICE_NAME`, else `SERVICE_NAME`) and the
//!   attributes of `OTEL_RESOURCE_ATTRIBUTES`.
//! - `OTEL_SDK_DISABLED=true`, or an empty `OTEL_EXPORTER_OTLP_ENDPOINT`, exports nothing
//!   (the ids are still in the logs and carried on).
//!
//! Only the blueprint's own spans are exported, not the application's tracing spans: they
//! share the call's `trace_id` in the logs.
//!
//! ```no_run
//! use tonic_blueprint::telemetry::otel::{self, OtelConfig};
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = OtelConfig::new("http://127.0.0.1:4317", "payments");
//! let _otel = otel::init(&config)?; // keep it: dropping it flushes what is queued
//! # Ok(()) }
//! ```

use super::TelemetryError;
use crate::core::trace::{
    AttributeValue, FinishedSpan, Sampler, SpanKind as Kind, SpanRecorder,
    TraceId as BlueprintTraceId,
};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Spans dropped because the export queue was full (counter).
pub const SPANS_DROPPED: &str = "otel_spans_dropped_total";

/// What [`init`] sets up.
#[derive(Clone, Debug, PartialEq)]
pub struct OtelConfig {
    /// The OTLP/gRPC endpoint (`http://host:4317`); empty: no export.
    pub endpoint: String,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Which traces are recorded.
    pub sampler: Sampler,
    /// Nothing is exported (`OTEL_SDK_DISABLED=true`).
    pub disabled: bool,
    /// Spans waiting for export at most; more are dropped and counted (default 2,048).
    pub queue_size: usize,
    /// Spans sent in one export at most (default 512).
    pub max_batch: usize,
    /// The longest a span waits for its batch (default 1 s).
    pub batch_delay: Duration,
    /// The longest one export may take, retries included (default 10 s).
    pub export_timeout: Duration,
}

impl OtelConfig {
    /// Export to `endpoint` as `service_name`, with the defaults.
    pub fn new(endpoint: impl Into<String>, service_name: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            service_name: service_name.into(),
            sampler: Sampler::default(),
            disabled: false,
            queue_size: 2048,
            max_batch: 512,
            batch_delay: Duration::from_secs(1),
            export_timeout: Duration::from_secs(10),
        }
    }

    /// Whether [`init`] exports anything with this configuration.
    pub fn enabled(&self) -> bool {
        !self.disabled && !self.endpoint.trim().is_empty()
    }
}

enum Message {
    Span(Box<SpanData>),
    /// Export what is queued, then answer.
    Flush(std::sync::mpsc::SyncSender<()>),
    /// Export what is queued, shut the exporter down, answer and stop.
    Shutdown(std::sync::mpsc::SyncSender<()>),
}

/// Keeps the exporter running; dropping it exports what is queued (for at most
/// [`OtelConfig::export_timeout`]) and stops it.
#[derive(Debug)]
#[must_use = "dropping the guard stops the exporter"]
pub struct OtelGuard {
    sender: mpsc::Sender<Message>,
    dropped: Arc<AtomicU64>,
    wait: Duration,
}

impl OtelGuard {
    /// Spans dropped so far because the queue was full.
    pub fn dropped_spans(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Exports every span queued so far and waits for it (at most the export timeout);
    /// whether it finished in time.
    pub fn flush(&self) -> bool {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        self.sender.try_send(Message::Flush(ack)).is_ok() && done.recv_timeout(self.wait).is_ok()
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        if self.sender.try_send(Message::Shutdown(ack)).is_ok() {
            let _ = done.recv_timeout(self.wait);
        }
        let dropped = self.dropped_spans();
        if dropped > 0 {
            tracing::warn!(
                otel.spans_dropped = dropped,
                "spans were dropped because the export queue was full"
            );
        }
    }
}

/// Starts the exporter and installs it as the process's span recorder; `None` when
/// `config` exports nothing ([`OtelConfig::enabled`]).
///
/// Fails when the endpoint is not a valid URI, the exporter thread cannot start, or a span
/// recorder is already installed.
pub fn init(config: &OtelConfig) -> Result<Option<OtelGuard>, TelemetryError> {
    if !config.enabled() {
        return Ok(None);
    }
    if !config.endpoint.trim().starts_with("http://") {
        return Err(TelemetryError::Otel(format!(
            "OTEL_EXPORTER_OTLP_ENDPOINT={:?}: only plain http:// endpoints are supported \
             (export to a collector on the host or in the cluster)",
            config.endpoint
        )));
    }
    let (sender, receiver) = mpsc::channel(config.queue_size.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let (started, start_result) = std::sync::mpsc::sync_channel(1);
    let worker = Worker {
        endpoint: config.endpoint.trim().to_owned(),
        service_name: config.service_name.clone(),
        max_batch: config.max_batch.max(1),
        batch_delay: config.batch_delay.max(Duration::from_millis(1)),
        export_timeout: config.export_timeout,
    };
    std::thread::Builder::new()
        .name("otel-export".to_owned())
        .spawn(move || worker.run(receiver, started))
        .map_err(|e| TelemetryError::Otel(format!("cannot start the export thread: {e}")))?;
    start_result
        .recv()
        .map_err(|_| TelemetryError::Otel("the export thread stopped".to_owned()))?
        .map_err(TelemetryError::Otel)?;
    let recorder = OtelRecorder {
        sender: sender.clone(),
        sampler: config.sampler,
        dropped: dropped.clone(),
        warned: AtomicBool::new(false),
        scope: InstrumentationScope::builder("tonic-blueprint")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    };
    crate::core::trace::install_recorder(recorder)
        .map_err(|e| TelemetryError::Otel(e.to_string()))?;
    Ok(Some(OtelGuard {
        sender,
        dropped,
        wait: config.export_timeout + Duration::from_secs(1),
    }))
}

/// The recorder: samples, converts, queues.
struct OtelRecorder {
    sender: mpsc::Sender<Message>,
    sampler: Sampler,
    dropped: Arc<AtomicU64>,
    warned: AtomicBool,
    scope: InstrumentationScope,
}

impl SpanRecorder for OtelRecorder {
    fn should_sample(&self, trace_id: BlueprintTraceId, parent_sampled: Option<bool>) -> bool {
        self.sampler.should_sample(trace_id, parent_sampled)
    }

    fn record(&self, span: &FinishedSpan<'_>) {
        let data = Box::new(span_data(span, &self.scope));
        match self.sender.try_send(Message::Span(data)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(SPANS_DROPPED).increment(1);
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the span export queue is full: spans are dropped (counted in {SPANS_DROPPED})"
                    );
                }
            }
            // Shut down: nothing is exported any more.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// `span` as OpenTelemetry span data, with the same ids.
fn span_data(span: &FinishedSpan<'_>, scope: &InstrumentationScope) -> SpanData {
    let context = span.context;
    let state = context
        .tracestate()
        .and_then(|v| v.to_str().ok())
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    let attributes = span
        .attributes
        .iter()
        .map(|a| match a.value {
            AttributeValue::Str(s) => KeyValue::new(a.key, s.to_owned()),
            AttributeValue::I64(n) => KeyValue::new(a.key, n),
            AttributeValue::Bool(b) => KeyValue::new(a.key, b),
        })
        .collect();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(context.trace_id().to_bytes()),
            SpanId::from_bytes(context.span_id().to_bytes()),
            TraceFlags::SAMPLED,
            false,
            state,
        ),
        parent_span_id: context
            .parent_id()
            .map_or(SpanId::INVALID, |p| SpanId::from_bytes(p.to_bytes())),
        parent_span_is_remote: context.is_remote_parent(),
        span_kind: match span.kind {
            Kind::Server => SpanKind::Server,
            Kind::Client => SpanKind::Client,
            Kind::Producer => SpanKind::Producer,
            Kind::Consumer => SpanKind::Consumer,
            Kind::Internal => SpanKind::Internal,
        },
        name: Cow::Owned(span.name.to_owned()),
        start_time: span.start,
        end_time: span.end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match span.error {
            Some(description) => Status::error(description.to_owned()),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}

/// The export thread.
struct Worker {
    endpoint: String,
    service_name: String,
    max_batch: usize,
    batch_delay: Duration,
    export_timeout: Duration,
}

impl Worker {
    fn run(
        self,
        receiver: mpsc::Receiver<Message>,
        started: std::sync::mpsc::SyncSender<Result<(), String>>,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = started.send(Err(format!("cannot start the export runtime: {e}")));
                return;
            }
        };
        runtime.block_on(self.serve(receiver, started));
    }

    async fn serve(
        self,
        mut receiver: mpsc::Receiver<Message>,
        started: std::sync::mpsc::SyncSender<Result<(), String>>,
    ) {
        // Built here: tonic's channel needs the runtime it runs on.
        let built = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(self.endpoint.clone())
            .with_timeout(self.export_timeout)
            .build();
        let mut exporter = match built {
            Ok(exporter) => exporter,
            Err(e) => {
                let _ = started.send(Err(format!(
                    "OTEL_EXPORTER_OTLP_ENDPOINT={:?}: {e}",
                    self.endpoint
                )));
                return;
            }
        };
        exporter.set_resource(
            &Resource::builder()
                .with_service_name(self.service_name.clone())
                .build(),
        );
        let _ = started.send(Ok(()));

        let mut batch: Vec<SpanData> = Vec::with_capacity(self.max_batch);
        let mut ticks = tokio::time::interval(self.batch_delay);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                message = receiver.recv() => message,
                _ = ticks.tick() => {
                    self.export(&exporter, &mut batch).await;
                    continue;
                }
            };
            match message {
                Some(Message::Span(span)) => {
                    batch.push(*span);
                    if batch.len() >= self.max_batch {
                        self.export(&exporter, &mut batch).await;
                    }
                }
                Some(Message::Flush(ack)) => {
                    self.drain(&mut receiver, &mut batch);
                    self.export(&exporter, &mut batch).await;
                    let _ = ack.send(());
                }
                Some(Message::Shutdown(ack)) => {
                    receiver.close();
                    self.drain(&mut receiver, &mut batch);
                    self.export(&exporter, &mut batch).await;
                    let _ = exporter.shutdown_with_timeout(self.export_timeout);
                    let _ = ack.send(());
                    return;
                }
                None => {
                    self.export(&exporter, &mut batch).await;
                    return;
                }
            }
        }
    }

    /// Moves the spans already queued into `batch`.
    fn drain(&self, receiver: &mut mpsc::Receiver<Message>, batch: &mut Vec<SpanData>) {
        while let Ok(message) = receiver.try_recv() {
            match message {
                Message::Span(span) => batch.push(*span),
                Message::Flush(ack) | Message::Shutdown(ack) => {
                    let _ = ack.send(());
                }
            }
        }
    }

    /// Sends `batch` (in chunks of at most `max_batch`), bounded by the export timeout.
    async fn export(&self, exporter: &opentelemetry_otlp::SpanExporter, batch: &mut Vec<SpanData>) {
        while !batch.is_empty() {
            let chunk: Vec<SpanData> = batch.drain(..batch.len().min(self.max_batch)).collect();
            let count = chunk.len();
            let exported = tokio::time::timeout(self.export_timeout, exporter.export(chunk)).await;
            match exported {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(otel.spans = count, error = %e, "span export failed");
                }
                Err(_) => {
                    tracing::warn!(
                        otel.spans = count,
                        timeout = ?self.export_timeout,
                        "span export timed out"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::trace::{Attribute, TraceContext};

    #[test]
    fn span_data_keeps_the_ids_kind_attributes_and_status() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        headers.insert("tracestate", http::HeaderValue::from_static("vendor=x"));
        let context = TraceContext::incoming_with(&headers, |_, _| true);
        let attributes = [
            Attribute::str("rpc.system", "grpc"),
            Attribute::i64("rpc.grpc.status_code", 13),
        ];
        let now = std::time::SystemTime::now();
        let span = FinishedSpan {
            name: "pkg.Svc/Do",
            kind: Kind::Server,
            context: &context,
            start: now,
            end: now,
            attributes: &attributes,
            error: Some("Internal"),
        };
        let scope = InstrumentationScope::builder("test").build();
        let data = span_data(&span, &scope);
        assert_eq!(
            data.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            data.span_context.span_id().to_string(),
            context.span_id().to_string()
        );
        assert_eq!(data.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(data.parent_span_is_remote);
        assert_eq!(data.span_kind, SpanKind::Server);
        assert_eq!(data.span_context.trace_state().header(), "vendor=x");
        assert_eq!(data.attributes.len(), 2);
        assert_eq!(data.status, Status::error("Internal"));
    }

    #[test]
    fn a_full_queue_drops_spans_and_counts_them_without_blocking() {
        // Nobody reads the queue: room for one span.
        let (sender, _receiver) = mpsc::channel(1);
        let recorder = OtelRecorder {
            sender,
            sampler: Sampler::AlwaysOn,
            dropped: Arc::default(),
            warned: AtomicBool::new(false),
            scope: InstrumentationScope::builder("test").build(),
        };
        let context = TraceContext::incoming_with(&http::HeaderMap::new(), |_, _| true);
        let now = std::time::SystemTime::now();
        let span = FinishedSpan {
            name: "pkg.Svc/Do",
            kind: Kind::Server,
            context: &context,
            start: now,
            end: now,
            attributes: &[],
            error: None,
        };
        for _ in 0..5 {
            recorder.record(&span);
        }
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn nothing_starts_without_an_endpoint_or_when_disabled() {
        let mut config = OtelConfig::new("", "svc");
        assert!(init(&config).expect("no export").is_none());
        config.endpoint = "http://127.0.0.1:4317".to_owned();
        config.disabled = true;
        assert!(init(&config).expect("no export").is_none());
        config.disabled = false;
        config.endpoint = "https://collector:4317".to_owned();
        assert!(matches!(init(&config), Err(TelemetryError::Otel(_))));
    }
}
