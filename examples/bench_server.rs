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
//! - `glue-trace`: bare tonic (as `bare`) with what a service glues together for the same
//!   line per call without the kit: tower-http's `TraceLayer::new_for_grpc()` (its span and
//!   its end-of-stream event at info) and tracing-subscriber's JSON formatter writing through
//!   tracing-appender's non-blocking writer to `LOG_DIR/glue.log` (in place of the kit's
//!   logging, for this variant only). The baseline the `only-logging` row is read against.
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

/// Runs `$body` with `$layer` bound to the `PresetStack` field named `$name` (`&mut
/// Option<..>`), or `$missing` when this build has no such layer: the one list of the
/// preset's layer names, for the `without-` and `only-` variants.
macro_rules! with_layer {
    ($stack:expr, $name:expr, |$layer:ident| $body:expr, $missing:expr) => {
        match $name {
            "logging" => {
                let $layer = &mut $stack.logging;
                $body
            }
            "metrics" => {
                let $layer = &mut $stack.metrics;
                $body
            }
            "in_flight" => {
                let $layer = &mut $stack.in_flight;
                $body
            }
            "panic_recovery" => {
                let $layer = &mut $stack.panic_recovery;
                $body
            }
            "timeout" => {
                let $layer = &mut $stack.timeout;
                $body
            }
            "auth" => {
                let $layer = &mut $stack.auth;
                $body
            }
            "rate_limit" => {
                let $layer = &mut $stack.rate_limit;
                $body
            }
            #[cfg(feature = "validation")]
            "validation" => {
                let $layer = &mut $stack.validation;
                $body
            }
            "cache" => {
                let $layer = &mut $stack.cache;
                $body
            }
            _ => $missing,
        }
    };
}

/// Serves `routes` on `listener` through tonic's `Server` builder `$builder`, with
/// TCP_NODELAY as tonic's own `serve` sets it (and the kit does): a listener stream of plain
/// sockets would leave Nagle on and batch small responses, flattering the baseline under
/// pipelined load.
macro_rules! serve_tonic {
    ($builder:expr, $routes:expr, $listener:expr, $stop:expr) => {
        $builder
            .add_routes($routes)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from($listener).with_nodelay(Some(true)),
                $stop,
            )
            .await?
    };
}

/// The `glue-trace` variant's logging, as a service sets it up with tracing-subscriber and
/// tracing-appender alone: JSON lines at `LOG_LEVEL` to `LOG_DIR/glue.log` through the
/// non-blocking writer (its defaults: lossy, 128,000 lines buffered), the current span on
/// each line as the kit writes it (not the span list as well).
fn init_glue_logging(
    config: &tonic_blueprint::config::BlueprintConfig,
) -> Result<tracing_appender::non_blocking::WorkerGuard, Box<dyn std::error::Error>> {
    let dir = config
        .logging
        .dir()
        .ok_or("the glue-trace variant logs to a file: set LOG_DIR")?;
    let level: tracing::Level = config.logging.level.trim().parse()?;
    let (writer, guard) =
        tracing_appender::non_blocking(tracing_appender::rolling::never(dir, "glue.log"));
    tracing_subscriber::fmt()
        .json()
        .with_span_list(false)
        .with_max_level(level)
        .with_writer(writer)
        .try_init()
        .map_err(|err| err.to_string())?;
    Ok(guard)
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
    // Whichever logging the variant set up, kept until the server stopped (both flush on
    // drop).
    let _logs: Box<dyn std::any::Any> = if variant == "glue-trace" {
        Box::new(init_glue_logging(&config)?)
    } else {
        Box::new(init_logging(&config)?)
    };
    // Listening before the address is printed: a SIGTERM right after it stops gracefully.
    let stop = shutdown_signal();
    let service = TestService::default();
    let routes = Routes::new(service.clone().into_server())
        .add_service(ValidatedTestService::default().into_server());

    match variant.as_str() {
        "bare" => {
            let listener = bare_listener(&config).await?;
            serve_tonic!(tonic::transport::Server::builder(), routes, listener, stop);
        }
        "glue-trace" => {
            use tower_http::trace::{DefaultMakeSpan, DefaultOnEos, TraceLayer};
            let trace = TraceLayer::new_for_grpc()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_eos(DefaultOnEos::new().level(tracing::Level::INFO));
            let listener = bare_listener(&config).await?;
            serve_tonic!(
                tonic::transport::Server::builder().layer(trace),
                routes,
                listener,
                stop
            );
        }
        only if only.starts_with("only-") => {
            let name = &only["only-".len()..];
            let server = Server::new(config.clone()).descriptors(VALIDATED_DESCRIPTOR_SET);
            let mut stack = server.preset_stack().await?;
            let listener = bare_listener(&config).await?;
            let builder = tonic::transport::Server::builder();
            with_layer!(
                stack,
                name,
                |layer| serve_tonic!(
                    builder.layer(present(layer.take(), name)?),
                    routes,
                    listener,
                    stop
                ),
                return Err(format!("no layer named {name:?} in this build").into())
            );
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
                    with_layer!(
                        stack,
                        layer,
                        |field| *field = None,
                        return Err(format!("no layer named {layer:?} in this build").into())
                    );
                    stack
                }
            };
            let running = server.stack(stack).start(routes).await?;
            println!("listening on {}", running.local_addr());
            stop.await;
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
