//! Expired deadlines feed the shared counter. Its own test binary: it installs the global
//! metrics recorder.

use metrics_util::debugging::DebuggingRecorder;
use std::time::Duration;
use tonic::transport::Server;
use tonic_blueprint_core::names;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{SERVER_STREAM, TestServer, UNARY, counters_by_method};
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

    let counted = counters_by_method(&snapshotter, names::DEADLINES_EXCEEDED);
    assert_eq!(
        counted,
        [("ServerStream".to_owned(), 1), ("Unary".to_owned(), 3)]
    );
}
