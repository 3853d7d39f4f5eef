//! The server bootstrap (feature `server`): the blueprint's start-up and graceful shutdown
//! around your routes.
//!
//! The blueprint starts a service in a fixed order: configuration, logging, the error
//! catalogue (built in), the gRPC server with keepalive and recovery, Redis, the database
//! with its migrations, the handlers, metrics, and graceful shutdown. The first steps are
//! yours, because your handlers need what they build:
//!
//! ```no_run
//! use tonic::service::Routes;
//! use tonic_blueprint::config::Loader;
//! use tonic_blueprint::server::{Server, init_logging};
//!
//! # async fn handlers() -> Routes { unimplemented!() }
//! # const FILE_DESCRIPTOR_SET: &[u8] = &[];
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Loader::from_env().load()?; // every bad variable named at once
//! let _logs = init_logging(&config)?;
//! // ... connect the database (tonic_blueprint::db) and NATS (tonic_blueprint::events) ...
//! let routes = handlers().await;
//! Server::new(config)
//!     .descriptors(FILE_DESCRIPTOR_SET)
//!     // .on_shutdown(async move { events.drain().await; pool.close().await })
//!     .run(routes) // until SIGTERM or SIGINT
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! [`Server::run`] serves the routes behind the [`PresetStack`] (or yours), with the health
//! (`grpc.health.v1`) and reflection services, HTTP/2 keepalive, and `/metrics` on its own
//! address. On SIGTERM or SIGINT it marks every service NOT_SERVING first, stops accepting
//! connections, lets in-flight calls finish within the grace period, then runs the shutdown
//! hooks (drain NATS, close the pool) and returns.
//!
//! With `REDIS_URL` set (feature `redis`), the preset's cache becomes two-tier (moka in front
//! of Redis) and its rate limits are shared through Redis by every replica. With `NATS_URL`
//! set too (feature `nats`), the cache's invalidations are broadcast on
//! [`invalidation_subject`] so every replica drops its local copy at once; without NATS a
//! replica's local copy lives at most [`LOCAL_TIER_TTL`].
//!
//! With `TLS_CERT_FILE` and `TLS_KEY_FILE` set (feature `tls`), the server speaks only TLS,
//! with client certificates required when `TLS_CLIENT_CA_FILE` is set, and reloads its
//! certificate on change or SIGHUP without dropping a connection: see [`tls`]. `rediss://`
//! Redis is verified against `REDIS_CA_FILE` (else the system's roots).

mod boxed;
mod coalesce;
mod connections;
mod in_flight;
mod preset;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_tls;
mod signal;
#[cfg(feature = "tls")]
pub mod tls;
mod toggle;

pub use boxed::{BoxedFuture, BoxedService};
pub use in_flight::{InFlightBody, InFlightFuture, InFlightLimit, InFlightLimitLayer};
pub use preset::{PresetStack, StackError};
#[cfg(feature = "redis")]
pub use redis::{LOCAL_TIER_TTL, connect_redis, connect_redis_config, invalidation_subject};
pub use signal::shutdown_signal;

use crate::config::BlueprintConfig;
use crate::telemetry::{self, FileOutput, LogFormat, TelemetryConfig, TelemetryGuard};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why the server could not start or stopped with an error.
#[derive(Debug)]
pub enum ServeError {
    /// The layer stack could not be built.
    Stack(StackError),
    /// The gRPC address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The `/metrics` address could not be bound.
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The reflection service could not read the descriptors.
    Reflection(String),
    /// The server failed while serving.
    Transport(tonic::transport::Error),
    /// The server's TLS files (or a dependency's) are unusable, or TLS is configured on a
    /// build without the `tls` feature.
    Tls {
        /// The variable naming the file (`TLS_CERT_FILE`, `REDIS_CA_FILE`, ...).
        variable: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A dependency (Redis, ...) stayed unreachable through every start-up attempt, or is
    /// configured without the feature that talks to it.
    Dependency {
        /// What it is (`Redis`).
        name: &'static str,
        /// Where (host:port, never a password).
        target: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: String,
    },
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stack(e) => write!(f, "the layer stack cannot be built: {e}"),
            Self::Bind { addr, source } => {
                write!(f, "cannot listen on {addr} (GRPC_ADDR): {source}")
            }
            Self::Metrics { addr, source } => {
                write!(
                    f,
                    "cannot serve /metrics on {addr} (METRICS_ADDR): {source}"
                )
            }
            Self::Reflection(e) => write!(f, "the reflection service cannot start: {e}"),
            Self::Transport(e) => write!(f, "the gRPC server failed: {e}"),
            Self::Tls { variable, reason } => write!(f, "{variable}: {reason}"),
            Self::Dependency {
                name,
                target,
                attempts,
                error,
            } => write!(
                f,
                "{name} at {target} is unreachable after {attempts} attempt(s): {error}"
            ),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Stack(e) => Some(e),
            Self::Bind { source, .. } | Self::Metrics { source, .. } => Some(source),
            Self::Transport(e) => Some(e),
            Self::Reflection(_) | Self::Dependency { .. } | Self::Tls { .. } => None,
        }
    }
}

/// Logging as configured (`LOG_FORMAT`, `LOG_DIR`, `LOG_LEVEL`), and with the `otel`
/// feature the span exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`, ...; see `telemetry::otel`);
/// keep the guard until exit.
pub fn init_logging(config: &BlueprintConfig) -> Result<TelemetryGuard, telemetry::TelemetryError> {
    let guard = telemetry::init(&telemetry_config(config))?;
    #[cfg(feature = "otel")]
    let guard = guard.with_otel(telemetry::otel::init(&otel_config(config)?)?);
    Ok(guard)
}

/// The [`OtelConfig`](telemetry::otel::OtelConfig) of `config`: `OTEL_EXPORTER_OTLP_ENDPOINT`,
/// `OTEL_SERVICE_NAME` (else `SERVICE_NAME`), `OTEL_TRACES_SAMPLER` with
/// `OTEL_TRACES_SAMPLER_ARG`, `OTEL_SDK_DISABLED`.
#[cfg(feature = "otel")]
pub fn otel_config(
    config: &BlueprintConfig,
) -> Result<telemetry::otel::OtelConfig, telemetry::TelemetryError> {
    let otel = &config.otel;
    let service_name = match otel.service_name.trim() {
        "" => config.service.name.clone(),
        name => name.to_owned(),
    };
    let mut out =
        telemetry::otel::OtelConfig::new(otel.exporter_otlp_endpoint.trim(), service_name);
    out.sampler =
        crate::core::trace::Sampler::from_otel(&otel.traces_sampler, &otel.traces_sampler_arg)
            .map_err(|e| telemetry::TelemetryError::Otel(format!("OTEL_TRACES_SAMPLER: {e}")))?;
    out.disabled = otel.disabled();
    Ok(out)
}

/// The [`TelemetryConfig`] of `config`.
pub fn telemetry_config(config: &BlueprintConfig) -> TelemetryConfig {
    let mut telemetry = TelemetryConfig {
        filter: config.logging.level.clone(),
        format: config.logging.format.parse().unwrap_or(LogFormat::Pretty),
        file: None,
    };
    if let Some(dir) = config.logging.dir() {
        let mut file = FileOutput::new(dir);
        file.file_name = format!("{}.log", config.service.name);
        telemetry.file = Some(file);
    }
    telemetry
}

/// The service's server: see the [module docs](self).
pub struct Server {
    config: BlueprintConfig,
    descriptors: Vec<Vec<u8>>,
    stack: Option<PresetStack>,
    hooks: Vec<Hook>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("grpc_addr", &self.config.server.grpc_addr)
            .field("stack", &self.stack)
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server configured by `config`.
    pub fn new(config: BlueprintConfig) -> Self {
        Self {
            config,
            descriptors: Vec::new(),
            stack: None,
            hooks: Vec::new(),
        }
    }

    /// The encoded file descriptor set of your services (extension options kept): method
    /// kinds, validation rules, cached methods, reflection and health names come from it.
    /// Call it once per set.
    pub fn descriptors(mut self, file_descriptor_set: &[u8]) -> Self {
        self.descriptors.push(file_descriptor_set.to_vec());
        self
    }

    /// Serves behind `stack` instead of [`PresetStack::from_config`].
    pub fn stack(mut self, stack: PresetStack) -> Self {
        self.stack = Some(stack);
        self
    }

    /// Runs `hook` after the last in-flight call ended (drain NATS, close the pool, ...).
    /// Hooks run in the order they were added.
    pub fn on_shutdown(mut self, hook: impl Future<Output = ()> + Send + 'static) -> Self {
        self.hooks.push(Box::pin(hook));
        self
    }

    /// The stack [`start`](Self::start) would build: [`PresetStack::from_config`] with the
    /// descriptors given so far, on Redis when `REDIS_URL` is set (connected here, with
    /// bounded retries). Build it yourself to keep a handle on a layer, such as the cache's
    /// [`invalidator`](crate::cache::ResponseCacheLayer::invalidator), then pass it back
    /// with [`stack`](Self::stack).
    pub async fn preset_stack(&self) -> Result<PresetStack, ServeError> {
        preset_stack(&self.config, &merge_descriptor_sets(&self.descriptors)).await
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run(self, routes: Routes) -> Result<(), ServeError> {
        let stop = shutdown_signal();
        let running = self.start(routes).await?;
        tracing::info!(grpc.addr = %running.addr, "serving");
        stop.await;
        tracing::info!("shutdown signal received; finishing in-flight calls");
        running.shutdown().await
    }

    /// Binds and serves in the background; [`Running::shutdown`] stops it gracefully.
    pub async fn start(self, routes: Routes) -> Result<Running, ServeError> {
        let Server {
            config,
            descriptors,
            stack,
            hooks,
        } = self;
        let merged = merge_descriptor_sets(&descriptors);
        let stack = match stack {
            Some(stack) => stack,
            None => preset_stack(&config, &merged).await?,
        };

        let metrics_addr = match config.metrics.socket_addr() {
            Some(addr) => Some(start_metrics(addr).await?),
            None => None,
        };

        let (reporter, health) = tonic_health::server::health_reporter();
        let names = service_names(&merged);
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        for name in &names {
            reporter
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        // Both reflection versions: many tools (Python grpcio-reflection, older grpcurl, GUI
        // clients) speak only v1alpha.
        let reflection_builder = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            for set in &descriptors {
                builder = builder.register_encoded_file_descriptor_set(set);
            }
            builder
        };
        let reflection = reflection_builder()
            .build_v1()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let reflection_v1alpha = reflection_builder()
            .build_v1alpha()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;

        let listener = tokio::net::TcpListener::bind(config.server.grpc_addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.server.grpc_addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.server.grpc_addr,
            source,
        })?;
        let kill = tokio_util::sync::CancellationToken::new();
        #[cfg(feature = "tls")]
        let tls = match config.tls.enabled() {
            true => Some(std::sync::Arc::new(tls::Reloadable::load(&config.tls)?)),
            false => None,
        };
        #[cfg(not(feature = "tls"))]
        if config.tls.enabled() {
            return Err(ServeError::Tls {
                variable: "TLS_CERT_FILE",
                reason: "this build has no `tls` feature: the server cannot speak TLS".to_owned(),
            });
        }
        // Ends the TLS reloader with the server (or when `Running` is dropped).
        let done = tokio_util::sync::CancellationToken::new();
        #[cfg(feature = "tls")]
        if let Some(tls) = &tls {
            let every = Some(config.tls.reload_seconds)
                .filter(|s| *s > 0)
                .map(Duration::from_secs);
            tls::spawn_reloader(tls.clone(), every, done.clone());
        }

        let (stop, stopped) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(
                config.server.keepalive_interval_seconds.max(1),
            )))
            .http2_keepalive_timeout(Some(Duration::from_secs(
                config.server.keepalive_timeout_seconds.max(1),
            )))
            // Deliberate bounds: one connection cannot open more calls than this, nor send
            // more metadata.
            .max_concurrent_streams(Some(config.server.max_concurrent_streams.max(1)))
            .http2_max_header_list_size(Some(config.server.max_header_list_bytes.max(1024)))
            .layer(stack)
            .add_routes(
                routes
                    .add_service(health)
                    .add_service(reflection)
                    .add_service(reflection_v1alpha),
            );
        let connections = kill.clone();
        #[cfg(feature = "tls")]
        let tls_incoming = tls.clone();
        let serving = tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            #[cfg(feature = "tls")]
            if let Some(tls) = tls_incoming {
                return router
                    .serve_with_incoming_shutdown(
                        tls::incoming(listener, tls, connections),
                        stopped,
                    )
                    .await
                    .map_err(ServeError::Transport);
            }
            router
                .serve_with_incoming_shutdown(killable_incoming(listener, connections), stopped)
                .await
                .map_err(ServeError::Transport)
        });
        Ok(Running {
            addr,
            metrics_addr,
            stop,
            serving,
            reporter,
            names,
            grace: config.server.shutdown_grace(),
            drain_delay: Duration::from_secs(config.server.shutdown_drain_delay_seconds),
            kill,
            hooks,
            _done: done.drop_guard(),
            #[cfg(feature = "tls")]
            tls,
        })
    }
}

/// A server running in the background.
pub struct Running {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<Result<(), ServeError>>,
    reporter: HealthReporter,
    names: Vec<String>,
    grace: Duration,
    drain_delay: Duration,
    kill: tokio_util::sync::CancellationToken,
    hooks: Vec<Hook>,
    _done: tokio_util::sync::DropGuard,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<tls::Reloadable>>,
}

/// The longest one shutdown hook (draining NATS, closing the pool, ...) may run.
pub const SHUTDOWN_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Where the gRPC server listens (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Whether the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.tls.is_some()
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }

    /// Reads the TLS certificate, key and client CA files again now, as SIGHUP does: new
    /// connections get them, open ones keep theirs. On error the previous certificate stays
    /// in use. Without TLS, nothing to do.
    #[cfg(feature = "tls")]
    pub fn reload_tls(&self) -> Result<(), ServeError> {
        match &self.tls {
            Some(tls) => tls.reload(true).map(|_| ()),
            None => Ok(()),
        }
    }

    /// The graceful shutdown, each step bounded:
    ///
    /// 1. every service NOT_SERVING, and new calls still served for the drain delay
    ///    (`SHUTDOWN_DRAIN_DELAY_SECONDS`), so load balancers stop routing here first;
    /// 2. no new connections, and HTTP/2 GOAWAY on the open ones;
    /// 3. in-flight calls get the grace period (`SHUTDOWN_GRACE_SECONDS`);
    /// 4. connections still open then are closed, dropping their calls;
    /// 5. the hooks run in order, each for at most [`SHUTDOWN_HOOK_TIMEOUT`].
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in &self.names {
            self.reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        if !self.drain_delay.is_zero() {
            tracing::info!(delay = ?self.drain_delay, "NOT_SERVING; draining before closing the listener");
            tokio::time::sleep(self.drain_delay).await;
        }
        let _ = self.stop.send(());
        let mut serving = self.serving;
        let result = match tokio::time::timeout(self.grace, &mut serving).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => {
                tracing::error!(error = %join, "the server task ended abnormally");
                Ok(())
            }
            Err(_) => {
                tracing::warn!(grace = ?self.grace, "in-flight calls outlived the grace period; closing their connections");
                self.kill.cancel();
                // Closed connections end at once; do not wait on one that does not.
                if tokio::time::timeout(Duration::from_secs(1), &mut serving)
                    .await
                    .is_err()
                {
                    serving.abort();
                }
                Ok(())
            }
        };
        for (i, hook) in self.hooks.into_iter().enumerate() {
            if tokio::time::timeout(SHUTDOWN_HOOK_TIMEOUT, hook)
                .await
                .is_err()
            {
                tracing::warn!(
                    hook = i,
                    timeout = ?SHUTDOWN_HOOK_TIMEOUT,
                    "a shutdown hook did not finish in time; going on without it"
                );
            }
        }
        tracing::info!("shut down");
        result
    }
}

/// The preset's cache and rate limiter on Redis when `REDIS_URL` is set.
#[cfg(feature = "redis")]
async fn with_redis(
    stack: PresetStack,
    config: &BlueprintConfig,
) -> Result<PresetStack, ServeError> {
    match config.redis.get() {
        Some(_) if stack.rate_limit.is_some() && config.rate_limit.key_secret.is_empty() => {
            Err(ServeError::Stack(StackError::RateLimitSecret))
        }
        Some(url) => {
            let tls = url
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("rediss:"));
            // Every failure names the variable; a rediss:// one says what TLS needs.
            let client = redis::connect_redis_config(&config.redis, 5)
                .await
                .map_err(|e| match e {
                    ServeError::Dependency {
                        name,
                        target,
                        attempts,
                        error,
                    } => ServeError::Dependency {
                        name,
                        target: format!("{target} (REDIS_URL)"),
                        attempts,
                        error: if tls {
                            format!("{error}; REDIS_URL is rediss://, so the server must speak TLS with a certificate that chains to REDIS_CA_FILE (else the system's roots)")
                        } else {
                            error
                        },
                    },
                    other => other,
                })?;
            redis::on_redis(stack, config, client).await
        }
        None => Ok(stack),
    }
}

/// Without the `redis` feature, a configured `REDIS_URL` is an error, not silently ignored.
#[cfg(not(feature = "redis"))]
async fn with_redis(
    stack: PresetStack,
    config: &BlueprintConfig,
) -> Result<PresetStack, ServeError> {
    match config.redis.get() {
        Some(_) => Err(ServeError::Dependency {
            name: "Redis",
            target: "REDIS_URL".to_owned(),
            attempts: 0,
            error: "this build has no `redis` feature".to_owned(),
        }),
        None => Ok(stack),
    }
}

async fn preset_stack(
    config: &BlueprintConfig,
    descriptors: &[u8],
) -> Result<PresetStack, ServeError> {
    let mut stack = PresetStack::from_config(config, descriptors).map_err(ServeError::Stack)?;
    if let Some(url) = Some(config.auth.jwks_url.trim()).filter(|u| !u.is_empty()) {
        let jwks = crate::auth::Jwks::fetch(url)
            .await
            .map_err(|e| ServeError::Stack(StackError::Jwks(e)))?;
        stack.auth = Some(preset::auth_layer(config, Some(jwks)));
    }
    with_redis(stack, config).await
}

async fn start_metrics(addr: SocketAddr) -> Result<SocketAddr, ServeError> {
    // One global recorder per process: a second server in the same process reuses it.
    static HANDLE: std::sync::OnceLock<Option<crate::metrics::exporter::PrometheusHandle>> =
        std::sync::OnceLock::new();
    let handle = HANDLE.get_or_init(|| match crate::metrics::exporter::install() {
        Ok(handle) => {
            // HELP and TYPE for the helpers' metrics too (database, events).
            crate::kit_metrics::describe_kit_metrics();
            Some(handle)
        }
        Err(e) => {
            tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics serves an empty registry");
            None
        }
    });
    let handle = handle
        .clone()
        .unwrap_or_else(|| crate::metrics::exporter::recorder().handle());
    let (bound, _task) = crate::metrics::exporter::spawn_server(addr, handle)
        .await
        .map_err(|source| ServeError::Metrics { addr, source })?;
    Ok(bound)
}

/// The services named in the descriptor sets (`pkg.Service`), for health.
fn service_names(merged: &[u8]) -> Vec<String> {
    use prost::Message;
    prost_types::FileDescriptorSet::decode(merged)
        .map(|set| {
            set.file
                .iter()
                .flat_map(|file| {
                    let package = file.package().to_owned();
                    file.service.iter().map(move |s| {
                        if package.is_empty() {
                            s.name().to_owned()
                        } else {
                            format!("{package}.{}", s.name())
                        }
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One encoded set holding the files of all `sets` (an encoded `FileDescriptorSet` is a
/// repeated field, so concatenation is a valid merge and keeps every option byte).
fn merge_descriptor_sets(sets: &[Vec<u8>]) -> Vec<u8> {
    sets.concat()
}

/// The listener's connections, each one closable through `kill`.
fn killable_incoming(
    listener: tokio::net::TcpListener,
    kill: tokio_util::sync::CancellationToken,
) -> impl tokio_stream::Stream<Item = Result<connections::Killable, std::io::Error>> {
    use tokio_stream::StreamExt;
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(move |accepted| accepted.map(|stream| connections::Killable::new(stream, &kill)))
}
