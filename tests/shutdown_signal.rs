//! `shutdown_signal()` listens from the moment it is called: a SIGTERM or SIGINT that arrives
//! before the future is first polled (the window between a server announcing its address and
//! awaiting the signal) stops the process gracefully instead of killing it.
//!
//! A file of its own: the signals go to this test process, whose handlers stay installed.
#![cfg(all(feature = "server", unix))]

use std::process::Command;
use std::time::Duration;
use tonic_blueprint::server::shutdown_signal;

fn send(signal: &str) {
    let status = Command::new("kill")
        .args([signal, &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn a_signal_sent_before_the_first_poll_resolves_the_future_instead_of_killing_the_process() {
    for signal in ["-TERM", "-INT"] {
        let stop = shutdown_signal();
        // Delivered before `stop` is ever polled. Had the handler waited for the first poll,
        // the default action would end this test process here.
        send(signal);
        tokio::time::timeout(Duration::from_secs(10), stop)
            .await
            .unwrap_or_else(|_| panic!("{signal} did not resolve the shutdown signal"));
    }
}
