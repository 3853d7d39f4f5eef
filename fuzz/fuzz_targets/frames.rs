//! Arbitrary request bodies through the core's frame reader and the validation layer.
//!
//! Input: byte 0 picks the method (unary `Create`, client-streaming `Upload`), byte 1 the
//! `grpc-encoding`, byte 2 how the body is cut into chunks; the rest is the body. Whatever
//! arrives, the answer must be HTTP 200 with a gRPC status, and nothing may panic; and a
//! layer checking `CreateRequest` with its compiled rules must answer exactly as the one
//! running the reflection engine (status, message and details).
#![no_main]

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tonic_blueprint_testkit::pb::CreateRequest;
use tonic_blueprint_testkit::{CREATE, UPLOAD, VALIDATED_DESCRIPTOR_SET, ValidatedTestService};
use tonic_blueprint_validation::RequestValidationLayer;
use tower::{Layer, ServiceExt};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fn layer() -> &'static RequestValidationLayer {
    static LAYER: OnceLock<RequestValidationLayer> = OnceLock::new();
    LAYER.get_or_init(|| {
        RequestValidationLayer::from_descriptors(VALIDATED_DESCRIPTOR_SET)
            .expect("layer")
            .max_message_bytes(64 * 1024)
    })
}

fn compiled_layer() -> &'static RequestValidationLayer {
    static LAYER: OnceLock<RequestValidationLayer> = OnceLock::new();
    LAYER.get_or_init(|| {
        layer()
            .clone()
            .compiled::<CreateRequest>()
            .expect("compiled rules")
    })
}

/// What a client sees of the answer: grpc-status, grpc-message, grpc-status-details-bin.
type Answer = [Option<http::HeaderValue>; 3];

async fn answer(
    layer: &RequestValidationLayer,
    path: &'static str,
    encoding: &'static str,
    body: &[u8],
    cut: u8,
) -> Answer {
    let service = layer.layer(ValidatedTestService::default().into_server());
    let stream = futures_util::stream::iter(chunks(body, cut));
    let mut request = http::Request::new(tonic::body::Body::new(StreamBody::new(stream)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(path);
    let headers = request.headers_mut();
    headers.insert("content-type", http::HeaderValue::from_static("application/grpc"));
    headers.insert("te", http::HeaderValue::from_static("trailers"));
    headers.insert("grpc-encoding", http::HeaderValue::from_static(encoding));
    let response = service.oneshot(request).await.expect("the layer never fails a call");
    assert_eq!(response.status(), http::StatusCode::OK);
    let (parts, body) = response.into_parts();
    let trailers = body.collect().await.ok().and_then(|c| c.trailers().cloned());
    let source = if parts.headers.contains_key("grpc-status") {
        Some(parts.headers)
    } else {
        trailers
    };
    let source = source.expect("every answer carries a gRPC status");
    ["grpc-status", "grpc-message", "grpc-status-details-bin"].map(|name| source.get(name).cloned())
}

fn chunks(body: &[u8], cut: u8) -> Vec<Result<Frame<Bytes>, std::convert::Infallible>> {
    let size = usize::from(cut % 17) + 1;
    body.chunks(size)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (head, body) = data.split_at(3);
    let path = if head[0] % 2 == 0 { CREATE } else { UPLOAD };
    let encoding = ["identity", "gzip", "deflate", "snappy"][usize::from(head[1] % 4)];
    runtime().block_on(async {
        // The core's reader alone.
        let whole = http_body_util::Full::new(Bytes::copy_from_slice(body));
        let _ = tonic_blueprint_core::read_unary_request(whole, 64 * 1024).await;

        // The layer in front of the real handlers, with the engine and with compiled rules.
        let engine = answer(layer(), path, encoding, body, head[2]).await;
        assert!(engine[0].is_some(), "every answer carries a gRPC status");
        let compiled = answer(compiled_layer(), path, encoding, body, head[2]).await;
        assert_eq!(engine, compiled, "compiled rules answer as the engine does");
    });
});
