//! The layer: configuration only.

use crate::service::RequestLogging;
use http::HeaderName;
use std::collections::HashSet;
use std::sync::Arc;
use tonic::Code;
use tonic_blueprint_core::MethodRegistry;
use tower_layer::Layer;
use tracing::Level;

/// Metadata whose values are never logged.
pub const DEFAULT_SENSITIVE_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

type LevelFn = dyn Fn(Code) -> Level + Send + Sync;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) ok_level: Level,
    pub(crate) level_for: Option<Arc<LevelFn>>,
    pub(crate) sensitive: HashSet<HeaderName>,
    pub(crate) registry: Option<MethodRegistry>,
    pub(crate) trace_context: bool,
}

impl Config {
    /// What a call's record needs to pick its level; cloning it touches no shared count
    /// unless a custom level function is set.
    ///
    /// Health and reflection calls (`infrastructure`) that succeed are logged at debug: a
    /// probe every few seconds must not fill the logs.
    pub(crate) fn levels(&self, infrastructure: bool) -> Levels {
        Levels {
            ok: if infrastructure {
                Level::DEBUG.max(self.ok_level)
            } else {
                self.ok_level
            },
            custom: self.level_for.clone(),
        }
    }
}

/// The level of a finished call, by its code.
#[derive(Clone)]
pub(crate) struct Levels {
    ok: Level,
    custom: Option<Arc<LevelFn>>,
}

impl Levels {
    pub(crate) fn level(&self, code: Code) -> Level {
        match &self.custom {
            Some(f) => f(code),
            None => crate::level::default_level(code, self.ok),
        }
    }
}

/// Logs every call; see the [crate docs](crate).
#[derive(Clone)]
pub struct RequestLoggingLayer {
    config: Arc<Config>,
}

impl std::fmt::Debug for RequestLoggingLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLoggingLayer")
            .field("ok_level", &self.config.ok_level)
            .field("sensitive", &self.config.sensitive)
            .finish_non_exhaustive()
    }
}

impl Default for RequestLoggingLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestLoggingLayer {
    /// OK at info, the default sensitive headers, `grpc.method_type` unknown.
    pub fn new() -> Self {
        let sensitive = DEFAULT_SENSITIVE_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h))
            .collect();
        Self {
            config: Arc::new(Config {
                ok_level: Level::INFO,
                level_for: None,
                sensitive,
                registry: None,
                trace_context: true,
            }),
        }
    }

    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.clone()
    }

    fn config_mut(&mut self) -> &mut Config {
        // Building happens before the layer is shared; a clone taken earlier keeps its own.
        Arc::make_mut(&mut self.config)
    }

    /// The level of successful calls (default info; debug keeps busy services quiet).
    pub fn ok_level(mut self, level: Level) -> Self {
        self.config_mut().ok_level = level;
        self
    }

    /// Chooses the level of every finished call from its code.
    pub fn level_for(mut self, f: impl Fn(Code) -> Level + Send + Sync + 'static) -> Self {
        self.config_mut().level_for = Some(Arc::new(f));
        self
    }

    /// Adds a metadata key whose value is never logged.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid header name.
    pub fn sensitive_header(mut self, name: &str) -> Self {
        let name = HeaderName::try_from(name.to_ascii_lowercase())
            .unwrap_or_else(|e| panic!("invalid header name {name:?}: {e}"));
        self.config_mut().sensitive.insert(name);
        self
    }

    /// Whether calls join the caller's trace (default on): the W3C `traceparent`,
    /// `tracestate` and `baggage` are read, the span gets `trace_id` and `span_id`, and the
    /// [`TraceContext`](tonic_blueprint_core::TraceContext) and
    /// [`CurrentCall`](tonic_blueprint_core::CurrentCall) go in the request extensions. Off,
    /// none of that happens and no span is recorded (for comparison, or when another layer
    /// owns tracing).
    pub fn trace_context(mut self, on: bool) -> Self {
        self.config_mut().trace_context = on;
        self
    }

    /// Takes `grpc.method_type` from the service descriptors.
    pub fn with_registry(mut self, registry: MethodRegistry) -> Self {
        self.config_mut().registry = Some(registry);
        self
    }
}

impl<S> Layer<S> for RequestLoggingLayer {
    type Service = RequestLogging<S>;

    fn layer(&self, inner: S) -> RequestLogging<S> {
        RequestLogging::from_config(inner, self.config.clone())
    }
}
