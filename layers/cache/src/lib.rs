//! Response caching for tonic services.
//!
//! No HTTP cache fits gRPC: they key on method and URI (every call to one RPC looks the same),
//! decide on the HTTP status (always 200) and drop trailers (which carry the gRPC status).
//! [`ResponseCacheLayer`] caches **unary** responses of the methods you opt in:
//!
//! - per method or service through the method policy ([`ResponseCacheLayer::cache`]), or every
//!   method the descriptors mark `option idempotency_level = NO_SIDE_EFFECTS`
//!   ([`ResponseCacheLayer::with_registry`]); TTL default 5 minutes;
//! - the key is a hash of the method, the request message bytes (read from the gRPC frame;
//!   compressed requests bypass the cache) and the vary metadata (`authorization`,
//!   `x-user-id`, `x-tenant-id` by default), so one caller's response is never served to
//!   another; keys hold no payload, id or credential;
//! - only OK responses are stored, with their metadata and trailers, in a compact binary form;
//!   responses carry `x-cache: hit` or `x-cache: miss`; `cache-control: no-cache` in the
//!   request skips the lookup; responses above a size cap are served but not stored;
//! - single-flight: concurrent misses for one key run the handler once and share its answer,
//!   an error status included; when the running call goes away, exactly one waiter takes
//!   over;
//! - invalidation by request, by method and by the tags a handler attaches to its response
//!   (`x-cache-tags: payment:42`; any UTF-8 tag, percent-encoded with [`tags_header`]),
//!   through a [`CacheInvalidator`] the handler awaits before it answers; stores know tags by
//!   their hash only ([`tag_hash`]);
//! - a miss that began before an invalidation of its key or one of its tags does not store
//!   its answer (the store's [`Generation`] is read with the lookup and checked by the store);
//! - a store error or slow lookup never fails a call: it goes to the handler, counted in
//!   `grpc_server_cache_errors_total` (hits, misses and sets have their counters too). Every
//!   store operation is bounded (lookups and stores 50 ms, invalidations 100 ms, Redis
//!   commands 100 ms and failing at once while disconnected), and never outlasts the call's
//!   deadline.
//!
//! The store is a trait ([`CacheStore`]); [`MokaStore`] is the in-process backend, bounded by
//! bytes; with the `redis` feature, `RedisStore` shares entries between replicas and
//! `TwoTierStore` puts moka in front of it.
//!
//! ```no_run
//! use std::time::Duration;
//! use tonic::transport::Server;
//! use tonic_blueprint_cache::ResponseCacheLayer;
//!
//! # async fn run(routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
//! Server::builder()
//!     .layer(ResponseCacheLayer::new().cache("payments.v1.PaymentService/GetPayment".parse()?, Duration::from_secs(300)))
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Called directly, as any tower service (here around the workspace's test service): the
//! second identical call is answered from the cache, without the handler.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use http_body_util::BodyExt;
//! use std::time::Duration;
//! use tonic_blueprint_cache::ResponseCacheLayer;
//! use tonic_blueprint_testkit::{TestService, pb::TestRequest, unary_http_request};
//! use tower::{Layer, ServiceExt};
//!
//! let handler = TestService::default();
//! let service = ResponseCacheLayer::new()
//!     .cache("blueprint.test.v1.TestService/Unary".parse().unwrap(), Duration::from_secs(60))
//!     .layer(handler.clone().into_server());
//! for expected in ["miss", "hit"] {
//!     let request = unary_http_request(&TestRequest::echo("hello"));
//!     let response = service.clone().oneshot(request).await.unwrap();
//!     assert_eq!(response.headers()["x-cache"], expected);
//!     let trailers = response.into_body().collect().await.unwrap().trailers().cloned();
//!     assert_eq!(trailers.unwrap()["grpc-status"], "0");
//! }
//! assert_eq!(handler.counts().started(), 1);
//! # });
//! ```

mod body;
mod broadcast;
mod client;
mod entry;
mod flight;
mod invalidate;
mod layer;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis_store;
mod service;
mod store;

pub use body::CacheBody;
pub use broadcast::{InvalidationBroadcast, decode_keys, encode_keys};
pub use client::{
    CacheClient, CacheError, CacheStats, DEFAULT_ATTEMPT_TIMEOUT, LABEL_NAMESPACE, Retry,
};
pub use entry::CachedResponse;
pub use invalidate::{
    CacheInvalidator, LABEL_OPERATION, MAX_TAGS_PER_ENTRY, TAGS_HEADER, tags_header,
};
pub use layer::{DEFAULT_INVALIDATION_TIMEOUT, DEFAULT_TTL, DEFAULT_VARY, ResponseCacheLayer};
#[cfg(feature = "nats")]
pub use nats::INVALIDATIONS_RECEIVED;
#[cfg(feature = "redis")]
pub use redis_store::{DEFAULT_COMMAND_TIMEOUT, RedisStore, TwoTierStore};
pub use service::{ResponseCache, ResponseFuture, X_CACHE};
pub use store::{CacheStore, Generation, MokaStore, StoreError, StoreFuture, tag_hash};
pub use tonic_blueprint_core::MethodKey;
