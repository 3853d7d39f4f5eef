//! The service: lookup, single-flight, handler, store.

use crate::body::CacheBody;
use crate::entry::CachedResponse;
use crate::flight::{Outcome, Role};
use crate::invalidate::budget;
use crate::layer::{Count, Shared};
use crate::store::Generation;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tonic_blueprint_core::{BoxError, Deadline, Identity, RpcIdentity, read_unary_request, reject};
use tower_service::Service;

/// `x-cache` on responses of cached methods.
pub const X_CACHE: &str = "x-cache";
/// [`X_CACHE`] as a header name: inserted without parsing the name each time.
const X_CACHE_NAME: http::HeaderName = http::HeaderName::from_static(X_CACHE);

/// Middleware that caches unary responses; see the [crate docs](crate).
#[derive(Clone)]
pub struct ResponseCache<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for ResponseCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> ResponseCache<S> {
    /// `inner` behind the configuration of `layer` (what [`Layer::layer`] does; clones share
    /// one cache).
    ///
    /// [`Layer::layer`]: tower_layer::Layer::layer
    pub fn new(inner: S, layer: &crate::ResponseCacheLayer) -> Self {
        tower_layer::Layer::layer(layer, inner)
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    tonic_blueprint_core::inner_accessors!();
}

type Boxed<B> =
    Pin<Box<dyn Future<Output = Result<http::Response<CacheBody<B>>, BoxError>> + Send>>;

pin_project! {
    /// Response future of [`ResponseCache`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // A method that is not cached.
        Passthrough { #[pin] future: F },
        // Lookup, then the handler if needed.
        Cached { future: Boxed<B> },
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<CacheBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Passthrough { future } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                Poll::Ready(Ok(response.map(CacheBody::inner)))
            }
            StateProj::Cached { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for ResponseCache<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<CacheBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let id = RpcIdentity::get_or_insert(&mut request);
        let Some(ttl) = self.shared.ttl(&id) else {
            let request = request.map(tonic_blueprint_core::tonic_body);
            return ResponseFuture {
                state: State::Passthrough {
                    future: self.inner.call(request),
                },
            };
        };
        // The lookup is asynchronous: take the ready service and go.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        ResponseFuture {
            state: State::Cached {
                future: Box::pin(cached_call(shared, inner, request, id, ttl)),
            },
        }
    }
}

fn skips_lookup(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
}

fn replay<B>(entry: &CachedResponse, x_cache: &'static str) -> http::Response<CacheBody<B>> {
    replay_owned(entry.clone(), x_cache)
}

/// [`replay`] of an entry decoded for this call alone: its maps move instead of being cloned.
fn replay_owned<B>(entry: CachedResponse, x_cache: &'static str) -> http::Response<CacheBody<B>> {
    let mut response = http::Response::new(CacheBody::stored(entry.body, entry.trailers));
    *response.headers_mut() = entry.headers;
    response
        .headers_mut()
        .insert(X_CACHE_NAME, HeaderValue::from_static(x_cache));
    response
}

async fn cached_call<S, ReqBody, ResBody>(
    shared: Arc<Shared>,
    mut inner: S,
    request: http::Request<ReqBody>,
    id: RpcIdentity,
    ttl: Duration,
) -> Result<http::Response<CacheBody<ResBody>>, BoxError>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>,
    S::Error: Into<BoxError>,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let unary = match read_unary_request(body, shared.max_request_bytes).await {
        Ok(unary) => unary,
        Err(e) => {
            let lang = tonic_blueprint_core::catalogue::Lang::from_headers(&parts.headers);
            return Ok(reject(e.to_status_in(lang)));
        }
    };
    let handler_request = |unary: tonic_blueprint_core::UnaryRequest| {
        http::Request::from_parts(parts.clone(), tonic::body::Body::new(unary.into_body()))
    };
    if unary.is_compressed() {
        // The key must not depend on how the client chose to compress: bypass.
        let response = inner
            .call(handler_request(unary))
            .await
            .map_err(Into::into)?;
        return Ok(response.map(CacheBody::inner));
    }
    let key = shared.key(
        &id,
        &unary.message(),
        &parts.headers,
        parts.extensions.get::<Identity>(),
    );

    let deadline = parts.extensions.get::<Deadline>().copied();
    let limit = budget(shared.lookup_timeout, deadline.as_ref());

    // The generation the store was at before the handler runs: an answer is stored only if
    // nothing it carries was invalidated since. Unknown (the store failed) means not stored.
    let mut since = None;
    if skips_lookup(&parts.headers) {
        if let Ok(Ok(generation)) = tokio::time::timeout(limit, shared.store.generation()).await {
            since = Some(generation);
        }
    } else {
        match tokio::time::timeout(limit, shared.store.lookup(key)).await {
            Ok(Ok((Some(stored), generation))) => {
                if let Some(entry) = CachedResponse::decode(stored) {
                    shared.count(&id, Count::Hit);
                    return Ok(replay_owned(entry, "hit"));
                }
                since = Some(generation);
            }
            Ok(Ok((None, generation))) => since = Some(generation),
            Ok(Err(e)) => {
                shared.count(&id, Count::Error);
                tracing::warn!(error = %e, grpc.method = id.method(), "cache lookup failed");
            }
            Err(_) => {
                shared.count(&id, Count::Error);
                tracing::warn!(grpc.method = id.method(), "cache lookup timed out");
            }
        }
    }
    shared.count(&id, Count::Miss);

    let leader = loop {
        match shared.flights.join(key) {
            Role::Leader(leader) => break Some(leader),
            Role::Follower(flight) => match flight.wait().await {
                Outcome::Shared(entry) => return Ok(replay(&entry, "hit")),
                // The same question got an error a moment ago: the same answer, no new run.
                Outcome::Failed(entry) => return Ok(replay(&entry, "miss")),
                // Served but too large to share: run the handler ourselves.
                Outcome::Unshared => break None,
                // The leader went away: the first of us to rejoin leads, the rest wait again.
                Outcome::Abandoned => continue,
            },
        }
    };

    let response = inner
        .call(handler_request(unary))
        .await
        .map_err(Into::into)?;
    if response.status() != http::StatusCode::OK {
        // Not a gRPC answer: never stored nor shared; a waiter retries.
        return Ok(response.map(CacheBody::inner));
    }
    let (mut head, body) = response.into_parts();
    let tags = crate::invalidate::take_tags(&mut head.headers, &id);
    head.headers
        .insert(X_CACHE_NAME, HeaderValue::from_static("miss"));
    if head
        .headers
        .contains_key(tonic_blueprint_core::headers::GRPC_STATUS)
    {
        // Trailers-only: an error (or a rejection). Never stored; handed to the waiters.
        let entry = Arc::new(CachedResponse {
            headers: head.headers.clone(),
            body: Bytes::new(),
            trailers: HeaderMap::new(),
        });
        if let Some(leader) = leader {
            leader.land(Outcome::Failed(entry));
        }
        return Ok(http::Response::from_parts(head, CacheBody::inner(body)));
    }
    let mut buffered = BytesMut::new();
    let mut trailers = None;
    // Pinned in a box: read in place, and when too large to keep, handed on half-read, with
    // no `Unpin` demanded of the handler's body (any layer may sit below this one).
    let mut body = Box::pin(body);
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame.map_err(Into::into)?;
        match frame.into_data() {
            Ok(data) => {
                if buffered.len() + data.len() > shared.max_entry_bytes {
                    // Too large to keep: send what we have and stream the rest.
                    buffered.extend_from_slice(&data);
                    if let Some(leader) = leader {
                        leader.land(Outcome::Unshared);
                    }
                    return Ok(http::Response::from_parts(
                        head,
                        CacheBody::prefixed(buffered.freeze(), body),
                    ));
                }
                buffered.extend_from_slice(&data);
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    let trailers = trailers.unwrap_or_default();
    let ok = trailers
        .get(tonic_blueprint_core::headers::GRPC_STATUS)
        .is_some_and(|s| s == "0");
    let entry = Arc::new(CachedResponse {
        headers: head.headers.clone(),
        body: buffered.freeze(),
        trailers,
    });
    if ok {
        store(
            &shared,
            &id,
            key,
            &entry,
            tags,
            ttl,
            since,
            deadline.as_ref(),
        )
        .await;
    }
    if let Some(leader) = leader {
        leader.land(if ok {
            Outcome::Shared(entry.clone())
        } else {
            Outcome::Failed(entry.clone())
        });
    }
    let mut response = replay(&entry, "miss");
    *response.headers_mut() = head.headers;
    Ok(response)
}

/// Stores an OK answer, unless its tags cannot be read, the generation before the handler is
/// unknown, or something it carries was invalidated since (the store refuses).
#[allow(clippy::too_many_arguments)]
async fn store(
    shared: &Shared,
    id: &RpcIdentity,
    key: u64,
    entry: &CachedResponse,
    tags: Option<Vec<String>>,
    ttl: Duration,
    since: Option<Generation>,
    deadline: Option<&Deadline>,
) {
    let Some(tags) = tags else {
        tracing::warn!(
            grpc.method = id.method(),
            "response not cached: its x-cache-tags are not UTF-8 or more than 16"
        );
        return;
    };
    let Some(since) = since else { return };
    let limit = budget(shared.lookup_timeout, deadline);
    let filled = shared.store.fill(key, entry.encode(), &tags, ttl, since);
    match tokio::time::timeout(limit, filled).await {
        Ok(Ok(true)) => shared.count(id, Count::Set),
        Ok(Ok(false)) => {
            tracing::debug!(
                grpc.method = id.method(),
                "response not cached: invalidated while it was computed"
            );
        }
        Ok(Err(e)) => {
            shared.count(id, Count::Error);
            tracing::warn!(error = %e, grpc.method = id.method(), "cache store failed");
        }
        Err(_) => {
            shared.count(id, Count::Error);
            tracing::warn!(grpc.method = id.method(), "cache store timed out");
        }
    }
}
