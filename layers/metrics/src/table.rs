//! Per-method metric handles, registered once and looked up per call without allocating.

use crate::names::{
    HANDLED, HANDLING_SECONDS, IN_FLIGHT, LABEL_CODE, LABEL_TYPE, MSG_RECEIVED, MSG_SENT, STARTED,
};
use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use std::sync::{Arc, OnceLock};
use tonic::Code;
use tonic_blueprint_core::MethodTable;
use tonic_blueprint_core::identity::UNKNOWN;
use tonic_blueprint_core::names::{LABEL_METHOD, LABEL_SERVICE};
use tonic_blueprint_core::{MethodRegistry, RpcIdentity, RpcKind, code_label};

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Where handles are registered: the global recorder, or one given to the layer.
#[derive(Clone)]
pub(crate) enum Sink {
    Global,
    Recorder(Arc<dyn Recorder + Send + Sync>),
}

impl Sink {
    fn with<T>(&self, f: impl FnOnce(&dyn Recorder) -> T) -> T {
        match self {
            Self::Global => metrics::with_recorder(f),
            Self::Recorder(r) => f(r.as_ref()),
        }
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        let key = Key::from_parts(name, labels);
        self.with(|r| r.register_counter(&key, &METADATA))
    }
}

/// The handles of one method.
pub(crate) struct MethodMetrics {
    pub(crate) kind: RpcKind,
    pub(crate) started: Counter,
    pub(crate) msg_received: Counter,
    pub(crate) msg_sent: Counter,
    pub(crate) handling: Histogram,
    pub(crate) in_flight: Gauge,
    handled: [OnceLock<Counter>; 17],
    labels: Vec<Label>,
    sink: Sink,
}

impl MethodMetrics {
    fn new(sink: Sink, kind: RpcKind, service: &str, method: &str, eager: bool) -> Self {
        let labels = vec![
            Label::new(LABEL_TYPE, kind.as_str()),
            Label::new(LABEL_SERVICE, service.to_owned()),
            Label::new(LABEL_METHOD, method.to_owned()),
        ];
        let (started, msg_received, msg_sent, handling, in_flight) = sink.with(|r| {
            let key = |name: &'static str| Key::from_parts(name, labels.clone());
            (
                r.register_counter(&key(STARTED), &METADATA),
                r.register_counter(&key(MSG_RECEIVED), &METADATA),
                r.register_counter(&key(MSG_SENT), &METADATA),
                r.register_histogram(&key(HANDLING_SECONDS), &METADATA),
                r.register_gauge(&key(IN_FLIGHT), &METADATA),
            )
        });
        let this = Self {
            kind,
            started,
            msg_received,
            msg_sent,
            handling,
            in_flight,
            handled: Default::default(),
            labels,
            sink,
        };
        if eager {
            // Like go-grpc-prometheus' InitializeMetrics: every code of every known method
            // exists from the start, at zero, so rate() and alerts work before the first error.
            for code in 0..17 {
                this.handled(Code::from_i32(code));
            }
            this.started.increment(0);
            this.msg_received.increment(0);
            this.msg_sent.increment(0);
            this.in_flight.set(0.0);
        }
        this
    }

    pub(crate) fn handled(&self, code: Code) -> &Counter {
        let slot = &self.handled[(code as usize).min(16)];
        slot.get_or_init(|| {
            let mut labels = self.labels.clone();
            labels.push(Label::new(LABEL_CODE, code_label(code)));
            let counter = self.sink.counter(HANDLED, labels);
            counter.increment(0);
            counter
        })
    }
}

/// The handles of every method: a [`MethodTable`] whose known methods are built up front with
/// every series at zero.
pub(crate) struct Table(MethodTable<MethodMetrics>);

impl Table {
    pub(crate) fn new(sink: Sink, registry: Option<&MethodRegistry>, max_methods: usize) -> Self {
        // Only the methods of the registry start at zero; learned ones and `unknown` appear
        // as they are called.
        let zero = registry.is_some();
        Self(MethodTable::eager(
            registry,
            max_methods,
            move |service, method, kind| {
                let unknown = kind == RpcKind::Unknown && service == UNKNOWN && method == UNKNOWN;
                MethodMetrics::new(sink.clone(), kind, service, method, zero && !unknown)
            },
        ))
    }

    pub(crate) fn get(&self, id: &RpcIdentity) -> Arc<MethodMetrics> {
        self.0.get(id)
    }
}
