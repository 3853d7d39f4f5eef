//! The metrics a real server records, read from the Prometheus text, per RPC kind and outcome.
//! Each test records into a recorder of its own, so tests do not see each other's calls.

use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Server;
use tonic_blueprint_core::MethodRegistry;
use tonic_blueprint_metrics::MetricsLayer;
use tonic_blueprint_metrics::exporter::{self, PrometheusHandle};
use tonic_blueprint_panic_recovery::PanicRecoveryLayer;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::prom::Samples;
use tonic_blueprint_testkit::{
    BIDI, CLIENT_STREAM, FILE_DESCRIPTOR_SET, SERVER_STREAM, TestServer, UNARY,
};
use tonic_blueprint_timeout::TimeoutLayer;
use tower::ServiceBuilder;

const SERVICE: &str = "blueprint.test.v1.TestService";

fn metrics_layer() -> (MetricsLayer, PrometheusHandle) {
    let recorder = Arc::new(exporter::recorder());
    let handle = recorder.handle();
    let registry =
        MethodRegistry::from_file_descriptor_set(FILE_DESCRIPTOR_SET).expect("descriptors");
    let layer = MetricsLayer::new()
        .with_registry(registry)
        .with_recorder(recorder);
    (layer, handle)
}

/// Reads one method's series.
struct Method<'a> {
    samples: &'a Samples,
    method: &'a str,
    kind: &'a str,
}

impl Method<'_> {
    fn value(&self, name: &str, extra: &[(&str, &str)]) -> f64 {
        let mut labels = vec![
            ("grpc_service", SERVICE),
            ("grpc_method", self.method),
            ("grpc_type", self.kind),
        ];
        labels.extend_from_slice(extra);
        self.samples
            .get(name, &labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?}"))
    }

    fn handled(&self, code: &str) -> f64 {
        self.value("grpc_server_handled_total", &[("grpc_code", code)])
    }
}

fn method<'a>(samples: &'a Samples, method: &'a str, kind: &'a str) -> Method<'a> {
    Method {
        samples,
        method,
        kind,
    }
}

#[tokio::test]
async fn successful_calls_of_every_kind() {
    let (layer, handle) = metrics_layer();
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let raw = server.raw();
    raw.call(UNARY, &[TestRequest::echo("u")], &[])
        .await
        .expect("unary");
    raw.call(SERVER_STREAM, &[TestRequest::echo("s").count(3)], &[])
        .await
        .expect("server stream");
    raw.call(
        CLIENT_STREAM,
        &[TestRequest::echo("a"), TestRequest::echo("b")],
        &[],
    )
    .await
    .expect("client stream");
    raw.call(BIDI, &[TestRequest::echo("x"), TestRequest::echo("y")], &[])
        .await
        .expect("bidi");

    let samples = Samples::parse(&handle.render());
    for (name, kind, received, sent) in [
        ("Unary", "unary", 1.0, 1.0),
        ("ServerStream", "server_stream", 1.0, 3.0),
        ("ClientStream", "client_stream", 2.0, 1.0),
        ("Bidi", "bidi_stream", 2.0, 2.0),
    ] {
        let m = method(&samples, name, kind);
        assert_eq!(m.value("grpc_server_started_total", &[]), 1.0, "{name}");
        assert_eq!(m.handled("OK"), 1.0, "{name}");
        assert_eq!(
            m.handled("Internal"),
            0.0,
            "{name}: every code exists at zero"
        );
        assert_eq!(
            m.value("grpc_server_msg_received_total", &[]),
            received,
            "{name}"
        );
        assert_eq!(m.value("grpc_server_msg_sent_total", &[]), sent, "{name}");
        assert_eq!(
            m.value("grpc_server_handling_seconds_count", &[]),
            1.0,
            "{name}"
        );
        assert_eq!(
            m.value("grpc_server_handling_seconds_bucket", &[("le", "10")]),
            1.0,
            "{name}"
        );
        assert_eq!(m.value("grpc_server_in_flight_calls", &[]), 0.0, "{name}");
    }
    // The go-grpc-prometheus buckets.
    let buckets: Vec<&str> = samples
        .matching(
            "grpc_server_handling_seconds_bucket",
            &[("grpc_method", "Unary")],
        )
        .map(|s| s.labels["le"].as_str())
        .collect();
    assert_eq!(
        buckets,
        [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"
        ]
    );
}

#[tokio::test]
async fn errors_count_with_their_real_code_even_in_trailers() {
    let (layer, handle) = metrics_layer();
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let raw = server.raw();
    raw.call(
        UNARY,
        &[TestRequest::echo("x").fail(tonic::Code::NotFound, "nope")],
        &[],
    )
    .await
    .expect("call");
    // Headers are sent with the first message; the failure is only in the trailers.
    raw.call(
        SERVER_STREAM,
        &[TestRequest::echo("x")
            .count(3)
            .sleep_ms(5)
            .fail(tonic::Code::DataLoss, "lost")
            .mid_stream()],
        &[],
    )
    .await
    .expect("call");
    raw.call(
        BIDI,
        &[
            TestRequest::echo("a"),
            TestRequest::echo("b")
                .sleep_ms(5)
                .fail(tonic::Code::InvalidArgument, "bad"),
        ],
        &[],
    )
    .await
    .expect("call");

    let samples = Samples::parse(&handle.render());
    let unary = method(&samples, "Unary", "unary");
    assert_eq!(unary.handled("NotFound"), 1.0);
    assert_eq!(unary.handled("OK"), 0.0);
    let stream = method(&samples, "ServerStream", "server_stream");
    assert_eq!(stream.handled("DataLoss"), 1.0);
    assert_eq!(
        stream.handled("OK"),
        0.0,
        "a stream failing in its trailers is not OK"
    );
    assert_eq!(stream.value("grpc_server_msg_sent_total", &[]), 1.0);
    let bidi = method(&samples, "Bidi", "bidi_stream");
    assert_eq!(bidi.handled("InvalidArgument"), 1.0);
    for m in [&unary, &stream, &bidi] {
        assert_eq!(m.value("grpc_server_in_flight_calls", &[]), 0.0);
    }
}

#[tokio::test]
async fn panics_and_deadlines_below_the_layer_are_counted_as_internal_and_deadline_exceeded() {
    let (layer, handle) = metrics_layer();
    let stack = ServiceBuilder::new()
        .layer(layer)
        .layer(PanicRecoveryLayer::new())
        .layer(TimeoutLayer::new(Duration::from_millis(100)));
    let server = TestServer::start(Server::builder().layer(stack)).await;
    let raw = server.raw();
    raw.call(UNARY, &[TestRequest::echo("x").panic()], &[])
        .await
        .expect("call");
    raw.call(UNARY, &[TestRequest::echo("x").sleep_ms(1000)], &[])
        .await
        .expect("call");
    raw.call(
        SERVER_STREAM,
        &[TestRequest::echo("x")
            .count(3)
            .sleep_ms(5)
            .panic()
            .mid_stream()],
        &[],
    )
    .await
    .expect("call");
    raw.call(
        SERVER_STREAM,
        &[TestRequest::echo("x").count(1000).sleep_ms(20)],
        &[],
    )
    .await
    .expect("call");
    raw.call(CLIENT_STREAM, &[TestRequest::echo("x").sleep_ms(1000)], &[])
        .await
        .expect("call");

    let samples = Samples::parse(&handle.render());
    let unary = method(&samples, "Unary", "unary");
    assert_eq!(unary.handled("Internal"), 1.0);
    assert_eq!(unary.handled("DeadlineExceeded"), 1.0);
    let stream = method(&samples, "ServerStream", "server_stream");
    assert_eq!(stream.handled("Internal"), 1.0);
    assert_eq!(stream.handled("DeadlineExceeded"), 1.0);
    let upload = method(&samples, "ClientStream", "client_stream");
    assert_eq!(upload.handled("DeadlineExceeded"), 1.0);
    for m in [&unary, &stream, &upload] {
        assert_eq!(m.value("grpc_server_in_flight_calls", &[]), 0.0);
        assert_eq!(m.handled("OK"), 0.0);
    }
}

#[tokio::test]
async fn a_client_that_goes_away_is_counted_canceled_and_leaves_no_call_in_flight() {
    let (layer, handle) = metrics_layer();
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let mut client = server.client().await;

    // A stream the client stops reading and drops after its first message.
    let mut stream = client
        .server_stream(TestRequest::echo("x").count(1000).sleep_ms(10))
        .await
        .expect("stream")
        .into_inner();
    stream.message().await.expect("first message");
    let during = Samples::parse(&handle.render());
    assert_eq!(
        method(&during, "ServerStream", "server_stream").value("grpc_server_in_flight_calls", &[]),
        1.0
    );
    drop(stream);

    // A unary call the client abandons before the answer.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        client.unary(TestRequest::echo("x").sleep_ms(5000)),
    )
    .await;
    assert!(abandoned.is_err(), "the client gave up first");

    let counts = server.service().counts();
    assert_eq!(counts.wait_cancelled(2, Duration::from_secs(5)).await, 2);

    let samples = Samples::parse(&handle.render());
    for (name, kind) in [("ServerStream", "server_stream"), ("Unary", "unary")] {
        let m = method(&samples, name, kind);
        assert_eq!(m.handled("Canceled"), 1.0, "{name}");
        assert_eq!(m.handled("OK"), 0.0, "{name}");
        assert_eq!(m.value("grpc_server_in_flight_calls", &[]), 0.0, "{name}");
    }
}

async fn call_random_paths(server: &TestServer, n: usize) {
    let raw = server.raw();
    for i in 0..n {
        let path = format!("/scan{i}.Probe/M{i}");
        let response = raw
            .call(&path, &[TestRequest::echo("x")], &[])
            .await
            .expect("call");
        assert_eq!(response.grpc_status(), Some(tonic::Code::Unimplemented));
    }
}

#[tokio::test]
async fn ten_thousand_unknown_paths_add_a_fixed_number_of_series() {
    let (layer, handle) = metrics_layer();
    let server = TestServer::start(Server::builder().layer(layer)).await;
    // One call first: the layer registers its series when the first connection builds it.
    server
        .raw()
        .call(UNARY, &[TestRequest::echo("x")], &[])
        .await
        .expect("call");
    let before = Samples::parse(&handle.render()).len();
    call_random_paths(&server, 10_000).await;
    let samples = Samples::parse(&handle.render());
    let added = samples.len() - before;
    // The one `unknown` method: its counters, gauge and histogram.
    assert!(added <= 25, "{added} series added");
    assert_eq!(
        samples.get(
            "grpc_server_handled_total",
            &[
                ("grpc_service", "unknown"),
                ("grpc_method", "unknown"),
                ("grpc_code", "Unimplemented")
            ]
        ),
        Some(10_000.0)
    );
}

#[tokio::test]
async fn without_descriptors_the_label_count_is_capped() {
    let recorder = Arc::new(exporter::recorder());
    let handle = recorder.handle();
    let layer = MetricsLayer::new().with_recorder(recorder).max_methods(5);
    let server = TestServer::start(Server::builder().layer(layer)).await;
    call_random_paths(&server, 2_000).await;
    let samples = Samples::parse(&handle.render());
    let methods: std::collections::BTreeSet<_> = samples
        .matching("grpc_server_started_total", &[])
        .map(|s| s.labels["grpc_method"].clone())
        .collect();
    assert_eq!(
        methods.len(),
        6,
        "five learned methods and unknown: {methods:?}"
    );
    assert!(methods.contains("unknown"));
    assert_eq!(
        samples.get("grpc_server_started_total", &[("grpc_method", "unknown")]),
        Some(1_995.0)
    );
}

#[tokio::test]
async fn every_kind_and_every_outcome_is_counted_once_and_nothing_stays_in_flight() {
    let (layer, handle) = metrics_layer();
    let stack = ServiceBuilder::new()
        .layer(layer)
        .layer(PanicRecoveryLayer::new())
        .layer(TimeoutLayer::new(Duration::from_millis(150)));
    let server = TestServer::start(Server::builder().layer(stack)).await;
    let raw = server.raw();
    let kinds = [
        (UNARY, "Unary", "unary"),
        (SERVER_STREAM, "ServerStream", "server_stream"),
        (CLIENT_STREAM, "ClientStream", "client_stream"),
        (BIDI, "Bidi", "bidi_stream"),
    ];
    for (path, _, _) in kinds {
        for request in [
            TestRequest::echo("ok").count(2),
            TestRequest::echo("x").fail(tonic::Code::NotFound, "nope"),
            TestRequest::echo("x").panic(),
            TestRequest::echo("x").sleep_ms(1000),
        ] {
            raw.call(path, &[request], &[]).await.expect("call");
        }
    }

    // Client cancellation: each call is abandoned by its client while the handler sleeps.
    let mut client = server.client().await;
    let slow = || TestRequest::echo("x").sleep_ms(5000);
    let give_up = Duration::from_millis(50);
    let abandoned = [
        tokio::time::timeout(give_up, async {
            client.clone().unary(slow()).await.map(|_| ())
        })
        .await,
        tokio::time::timeout(give_up, async {
            let mut s = client.clone().server_stream(slow()).await?.into_inner();
            s.message().await.map(|_| ())
        })
        .await,
        tokio::time::timeout(give_up, async {
            let upload = tokio_stream::iter(vec![slow()]);
            client.clone().client_stream(upload).await.map(|_| ())
        })
        .await,
        tokio::time::timeout(give_up, async {
            let mut s = client
                .bidi(tokio_stream::iter(vec![slow()]))
                .await?
                .into_inner();
            s.message().await.map(|_| ())
        })
        .await,
    ];
    assert!(
        abandoned.iter().all(Result::is_err),
        "every client gave up first"
    );
    // Panics (4), deadlines (4) and cancellations (4) all drop a handler before its end.
    let counts = server.service().counts();
    assert_eq!(counts.wait_cancelled(12, Duration::from_secs(5)).await, 12);

    let samples = Samples::parse(&handle.render());
    for (_, name, kind) in kinds {
        let m = method(&samples, name, kind);
        for code in ["OK", "NotFound", "Internal", "DeadlineExceeded", "Canceled"] {
            assert_eq!(m.handled(code), 1.0, "{name} {code}");
        }
        assert_eq!(m.value("grpc_server_started_total", &[]), 5.0, "{name}");
        assert_eq!(
            m.value("grpc_server_handling_seconds_count", &[]),
            5.0,
            "{name}"
        );
        assert_eq!(m.value("grpc_server_in_flight_calls", &[]), 0.0, "{name}");
    }
}
