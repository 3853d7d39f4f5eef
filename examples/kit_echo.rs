//! The service kit around the test services: configuration from the environment, logging,
//! the preset stack, health, reflection, `/metrics` and graceful shutdown.
//!
//! `GRPC_ADDR=127.0.0.1:50052 METRICS_ADDR=off cargo run --example kit_echo --features server`
//!
//! Prints `listening on <addr>` once it serves; SIGTERM or Ctrl-C stops it gracefully.

use tonic::service::Routes;
use tonic_blueprint::config::Loader;
use tonic_blueprint::server::{Server, init_logging};
use tonic_blueprint_testkit::{TestService, VALIDATED_DESCRIPTOR_SET, ValidatedTestService};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Loader::from_env().load()?;
    let _logs = init_logging(&config)?;
    // Listening before the address is printed: a SIGTERM right after it stops gracefully.
    let stop = tonic_blueprint::server::shutdown_signal();
    let routes = Routes::new(TestService::default().into_server())
        .add_service(ValidatedTestService::default().into_server());
    let running = Server::new(config)
        .descriptors(VALIDATED_DESCRIPTOR_SET)
        .on_shutdown(async { println!("shutdown hooks ran") })
        .start(routes)
        .await?;
    println!("listening on {}", running.local_addr());
    stop.await;
    running.shutdown().await?;
    println!("stopped");
    Ok(())
}
