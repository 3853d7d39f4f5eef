//! The hooks of the layers that join a call: boxed [`CallHook`]s, and [`SharedCallHook`]s
//! that need no box.

use super::{CallEnd, CallHook};
use crate::outcome::OutcomeSource;
use std::sync::Arc;
use std::time::Instant;
use tonic::Code;

/// A hook that one shared value serves for every call, such as a method's metric handles:
/// it keeps nothing per call but when the call started, so attaching it allocates nothing
/// ([`watch_shared`](super::watch_shared)), where a [`CallHook`] joining a call is boxed.
pub trait SharedCallHook: Send + Sync + 'static {
    /// `count` more complete request messages arrived.
    fn on_messages_received(&self, _count: u64) {}

    /// `count` more complete response messages were sent.
    fn on_messages_sent(&self, _count: u64) {}

    /// The call attached at `started` ended: called exactly once per call (a call dropped
    /// without an end reports `Cancelled`).
    fn on_end(&self, started: Instant, end: &CallEnd);
}

/// A [`SharedCallHook`] in one call.
pub(super) struct SharedGuest {
    hook: Option<Arc<dyn SharedCallHook>>,
    started: Instant,
}

impl SharedGuest {
    pub(super) fn new(hook: Arc<dyn SharedCallHook>) -> Self {
        Self {
            hook: Some(hook),
            started: Instant::now(),
        }
    }
}

impl CallHook for SharedGuest {
    fn on_messages_received(&mut self, count: u64) {
        if let Some(hook) = &self.hook {
            hook.on_messages_received(count);
        }
    }

    fn on_messages_sent(&mut self, count: u64) {
        if let Some(hook) = &self.hook {
            hook.on_messages_sent(count);
        }
    }

    fn on_end(&mut self, end: &CallEnd) {
        if let Some(hook) = self.hook.take() {
            hook.on_end(self.started, end);
        }
    }
}

impl Drop for SharedGuest {
    fn drop(&mut self) {
        self.on_end(&CallEnd {
            code: Code::Cancelled,
            source: OutcomeSource::Dropped,
            messages_received: 0,
            messages_sent: 0,
        });
    }
}

/// A hook of a layer that joined the call.
pub(super) enum Guest {
    Boxed(Box<dyn CallHook>),
    Shared(SharedGuest),
}

impl Guest {
    pub(super) fn hook(&mut self) -> &mut dyn CallHook {
        match self {
            Self::Boxed(hook) => hook.as_mut(),
            Self::Shared(hook) => hook,
        }
    }
}

/// The hooks of the layers that joined the call. Two fit without another allocation.
pub(super) type Guests = smallvec::SmallVec<[Guest; 2]>;
