//! Expired deadlines feed the shared counter. Its own test binary: it installs the global
//! metrics recorder.

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::time::Duration;
use tonic::transport::Server;
use tonic_blueprint_core::names;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{SERVER_STREAM, TestServer, UNARY};
use tonic_blueprint_timeout::TimeoutLayer;

#[tokio::test]
async fn every_expiry_is_counted_once_per_call() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("install the recorder");

    let server =
        TestServer::start(Server::builder().layer(TimeoutLayer::new(Duration::from_millis(50))))
            .await;
    let raw = server.raw();
    for _ in 0..3 {
        raw.call(UNARY, &[TestRequest::echo("x").sleep_ms(1000)], &[])
            .await
            .expect("call");
    }
    raw.call(
        SERVER_STREAM,
        &[TestRequest::echo("x").count(100).sleep_ms(20)],
        &[],
    )
    .await
    .expect("call");
    // A call that finishes in time is not counted.
    raw.call(UNARY, &[TestRequest::echo("x")], &[])
        .await
        .expect("call");

    let mut counted = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() == names::DEADLINES_EXCEEDED {
            let method = key
                .key()
                .labels()
                .find(|l| l.key() == names::LABEL_METHOD)
                .map(|l| l.value().to_owned());
            if let DebugValue::Counter(n) = value {
                counted.push((method, n));
            }
        }
    }
    counted.sort();
    assert_eq!(
        counted,
        [
            (Some("ServerStream".to_owned()), 1),
            (Some("Unary".to_owned()), 3)
        ]
    );
}
