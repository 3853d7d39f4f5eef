//! Typed configuration from environment variables and an optional file (feature `config`).
//!
//! Every variable is listed once, in [`VARIABLES`], with its type, default and meaning; the
//! repository's `export.sh` is generated from the same table (and a test keeps it so).
//! Loading checks every variable before building anything and reports all problems at once,
//! each naming its variable:
//!
//! ```
//! use tonic_blueprint::config::Loader;
//!
//! let error = Loader::from_pairs([("GRPC_ADDR", "nowhere"), ("RATE_LIMIT_PER_MINUTE", "many")])
//!     .require("DATABASE_URL")
//!     .load()
//!     .unwrap_err();
//! let text = error.to_string();
//! assert!(text.contains("GRPC_ADDR") && text.contains("RATE_LIMIT_PER_MINUTE"));
//! assert!(text.contains("DATABASE_URL is required"));
//! ```
//!
//! The file (`CONFIG_FILE`, TOML) uses the sections of [`BlueprintConfig`]
//! (`[server] grpc_addr = "0.0.0.0:50051"`); environment variables override it.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What a variable holds, for checking it before anything is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Any text.
    Text,
    /// Any text that must never be shown (a secret): it is left out of every message.
    Secret,
    /// `host:port` with a numeric host (`127.0.0.1:50051`).
    Address,
    /// `host:port`, or `off` (or empty) to turn the thing off.
    OptionalAddress,
    /// A whole number (`u32`).
    Count,
    /// A whole number of seconds.
    Seconds,
    /// A whole number of bytes.
    Bytes,
    /// A URL with one of these schemes (`postgres`, `sqlite`, ...), or empty for unset.
    Url(&'static [&'static str]),
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A fraction from 0 to 1 (`0.25`), or empty for unset.
    Ratio,
}

/// One environment variable.
#[derive(Clone, Copy, Debug)]
pub struct Variable {
    /// Its name (`GRPC_ADDR`).
    pub name: &'static str,
    /// Where it goes (`server.grpc_addr`).
    pub key: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Its default ("" for unset).
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

const DB_SCHEMES: &[&str] = &["postgres", "postgresql", "sqlite"];

/// Every variable the blueprint reads.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "SERVICE_NAME",
        key: "service.name",
        kind: Kind::Text,
        default: "service",
        help: "the service's name: cache key prefix, NATS subjects, logs",
    },
    Variable {
        name: "GRPC_ADDR",
        key: "server.grpc_addr",
        kind: Kind::Address,
        default: "127.0.0.1:50051",
        help: "where the gRPC server listens",
    },
    Variable {
        name: "METRICS_ADDR",
        key: "metrics.addr",
        kind: Kind::OptionalAddress,
        default: "127.0.0.1:9090",
        help: "where /metrics is served; off to turn it off",
    },
    Variable {
        name: "SHUTDOWN_GRACE_SECONDS",
        key: "server.shutdown_grace_seconds",
        kind: Kind::Seconds,
        default: "30",
        help: "how long in-flight RPCs may run after SIGTERM or SIGINT",
    },
    Variable {
        name: "SHUTDOWN_DRAIN_DELAY_SECONDS",
        key: "server.shutdown_drain_delay_seconds",
        kind: Kind::Seconds,
        default: "0",
        help: "how long to keep accepting calls after health turns NOT_SERVING, so load balancers stop routing first (Kubernetes: a few seconds)",
    },
    Variable {
        name: "MAX_CONCURRENT_STREAMS",
        key: "server.max_concurrent_streams",
        kind: Kind::Count,
        default: "200",
        help: "concurrent calls one HTTP/2 connection may open",
    },
    Variable {
        name: "MAX_IN_FLIGHT",
        key: "server.max_in_flight",
        kind: Kind::Count,
        default: "10000",
        help: "calls in flight across all connections before new ones are refused with RESOURCE_EXHAUSTED (health exempt); 0: no limit",
    },
    Variable {
        name: "MAX_HEADER_LIST_BYTES",
        key: "server.max_header_list_bytes",
        kind: Kind::Bytes,
        default: "16384",
        help: "the largest request metadata (HTTP/2 header list) accepted",
    },
    Variable {
        name: "KEEPALIVE_INTERVAL_SECONDS",
        key: "server.keepalive_interval_seconds",
        kind: Kind::Seconds,
        default: "30",
        help: "HTTP/2 keepalive ping interval",
    },
    Variable {
        name: "KEEPALIVE_TIMEOUT_SECONDS",
        key: "server.keepalive_timeout_seconds",
        kind: Kind::Seconds,
        default: "10",
        help: "how long a keepalive ping may go unanswered",
    },
    Variable {
        name: "TLS_CERT_FILE",
        key: "tls.cert_file",
        kind: Kind::Text,
        default: "",
        help: "the PEM certificate chain the gRPC server presents (feature tls); with TLS_KEY_FILE the server speaks only TLS, ALPN h2; empty: plaintext",
    },
    Variable {
        name: "TLS_KEY_FILE",
        key: "tls.key_file",
        kind: Kind::Text,
        default: "",
        help: "the PEM private key of TLS_CERT_FILE (PKCS#8, PKCS#1 or SEC1)",
    },
    Variable {
        name: "TLS_CLIENT_CA_FILE",
        key: "tls.client_ca_file",
        kind: Kind::Text,
        default: "",
        help: "PEM CA certificates client certificates must chain to: every client must present a valid one (mutual TLS); empty: no client certificate asked",
    },
    Variable {
        name: "TLS_RELOAD_SECONDS",
        key: "tls.reload_seconds",
        kind: Kind::Seconds,
        default: "10",
        help: "how often the TLS certificate, key and client CA files are checked for change (new connections get the new ones, open ones keep theirs); SIGHUP reloads at once; 0: on SIGHUP only",
    },
    Variable {
        name: "DATABASE_URL",
        key: "database.url",
        kind: Kind::Url(DB_SCHEMES),
        default: "",
        help: "postgres://... or sqlite://...; empty: the embedded SQLite default. PostgreSQL TLS (feature tls) in the URL: sslmode=require (encrypted, server not verified), verify-ca (and its certificate chains to sslrootcert=FILE, else the system roots), verify-full (and names the host); sslcert and sslkey for a client certificate; the default prefer falls back to plaintext",
    },
    Variable {
        name: "DATABASE_MAX_CONNECTIONS",
        key: "database.max_connections",
        kind: Kind::Count,
        default: "100",
        help: "the pool's maximum size",
    },
    Variable {
        name: "REDIS_URL",
        key: "redis.url",
        kind: Kind::Url(&["redis", "rediss"]),
        default: "",
        help: "redis://... or rediss://... (TLS, feature tls; the server's certificate verified); empty: in-process cache and rate limits",
    },
    Variable {
        name: "REDIS_COMMAND_TIMEOUT_MS",
        key: "redis.command_timeout_ms",
        kind: Kind::Count,
        default: "100",
        help: "the longest any one Redis command (cache, invalidation, rate limit) may take; while Redis is unreachable, commands fail at once",
    },
    Variable {
        name: "REDIS_CA_FILE",
        key: "redis.ca_file",
        kind: Kind::Text,
        default: "",
        help: "PEM CA certificates a rediss:// server's certificate must chain to; empty: the system's roots",
    },
    Variable {
        name: "REDIS_CLIENT_CERT_FILE",
        key: "redis.client_cert_file",
        kind: Kind::Text,
        default: "",
        help: "the PEM client certificate chain presented to a rediss:// server that asks for one (with REDIS_CLIENT_KEY_FILE)",
    },
    Variable {
        name: "REDIS_CLIENT_KEY_FILE",
        key: "redis.client_key_file",
        kind: Kind::Text,
        default: "",
        help: "the PEM private key of REDIS_CLIENT_CERT_FILE",
    },
    Variable {
        name: "NATS_URL",
        key: "nats.url",
        kind: Kind::Url(&["nats", "tls"]),
        default: "",
        help: "nats://... or tls://... (TLS required; a server announcing tls_required gets TLS with nats:// too), several separated by commas; empty: no events",
    },
    Variable {
        name: "NATS_CA_FILE",
        key: "nats.ca_file",
        kind: Kind::Text,
        default: "",
        help: "PEM CA certificates the NATS server's certificate must chain to; empty: the system's roots",
    },
    Variable {
        name: "NATS_CLIENT_CERT_FILE",
        key: "nats.client_cert_file",
        kind: Kind::Text,
        default: "",
        help: "the PEM client certificate chain presented to a NATS server that verifies clients (with NATS_CLIENT_KEY_FILE)",
    },
    Variable {
        name: "NATS_CLIENT_KEY_FILE",
        key: "nats.client_key_file",
        kind: Kind::Text,
        default: "",
        help: "the PEM private key of NATS_CLIENT_CERT_FILE",
    },
    Variable {
        name: "NATS_CREDS_FILE",
        key: "nats.creds_file",
        kind: Kind::Text,
        default: "",
        help: "a NATS credentials file (user JWT and NKey seed, .creds) to authenticate with",
    },
    Variable {
        name: "RATE_LIMIT_PER_MINUTE",
        key: "rate_limit.per_minute",
        kind: Kind::Count,
        default: "100",
        help: "calls per minute per caller and method",
    },
    Variable {
        name: "RATE_LIMIT_KEY",
        key: "rate_limit.key",
        kind: Kind::Text,
        default: "",
        help: "metadata naming the caller, set by a trusted gateway that strips it from callers; empty: the verified identity, else the peer IP",
    },
    Variable {
        name: "RATE_LIMIT_KEY_SECRET",
        key: "rate_limit.key_secret",
        kind: Kind::Secret,
        default: "",
        help: "the secret rate-limit keys are hashed with; required with REDIS_URL (replicas share it); empty: random per process",
    },
    Variable {
        name: "AUTH_JWT_SECRET",
        key: "auth.jwt_secret",
        kind: Kind::Secret,
        default: "",
        help: "the HS256 secret bearer tokens are signed with; with AUTH_JWKS_URL both are accepted",
    },
    Variable {
        name: "AUTH_JWKS_URL",
        key: "auth.jwks_url",
        kind: Kind::Url(&["https", "http"]),
        default: "",
        help: "the JWKS the token signing keys come from (fetched at start-up, refreshed in the background)",
    },
    Variable {
        name: "AUTH_ISSUER",
        key: "auth.issuer",
        kind: Kind::Text,
        default: "",
        help: "the iss tokens must carry; empty: not checked",
    },
    Variable {
        name: "AUTH_AUDIENCE",
        key: "auth.audience",
        kind: Kind::Text,
        default: "",
        help: "the aud tokens must carry; empty: not checked",
    },
    Variable {
        name: "AUTH_MTLS_IDENTITY",
        key: "auth.mtls_identity",
        kind: Kind::OneOf(&["cn", "san", "off"]),
        default: "cn",
        help: "with TLS_CLIENT_CA_FILE, what names a caller that sends no token: cn (the verified client certificate's subject common name), san (its first URI, else DNS, else email subject alternative name), or off (tokens only)",
    },
    Variable {
        name: "CACHE_TTL_SECONDS",
        key: "cache.ttl_seconds",
        kind: Kind::Seconds,
        default: "300",
        help: "how long cached responses live",
    },
    Variable {
        name: "CACHE_MAX_BYTES",
        key: "cache.max_bytes",
        kind: Kind::Bytes,
        default: "67108864",
        help: "the in-process cache's size",
    },
    Variable {
        name: "REQUEST_TIMEOUT_SECONDS",
        key: "timeout.request_seconds",
        kind: Kind::Seconds,
        default: "30",
        help: "the server's deadline for a unary or client-streaming call (a shorter client deadline wins)",
    },
    Variable {
        name: "STREAM_TIMEOUT_SECONDS",
        key: "timeout.stream_seconds",
        kind: Kind::Seconds,
        default: "0",
        help: "the server's deadline for a server- or bidi-streaming call; 0: none, for long-lived streams (a client deadline still applies; HTTP/2 keepalive finds dead peers)",
    },
    Variable {
        name: "MAX_MESSAGE_BYTES",
        key: "validation.max_message_bytes",
        kind: Kind::Bytes,
        default: "4194304",
        help: "the largest request message accepted",
    },
    Variable {
        name: "LOG_FORMAT",
        key: "logging.format",
        kind: Kind::OneOf(&["pretty", "json"]),
        default: "pretty",
        help: "pretty or json",
    },
    Variable {
        name: "LOG_DIR",
        key: "logging.dir",
        kind: Kind::Text,
        default: "",
        help: "rotated log files here; empty: standard output",
    },
    Variable {
        name: "LOG_LEVEL",
        key: "logging.level",
        kind: Kind::Text,
        default: "info",
        help: "the log filter when RUST_LOG is not set",
    },
    Variable {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        key: "otel.exporter_otlp_endpoint",
        kind: Kind::Url(&["http", "https"]),
        default: "",
        help: "OTLP/gRPC endpoint spans are exported to (feature otel), such as http://127.0.0.1:4317; empty: no export",
    },
    Variable {
        name: "OTEL_SERVICE_NAME",
        key: "otel.service_name",
        kind: Kind::Text,
        default: "",
        help: "service.name of the exported spans; empty: SERVICE_NAME",
    },
    Variable {
        name: "OTEL_TRACES_SAMPLER",
        key: "otel.traces_sampler",
        kind: Kind::OneOf(&[
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
            "always_on",
            "always_off",
            "traceidratio",
        ]),
        default: "parentbased_always_on",
        help: "which traces are recorded: the caller's decision, else a new trace always (the default)",
    },
    Variable {
        name: "OTEL_TRACES_SAMPLER_ARG",
        key: "otel.traces_sampler_arg",
        kind: Kind::Ratio,
        default: "",
        help: "the ratio of the traceidratio samplers, from 0 to 1; empty: 1",
    },
    Variable {
        name: "OTEL_SDK_DISABLED",
        key: "otel.sdk_disabled",
        kind: Kind::OneOf(&["false", "true"]),
        default: "false",
        help: "true: export no spans (trace ids are still logged and carried on)",
    },
];

/// The variable naming the optional TOML file.
pub const CONFIG_FILE: &str = "CONFIG_FILE";

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct BlueprintConfig {
    /// `[service]`.
    pub service: ServiceSection,
    /// `[server]`.
    pub server: ServerSection,
    /// `[metrics]`.
    pub metrics: MetricsSection,
    /// `[database]`.
    pub database: DatabaseSection,
    /// `[redis]`.
    pub redis: RedisSection,
    /// `[nats]`.
    pub nats: NatsSection,
    /// `[tls]`: the gRPC server's own TLS.
    pub tls: TlsSection,
    /// `[rate_limit]`.
    pub rate_limit: RateLimitSection,
    /// `[auth]`.
    pub auth: AuthSection,
    /// `[cache]`.
    pub cache: CacheSection,
    /// `[timeout]`.
    pub timeout: TimeoutSection,
    /// `[validation]`.
    pub validation: ValidationSection,
    /// `[logging]`.
    pub logging: LoggingSection,
    /// `[otel]`.
    pub otel: OtelSection,
}

/// `[service]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct ServiceSection {
    /// `SERVICE_NAME`.
    pub name: String,
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct ServerSection {
    /// `GRPC_ADDR`.
    pub grpc_addr: SocketAddr,
    /// `SHUTDOWN_GRACE_SECONDS`.
    pub shutdown_grace_seconds: u64,
    /// `SHUTDOWN_DRAIN_DELAY_SECONDS`.
    pub shutdown_drain_delay_seconds: u64,
    /// `MAX_CONCURRENT_STREAMS`.
    pub max_concurrent_streams: u32,
    /// `MAX_IN_FLIGHT` (0: no limit).
    pub max_in_flight: u32,
    /// `MAX_HEADER_LIST_BYTES`.
    pub max_header_list_bytes: u32,
    /// `KEEPALIVE_INTERVAL_SECONDS`.
    pub keepalive_interval_seconds: u64,
    /// `KEEPALIVE_TIMEOUT_SECONDS`.
    pub keepalive_timeout_seconds: u64,
}

impl ServerSection {
    /// The grace period for in-flight calls at shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct MetricsSection {
    /// `METRICS_ADDR`: `off` or empty turns the exporter off.
    pub addr: String,
}

impl MetricsSection {
    /// Where to serve `/metrics`, if at all.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.addr.parse().ok()
    }
}

/// `[database]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct DatabaseSection {
    /// `DATABASE_URL` (empty: the embedded default).
    pub url: String,
    /// `DATABASE_MAX_CONNECTIONS`.
    pub max_connections: u32,
}

/// `[nats]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct NatsSection {
    /// `NATS_URL`; empty when unset.
    pub url: String,
    /// `NATS_CA_FILE` (empty: the system's roots).
    pub ca_file: String,
    /// `NATS_CLIENT_CERT_FILE` (empty: none).
    pub client_cert_file: String,
    /// `NATS_CLIENT_KEY_FILE`.
    pub client_key_file: String,
    /// `NATS_CREDS_FILE` (empty: none).
    pub creds_file: String,
}

impl NatsSection {
    /// The URL, if set.
    pub fn get(&self) -> Option<&str> {
        Some(self.url.trim()).filter(|u| !u.is_empty())
    }
}

/// `[tls]`: the gRPC server's TLS (feature `tls`). Off unless both files are set.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct TlsSection {
    /// `TLS_CERT_FILE`.
    pub cert_file: String,
    /// `TLS_KEY_FILE`.
    pub key_file: String,
    /// `TLS_CLIENT_CA_FILE` (empty: no client certificates).
    pub client_ca_file: String,
    /// `TLS_RELOAD_SECONDS` (0: on SIGHUP only).
    pub reload_seconds: u64,
}

impl TlsSection {
    /// Whether the gRPC server speaks TLS: a certificate and its key are set.
    pub fn enabled(&self) -> bool {
        !self.cert_file.trim().is_empty() && !self.key_file.trim().is_empty()
    }

    /// Whether clients must present a certificate (mutual TLS).
    pub fn client_auth(&self) -> bool {
        self.enabled() && !self.client_ca_file.trim().is_empty()
    }
}

/// `[redis]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct RedisSection {
    /// `REDIS_URL`; empty when unset.
    pub url: String,
    /// `REDIS_COMMAND_TIMEOUT_MS`.
    pub command_timeout_ms: u32,
    /// `REDIS_CA_FILE` (empty: the system's roots).
    pub ca_file: String,
    /// `REDIS_CLIENT_CERT_FILE` (empty: none).
    pub client_cert_file: String,
    /// `REDIS_CLIENT_KEY_FILE`.
    pub client_key_file: String,
}

impl RedisSection {
    /// The URL, if set.
    pub fn get(&self) -> Option<&str> {
        Some(self.url.trim()).filter(|u| !u.is_empty())
    }

    /// The longest one command may take (at least 1 ms).
    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.command_timeout_ms.max(1)))
    }
}

/// `[rate_limit]`.
#[derive(Clone, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct RateLimitSection {
    /// `RATE_LIMIT_PER_MINUTE`.
    pub per_minute: u32,
    /// `RATE_LIMIT_KEY`: metadata a trusted gateway sets (empty: the verified identity).
    pub key: String,
    /// `RATE_LIMIT_KEY_SECRET` (empty: random per process).
    pub key_secret: String,
}

impl std::fmt::Debug for RateLimitSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitSection")
            .field("per_minute", &self.per_minute)
            .field("key", &self.key)
            .field("key_secret", &redacted(&self.key_secret))
            .finish()
    }
}

/// `[auth]`: who may call. Without a secret or a JWKS URL, calls are not authenticated.
#[derive(Clone, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct AuthSection {
    /// `AUTH_JWT_SECRET` (empty: no HS256 key).
    pub jwt_secret: String,
    /// `AUTH_JWKS_URL` (empty: no JWKS).
    pub jwks_url: String,
    /// `AUTH_ISSUER` (empty: not checked).
    pub issuer: String,
    /// `AUTH_AUDIENCE` (empty: not checked).
    pub audience: String,
    /// `AUTH_MTLS_IDENTITY`: `cn`, `san` or `off`.
    pub mtls_identity: String,
}

impl AuthSection {
    /// Whether calls are authenticated: a secret or a JWKS URL is set.
    pub fn enabled(&self) -> bool {
        !self.jwt_secret.trim().is_empty() || !self.jwks_url.trim().is_empty()
    }
}

impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSection")
            .field("jwt_secret", &redacted(&self.jwt_secret))
            .field("jwks_url", &self.jwks_url)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("mtls_identity", &self.mtls_identity)
            .finish()
    }
}

fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

/// `[cache]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct CacheSection {
    /// `CACHE_TTL_SECONDS`.
    pub ttl_seconds: u64,
    /// `CACHE_MAX_BYTES`.
    pub max_bytes: u64,
}

/// `[timeout]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct TimeoutSection {
    /// `REQUEST_TIMEOUT_SECONDS`: unary and client-streaming calls.
    pub request_seconds: u64,
    /// `STREAM_TIMEOUT_SECONDS`: server- and bidi-streaming calls (0: none).
    pub stream_seconds: u64,
}

impl TimeoutSection {
    /// The server's deadline for unary and client-streaming calls.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_seconds)
    }

    /// The server's deadline for server- and bidi-streaming calls, if any.
    pub fn stream_timeout(&self) -> Option<Duration> {
        Some(self.stream_seconds)
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
    }
}

/// `[validation]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct ValidationSection {
    /// `MAX_MESSAGE_BYTES`.
    pub max_message_bytes: u64,
}

/// `[logging]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct LoggingSection {
    /// `LOG_FORMAT`: `pretty` or `json`.
    pub format: String,
    /// `LOG_DIR` (empty: standard output).
    pub dir: String,
    /// `LOG_LEVEL`.
    pub level: String,
}

impl LoggingSection {
    /// The directory for log files, if any.
    pub fn dir(&self) -> Option<PathBuf> {
        Some(self.dir.trim())
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
    }
}

/// `[otel]`: OpenTelemetry span export (feature `otel`), by the standard variables.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct OtelSection {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (empty: no export).
    pub exporter_otlp_endpoint: String,
    /// `OTEL_SERVICE_NAME` (empty: `SERVICE_NAME`).
    pub service_name: String,
    /// `OTEL_TRACES_SAMPLER`.
    pub traces_sampler: String,
    /// `OTEL_TRACES_SAMPLER_ARG`.
    pub traces_sampler_arg: String,
    /// `OTEL_SDK_DISABLED`: `true` or `false`.
    pub sdk_disabled: String,
}

impl OtelSection {
    /// Whether `OTEL_SDK_DISABLED` is `true`.
    pub fn disabled(&self) -> bool {
        self.sdk_disabled.trim() == "true"
    }
}

impl Default for BlueprintConfig {
    /// Every default of [`VARIABLES`].
    fn default() -> Self {
        Loader::from_pairs::<[(&str, &str); 0], &str, &str>([])
            .load()
            .unwrap_or_else(|e| unreachable!("the defaults are valid: {e}"))
    }
}

/// Every problem found while loading, each naming its variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the configuration is invalid ({} problem",
            self.problems.len()
        )?;
        if self.problems.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str("):")?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads the variables (from the process environment or given pairs) and an optional file.
#[derive(Clone, Debug)]
pub struct Loader {
    vars: BTreeMap<String, String>,
    required: Vec<String>,
    defaults: BTreeMap<String, String>,
}

impl Loader {
    /// The process environment.
    pub fn from_env() -> Self {
        Self {
            vars: std::env::vars().collect(),
            required: Vec::new(),
            defaults: BTreeMap::new(),
        }
    }

    /// Given pairs instead of the environment (tests, embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            required: Vec::new(),
            defaults: BTreeMap::new(),
        }
    }

    /// Your service's default for `name` (one of [`VARIABLES`], such as `SERVICE_NAME`),
    /// in place of the table's: the file and the environment still override it. It is
    /// checked like a value from the environment.
    pub fn default_value(mut self, name: &str, value: &str) -> Self {
        self.defaults.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Makes `name` (one of [`VARIABLES`], such as `DATABASE_URL`) required: absent or empty
    /// is an error.
    pub fn require(mut self, name: &str) -> Self {
        self.required.push(name.to_owned());
        self
    }

    /// Checks every variable, then builds the configuration: defaults, then the file, then
    /// the environment.
    pub fn load(self) -> Result<BlueprintConfig, ConfigError> {
        let mut problems = Vec::new();
        for name in &self.required {
            let known = VARIABLES.iter().find(|v| v.name == name);
            let set = self.vars.get(name).is_some_and(|v| !v.trim().is_empty());
            match known {
                None => problems.push(format!("{name} is required but is not a known variable")),
                Some(var) if !set => problems.push(format!("{name} is required ({})", var.help)),
                Some(_) => {}
            }
        }
        for name in self.defaults.keys() {
            if !VARIABLES.iter().any(|v| v.name == name) {
                problems.push(format!(
                    "a default for {name}, which is not a known variable"
                ));
            }
        }
        for var in VARIABLES {
            if let Some(value) = self.vars.get(var.name).or(self.defaults.get(var.name))
                && let Err(why) = check(var.kind, value)
            {
                // A URL may carry a password: never repeat it.
                let shown = match var.kind {
                    Kind::Url(_) | Kind::Secret => String::new(),
                    _ => format!("={value:?}"),
                };
                problems.push(format!("{}{shown}: {why}", var.name));
            }
        }
        problems.extend(self.tls_problems());
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }

        let mut builder = config::Config::builder();
        for var in VARIABLES {
            let default = self
                .defaults
                .get(var.name)
                .map_or(var.default, |d| d.trim());
            builder = builder
                .set_default(var.key, default)
                .map_err(|e| one(format!("{}: {e}", var.name)))?;
        }
        if let Some(file) = self.vars.get(CONFIG_FILE).filter(|f| !f.trim().is_empty()) {
            builder = builder.add_source(config::File::with_name(file).required(true));
        }
        for var in VARIABLES {
            if let Some(value) = self.vars.get(var.name) {
                builder = builder
                    .set_override(var.key, value.trim())
                    .map_err(|e| one(format!("{}: {e}", var.name)))?;
            }
        }
        builder
            .build()
            .and_then(|c| c.try_deserialize::<BlueprintConfig>())
            .map_err(|e| one(e.to_string()))
    }

    /// Settings that only make sense together, and TLS asked for where this build cannot
    /// give it: never a silent fallback to plaintext.
    fn tls_problems(&self) -> Vec<String> {
        let value = |name: &str| {
            self.vars
                .get(name)
                .or(self.defaults.get(name))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();
        for (cert, key) in [
            ("TLS_CERT_FILE", "TLS_KEY_FILE"),
            ("REDIS_CLIENT_CERT_FILE", "REDIS_CLIENT_KEY_FILE"),
            ("NATS_CLIENT_CERT_FILE", "NATS_CLIENT_KEY_FILE"),
        ] {
            if value(cert).is_some() != value(key).is_some() {
                problems.push(format!("{cert} and {key} go together: set both or neither"));
            }
        }
        if value("TLS_CLIENT_CA_FILE").is_some() && value("TLS_CERT_FILE").is_none() {
            problems.push(
                "TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE: client certificates are asked for in a TLS handshake".to_owned(),
            );
        }
        let rediss = value("REDIS_URL").is_some_and(|url| url.starts_with("rediss:"));
        for name in [
            "REDIS_CA_FILE",
            "REDIS_CLIENT_CERT_FILE",
            "REDIS_CLIENT_KEY_FILE",
        ] {
            if value(name).is_some() && value("REDIS_URL").is_some() && !rediss {
                problems.push(format!(
                    "{name} is set but REDIS_URL is not rediss://: the connection would not use TLS"
                ));
            }
        }
        if !cfg!(feature = "tls") {
            let no_tls = "this build has no `tls` feature (tonic-blueprint/tls)";
            if rediss {
                problems.push(format!("REDIS_URL: rediss:// asks for TLS, and {no_tls}"));
            }
            if let Some(mode) = value("DATABASE_URL").and_then(postgres_sslmode)
                && ["require", "verify-ca", "verify-full"].contains(&mode.as_str())
            {
                problems.push(format!(
                    "DATABASE_URL: sslmode={mode} asks for TLS, and {no_tls}"
                ));
            }
            if value("TLS_CERT_FILE").is_some() {
                problems.push(format!(
                    "TLS_CERT_FILE: the gRPC server cannot speak TLS: {no_tls}"
                ));
            }
        }
        problems
    }

    /// The `export.sh` documenting every variable with its default.
    pub fn export_sh() -> String {
        render_export_sh(&BTreeMap::new())
    }

    /// The `export.sh` of a service: every variable with the defaults given through
    /// [`default_value`](Self::default_value) in place of the table's.
    pub fn service_export_sh(&self) -> String {
        render_export_sh(&self.defaults)
    }
}

fn render_export_sh(defaults: &BTreeMap<String, String>) -> String {
    let mut out = String::from(
        "#!/bin/sh\n# Every environment variable tonic-blueprint services read, with its default.\n\
         # Generated from tonic_blueprint::config::VARIABLES (a test keeps this file in step).\n\
         # Source it and change what you need:  . ./export.sh\n",
    );
    for var in VARIABLES {
        let default = defaults.get(var.name).map_or(var.default, String::as_str);
        out.push_str(&format!(
            "\n# {}\nexport {}=\"{}\"\n",
            var.help, var.name, default
        ));
    }
    out.push_str(&format!(
        "\n# An optional TOML file with the same settings by section; variables win.\nexport {CONFIG_FILE}=\"\"\n"
    ));
    out
}

/// The `sslmode` of a `postgres://` URL, lower case, when it names one.
fn postgres_sslmode(url: &str) -> Option<String> {
    if !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
        return None;
    }
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.eq_ignore_ascii_case("sslmode") || key.eq_ignore_ascii_case("ssl-mode"))
            .then(|| value.trim().to_ascii_lowercase())
    })
}

fn one(problem: String) -> ConfigError {
    ConfigError {
        problems: vec![problem],
    }
}

fn check(kind: Kind, value: &str) -> Result<(), String> {
    let value = value.trim();
    match kind {
        Kind::Text | Kind::Secret => Ok(()),
        Kind::Address => value
            .parse::<SocketAddr>()
            .map(|_| ())
            .map_err(|_| "not an address such as 127.0.0.1:50051".to_owned()),
        Kind::OptionalAddress => {
            if value.is_empty() || value.eq_ignore_ascii_case("off") {
                Ok(())
            } else {
                check(Kind::Address, value).map_err(|e| format!("{e}, nor off"))
            }
        }
        Kind::Count => value
            .parse::<u32>()
            .map(|_| ())
            .map_err(|_| "not a whole number".to_owned()),
        Kind::Seconds => value
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| "not a whole number of seconds".to_owned()),
        Kind::Bytes => value
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| "not a whole number of bytes".to_owned()),
        Kind::Url(schemes) => {
            if value.is_empty() {
                return Ok(());
            }
            let scheme = value.split_once(':').map(|(s, _)| s).unwrap_or_default();
            if schemes.contains(&scheme) {
                Ok(())
            } else {
                Err(format!("not a {} URL", schemes.join(" or ")))
            }
        }
        Kind::OneOf(words) => {
            if words.contains(&value) {
                Ok(())
            } else {
                Err(format!("must be one of {}", words.join(", ")))
            }
        }
        Kind::Ratio => {
            if value.is_empty() || value.parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r)) {
                Ok(())
            } else {
                Err("not a ratio from 0 to 1".to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(pairs: &[(&str, &str)]) -> String {
        match Loader::from_pairs(pairs.iter().copied()).load() {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn tls_asked_for_is_never_silently_plaintext() {
        let rediss = problems(&[("REDIS_URL", "rediss://cache:6380")]);
        let sslmode = problems(&[(
            "DATABASE_URL",
            "postgres://db/app?user=app&sslmode=verify-full",
        )]);
        let server = problems(&[("TLS_CERT_FILE", "/c.pem"), ("TLS_KEY_FILE", "/k.pem")]);
        if cfg!(feature = "tls") {
            assert_eq!((rediss.as_str(), sslmode.as_str()), ("", ""));
            assert_eq!(server, "");
        } else {
            assert!(rediss.contains("REDIS_URL: rediss://"), "{rediss}");
            assert!(
                sslmode.contains("DATABASE_URL: sslmode=verify-full"),
                "{sslmode}"
            );
            assert!(server.contains("TLS_CERT_FILE"), "{server}");
        }
        // prefer allows plaintext by definition: never refused.
        assert_eq!(
            problems(&[("DATABASE_URL", "postgres://db/app?sslmode=prefer")]),
            ""
        );
    }

    #[test]
    fn tls_settings_that_go_together() {
        for (pairs, named) in [
            (
                vec![("TLS_KEY_FILE", "/k.pem")],
                "TLS_CERT_FILE and TLS_KEY_FILE",
            ),
            (
                vec![("TLS_CLIENT_CA_FILE", "/ca.pem")],
                "TLS_CLIENT_CA_FILE needs TLS_CERT_FILE",
            ),
            (
                vec![("NATS_CLIENT_CERT_FILE", "/c.pem")],
                "NATS_CLIENT_CERT_FILE and NATS_CLIENT_KEY_FILE",
            ),
            (
                vec![
                    ("REDIS_URL", "redis://cache:6379"),
                    ("REDIS_CA_FILE", "/ca.pem"),
                ],
                "REDIS_CA_FILE is set but REDIS_URL is not rediss://",
            ),
        ] {
            let text = problems(&pairs);
            assert!(text.contains(named), "{pairs:?}: {text}");
        }
        assert_eq!(
            postgres_sslmode("postgresql://h/d?ssl-mode=Require").as_deref(),
            Some("require")
        );
        assert_eq!(postgres_sslmode("sqlite://x.db?sslmode=require"), None);
    }
}
