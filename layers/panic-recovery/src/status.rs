//! What the client receives for a panic.

use tonic::Status;
use tonic_blueprint_core::RpcIdentity;
use tonic_blueprint_core::catalogue::{self, Lang, Text};

/// The message of the default INTERNAL status. Fixed and generic on purpose.
pub const INTERNAL_MESSAGE: &str = tonic_blueprint_core::catalogue::INTERNAL_EN;

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
    {
        use tonic_blueprint_core::names;
        metrics::counter!(
            names::PANICS_RECOVERED,
            names::LABEL_SERVICE => rpc.service().to_owned(),
            names::LABEL_METHOD => rpc.method().to_owned(),
        )
        .increment(1);
    }
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
