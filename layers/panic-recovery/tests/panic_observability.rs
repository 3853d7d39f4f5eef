//! What operators see of a recovered panic: one error event with its location, and the
//! shared counter. Its own test binary, since it installs the global subscriber and recorder.

use metrics_util::debugging::DebuggingRecorder;
use tonic::transport::Server;
use tonic_blueprint_core::names;
use tonic_blueprint_panic_recovery::PanicRecoveryLayer;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{Captured, SERVER_STREAM, TestServer, UNARY, counters_by_method};

#[tokio::test]
async fn a_recovered_panic_is_logged_with_its_location_and_counted() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("install the recorder");

    let server = TestServer::start(Server::builder().layer(PanicRecoveryLayer::new())).await;
    let raw = server.raw();
    raw.call(UNARY, &[TestRequest::echo("x").panic()], &[])
        .await
        .expect("call");
    raw.call(
        SERVER_STREAM,
        &[TestRequest::echo("x").count(2).panic().mid_stream()],
        &[],
    )
    .await
    .expect("call");

    let text = logs.text();
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("panic recovered"))
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    for (event, method, phase) in [
        (events[0], "Unary", "handler"),
        (events[1], "ServerStream", "stream"),
    ] {
        assert!(event.contains("ERROR"), "{event}");
        assert!(event.contains("blueprint.test.v1.TestService"), "{event}");
        assert!(event.contains(method), "{event}");
        assert!(
            event.contains(&format!("panic.phase=\"{phase}\"")),
            "{event}"
        );
        // The location points into the handler that panicked.
        assert!(event.contains("testkit/src/service.rs:"), "{event}");
        assert!(
            event.contains("hunter2"),
            "the server log keeps the panic message: {event}"
        );
    }

    let counted = counters_by_method(&snapshotter, names::PANICS_RECOVERED);
    assert_eq!(
        counted,
        [("ServerStream".to_owned(), 1), ("Unary".to_owned(), 1)]
    );
}
