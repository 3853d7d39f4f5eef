//! The kit's server under floods, over real sockets: streams per connection, calls in flight,
//! and errors of tower layers answered as gRPC statuses.
#![cfg(feature = "server")]

use std::time::{Duration, Instant};
use tonic::Code;
use tonic::service::Routes;
use tonic_blueprint::config::Loader;
use tonic_blueprint::core::ErrorStatusLayer;
use tonic_blueprint::server::{Running, Server};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;
use tonic_blueprint_testkit::{TestServer, TestService, UNARY, prom};
use tower::ServiceBuilder;

async fn kit(vars: &[(&str, &str)]) -> (Running, TestService) {
    let mut pairs = vec![
        ("GRPC_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("LOG_LEVEL", "warn"),
    ];
    pairs.extend_from_slice(vars);
    let config = Loader::from_pairs(pairs).load().expect("config");
    let service = TestService::default();
    let running = Server::new(config)
        .descriptors(tonic_blueprint_testkit::FILE_DESCRIPTOR_SET)
        .start(Routes::new(service.clone().into_server()))
        .await
        .expect("start");
    (running, service)
}

async fn client(addr: std::net::SocketAddr) -> TestServiceClient<tonic::transport::Channel> {
    TestServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

/// Calls that hold their stream open for a long time.
fn held() -> TestRequest {
    TestRequest::echo("held").sleep_ms(60_000)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn five_thousand_streams_on_one_connection_hold_at_most_200_and_others_are_served() {
    let limit: u64 = std::env::var("XLIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let limit_text = limit.to_string();
    let (running, service) = kit(&[("MAX_CONCURRENT_STREAMS", limit_text.as_str())]).await;
    let addr = running.local_addr();
    let before = rss_kib();
    let flooder = client(addr).await;
    let mut calls = Vec::new();
    for _ in 0..5_000 {
        let mut c = flooder.clone();
        calls.push(tokio::spawn(async move {
            c.server_stream(held()).await.map(|_| ())
        }));
    }
    // The server lets the connection open at most 200 streams (MAX_CONCURRENT_STREAMS); the
    // rest wait on the client (tonic's client opens at most 100 at once of its own accord).
    let started = service
        .counts()
        .wait_started(201, Duration::from_secs(5))
        .await;
    assert!(
        (50..=201).contains(&started),
        "{started} calls started of 5,001"
    );

    let mut other = client(addr).await;
    let asked = Instant::now();
    other
        .unary(TestRequest::echo("another client"))
        .await
        .expect("another connection is served");
    let waited = asked.elapsed();
    assert!(waited < Duration::from_secs(2), "served after {waited:?}");
    assert_eq!(
        service.counts().started(),
        started + 1,
        "no more streams on the flooder"
    );

    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    println!("resident memory grew {grown_mib} MiB with 5,000 streams asked on one connection");
    assert!(
        grown_mib < 256,
        "memory grew {grown_mib} MiB (client and server together)"
    );
    for call in calls {
        call.abort();
    }
    drop(flooder);
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn calls_past_max_in_flight_are_shed_at_once_and_counted_but_health_is_not() {
    let (running, service) = kit(&[("MAX_IN_FLIGHT", "2")]).await;
    let addr = running.local_addr();
    let holder = client(addr).await;
    let mut holding = Vec::new();
    for _ in 0..2 {
        let mut c = holder.clone();
        holding.push(tokio::spawn(async move { c.unary(held()).await }));
    }
    assert_eq!(
        service
            .counts()
            .wait_started(2, Duration::from_secs(10))
            .await,
        2
    );
    let raw = tonic_blueprint_testkit::RawClient::new(addr);
    let asked = Instant::now();
    let shed = raw
        .call(UNARY, &[TestRequest::echo("one too many")], &[])
        .await
        .expect("call");
    assert_eq!(shed.status, http::StatusCode::OK);
    assert_eq!(shed.grpc_status(), Some(Code::ResourceExhausted));
    assert!(shed.is_trailers_only());
    assert_eq!(
        shed.grpc_message().as_deref(),
        Some("server overloaded, retry later")
    );
    assert!(asked.elapsed() < Duration::from_secs(2), "refused at once");
    assert_eq!(shed.localized_message(), None);
    // Another language: the same English message, the caller's in a LocalizedMessage.
    let spanish = raw
        .call(
            UNARY,
            &[TestRequest::echo("one too many")],
            &[("grpc-accept-language", "es")],
        )
        .await
        .expect("call");
    assert_eq!(spanish.grpc_status(), Some(Code::ResourceExhausted));
    assert_eq!(
        spanish.grpc_message().as_deref(),
        Some("server overloaded, retry later")
    );
    assert_eq!(
        spanish.localized_message(),
        Some((
            "es".into(),
            "servidor sobrecargado, reintente más tarde".into()
        ))
    );

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let status = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health is never shed")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let metrics = prom::scrape(running.metrics_addr().expect("metrics"))
        .await
        .expect("scrape");
    let samples = prom::Samples::parse(&metrics);
    assert_eq!(
        samples.get("grpc_server_shed_total", &[]),
        Some(2.0),
        "{metrics}"
    );
    for call in holding {
        call.abort();
    }
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn tower_load_shed_and_timeout_inside_a_service_builder_answer_grpc_statuses() {
    let stack = ServiceBuilder::new()
        .layer(ErrorStatusLayer::new())
        .load_shed()
        .concurrency_limit(1)
        .timeout(Duration::from_millis(300));
    let server = TestServer::start(tonic::transport::Server::builder().layer(stack)).await;
    let raw = server.raw();

    let slow = raw.clone();
    let holding = tokio::spawn(async move {
        slow.call(UNARY, &[TestRequest::echo("slow").sleep_ms(5_000)], &[])
            .await
            .expect("call")
    });
    server
        .service()
        .counts()
        .wait_started(1, Duration::from_secs(10))
        .await;
    let shed = raw
        .call(UNARY, &[TestRequest::echo("shed")], &[])
        .await
        .expect("call");
    assert_eq!(shed.status, http::StatusCode::OK, "never a stream reset");
    assert_eq!(shed.grpc_status(), Some(Code::ResourceExhausted));
    assert!(shed.is_trailers_only());

    let timed_out = holding.await.expect("join");
    assert_eq!(timed_out.status, http::StatusCode::OK);
    assert_eq!(timed_out.grpc_status(), Some(Code::DeadlineExceeded));
    assert!(timed_out.is_trailers_only());
}

/// Past the grace period, the connections still open are closed: a call that never ends does
/// not keep running in the background of a process that goes on.
#[tokio::test]
async fn shutdown_closes_the_connections_of_calls_that_outlive_the_grace_period() {
    let (running, service) = kit(&[("SHUTDOWN_GRACE_SECONDS", "1")]).await;
    let mut client = client(running.local_addr()).await;
    let mut stream = client
        .server_stream(TestRequest::echo("forever").count(2).sleep_ms(3_600_000))
        .await
        .expect("call")
        .into_inner();
    let asked = Instant::now();
    running.shutdown().await.expect("shutdown");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the call ends once its connection is closed");
    assert!(end.is_err(), "{end:?}");
    assert_eq!(
        service
            .counts()
            .wait_cancelled(1, Duration::from_secs(5))
            .await,
        1,
        "the handler was dropped"
    );
}
