//! The layer: configuration and the shared handle table.

use crate::service::Metrics;
use crate::table::{Sink, Table};
use std::sync::Arc;
use tonic_blueprint_core::MethodRegistry;
use tonic_blueprint_core::builder::Built;
use tower_layer::Layer;

/// Without descriptors, how many distinct methods get their own labels before the rest fold
/// into `unknown`.
pub const DEFAULT_MAX_METHODS: usize = 1000;

/// Records the go-grpc-prometheus metrics of every call; see the [crate docs](crate).
///
/// The handle table is built when the layer is first applied and shared by every clone of the
/// service (tonic clones it per connection) and of the layer; a builder call afterwards takes
/// effect for the services made afterwards, on a new table.
#[derive(Clone)]
pub struct MetricsLayer {
    /// The settings, and the handle table built from them
    /// ([`Built`]: the builder state of every layer).
    state: Built<Config, Table>,
}

/// The layer's settings.
#[derive(Clone)]
struct Config {
    registry: Option<Arc<MethodRegistry>>,
    sink: Sink,
    max_methods: usize,
}

impl std::fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let config = self.state.config();
        f.debug_struct("MetricsLayer")
            .field("known_methods", &config.registry.as_ref().map(|r| r.len()))
            .field("max_methods", &config.max_methods)
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
            state: Built::new(Config {
                registry: None,
                sink: Sink::Global,
                max_methods: DEFAULT_MAX_METHODS,
            }),
        }
    }

    /// The settings, to change; the one place that drops the built table.
    fn config_mut(&mut self) -> &mut Config {
        self.state.config_mut()
    }

    /// Takes each method's `grpc_type` from `registry`, pre-creates every known method's
    /// series at zero, and folds every other path into `unknown`.
    pub fn with_registry(mut self, registry: MethodRegistry) -> Self {
        self.config_mut().registry = Some(Arc::new(registry));
        self
    }

    /// Records into `recorder` instead of the global recorder (several registries in one
    /// process, or tests).
    pub fn with_recorder<R>(mut self, recorder: Arc<R>) -> Self
    where
        R: metrics::Recorder + Send + Sync + 'static,
    {
        self.config_mut().sink = Sink::Recorder(recorder);
        self
    }

    /// Without descriptors: how many distinct methods get their own labels
    /// (default [`DEFAULT_MAX_METHODS`]).
    pub fn max_methods(mut self, max: usize) -> Self {
        self.config_mut().max_methods = max;
        self
    }

    pub(crate) fn table(&self) -> Arc<Table> {
        self.state
            .get_or_build(|config| {
                Table::new(
                    config.sink.clone(),
                    config.registry.as_deref(),
                    config.max_methods,
                )
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

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use tonic_blueprint_core::RpcIdentity;

    /// The `grpc_server_started_total` of every method, summed, since the last look (a
    /// snapshot of the debugging recorder resets its counters).
    fn started(snapshotter: &Snapshotter) -> u64 {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == crate::STARTED)
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => n,
                _ => 0,
            })
            .sum()
    }

    fn start_a_call(table: &Table) {
        let id = RpcIdentity::parse("/shop.v1.Cart/Add").expect("path");
        table.get(&id).started.increment(1);
    }

    #[test]
    fn clones_made_after_building_share_the_table() {
        let layer = MetricsLayer::new().with_recorder(Arc::new(DebuggingRecorder::new()));
        let built = layer.table();
        let clone = layer.clone();
        assert!(Arc::ptr_eq(&built, &clone.table()));
        assert!(Arc::ptr_eq(&built, &layer.table()));
    }

    #[test]
    fn a_builder_call_after_layer_takes_effect_for_later_services() {
        let first = DebuggingRecorder::new();
        let first_counts = first.snapshotter();
        let second = DebuggingRecorder::new();
        let second_counts = second.snapshotter();

        let layer = MetricsLayer::new().with_recorder(Arc::new(first));
        let before = layer.table();
        let changed = layer.clone().with_recorder(Arc::new(second));
        let after = changed.table();
        assert!(!Arc::ptr_eq(&before, &after));

        start_a_call(&after);
        assert_eq!((started(&first_counts), started(&second_counts)), (0, 1));
        // The layer it was cloned from keeps its table and its recorder.
        assert!(Arc::ptr_eq(&before, &layer.table()));
        start_a_call(&layer.table());
        assert_eq!((started(&first_counts), started(&second_counts)), (1, 0));
    }
}
