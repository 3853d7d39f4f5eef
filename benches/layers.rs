//! Per-call cost of each layer against the bare service, measured in the same run.
//!
//! - `in_process`: a unary 64-byte echo through the generated tonic service as a tower
//!   `Service`, with and without each layer: the layer's own cost, without network noise.
//! - `loopback`: the same call from tonic's client to a real server on 127.0.0.1, one call at
//!   a time: what the layers add to a real call.
//!
//! Run: `cargo bench --bench layers`. Compare rows of one run only.

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use prost::Message;
use std::time::Duration;
use tonic::transport::Server;
use tonic_blueprint::panic_recovery::PanicRecoveryLayer;
use tonic_blueprint::timeout::TimeoutLayer;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{TestServer, TestService, UNARY};
use tower::{Layer, Service, ServiceExt, layer::util::Identity};

fn unary_request() -> http::Request<tonic::body::Body> {
    let message = TestRequest::echo(vec![7u8; 64]).encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.put_slice(&message);
    http::Request::builder()
        .method("POST")
        .uri(UNARY)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(frame.freeze())))
        .expect("request")
}

async fn call<S, B>(svc: &S) -> Bytes
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = svc.clone().oneshot(unary_request()).await.expect("call");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

fn in_process(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bare = TestService::default().into_server();
    let timeout = TimeoutLayer::new(Duration::from_secs(30)).layer(bare.clone());
    let panic = PanicRecoveryLayer::new().layer(bare.clone());
    let both = tower::ServiceBuilder::new()
        .layer(PanicRecoveryLayer::new())
        .layer(TimeoutLayer::new(Duration::from_secs(30)))
        .service(bare.clone());

    let mut group = c.benchmark_group("in_process");
    group.bench_function("bare", |b| b.to_async(&rt).iter(|| call(&bare)));
    group.bench_function("timeout", |b| b.to_async(&rt).iter(|| call(&timeout)));
    group.bench_function("panic_recovery", |b| b.to_async(&rt).iter(|| call(&panic)));
    group.bench_function("panic_recovery+timeout", |b| {
        b.to_async(&rt).iter(|| call(&both))
    });
    group.finish();
}

fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let request = TestRequest::echo(vec![7u8; 64]);
    let mut group = c.benchmark_group("loopback");
    group.measurement_time(Duration::from_secs(5));

    macro_rules! bench_stack {
        ($name:expr, $layer:expr) => {{
            let server = rt.block_on(TestServer::start(Server::builder().layer($layer)));
            let client = rt.block_on(server.client());
            group.bench_function($name, |b| {
                b.to_async(&rt).iter(|| {
                    let mut client = client.clone();
                    let request = request.clone();
                    async move { client.unary(request).await.expect("call") }
                })
            });
            drop(server);
        }};
    }
    bench_stack!("bare", Identity::new());
    bench_stack!("timeout", TimeoutLayer::new(Duration::from_secs(30)));
    bench_stack!("panic_recovery", PanicRecoveryLayer::new());
    bench_stack!(
        "panic_recovery+timeout",
        tower::ServiceBuilder::new()
            .layer(PanicRecoveryLayer::new())
            .layer(TimeoutLayer::new(Duration::from_secs(30)))
    );
    group.finish();
}

criterion_group!(benches, in_process, loopback);
criterion_main!(benches);
