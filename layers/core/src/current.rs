//! The call being served, for the work it causes: [`CurrentCall`].
//!
//! An outgoing call or an event published from a handler should carry on three things of the
//! call being served: its trace, its request id and what is left of its deadline. Handlers
//! should not have to pass them by hand, so the RequestLogging layer makes the call
//! *current* while its handler and response stream are polled, the way a tracing span is
//! entered: [`CurrentCall::get`] returns it on that thread, during that poll. The
//! outgoing-call layer and the NATS helpers read it there.
//!
//! Work moved to another task does not carry it by itself (as with tracing spans): wrap
//! the future with [`CurrentCall::scope`].
//!
//! Two values are known only to layers inside logging: the effective [`Deadline`] (the
//! Timeout layer) and the verified [`Identity`] (the Auth layer). [`CurrentCallLayer`], put
//! inside both, copies them from the request extensions into the call; the preset stack
//! puts it right inside Auth. Without it the deadline is the client's `grpc-timeout` alone.
//!
//! ```
//! use tonic_blueprint_core::current::CurrentCall;
//! use tonic_blueprint_core::trace::TraceContext;
//!
//! let call = CurrentCall::new(TraceContext::new_root(), None, None);
//! assert!(CurrentCall::get().is_none());
//! {
//!     let _entered = call.enter();
//!     let current = CurrentCall::get().unwrap();
//!     assert_eq!(current.trace().trace_id(), call.trace().trace_id());
//! }
//! assert!(CurrentCall::get().is_none());
//! ```

use crate::caller::Identity;
use crate::deadline::Deadline;
use crate::request_id::RequestId;
use crate::trace::TraceContext;
use pin_project_lite::pin_project;
use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// The call being served: its trace, request id, deadline and caller. Cloning is cheap
/// (shared). Noted in the call's observer by the RequestLogging layer (found with
/// [`from_extensions`](Self::from_extensions)), and current while the call's handler is
/// polled.
#[derive(Clone)]
pub struct CurrentCall(Arc<Shared>);

struct Shared {
    trace: TraceContext,
    request_id: Option<RequestId>,
    client_deadline: Option<Deadline>,
    deadline: OnceLock<Deadline>,
    identity: OnceLock<Identity>,
}

thread_local! {
    static CURRENT: RefCell<Option<CurrentCall>> = const { RefCell::new(None) };
}

impl CurrentCall {
    /// A call in `trace`, with its request id and the client's deadline (`grpc-timeout`), if
    /// any.
    pub fn new(
        trace: TraceContext,
        request_id: Option<RequestId>,
        client_deadline: Option<Deadline>,
    ) -> Self {
        Self(Arc::new(Shared {
            trace,
            request_id,
            client_deadline,
            deadline: OnceLock::new(),
            identity: OnceLock::new(),
        }))
    }

    /// The call current on this thread, if any.
    pub fn get() -> Option<Self> {
        CURRENT.with(|current| current.try_borrow().ok().and_then(|c| c.clone()))
    }

    /// The call stored in these extensions, if any: noted in the call's
    /// [`CallObserver`](crate::observer::CallObserver) (as the RequestLogging layer does), or
    /// a `CurrentCall` extension of its own.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<&Self> {
        extensions
            .get::<crate::observer::CallObserver>()
            .and_then(crate::observer::CallObserver::call)
            .or_else(|| extensions.get::<Self>())
    }

    /// The call's trace (the server span's context).
    pub fn trace(&self) -> &TraceContext {
        &self.0.trace
    }

    /// The call's request id.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.0.request_id.as_ref()
    }

    /// The call's effective deadline (noted by [`CurrentCallLayer`] from the Timeout layer),
    /// else the client's `grpc-timeout`.
    pub fn deadline(&self) -> Option<Deadline> {
        self.0.deadline.get().copied().or(self.0.client_deadline)
    }

    /// The verified caller, once [`CurrentCallLayer`] noted it.
    pub fn identity(&self) -> Option<&Identity> {
        self.0.identity.get()
    }

    /// Notes the effective deadline and the verified caller found in `extensions` (the
    /// first noted stays).
    pub fn note(&self, extensions: &http::Extensions) {
        if let Some(deadline) = extensions.get::<Deadline>() {
            let _ = self.0.deadline.set(*deadline);
        }
        if let Some(identity) = extensions.get::<Identity>() {
            let _ = self.0.identity.set(identity.clone());
        }
    }

    /// Makes this the current call on this thread until the guard drops (then the one before
    /// is current again).
    pub fn enter(&self) -> Entered {
        let previous = CURRENT.with(|current| match current.try_borrow_mut() {
            Ok(mut current) => Some(current.replace(self.clone())),
            Err(_) => None,
        });
        Entered {
            previous,
            _not_send: PhantomData,
        }
    }

    /// `future`, with this call current whenever it is polled (for work spawned onto another
    /// task).
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            call: Some(self),
            inner: future,
        }
    }

    /// `future`, with `call` current whenever it is polled when there is one.
    pub fn scope_option<F: Future>(call: Option<Self>, future: F) -> Scoped<F> {
        Scoped {
            call,
            inner: future,
        }
    }
}

impl std::fmt::Debug for CurrentCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentCall")
            .field("trace", &self.0.trace)
            .field("request_id", &self.0.request_id)
            .field("deadline", &self.deadline())
            .finish_non_exhaustive()
    }
}

/// Guard of [`CurrentCall::enter`]: the call stays current until it drops.
#[derive(Debug)]
#[must_use = "the call is current only while the guard lives"]
pub struct Entered {
    // `None` when the slot was busy (entered from inside `get`): nothing to restore.
    previous: Option<Option<CurrentCall>>,
    // Restored on the thread it was entered on.
    _not_send: PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            // The call that was current goes back; the one entered is dropped outside the
            // borrow (its drop could run arbitrary code).
            let _entered = CURRENT.with(|current| match current.try_borrow_mut() {
                Ok(mut current) => std::mem::replace(&mut *current, previous),
                Err(_) => None,
            });
        }
    }
}

pin_project! {
    /// A future polled with a call current; see [`CurrentCall::scope`].
    #[derive(Debug)]
    pub struct Scoped<F> {
        call: Option<CurrentCall>,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.call.as_ref().map(CurrentCall::enter);
        this.inner.poll(cx)
    }
}

/// Notes the effective [`Deadline`] and the verified [`Identity`] of each call in its
/// [`CurrentCall`]; see the [module docs](self). Put it inside the Timeout and Auth layers.
/// It adds no future or body of its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct CurrentCallLayer;

impl CurrentCallLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for CurrentCallLayer {
    type Service = NoteCurrentCall<S>;

    fn layer(&self, inner: S) -> NoteCurrentCall<S> {
        NoteCurrentCall::new(inner, self)
    }
}

/// The service of [`CurrentCallLayer`].
#[derive(Clone, Debug)]
pub struct NoteCurrentCall<S> {
    inner: S,
}

impl<S> NoteCurrentCall<S> {
    /// Wraps `inner` as `layer` does.
    pub fn new(inner: S, _layer: &CurrentCallLayer) -> Self {
        Self { inner }
    }

    /// The layer.
    pub fn layer() -> CurrentCallLayer {
        CurrentCallLayer
    }

    crate::inner_accessors!();
}

impl<S, B> Service<http::Request<B>> for NoteCurrentCall<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> S::Future {
        if let Some(call) = CurrentCall::from_extensions(request.extensions()) {
            call.note(request.extensions());
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::AuthMethod;
    use crate::deadline::DeadlineSource;
    use std::time::Duration;

    #[test]
    fn entering_nests_and_restores() {
        let outer = CurrentCall::new(TraceContext::new_root(), None, None);
        let inner = CurrentCall::new(TraceContext::new_root(), None, None);
        let id = |c: Option<CurrentCall>| c.map(|c| c.trace().trace_id());
        {
            let _a = outer.enter();
            assert_eq!(id(CurrentCall::get()), Some(outer.trace().trace_id()));
            {
                let _b = inner.enter();
                assert_eq!(id(CurrentCall::get()), Some(inner.trace().trace_id()));
            }
            assert_eq!(id(CurrentCall::get()), Some(outer.trace().trace_id()));
        }
        assert!(CurrentCall::get().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_notes_the_deadline_and_the_caller() {
        let client = Deadline::after(Duration::from_secs(10), DeadlineSource::Client);
        let call = CurrentCall::new(TraceContext::new_root(), None, Some(client));
        assert_eq!(call.deadline(), Some(client));
        let effective = Deadline::after(Duration::from_secs(2), DeadlineSource::Server);
        let mut request = http::Request::new(());
        request.extensions_mut().insert(call.clone());
        request.extensions_mut().insert(effective);
        request
            .extensions_mut()
            .insert(Identity::new("alice", AuthMethod::Jwt));
        struct Done;
        impl Service<http::Request<()>> for Done {
            type Response = ();
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<(), Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: http::Request<()>) -> Self::Future {
                std::future::ready(Ok(()))
            }
        }
        let mut service = CurrentCallLayer::new().layer(Done);
        service.call(request).await.expect("call");
        assert_eq!(call.deadline(), Some(effective));
        assert_eq!(call.identity().map(Identity::subject), Some("alice"));
    }

    #[tokio::test]
    async fn a_scoped_future_sees_its_call_on_every_poll() {
        let call = CurrentCall::new(TraceContext::new_root(), None, None);
        let expected = call.trace().trace_id();
        let seen = call
            .scope(async {
                tokio::task::yield_now().await;
                CurrentCall::get().map(|c| c.trace().trace_id())
            })
            .await;
        assert_eq!(seen, Some(expected));
        assert!(CurrentCall::get().is_none());
    }
}
