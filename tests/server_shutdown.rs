//! The service kit's server as a real process: health and reflection are served, and SIGTERM
//! during an in-flight call lets it finish before the process exits 0.
#![cfg(feature = "server")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;

/// The `kit_echo` example, built next to this test by `cargo test`.
fn example() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples").join("kit_echo")
}

/// Starts it on a free port; returns the child, its address and its stdout lines.
fn start() -> (
    Child,
    String,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(example())
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "off")
        .env("SHUTDOWN_GRACE_SECONDS", "20")
        .env(
            "LOG_LEVEL",
            std::env::var("KIT_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("kit_echo example (built by cargo test --features server)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (child, addr, lines)
}

async fn channel(addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_stream_finish_and_the_process_exits_0() {
    let (mut child, addr, mut lines) = start();
    let mut client = TestServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&addr).await);
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "blueprint.test.v1.TestService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let request = TestRequest::echo("in flight").count(3).sleep_ms(400);
    let mut stream = client
        .server_stream(request)
        .await
        .expect("call")
        .into_inner();
    let first = stream
        .message()
        .await
        .expect("first message")
        .expect("some");
    assert_eq!(first.index, 0);

    // The call is in flight: stop the process.
    sigterm(&child);
    let mut received = 1;
    while let Some(message) = stream.message().await.expect("the stream ends OK, not cut") {
        assert_eq!(message.index, received);
        received += 1;
    }
    assert_eq!(received, 3, "every message of the in-flight call arrived");

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    let rest: Vec<String> = lines.by_ref().map_while(Result::ok).collect();
    assert_eq!(rest, ["shutdown hooks ran", "stopped"]);
}

#[tokio::test]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (mut child, addr, lines) = start();
    let mut reflection = ServerReflectionClient::new(channel(&addr).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.message().await.expect("answer").expect("some");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "blueprint.test.v1.TestService",
        "blueprint.test.v1.ValidatedService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    drop((responses, reflection));
    sigterm(&child);
    // Wait off the runtime: its connection tasks must keep running to see the server go.
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(
        rest,
        ["shutdown hooks ran", "stopped"],
        "no grace-period cut"
    );
}

/// Python's grpcio-reflection, older grpcurl and many GUI tools speak only `v1alpha`.
#[tokio::test]
async fn reflection_v1alpha_lists_the_services_and_describes_their_methods() {
    use prost::Message;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let (mut child, addr, lines) = start();
    let mut reflection = ServerReflectionClient::new(channel(&addr).await);
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol(
                "blueprint.test.v1.TestService".to_owned(),
            )),
        ]))
        .await
        .expect("v1alpha reflection")
        .into_inner();

    let response = responses.message().await.expect("answer").expect("some");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "blueprint.test.v1.TestService",
        "blueprint.test.v1.ValidatedService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }

    let response = responses.message().await.expect("answer").expect("some");
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("unexpected {response:?}");
    };
    let methods: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("a file"))
        .flat_map(|file| file.service)
        .filter(|service| service.name() == "TestService")
        .flat_map(|service| service.method)
        .map(|method| method.name().to_owned())
        .collect();
    assert!(
        methods.iter().any(|m| m == "Unary") && methods.iter().any(|m| m == "ServerStream"),
        "TestService methods: {methods:?}"
    );

    drop((responses, reflection));
    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(rest, ["shutdown hooks ran", "stopped"]);
}
