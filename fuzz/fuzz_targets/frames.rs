//! Arbitrary request bodies through the core's frame reader and the validation layer.
//!
//! Input: byte 0 picks the method (unary `Create`, client-streaming `Upload`), byte 1 the
//! `grpc-encoding`, byte 2 how the body is cut into chunks; the rest is the body. Whatever
//! arrives, the answer must be HTTP 200 with a gRPC status, and nothing may panic.
#![no_main]

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
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

        // The layer in front of the real handlers.
        let service = layer().layer(ValidatedTestService::default().into_server());
        let stream = futures_util::stream::iter(chunks(body, head[2]));
        let mut request = http::Request::new(tonic::body::Body::new(StreamBody::new(stream)));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static(path);
        let headers = request.headers_mut();
        headers.insert("content-type", http::HeaderValue::from_static("application/grpc"));
        headers.insert("te", http::HeaderValue::from_static("trailers"));
        headers.insert("grpc-encoding", http::HeaderValue::from_static(encoding));
        let response = service.oneshot(request).await.expect("the layer never fails a call");
        assert_eq!(response.status(), http::StatusCode::OK);
        let in_headers = response.headers().contains_key("grpc-status");
        let collected = response.into_body().collect().await;
        let in_trailers = collected
            .ok()
            .and_then(|c| c.trailers().cloned())
            .is_some_and(|t| t.contains_key("grpc-status"));
        assert!(in_headers || in_trailers, "every answer carries a gRPC status");
    });
});
