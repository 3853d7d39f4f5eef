//! A client that goes away mid-call is `Canceled` in the preset's metrics, whatever RPC kind:
//! never `Unknown` (which error-rate alerts count as the server's fault).
#![cfg(feature = "server")]

use std::time::Duration;
use tonic::service::Routes;
use tonic_blueprint::config::Loader;
use tonic_blueprint::server::Server;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;
use tonic_blueprint_testkit::{TestService, prom};

/// Starts a streaming call from a client in a runtime of its own, waits until the server's
/// handler runs, then drops that runtime: the client's connection closes without a goodbye,
/// as when a client process dies.
async fn call_then_vanish(addr: std::net::SocketAddr, service: &TestService, bidi: bool) {
    let counts_before = service.counts().started();
    let service = service.clone();
    // On a thread of its own, off the test's runtime, which serves the server meanwhile.
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut client = TestServiceClient::connect(format!("http://{addr}"))
                .await
                .expect("connect");
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tx.send(TestRequest::echo("first")).await.expect("send");
            let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
            let call = async {
                if bidi {
                    let r = client.bidi(requests).await;
                    eprintln!("bidi {:?}", r.map(|_| ()));
                } else {
                    let r = client.client_stream(requests).await;
                    eprintln!("cs {:?}", r.map(|_| ()));
                }
            };
            tokio::select! {
                _ = call => {}
                _ = service.counts().wait_started(counts_before + 1, Duration::from_secs(10)) => {}
            }
            // Keep the request stream open (tx alive) until the runtime is dropped.
            std::mem::forget(tx);
        });
        // Dropping the runtime drops the connection mid-call.
        drop(runtime);
    })
    .await
    .expect("client thread");
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_is_canceled_not_unknown() {
    let logs = tonic_blueprint_testkit::Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .init();
    let config = Loader::from_pairs([
        ("GRPC_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("LOG_LEVEL", "warn"),
    ])
    .load()
    .expect("config");
    let service = TestService::default();
    let running = Server::new(config)
        .descriptors(tonic_blueprint_testkit::FILE_DESCRIPTOR_SET)
        .start(Routes::new(service.clone().into_server()))
        .await
        .expect("start");
    call_then_vanish(running.local_addr(), &service, false).await;
    call_then_vanish(running.local_addr(), &service, true).await;
    assert_eq!(
        service.counts().started(),
        2,
        "both calls reached the handler"
    );

    let metrics = running.metrics_addr().expect("metrics");
    // The outcome is recorded when the server finishes the call; wait for both.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let text = prom::scrape(metrics).await.expect("scrape");
        let samples = prom::Samples::parse(&text);
        let handled: f64 = ["ClientStream", "Bidi"]
            .iter()
            .filter_map(|m| {
                samples.get(
                    "grpc_server_handled_total",
                    &[("grpc_method", m), ("grpc_code", "Canceled")],
                )
            })
            .sum();
        let unknown = samples
            .matching("grpc_server_handled_total", &[("grpc_code", "Unknown")])
            .filter(|s| s.value > 0.0)
            .count();
        if handled >= 2.0 || unknown > 0 || std::time::Instant::now() > deadline {
            break samples;
        }
        // Poll the condition at a modest pace.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The series that counted something, for the messages below.
    let handled: Vec<_> = samples
        .matching("grpc_server_handled_total", &[])
        .filter(|s| s.value > 0.0)
        .collect();
    for method in ["ClientStream", "Bidi"] {
        assert_eq!(
            samples.get(
                "grpc_server_handled_total",
                &[("grpc_method", method), ("grpc_code", "Canceled")]
            ),
            Some(1.0),
            "{method}: {handled:?}"
        );
    }
    assert_eq!(
        samples
            .matching("grpc_server_handled_total", &[("grpc_code", "Unknown")])
            .filter(|s| s.value > 0.0)
            .count(),
        0,
        "{handled:?}"
    );
    // Logged as the client's doing: Canceled at warn, never Unknown at error.
    let finished: Vec<serde_json::Value> = logs
        .text()
        .lines()
        .filter(|l| l.contains("finished call"))
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(finished.len(), 2, "{finished:?}");
    for line in &finished {
        assert_eq!(line["grpc.code"], "Canceled", "{line}");
        assert_eq!(line["level"], "WARN", "{line}");
    }
    running.shutdown().await.expect("shutdown");
}
