//! The layer: configuration and the shared handle table.

use crate::service::Metrics;
use crate::table::{Sink, Table};
use std::sync::Arc;
use tonic_blueprint_core::MethodRegistry;
use tower_layer::Layer;

/// Without descriptors, how many distinct methods get their own labels before the rest fold
/// into `unknown`.
pub const DEFAULT_MAX_METHODS: usize = 1000;

/// Records the go-grpc-prometheus metrics of every call; see the [crate docs](crate).
///
/// The handle table is built when the layer is first applied and shared by every clone of the
/// service (tonic clones it per connection).
#[derive(Clone)]
pub struct MetricsLayer {
    registry: Option<Arc<MethodRegistry>>,
    sink: Sink,
    max_methods: usize,
    table: Arc<std::sync::OnceLock<Arc<Table>>>,
}

impl std::fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("known_methods", &self.registry.as_ref().map(|r| r.len()))
            .field("max_methods", &self.max_methods)
            .finish_non_exhaustive()
    }
}

impl Default for MetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsLayer {
    /// Records into the global `metrics` recorder.
    pub fn new() -> Self {
        Self {
            registry: None,
            sink: Sink::Global,
            max_methods: DEFAULT_MAX_METHODS,
            table: Arc::default(),
        }
    }

    /// Takes each method's `grpc_type` from `registry`, pre-creates every known method's
    /// series at zero, and folds every other path into `unknown`.
    pub fn with_registry(mut self, registry: MethodRegistry) -> Self {
        self.registry = Some(Arc::new(registry));
        self.table = Arc::default();
        self
    }

    /// Records into `recorder` instead of the global recorder (several registries in one
    /// process, or tests).
    pub fn with_recorder<R>(mut self, recorder: Arc<R>) -> Self
    where
        R: metrics::Recorder + Send + Sync + 'static,
    {
        self.sink = Sink::Recorder(recorder);
        self.table = Arc::default();
        self
    }

    /// Without descriptors: how many distinct methods get their own labels
    /// (default [`DEFAULT_MAX_METHODS`]).
    pub fn max_methods(mut self, max: usize) -> Self {
        self.max_methods = max;
        self.table = Arc::default();
        self
    }

    pub(crate) fn table(&self) -> Arc<Table> {
        self.table
            .get_or_init(|| {
                Arc::new(Table::new(
                    self.sink.clone(),
                    self.registry.as_deref(),
                    self.max_methods,
                ))
            })
            .clone()
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics::from_table(inner, self.table())
    }
}
