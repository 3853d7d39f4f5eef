//! RequestValidationLayer's cost per unary call against the bare service, in the same run.
//!
//! The message is the validated test service's `CreateRequest`: ten fields with string
//! (length, pattern, email), numeric range, repeated, nested-message, enum and oneof rules.
//!
//! - `in_process`: the generated tonic service as a tower `Service`, bare and behind the
//!   layer (valid requests, so the handler runs in every row), with the rules evaluated by
//!   the reflection engine (`validated`) and by the request type's compiled rules
//!   (`validated_compiled`, prost-protovalidate-build's `impl Validate`);
//! - `loopback`: tonic's client to a real server on 127.0.0.1, one call at a time.
//!
//! Run: `cargo bench --bench validation`. Compare rows of one run only.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use std::time::Duration;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_blueprint::validation::RequestValidationLayer;
use tonic_blueprint_testkit::pb::CreateRequest;
use tonic_blueprint_testkit::pb::validated_service_client::ValidatedServiceClient;
use tonic_blueprint_testkit::{
    CREATE, TestServer, TestService, VALIDATED_DESCRIPTOR_SET, ValidatedTestService,
    grpc_http_request,
};
use tower::{Layer, Service, ServiceExt};

async fn call<S, B>(svc: &S) -> Bytes
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let request = grpc_http_request(CREATE, &CreateRequest::valid());
    let response = svc.clone().oneshot(request).await.expect("call");
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("body");
    let ok = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .is_some_and(|s| s == "0");
    assert!(ok, "the request is valid: {parts:?}");
    collected.to_bytes()
}

fn layer() -> RequestValidationLayer {
    RequestValidationLayer::from_descriptors(VALIDATED_DESCRIPTOR_SET).expect("layer")
}

fn in_process(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bare = ValidatedTestService::default().into_server();
    let validated = layer().layer(bare.clone());
    let compiled = layer()
        .compiled::<CreateRequest>()
        .expect("compiled rules")
        .layer(bare.clone());
    let mut group = c.benchmark_group("validation_in_process");
    group.bench_function("bare", |b| b.to_async(&rt).iter(|| call(&bare)));
    group.bench_function("validated", |b| b.to_async(&rt).iter(|| call(&validated)));
    group.bench_function("validated_compiled", |b| {
        b.to_async(&rt).iter(|| call(&compiled))
    });
    group.finish();
}

fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("validation_loopback");
    group.measurement_time(Duration::from_secs(5));
    let (bare, validated) = rt.block_on(async {
        let routes = || Routes::new(ValidatedTestService::default().into_server());
        (
            TestServer::start_routes(Server::builder(), routes(), TestService::default()).await,
            TestServer::start_routes(
                Server::builder().layer(layer()),
                routes(),
                TestService::default(),
            )
            .await,
        )
    });
    for (name, server) in [("bare", &bare), ("validated", &validated)] {
        let client = rt.block_on(async {
            ValidatedServiceClient::connect(server.uri())
                .await
                .expect("connect")
        });
        let request = CreateRequest::valid();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let mut client = client.clone();
                let request = request.clone();
                async move { client.create(request).await.expect("call") }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, in_process, loopback);
criterion_main!(benches);
