//! The layer: configuration only.

use crate::service::PanicRecovery;
use crate::status::{DefaultStatusForPanic, StatusForPanic};
use tower_layer::Layer;

/// Recovers panics as INTERNAL; see the [crate docs](crate).
#[derive(Clone, Debug)]
pub struct PanicRecoveryLayer<H = DefaultStatusForPanic> {
    handler: H,
    forward: bool,
}

impl PanicRecoveryLayer {
    /// Answers INTERNAL with [`INTERNAL_MESSAGE`](crate::INTERNAL_MESSAGE).
    pub fn new() -> Self {
        Self::with_status(DefaultStatusForPanic)
    }
}

impl Default for PanicRecoveryLayer {
    /// The same as [`PanicRecoveryLayer::new`] (which installs the location-recording hook).
    fn default() -> Self {
        Self::new()
    }
}

impl<H: StatusForPanic> PanicRecoveryLayer<H> {
    /// Answers with the status `handler` builds.
    pub fn with_status(handler: H) -> Self {
        crate::hook::install();
        Self {
            handler,
            forward: false,
        }
    }

    /// Also calls the panic hook that was installed before this layer's (by default the
    /// "thread panicked at" line on stderr) for the panics this layer recovers.
    pub fn forward_to_panic_hook(mut self, forward: bool) -> Self {
        self.forward = forward;
        self
    }
}

impl<S, H: StatusForPanic> Layer<S> for PanicRecoveryLayer<H> {
    type Service = PanicRecovery<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        PanicRecovery::with_parts(inner, self.handler.clone(), self.forward)
    }
}
