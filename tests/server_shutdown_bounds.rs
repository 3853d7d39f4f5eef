//! The kit's shutdown, each step bounded, on the `kit_echo` example as a real process: a
//! drain delay that keeps serving after NOT_SERVING, and a call that never ends cut at the end
//! of the grace period, the process exiting 0.
#![cfg(feature = "server")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::pb::test_service_client::TestServiceClient;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// `kit_echo` on a free port with `vars`; its child process and address.
fn start(vars: &[(&str, &str)]) -> (Child, String) {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let mut command = Command::new(dir.join("examples").join("kit_echo"));
    command
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "off")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("kit_echo (built by cargo test)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    // Keep reading so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn wait(child: Child) -> std::process::ExitStatus {
    let mut child = child;
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait")
}

async fn channel(addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_call_that_never_ends_is_cut_at_the_grace_period_and_the_process_exits_0() {
    let (child, addr) = start(&[("SHUTDOWN_GRACE_SECONDS", "2")]);
    let mut client = TestServiceClient::new(channel(&addr).await);
    let mut stream = client
        .server_stream(TestRequest::echo("forever").count(2).sleep_ms(3_600_000))
        .await
        .expect("call")
        .into_inner();
    let signalled = Instant::now();
    sigterm(&child);
    let status = wait(child).await;
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took < Duration::from_secs(3),
        "exited {took:?} after SIGTERM, past the 2 s grace period plus one second"
    );
    // The cut call ends with an error, not a clean end.
    let end = stream.message().await;
    assert!(end.is_err(), "{end:?}");
}

#[tokio::test]
async fn during_the_drain_delay_health_says_not_serving_and_calls_are_still_served() {
    let (child, addr) = start(&[("SHUTDOWN_DRAIN_DELAY_SECONDS", "3")]);
    let channel = channel(&addr).await;
    let mut health = HealthClient::new(channel.clone());
    let mut client = TestServiceClient::new(channel);
    sigterm(&child);
    // NOT_SERVING comes first; poll for it (the signal is asynchronous).
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .expect("health during the drain")
            .into_inner()
            .status;
        if status == ServingStatus::NotServing as i32 {
            break;
        }
        assert!(Instant::now() < deadline, "health never said NOT_SERVING");
        tokio::task::yield_now().await;
    }
    let answer = client
        .unary(TestRequest::echo("still served"))
        .await
        .expect("a call during the drain delay is served")
        .into_inner();
    assert_eq!(answer.payload, b"still served");
    let status = wait(child).await;
    assert!(status.success(), "exit status {status:?}");
}
