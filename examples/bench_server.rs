//! The server of the server-bound end-to-end bench (`scripts/bench-e2e.sh`, see
//! BENCHMARKS.md): the test services behind bare tonic, or behind the kit's server with the
//! preset stack whole or with one layer removed.
//!
//! `BENCH_VARIANT` chooses:
//!
//! - `bare`: `tonic::transport::Server::builder()` with the routes and no layer at all. The
//!   kit's Prometheus recorder is installed and served on `METRICS_ADDR` as the kit does
//!   (nothing records into it per call), so every variant has the same `/metrics`.
//! - `empty`: the kit's server (health, reflection, keepalive, limits) with an empty stack.
//! - `preset` (the default): the kit's server with the preset stack it builds from the
//!   environment, as `kit_echo` serves it.
//! - `without-<layer>`: the preset with one layer removed, `<layer>` a `PresetStack` field:
//!   `logging`, `metrics`, `in_flight`, `panic_recovery`, `timeout`, `auth`, `rate_limit`,
//!   `validation` (with the `validation` feature), `cache`.
//! - `only-<layer>`: bare tonic (as `bare`) with that one layer, configured as the preset
//!   configures it, added with `Server::builder().layer(...)`: what one layer costs a plain
//!   tonic server.
//!
//! Everything else comes from the kit's variables (`GRPC_ADDR`, `METRICS_ADDR`, `LOG_LEVEL`,
//! `LOG_FORMAT`, `LOG_DIR`, `RATE_LIMIT_PER_MINUTE`, `AUTH_JWT_SECRET`, ...). Logging is
//! initialised from them for every variant, bare included.
//!
//! Prints `listening on <addr>` once it serves. On SIGTERM or Ctrl-C it stops and prints
//! `handler started=<n> completed=<n> cancelled=<n>`: the test service's own counts, which
//! the bench compares with the load client's successes (the check that works without the
//! metrics layer).
//!
//! ```text
//! BENCH_VARIANT=without-logging GRPC_ADDR=127.0.0.1:50181 METRICS_ADDR=127.0.0.1:50184 \
//!   cargo run --release --example bench_server --features server
//! ```

use tonic::service::Routes;
use tonic_blueprint::config::Loader;
use tonic_blueprint::server::{PresetStack, Server, init_logging, shutdown_signal};
use tonic_blueprint_testkit::{TestService, VALIDATED_DESCRIPTOR_SET, ValidatedTestService};

/// Removes the layer `name` (a `PresetStack` field name) from `stack`; false when there is
/// no such layer in this build.
fn remove(stack: &mut PresetStack, name: &str) -> bool {
    match name {
        "logging" => stack.logging = None,
        "metrics" => stack.metrics = None,
        "in_flight" => stack.in_flight = None,
        "panic_recovery" => stack.panic_recovery = None,
        "timeout" => stack.timeout = None,
        "auth" => stack.auth = None,
        "rate_limit" => stack.rate_limit = None,
        #[cfg(feature = "validation")]
        "validation" => stack.validation = None,
        "cache" => stack.cache = None,
        _ => return false,
    }
    true
}

/// Serves `routes` on `listener` through tonic's `Server` builder `$builder`, with
/// TCP_NODELAY as tonic's own `serve` sets it (and the kit does): a listener stream of plain
/// sockets would leave Nagle on and batch small responses, flattering the baseline under
/// pipelined load.
macro_rules! serve_tonic {
    ($builder:expr, $routes:expr, $listener:expr) => {
        $builder
            .add_routes($routes)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from($listener).with_nodelay(Some(true)),
                shutdown_signal(),
            )
            .await?
    };
}

/// A preset layer the configuration left out.
fn present<L>(layer: Option<L>, name: &str) -> Result<L, Box<dyn std::error::Error>> {
    layer.ok_or_else(|| format!("the preset has no {name} layer in this configuration").into())
}

/// The bare server's listener, with the kit's Prometheus recorder installed and served on
/// `METRICS_ADDR` as the kit does (nothing records into it per call in `bare`), so every
/// variant has the same `/metrics`.
async fn bare_listener(
    config: &tonic_blueprint::config::BlueprintConfig,
) -> Result<tokio::net::TcpListener, Box<dyn std::error::Error>> {
    if let Some(addr) = config.metrics.socket_addr() {
        let handle = tonic_blueprint::metrics::exporter::install()?;
        tonic_blueprint::metrics::exporter::spawn_server(addr, handle).await?;
    }
    let listener = tokio::net::TcpListener::bind(config.server.grpc_addr).await?;
    println!("listening on {}", listener.local_addr()?);
    Ok(listener)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let variant = std::env::var("BENCH_VARIANT").unwrap_or_else(|_| "preset".to_owned());
    let config = Loader::from_env().load()?;
    let _logs = init_logging(&config)?;
    let service = TestService::default();
    let routes = Routes::new(service.clone().into_server())
        .add_service(ValidatedTestService::default().into_server());

    match variant.as_str() {
        "bare" => {
            let listener = bare_listener(&config).await?;
            serve_tonic!(tonic::transport::Server::builder(), routes, listener);
        }
        only if only.starts_with("only-") => {
            let name = &only["only-".len()..];
            let server = Server::new(config.clone()).descriptors(VALIDATED_DESCRIPTOR_SET);
            let stack = server.preset_stack().await?;
            let listener = bare_listener(&config).await?;
            let builder = tonic::transport::Server::builder();
            match name {
                "logging" => serve_tonic!(
                    builder.layer(present(stack.logging, name)?),
                    routes,
                    listener
                ),
                "metrics" => serve_tonic!(
                    builder.layer(present(stack.metrics, name)?),
                    routes,
                    listener
                ),
                "in_flight" => serve_tonic!(
                    builder.layer(present(stack.in_flight, name)?),
                    routes,
                    listener
                ),
                "panic_recovery" => serve_tonic!(
                    builder.layer(present(stack.panic_recovery, name)?),
                    routes,
                    listener
                ),
                "timeout" => serve_tonic!(
                    builder.layer(present(stack.timeout, name)?),
                    routes,
                    listener
                ),
                "auth" => serve_tonic!(builder.layer(present(stack.auth, name)?), routes, listener),
                "rate_limit" => serve_tonic!(
                    builder.layer(present(stack.rate_limit, name)?),
                    routes,
                    listener
                ),
                #[cfg(feature = "validation")]
                "validation" => serve_tonic!(
                    builder.layer(present(stack.validation, name)?),
                    routes,
                    listener
                ),
                "cache" => {
                    serve_tonic!(builder.layer(present(stack.cache, name)?), routes, listener)
                }
                other => return Err(format!("no layer named {other:?} in this build").into()),
            }
        }
        variant => {
            let server = Server::new(config).descriptors(VALIDATED_DESCRIPTOR_SET);
            let stack = match variant {
                "empty" => PresetStack::empty(),
                "preset" => server.preset_stack().await?,
                other => {
                    let Some(layer) = other.strip_prefix("without-") else {
                        return Err(format!("unknown BENCH_VARIANT {other:?}").into());
                    };
                    let mut stack = server.preset_stack().await?;
                    if !remove(&mut stack, layer) {
                        return Err(format!("no layer named {layer:?} in this build").into());
                    }
                    stack
                }
            };
            let running = server.stack(stack).start(routes).await?;
            println!("listening on {}", running.local_addr());
            shutdown_signal().await;
            running.shutdown().await?;
        }
    }
    let counts = service.counts();
    println!(
        "handler started={} completed={} cancelled={}",
        counts.started(),
        counts.completed(),
        counts.cancelled()
    );
    Ok(())
}
