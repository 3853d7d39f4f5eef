//! Verified callers for tonic services.
//!
//! [`AuthLayer`] proves who calls before anything is keyed on the caller, and stores an
//! [`Identity`] in the request extensions for the layers below (rate limit, cache, logs) and
//! for the handlers (`Identity::require(&request)?`):
//!
//! - `authorization: Bearer <JWT>`, verified with [jsonwebtoken]: HS256/384/512,
//!   RS256/384/512, PS256/384/512, ES256/384, EdDSA (`none` never); `exp` required, `nbf`
//!   checked, `iss` and `aud` when configured, a configurable leeway (30 s). Keys from a secret
//!   or PEM ([`JwtVerifier`]), or from a JWKS URL ([`Jwks`]) fetched at start-up, refreshed in
//!   the background (bounded retries, the last good set kept when a refresh fails) and once
//!   early when a token names a `kid` the set does not have (at most one early refresh per
//!   interval, so made-up `kid`s cannot turn into a fetch per call); a verified token is
//!   remembered (bounded, until its `exp` and at most a minute) so that a client sending the
//!   same token on every call pays for the signature check once;
//! - API keys in `x-api-key` (or another metadata key), kept as SHA-256 hashes and compared
//!   in constant time ([`ApiKeys`]), each naming a subject and scopes;
//! - the connection's own identity (such as a verified client certificate's subject) through
//!   [`AuthLayer::peer_identity`];
//! - per method ([`Access`], through the method policy): required scopes, anonymous calls
//!   allowed, or public. The health and reflection services are public by default.
//!
//! Refusals are trailers-only UNAUTHENTICATED ("missing credentials", "invalid credentials",
//! "expired credentials") or PERMISSION_DENIED ("permission denied"), with the text in the
//! caller's language in a `google.rpc.LocalizedMessage` detail, and never say which check
//! failed. Each is counted in
//! `grpc_server_auth_failures_total{reason}` (`missing`, `invalid`, `expired`, `forbidden`).
//! The token is never logged; the logging layer's span gets the subject as `enduser.id`.
//!
//! Place it after logging and metrics (so they record its refusals) and before rate limit,
//! validation and cache (so those key on the verified caller), as the preset stack does.
//!
//! ```no_run
//! use tonic::transport::Server;
//! use tonic_blueprint_auth::{Access, ApiKeys, AuthLayer, Jwks, JwtVerifier};
//!
//! # async fn run(routes: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
//! let jwks = Jwks::fetch("https://issuer.example/.well-known/jwks.json").await?;
//! let auth = AuthLayer::new()
//!     .jwt(JwtVerifier::new().jwks(jwks).issuer("https://issuer.example").audience("payments"))
//!     .api_keys(ApiKeys::new().hashed(ApiKeys::hash("key-from-a-secret-store"), "reports-job", ["payments:read"]))
//!     .method_access("payments.v1.PaymentService/CreatePayment".parse()?, Access::scopes(["payments:write"]));
//! Server::builder()
//!     .layer(auth)
//!     .add_routes(routes)
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Called directly, as any tower service: a call without a token never reaches the handler.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tonic_blueprint_auth::{AuthLayer, JwtVerifier};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let handler = service_fn(|_request: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! });
//! let service = AuthLayer::new()
//!     .jwt(JwtVerifier::new().secret(b"a-long-random-secret"))
//!     .layer(handler);
//! let request = http::Request::builder().uri("/shop.v1.Cart/Checkout").body(()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), http::StatusCode::OK); // never HTTP 401
//! assert_eq!(response.headers()["grpc-status"], "16"); // UNAUTHENTICATED
//! assert_eq!(response.headers()["grpc-message"], "missing%20credentials");
//! # });
//! ```
//!
//! A handler reads the caller with one call:
//!
//! ```
//! use tonic::{Request, Response, Status};
//! use tonic_blueprint_auth::Identity;
//!
//! async fn whoami(request: Request<()>) -> Result<Response<String>, Status> {
//!     let caller = Identity::require(&request)?;
//!     Ok(Response::new(caller.subject().to_owned()))
//! }
//! ```
//!
//! [jsonwebtoken]: https://docs.rs/jsonwebtoken

mod access;
mod api_key;
mod failure;
mod future;
mod jwks;
mod jwt;
mod layer;
mod service;
mod token_cache;

pub use access::Access;
pub use api_key::{ApiKeys, MAX_API_KEY_BYTES};
pub use failure::Failure;
pub use future::ResponseFuture;
pub use jsonwebtoken::{Algorithm, DecodingKey};
pub use jwks::{Jwks, JwksError, JwksOptions};
pub use jwt::{
    DEFAULT_ALGORITHMS, DEFAULT_TOKEN_CACHE_CAPACITY, DEFAULT_TOKEN_CACHE_TTL, JwtVerifier,
    KeyError, MAX_SCOPES, MAX_TOKEN_BYTES,
};
pub use layer::{AuthLayer, DEFAULT_API_KEY_HEADER};
pub use service::Auth;
pub use tonic_blueprint_core::MethodKey;
pub use tonic_blueprint_core::{AuthMethod, Identity};
