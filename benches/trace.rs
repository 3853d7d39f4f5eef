//! What W3C trace context and OpenTelemetry export cost the preset stack, in process, in the
//! same run (issue 17's goal: under 1.5 µs a call for context extraction and a sampled-out
//! span).
//!
//! Three variants of the full preset serve the validated test service's `Create` (as the
//! `preset` bench does, compiled validation rules, logs as info JSON into a sink):
//!
//! - `without_trace`: the logging layer with `trace_context(false)`: no trace header read, no
//!   ids, no current call: the baseline;
//! - `sampled_out`: trace context on, the caller's `traceparent` not sampled (`-00`): the
//!   header parsed, new span id, `trace_id`/`span_id` on the span and every line, the
//!   `TraceContext` and `CurrentCall` in the extensions, the sampler asked; no span recorded;
//! - `exported`: the caller sampled (`-01`): the server span recorded and exported over
//!   OTLP/gRPC to a receiver in this process (its own thread), through the bounded queue
//!   (spans beyond it are dropped and counted, never waited for).
//!
//! The OTLP exporter is installed for all three (the recorder is process-wide), sampling
//! `parentbased_always_on`.
//!
//! Besides criterion's rows, the figure printed is the median over paired rounds (the
//! variants alternate, `BLUEPRINT_BENCH_ROUNDS` rounds, default 15, of 10,000 calls each) of
//! each variant's time per call minus the baseline's in the same round.
//!
//! Run: `cargo bench --bench trace --features server,validation,otel`.

use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tonic_blueprint::config::Loader;
use tonic_blueprint::core::MethodRegistry;
use tonic_blueprint::logging::RequestLoggingLayer;
use tonic_blueprint::server::{BoxedService, PresetStack};
use tonic_blueprint::telemetry::otel::{self, OtelGuard};
use tonic_blueprint_testkit::pb::CreateRequest;
use tonic_blueprint_testkit::{CREATE, VALIDATED_DESCRIPTOR_SET, ValidatedTestService};
use tower::{Layer, ServiceExt};

const CALLS_PER_ROUND: u32 = 10_000;
const SAMPLED_OUT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn rounds() -> usize {
    std::env::var("BLUEPRINT_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(15)
}

/// Counts the spans it receives.
#[derive(Clone, Default)]
struct Receiver(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// The OTLP receiver on a thread of its own; its address.
fn start_receiver(receiver: Receiver) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .expect("receiver");
        });
    });
    addr
}

/// Logs as the preset bench has them, and the exporter; once per process.
fn telemetry(receiver: &Receiver) -> &'static OtelGuard {
    static SET_UP: std::sync::OnceLock<(tonic_blueprint::telemetry::TelemetryGuard, OtelGuard)> =
        std::sync::OnceLock::new();
    let (_, otel) = SET_UP.get_or_init(|| {
        let logs = tonic_blueprint::telemetry::init_with_writer(
            &tonic_blueprint::telemetry::TelemetryConfig {
                filter: "info".to_owned(),
                format: tonic_blueprint::telemetry::LogFormat::Json,
                file: None,
            },
            std::io::sink(),
        )
        .expect("telemetry");
        let addr = start_receiver(receiver.clone());
        let otel = otel::init(&otel::OtelConfig::new(format!("http://{addr}"), "bench"))
            .expect("exporter")
            .expect("enabled");
        (logs, otel)
    });
    otel
}

fn stack(trace_context: bool) -> PresetStack {
    let config = Loader::from_pairs([("RATE_LIMIT_PER_MINUTE", "4000000000")])
        .load()
        .expect("config");
    let mut stack = PresetStack::from_config(&config, VALIDATED_DESCRIPTOR_SET).expect("stack");
    stack.validation = stack
        .validation
        .take()
        .map(|layer| layer.compiled::<CreateRequest>())
        .transpose()
        .expect("compiled rules");
    let registry =
        MethodRegistry::from_file_descriptor_set(VALIDATED_DESCRIPTOR_SET).expect("registry");
    stack.logging = Some(
        RequestLoggingLayer::new()
            .with_registry(registry)
            .trace_context(trace_context),
    );
    stack
}

fn request(traceparent: Option<&'static str>) -> http::Request<tonic::body::Body> {
    let mut request = tonic_blueprint_testkit::grpc_http_request(CREATE, &CreateRequest::valid());
    *request.uri_mut() =
        http::Uri::from_static("http://127.0.0.1:50051/blueprint.test.v1.ValidatedService/Create");
    if let Some(value) = traceparent {
        request
            .headers_mut()
            .insert("traceparent", http::HeaderValue::from_static(value));
    }
    request
}

async fn call(svc: &BoxedService, traceparent: Option<&'static str>) {
    let response = svc
        .clone()
        .oneshot(request(traceparent))
        .await
        .expect("call");
    let _ = response.into_body().collect().await.expect("body");
}

struct Variant {
    name: &'static str,
    service: BoxedService,
    traceparent: Option<&'static str>,
}

fn variants() -> Vec<Variant> {
    let routes = || tonic::service::Routes::new(ValidatedTestService::default().into_server());
    vec![
        Variant {
            name: "without_trace",
            service: stack(false).layer(routes()),
            traceparent: None,
        },
        Variant {
            name: "sampled_out",
            service: stack(true).layer(routes()),
            traceparent: Some(SAMPLED_OUT),
        },
        Variant {
            name: "exported",
            service: stack(true).layer(routes()),
            traceparent: Some(SAMPLED),
        },
    ]
}

fn trace(c: &mut Criterion) {
    let receiver = Receiver::default();
    let otel = telemetry(&receiver);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let variants = variants();

    let mut group = c.benchmark_group("trace_in_process");
    for variant in &variants {
        group.bench_function(variant.name, |b| {
            b.to_async(&rt)
                .iter(|| call(&variant.service, variant.traceparent))
        });
    }
    group.finish();

    // Paired rounds: each variant's time per call, minus the baseline's in the same round.
    let rounds = rounds();
    let mut per_call: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); variants.len()];
    rt.block_on(async {
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..variants.len()).collect();
            order.rotate_left(round % variants.len());
            for i in order {
                let variant = &variants[i];
                let started = Instant::now();
                for _ in 0..CALLS_PER_ROUND {
                    call(&variant.service, variant.traceparent).await;
                }
                per_call[i].push(started.elapsed().as_nanos() as f64 / f64::from(CALLS_PER_ROUND));
            }
        }
    });
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let baseline = median(per_call[0].clone());
    println!(
        "trace paired ({rounds} rounds of {CALLS_PER_ROUND} calls): without_trace {baseline:.0} ns/call"
    );
    for (i, variant) in variants.iter().enumerate().skip(1) {
        let added: Vec<f64> = per_call[i]
            .iter()
            .zip(&per_call[0])
            .map(|(v, b)| v - b)
            .collect();
        println!(
            "trace paired: {} adds {:.0} ns/call (median of per-round differences; {:.0} ns/call)",
            variant.name,
            median(added),
            median(per_call[i].clone()),
        );
    }
    let flushed = otel.flush();
    println!(
        "trace export: {} spans received, {} dropped (queue full), flushed in time: {flushed}",
        receiver.0.load(Ordering::Relaxed),
        otel.dropped_spans()
    );
}

criterion_group!(benches, trace);
criterion_main!(benches);
