//! What the client receives for a panic.

use std::sync::LazyLock;
use tonic::Status;
use tonic_blueprint_core::catalogue::{self, Lang, Text};
use tonic_blueprint_core::{MethodCounters, RpcIdentity, names};

/// The message of the default INTERNAL status. Fixed and generic on purpose.
pub const INTERNAL_MESSAGE: &str = tonic_blueprint_core::catalogue::INTERNAL_EN;

/// `grpc_server_panics_recovered_total` by method: registered once per method (not per
/// panic), the first [`MAX_METHODS`](tonic_blueprint_core::counters::MAX_METHODS) methods
/// labelled, every other path folded into `unknown`.
///
/// One table for the process, registered with the global recorder on first use: the response
/// future and body that recover a panic do not hold the layer's state.
static PANICS_RECOVERED: LazyLock<MethodCounters> =
    LazyLock::new(|| MethodCounters::new(&[names::PANICS_RECOVERED], None));

/// Where the panic happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicPhase {
    /// In the handler's future, before the response headers.
    Handler,
    /// While the response body (a response stream) was being produced.
    Stream,
}

impl PanicPhase {
    /// `handler` or `stream`, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Handler => "handler",
            Self::Stream => "stream",
        }
    }
}

/// A panic the layer caught.
#[derive(Debug)]
#[non_exhaustive]
pub struct RecoveredPanic<'a> {
    /// The RPC that panicked.
    pub rpc: &'a RpcIdentity,
    /// The panic message. Log it; never send it to the client.
    pub message: &'a str,
    /// `file:line:column`, when the layer's panic hook saw it.
    pub location: Option<&'a str>,
    /// Where it happened.
    pub phase: PanicPhase,
    /// The caller's language (from `grpc-accept-language` / `accept-language`), for a
    /// LocalizedMessage detail (`grpc-message` stays English).
    pub lang: Lang,
}

/// Builds the status a client receives for a recovered panic.
///
/// Implemented for every `Fn(&RecoveredPanic<'_>) -> Status + Clone`. Whatever it returns goes
/// to the client: keep internal detail out of it.
pub trait StatusForPanic: Clone {
    /// The status for `panic`.
    fn status_for_panic(&self, panic: &RecoveredPanic<'_>) -> Status;
}

impl<F> StatusForPanic for F
where
    F: Fn(&RecoveredPanic<'_>) -> Status + Clone,
{
    fn status_for_panic(&self, panic: &RecoveredPanic<'_>) -> Status {
        self(panic)
    }
}

/// INTERNAL with [`INTERNAL_MESSAGE`], and the caller's language in a LocalizedMessage
/// detail when it is not English.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultStatusForPanic;

impl StatusForPanic for DefaultStatusForPanic {
    fn status_for_panic(&self, panic: &RecoveredPanic<'_>) -> Status {
        internal(panic.lang)
    }
}

/// The default INTERNAL for a caller speaking `lang`.
pub(crate) fn internal(lang: Lang) -> Status {
    catalogue::status(tonic::Code::Internal, Text::Internal, lang)
}

/// Logs and counts a caught panic, and returns the status for the client.
pub(crate) fn recover<H: StatusForPanic>(
    handler: &H,
    forward: bool,
    rpc: &RpcIdentity,
    lang: Lang,
    caught: crate::hook::Caught,
    phase: PanicPhase,
) -> Status {
    let location = caught.location.as_deref().unwrap_or("unknown");
    tracing::error!(
        grpc.service = rpc.service(),
        grpc.method = rpc.method(),
        panic.message = caught.message.as_str(),
        panic.location = location,
        panic.phase = phase.as_str(),
        "panic recovered, answering INTERNAL"
    );
    PANICS_RECOVERED.increment(rpc, 0);
    let panic = RecoveredPanic {
        rpc,
        message: &caught.message,
        location: caught.location.as_deref(),
        phase,
        lang,
    };
    // A hook that panics itself must not take the server down with it.
    crate::hook::catch(forward, || handler.status_for_panic(&panic))
        .unwrap_or_else(|_| DefaultStatusForPanic.status_for_panic(&panic))
}
