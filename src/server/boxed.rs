//! The preset stack's one boxed service: cloned without an allocation.
//!
//! hyper clones the service for every request. `tower::util::BoxCloneSyncService` clones
//! into a new box, an allocation per call; here the stack sits behind an `Arc`, so a clone is
//! a reference count and each call clones the concrete stack (plain types and `Arc`s) on the
//! stack instead. The call's future is boxed once, as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic_blueprint_core::BoxError;
use tower::{Service, ServiceExt};

type Request = http::Request<tonic::body::Body>;
type Response = http::Response<tonic::body::Body>;

/// The response future of [`BoxedService`].
pub type BoxedFuture = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send + 'static>>;

/// The type the preset stack is boxed into: a cloneable, `Sync` service of tonic requests.
///
/// Cloning it allocates nothing. It is always ready: each call drives a clone of the wrapped
/// service through `poll_ready` and `call` itself (as hyper does with the service it clones
/// for every request).
#[derive(Clone)]
pub struct BoxedService {
    stack: Arc<dyn Erased>,
}

impl BoxedService {
    /// Boxes `service`.
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
    {
        Self {
            stack: Arc::new(Stack(service)),
        }
    }
}

impl std::fmt::Debug for BoxedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxedService").finish_non_exhaustive()
    }
}

impl Service<Request> for BoxedService {
    type Response = Response;
    type Error = BoxError;
    type Future = BoxedFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> BoxedFuture {
        self.stack.call(request)
    }
}

/// A service called through a shared reference, by cloning it.
trait Erased: Send + Sync + 'static {
    fn call(&self, request: Request) -> BoxedFuture;
}

struct Stack<S>(S);

impl<S> Erased for Stack<S>
where
    S: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    fn call(&self, request: Request) -> BoxedFuture {
        let call = self.0.clone().oneshot(request);
        Box::pin(async move { call.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts its clones and is ready only every other poll.
    #[derive(Clone)]
    struct Echo {
        clones: Arc<std::sync::atomic::AtomicUsize>,
        ready: bool,
    }

    impl Service<Request> for Echo {
        type Response = Response;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response, Self::Error>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if std::mem::replace(&mut self.ready, true) {
                return Poll::Ready(Ok(()));
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }

        fn call(&mut self, request: Request) -> Self::Future {
            assert!(self.ready, "called before it was ready");
            let path = request.uri().path().to_owned();
            std::future::ready(Ok(http::Response::new(tonic::body::Body::new(
                http_body_util::Full::new(bytes::Bytes::from(path)),
            ))))
        }
    }

    impl Drop for Echo {
        fn drop(&mut self) {
            self.clones
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn each_call_waits_for_readiness_of_its_own_clone_and_answers() {
        use http_body_util::BodyExt;
        let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let boxed = BoxedService::new(Echo {
            clones: dropped.clone(),
            ready: false,
        });
        for path in ["/a.S/One", "/a.S/Two"] {
            let request = http::Request::builder()
                .uri(path)
                .body(tonic::body::Body::empty())
                .expect("request");
            let response = boxed.clone().oneshot(request).await.expect("response");
            let body = response.into_body().collect().await.expect("body");
            assert_eq!(body.to_bytes(), path.as_bytes());
        }
        // One clone per call, dropped with its call; the original is still held.
        assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 2);
        drop(boxed);
        assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 3);
    }
}
