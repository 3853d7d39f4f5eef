//! One observer per call, shared by every layer that watches calls.
//!
//! Logging, metrics and any layer of your own want the same facts about a call: the request
//! messages received, the response messages sent, and how it ended. Each wrapping the request
//! body and observing the response on its own would scan every frame once per layer and keep
//! one cancel-on-drop record per layer. Instead the outermost watching layer starts the call's
//! [`CallObserver`]: it wraps the request body once, observes the response once and reports the
//! end once, to every [`CallHook`] the layers attached. A layer further in finds the observer in
//! the request extensions and only attaches its hook.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::{Arc, Mutex};
//! use http_body_util::BodyExt;
//! use tonic_blueprint_core::observer::{CallEnd, CallHook, watch};
//! use tonic_blueprint_core::reject;
//!
//! struct Seen(Arc<Mutex<Vec<CallEnd>>>);
//! impl CallHook for Seen {
//!     fn on_end(&mut self, end: &CallEnd) {
//!         self.0.lock().unwrap().push(*end);
//!     }
//! }
//!
//! let outer = Arc::new(Mutex::new(Vec::new()));
//! let inner = Arc::new(Mutex::new(Vec::new()));
//! let request = http::Request::new(http_body_util::Empty::<bytes::Bytes>::new());
//! // The outer layer starts the observer; the inner one joins it.
//! let (request, outer_watch) = watch(request, Seen(outer.clone()));
//! let (_request, inner_watch) = watch(request, Seen(inner.clone()));
//! assert!(outer_watch.is_owner() && !inner_watch.is_owner());
//!
//! let response: http::Response<http_body_util::Empty<bytes::Bytes>> =
//!     reject(tonic::Status::not_found("no such payment"));
//! let response = outer_watch.respond(inner_watch.respond(response));
//! response.into_body().collect().await.unwrap();
//!
//! for seen in [outer, inner] {
//!     assert_eq!(seen.lock().unwrap()[0].code, tonic::Code::NotFound);
//! }
//! # });
//! ```

use crate::code::code_from_error_of;
use crate::current::CurrentCall;
use crate::frame::{CountedBody, RequestEvents};
use crate::identity::{RpcIdentity, RpcKind};
use crate::outcome::{ObservedBody, OnOutcome, Outcome, OutcomeSource, observe};
use bytes::Bytes;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tonic::Code;

mod guests;
pub use guests::SharedCallHook;
use guests::{Guest, Guests, SharedGuest};

/// How a call ended, as every hook learns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallEnd {
    /// The gRPC status code the client sees. A call whose request stream failed (the client
    /// reset it or went away) is `Cancelled`, whatever the handler made of the broken stream.
    pub code: Code,
    /// Where the code came from.
    pub source: OutcomeSource,
    /// Complete request messages received.
    pub messages_received: u64,
    /// Complete response messages sent.
    pub messages_sent: u64,
}

/// What a layer attaches to a call's observer. Every method is called from whichever task
/// polls the call's bodies, one at a time.
pub trait CallHook: Send + 'static {
    /// `count` more complete request messages arrived (live counts for long streams).
    fn on_messages_received(&mut self, _count: u64) {}

    /// `count` more complete response messages were sent.
    fn on_messages_sent(&mut self, _count: u64) {}

    /// The call ended; called exactly once, unless the hook is dropped first (the process
    /// shutting down a call without an end).
    fn on_end(&mut self, end: &CallEnd);
}

/// The bit of [`Shared::received`] that says the request stream failed.
const REQUEST_FAILED: u64 = 1 << 63;

/// The owner's hook, kept inline in the call's shared state (no allocation of its own).
trait OwnerSlot: Send {
    fn hook(&mut self) -> Option<&mut dyn CallHook>;
}

impl<H: CallHook> OwnerSlot for Option<H> {
    fn hook(&mut self) -> Option<&mut dyn CallHook> {
        self.as_mut().map(|hook| hook as &mut dyn CallHook)
    }
}

struct Hooks<O: ?Sized> {
    ended: bool,
    guests: Guests,
    /// Last: the owner's hook, whatever its type.
    owner: O,
}

/// One allocation per call: what the layers share of it (its identity, kind and
/// [`CurrentCall`]: request extensions it needs not have), the counts, the guests' hooks
/// and the owner's hook.
struct Shared<O: ?Sized> {
    identity: OnceLock<RpcIdentity>,
    call: OnceLock<CurrentCall>,
    /// Request messages received, and [`REQUEST_FAILED`].
    received: AtomicU64,
    /// The call's [`RpcKind`], as the first layer that knew it noted it.
    kind: AtomicU8,
    hooks: Mutex<Hooks<O>>,
}

/// The observer of one call, in its request extensions; see the [module docs](self).
#[derive(Clone)]
pub struct CallObserver {
    shared: Arc<Shared<dyn OwnerSlot>>,
}

impl std::fmt::Debug for CallObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallObserver")
            .field("messages_received", &self.messages_received())
            .field("ended", &self.lock().ended)
            .finish()
    }
}

impl CallObserver {
    fn new(owner: impl CallHook) -> Self {
        let shared: Arc<Shared<dyn OwnerSlot>> = Arc::new(Shared {
            identity: OnceLock::new(),
            call: OnceLock::new(),
            received: AtomicU64::new(0),
            kind: AtomicU8::new(RpcKind::Unknown as u8),
            hooks: Mutex::new(Hooks {
                ended: false,
                guests: Guests::new(),
                owner: Some(owner),
            }),
        });
        Self { shared }
    }

    fn lock(&self) -> MutexGuard<'_, Hooks<dyn OwnerSlot>> {
        // A hook that panicked leaves the hooks as they were: still usable.
        self.shared
            .hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Attaches `hook` (boxed); a call that already ended reports its end to it at once.
    pub fn attach(&self, hook: impl CallHook) {
        self.join(hook, |hook| Guest::Boxed(Box::new(hook)));
    }

    /// Attaches a [`SharedCallHook`] without an allocation; a call that already ended
    /// reports its end to it at once.
    pub fn attach_shared(&self, hook: Arc<dyn SharedCallHook>) {
        self.join(SharedGuest::new(hook), Guest::Shared);
    }

    fn join<H: CallHook>(&self, hook: H, guest: impl FnOnce(H) -> Guest) {
        let mut hooks = self.lock();
        if !hooks.ended {
            hooks.guests.push(guest(hook));
            return;
        }
        drop(hooks);
        let mut hook = hook;
        hook.on_end(&CallEnd {
            code: Code::Cancelled,
            source: OutcomeSource::Dropped,
            messages_received: self.messages_received(),
            messages_sent: 0,
        });
    }

    /// The call's identity, once a layer [noted](Self::note_identity) it;
    /// [`RpcIdentity::get_or_insert`] and [`RpcIdentity::from_request`] look here.
    pub fn identity(&self) -> Option<&RpcIdentity> {
        self.shared.identity.get()
    }

    /// Notes the call's identity for the layers further in (the first noted stays), instead
    /// of a request extension of its own.
    pub fn note_identity(&self, identity: RpcIdentity) {
        let _ = self.shared.identity.set(identity);
    }

    /// The call being served, once a layer [noted](Self::note_call) it;
    /// [`CurrentCall::from_extensions`] looks here.
    pub fn call(&self) -> Option<&CurrentCall> {
        self.shared.call.get()
    }

    /// Notes the call being served for the layers further in (the first noted stays),
    /// instead of a request extension of its own.
    pub fn note_call(&self, call: CurrentCall) {
        let _ = self.shared.call.set(call);
    }

    /// The call's kind, as a layer that knew it [noted](Self::note_kind) it (`Unknown`
    /// until then). [`RpcKind::of`] looks here.
    pub fn kind(&self) -> RpcKind {
        RpcKind::from_u8(self.shared.kind.load(Ordering::Relaxed))
    }

    /// Notes the call's kind for the layers further in (the first known kind stays). Sharing
    /// it here instead of in a request extension of its own saves the call an allocation.
    pub fn note_kind(&self, kind: RpcKind) {
        if kind != RpcKind::Unknown {
            let _ = self.shared.kind.compare_exchange(
                RpcKind::Unknown as u8,
                kind as u8,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Complete request messages received so far.
    pub fn messages_received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed) & !REQUEST_FAILED
    }

    /// Whether the request stream failed (the client reset it or went away).
    pub fn request_failed(&self) -> bool {
        self.shared.received.load(Ordering::Relaxed) & REQUEST_FAILED != 0
    }

    fn each(&self, f: impl Fn(&mut dyn CallHook)) {
        let mut hooks = self.lock();
        if hooks.ended {
            return;
        }
        if let Some(owner) = hooks.owner.hook() {
            f(owner);
        }
        for guest in hooks.guests.iter_mut() {
            f(guest.hook());
        }
    }

    /// Ends the call: every hook learns `outcome`, once, the owner's first; later ends do
    /// nothing. Hooks must not call back into the observer.
    fn end(&self, outcome: Outcome) {
        let mut hooks = self.lock();
        if std::mem::replace(&mut hooks.ended, true) {
            return;
        }
        let code = if self.request_failed() {
            Code::Cancelled
        } else {
            outcome.code
        };
        let end = CallEnd {
            code,
            source: outcome.source,
            messages_received: self.messages_received(),
            messages_sent: outcome.messages_sent,
        };
        if let Some(owner) = hooks.owner.hook() {
            owner.on_end(&end);
        }
        let mut guests = std::mem::take(&mut hooks.guests);
        drop(hooks);
        for guest in guests.iter_mut() {
            guest.hook().on_end(&end);
        }
    }
}

/// The request side: counts messages into the observer, marks a failed request stream.
struct RequestSide(CallObserver);

impl RequestEvents for RequestSide {
    fn messages(&mut self, count: u64) {
        self.0.shared.received.fetch_add(count, Ordering::Relaxed);
        self.0.each(|hook| hook.on_messages_received(count));
    }

    fn failed(&mut self) {
        self.0
            .shared
            .received
            .fetch_or(REQUEST_FAILED, Ordering::Relaxed);
    }
}

/// What the owner's response body reports to: every hook.
pub struct Fanout(CallObserver);

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Fanout").field(&self.0).finish()
    }
}

impl OnOutcome for Fanout {
    fn on_outcome(self, outcome: Outcome) {
        self.0.end(outcome);
    }

    fn on_messages_sent(&mut self, count: u64) {
        self.0.each(|hook| hook.on_messages_sent(count));
    }
}

/// A layer's part in one call, from [`watch`]: the owner (the outermost watching layer)
/// observes the response and reports the end; any other layer passes its response through.
///
/// Dropped before [`respond`](Self::respond) or [`fail`](Self::fail) (the call was cancelled
/// before its response), the owner ends the call as `Cancelled`.
#[derive(Debug)]
pub struct Watch {
    owner: Option<CallObserver>,
}

impl Watch {
    /// Whether this layer started the call's observer.
    pub fn is_owner(&self) -> bool {
        self.owner.is_some()
    }

    /// The response, observed by the owner; passed through by any other layer.
    pub fn respond<B>(
        mut self,
        response: http::Response<B>,
    ) -> http::Response<ObservedBody<B, Fanout>>
    where
        B: http_body::Body<Data = Bytes>,
    {
        match self.owner.take() {
            Some(observer) => observe(response, Fanout(observer)),
            None => response.map(ObservedBody::unobserved),
        }
    }

    /// The inner service failed with `error` instead of answering: the owner ends the call
    /// with the code the error stands for ([`code_from_error_of`]).
    pub fn fail<E: 'static>(mut self, error: &E) {
        if let Some(observer) = self.owner.take() {
            observer.end(Outcome {
                code: code_from_error_of(error),
                source: OutcomeSource::ServiceError,
                messages_sent: 0,
            });
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(observer) = self.owner.take() {
            observer.end(Outcome {
                code: Code::Cancelled,
                source: OutcomeSource::Dropped,
                messages_sent: 0,
            });
        }
    }
}

/// Attaches `hook` to the call of `request`: joins the observer an outer layer started, or
/// starts one (wrapping the request body once to count its messages) when this layer is the
/// outermost that watches.
pub fn watch<B>(
    request: http::Request<B>,
    hook: impl CallHook,
) -> (http::Request<tonic::body::Body>, Watch)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    start_or_join(request, hook, CallObserver::attach)
}

/// [`watch`] for a [`SharedCallHook`]: the hook rides in the call's observer without an
/// allocation of its own, whether it starts the observer or joins it.
pub fn watch_shared<B>(
    request: http::Request<B>,
    hook: Arc<dyn SharedCallHook>,
) -> (http::Request<tonic::body::Body>, Watch)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    start_or_join(request, SharedGuest::new(hook), |observer, guest| {
        observer.join(guest, Guest::Shared)
    })
}

/// Joins the observer of `request` with `join`, or starts one owned by `hook`.
fn start_or_join<B, H: CallHook>(
    mut request: http::Request<B>,
    hook: H,
    join: impl FnOnce(&CallObserver, H),
) -> (http::Request<tonic::body::Body>, Watch)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    if let Some(observer) = request.extensions().get::<CallObserver>() {
        join(observer, hook);
        let request = request.map(crate::tonic_body);
        return (request, Watch { owner: None });
    }
    let observer = CallObserver::new(hook);
    request.extensions_mut().insert(observer.clone());
    let side = RequestSide(observer.clone());
    let request = request.map(|body| tonic::body::Body::new(CountedBody::new(body, side)));
    (
        request,
        Watch {
            owner: Some(observer),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::time::Instant;

    type Ends = Arc<Mutex<Vec<(&'static str, CallEnd)>>>;

    struct Named(&'static str, Ends, Arc<AtomicU64>);

    impl CallHook for Named {
        fn on_messages_received(&mut self, count: u64) {
            self.2.fetch_add(count, Ordering::Relaxed);
        }

        fn on_end(&mut self, end: &CallEnd) {
            self.1.lock().unwrap().push((self.0, *end));
        }
    }

    #[test]
    fn the_first_known_kind_noted_is_the_calls_kind_and_an_extension_of_yours_wins() {
        let request = http::Request::new(http_body_util::Empty::<Bytes>::new());
        assert_eq!(RpcKind::of(request.extensions()), RpcKind::Unknown);
        let (request, _watch) = watch(request, Named("o", Ends::default(), Arc::default()));
        let observer = request
            .extensions()
            .get::<CallObserver>()
            .expect("observer")
            .clone();
        observer.note_kind(RpcKind::Unknown);
        assert_eq!(RpcKind::of(request.extensions()), RpcKind::Unknown);
        observer.note_kind(RpcKind::ServerStreaming);
        observer.note_kind(RpcKind::Unary);
        assert_eq!(observer.kind(), RpcKind::ServerStreaming);
        assert_eq!(RpcKind::of(request.extensions()), RpcKind::ServerStreaming);
        let mut request = request;
        request.extensions_mut().insert(RpcKind::BidiStreaming);
        assert_eq!(RpcKind::of(request.extensions()), RpcKind::BidiStreaming);
    }

    /// A shared hook: request messages and ends, by label.
    #[derive(Default)]
    struct Tally {
        received: AtomicU64,
        ends: Mutex<Vec<Code>>,
    }

    impl SharedCallHook for Tally {
        fn on_messages_received(&self, count: u64) {
            self.received.fetch_add(count, Ordering::Relaxed);
        }

        fn on_end(&self, _started: Instant, end: &CallEnd) {
            self.ends.lock().unwrap().push(end.code);
        }
    }

    #[tokio::test]
    async fn a_shared_hook_owning_or_joining_is_told_the_messages_and_the_end_once() {
        let body = || http_body_util::Full::new(Bytes::from_iter([message(), message()].concat()));
        // Owner: the shared hook starts the observer; another hook joins.
        let owner = Arc::new(Tally::default());
        let ends: Ends = Arc::default();
        let (request, outer) = watch_shared(http::Request::new(body()), owner.clone());
        let (request, inner) = watch(request, Named("inner", ends.clone(), Arc::default()));
        request.into_body().collect().await.unwrap();
        let response: http::Response<http_body_util::Empty<Bytes>> =
            crate::reject(tonic::Status::not_found("gone"));
        let response = outer.respond(inner.respond(response));
        response.into_body().collect().await.unwrap();
        assert_eq!(owner.received.load(Ordering::Relaxed), 2);
        assert_eq!(*owner.ends.lock().unwrap(), [Code::NotFound]);
        assert_eq!(ends.lock().unwrap().len(), 1);

        // Joined: a boxed hook owns, the shared one joins; dropped before a response, the
        // call ends Cancelled for both, once.
        let joined = Arc::new(Tally::default());
        let ends: Ends = Arc::default();
        let (request, outer) = watch(
            http::Request::new(body()),
            Named("outer", ends.clone(), Arc::default()),
        );
        let (request, inner) = watch_shared(request, joined.clone());
        assert!(!inner.is_owner());
        request.into_body().collect().await.unwrap();
        drop(inner);
        drop(outer);
        assert_eq!(joined.received.load(Ordering::Relaxed), 2);
        assert_eq!(*joined.ends.lock().unwrap(), [Code::Cancelled]);
        assert_eq!(ends.lock().unwrap().len(), 1);
    }

    fn message() -> Bytes {
        Bytes::from_static(b"\0\0\0\0\x02hi")
    }

    #[tokio::test]
    async fn one_body_wrap_every_hook_told_once_with_the_request_count() {
        let ends: Ends = Arc::default();
        let live = Arc::new(AtomicU64::new(0));
        let body =
            http_body_util::Full::new(Bytes::from_iter([message(), message(), message()].concat()));
        let request = http::Request::new(body);
        let (request, outer) = watch(request, Named("outer", ends.clone(), live.clone()));
        let (request, inner) = watch(request, Named("inner", ends.clone(), live.clone()));
        let collected = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(collected.len(), 21);
        // Counted once (by the owner's wrapper), told live to both hooks.
        assert_eq!(live.load(Ordering::Relaxed), 6);

        let response = http::Response::new(http_body_util::Full::new(message()));
        let response = outer.respond(inner.respond(response));
        let collected = response.into_body().collect().await.unwrap();
        assert_eq!(collected.to_bytes(), message());
        let ends = ends.lock().unwrap();
        let names: Vec<_> = ends.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["outer", "inner"]);
        for (_, end) in ends.iter() {
            assert_eq!(
                *end,
                CallEnd {
                    code: Code::Unknown,
                    source: OutcomeSource::EndOfStream,
                    messages_received: 3,
                    messages_sent: 1,
                }
            );
        }
    }

    #[tokio::test]
    async fn a_failed_request_stream_ends_cancelled() {
        let ends: Ends = Arc::default();
        let live = Arc::new(AtomicU64::new(0));
        let body = Script(
            [
                Ok(http_body::Frame::data(message())),
                Err(std::io::Error::other("reset")),
            ]
            .into(),
        );
        let (request, owner) = watch(http::Request::new(body), Named("o", ends.clone(), live));
        assert!(request.into_body().collect().await.is_err());
        let response: http::Response<http_body_util::Empty<Bytes>> =
            crate::reject(tonic::Status::internal("the handler saw a broken stream"));
        drop(owner.respond(response));
        let ends = ends.lock().unwrap();
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].1.code, Code::Cancelled);
        assert_eq!(ends[0].1.messages_received, 1);
    }

    #[test]
    fn dropped_before_the_response_is_cancelled_once() {
        let ends: Ends = Arc::default();
        let live = Arc::new(AtomicU64::new(0));
        let request = http::Request::new(http_body_util::Empty::<Bytes>::new());
        let (request, outer) = watch(request, Named("outer", ends.clone(), live.clone()));
        let (_request, inner) = watch(request, Named("inner", ends.clone(), live));
        drop(inner);
        assert!(ends.lock().unwrap().is_empty(), "a guest never reports");
        drop(outer);
        let ends = ends.lock().unwrap();
        assert_eq!(ends.len(), 2);
        assert!(ends.iter().all(|(_, end)| end.code == Code::Cancelled
            && end.source == OutcomeSource::Dropped));
    }

    #[test]
    fn a_service_error_ends_with_its_code() {
        let ends: Ends = Arc::default();
        let live = Arc::new(AtomicU64::new(0));
        let request = http::Request::new(http_body_util::Empty::<Bytes>::new());
        let (_request, owner) = watch(request, Named("o", ends.clone(), live));
        let error: crate::BoxError = Box::new(tonic::Status::deadline_exceeded("too slow"));
        owner.fail(&error);
        let ends = ends.lock().unwrap();
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].1.code, Code::DeadlineExceeded);
        assert_eq!(ends[0].1.source, OutcomeSource::ServiceError);
    }

    /// A request body that yields its frames, then the given error.
    struct Script(std::collections::VecDeque<Result<http_body::Frame<Bytes>, std::io::Error>>);

    impl http_body::Body for Script {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Ready(self.0.pop_front())
        }
    }
}
