//! The kit's server coalesces the writes of responses that are ready together; over real
//! sockets, no byte is held back, reordered or lost by it.
#![cfg(feature = "server")]

use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic_blueprint::config::Loader;
use tonic_blueprint::server::{Running, Server};
use tonic_blueprint_testkit::TestService;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;

async fn kit() -> Running {
    let config = Loader::from_pairs([
        ("GRPC_ADDR", "127.0.0.1:0"),
        ("METRICS_ADDR", "127.0.0.1:0"),
        ("LOG_LEVEL", "warn"),
        ("RATE_LIMIT_PER_MINUTE", "100000"),
    ])
    .load()
    .expect("config");
    Server::new(config)
        .descriptors(tonic_blueprint_testkit::FILE_DESCRIPTOR_SET)
        .start(Routes::new(TestService::default().into_server()))
        .await
        .expect("start")
}

async fn client(running: &Running) -> TestServiceClient<tonic::transport::Channel> {
    TestServiceClient::connect(format!("http://{}", running.local_addr()))
        .await
        .expect("connect")
        .max_decoding_message_size(8 << 20)
        .max_encoding_message_size(8 << 20)
}

#[tokio::test]
async fn each_bidi_reply_arrives_before_the_client_sends_again() {
    let running = kit().await;
    let mut client = client(&running).await;
    let (tx, rx) = mpsc::channel(1);
    let mut replies = client
        .bidi(ReceiverStream::new(rx))
        .await
        .expect("bidi")
        .into_inner();
    // Ping-pong: a reply held back until some later write would never come, as the client
    // sends nothing more until it has it.
    for i in 0..200u32 {
        let payload = format!("ping {i}").into_bytes();
        tx.send(TestRequest::echo(payload.clone()))
            .await
            .expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(5), replies.message())
            .await
            .unwrap_or_else(|_| panic!("reply {i} was held back"))
            .expect("reply")
            .expect("a message");
        assert_eq!(reply.index, i);
        assert_eq!(reply.payload, payload);
    }
    drop(tx);
    assert!(replies.message().await.expect("end").is_none());
    running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn concurrent_small_and_large_replies_on_one_connection_arrive_whole() {
    let running = kit().await;
    let client = client(&running).await;
    // Sizes below, around and far above the coalescing thresholds (16 KiB written directly,
    // 64 KiB buffered at most), interleaved on one HTTP/2 connection.
    let sizes = [1usize, 100, 5_000, 16 * 1024, 40_000, 70_000, 1 << 20];
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..210usize {
        let mut client = client.clone();
        let size = sizes[i % sizes.len()];
        calls.spawn(async move {
            let payload: Vec<u8> = (0..size).map(|b| (b as u8) ^ (i as u8)).collect();
            let reply = client
                .unary(TestRequest::echo(payload.clone()))
                .await
                .expect("unary")
                .into_inner();
            assert_eq!(reply.payload.len(), size, "call {i}");
            assert!(reply.payload == payload, "call {i}: the payload changed");
        });
    }
    let mut done = 0;
    while let Some(call) = calls.join_next().await {
        call.expect("call");
        done += 1;
    }
    assert_eq!(done, 210);
    running.shutdown().await.expect("shutdown");
}
