//! Every pair of layers stacks, in both orders, in a `tower::ServiceBuilder`: it compiles (no
//! layer demands what another's body or error cannot give) and a unary call answers OK
//! through the pair, in process.
#![cfg(all(feature = "server", feature = "validation"))]

use http_body_util::BodyExt;
use std::time::Duration;
use tonic_blueprint::auth::{Access, AuthLayer};
use tonic_blueprint::cache::ResponseCacheLayer;
use tonic_blueprint::logging::RequestLoggingLayer;
use tonic_blueprint::metrics::MetricsLayer;
use tonic_blueprint::panic_recovery::PanicRecoveryLayer;
use tonic_blueprint::rate_limit::{Quota, RateLimitLayer};
use tonic_blueprint::timeout::TimeoutLayer;
use tonic_blueprint::validation::RequestValidationLayer;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{FILE_DESCRIPTOR_SET, TestService, unary_http_request};
use tower::{ServiceBuilder, ServiceExt};

fn logging() -> RequestLoggingLayer {
    RequestLoggingLayer::new()
}
fn metrics() -> MetricsLayer {
    MetricsLayer::new()
}
fn panic_recovery() -> PanicRecoveryLayer {
    PanicRecoveryLayer::new()
}
fn timeout() -> TimeoutLayer {
    TimeoutLayer::new(Duration::from_secs(30))
}
fn auth() -> AuthLayer {
    AuthLayer::new().default_access(Access::Anonymous)
}
fn rate_limit() -> RateLimitLayer {
    RateLimitLayer::new(Quota::per_minute(1_000))
}
fn validation() -> RequestValidationLayer {
    RequestValidationLayer::from_descriptors(FILE_DESCRIPTOR_SET).expect("descriptors")
}
fn cache() -> ResponseCacheLayer {
    ResponseCacheLayer::new().cache(
        "blueprint.test.v1.TestService/Unary".parse().expect("key"),
        Duration::from_secs(60),
    )
}

/// A unary call through `outer` then `inner` around the test service; its grpc-status.
macro_rules! pair {
    ($outer:ident, $inner:ident) => {{
        let service = ServiceBuilder::new()
            .layer($outer())
            .layer($inner())
            .service(TestService::default().into_server());
        let response = service
            .oneshot(unary_http_request(&TestRequest::echo("pair")))
            .await
            .unwrap_or_else(|_| panic!("{} over {}", stringify!($outer), stringify!($inner)));
        let status = match response.headers().get("grpc-status") {
            Some(status) => status.clone(),
            None => {
                let body = response.into_body().collect().await;
                let trailers = body.ok().and_then(|b| b.trailers().cloned());
                trailers
                    .and_then(|t| t.get("grpc-status").cloned())
                    .expect("a status")
            }
        };
        assert_eq!(
            status,
            "0",
            "{} over {}",
            stringify!($outer),
            stringify!($inner)
        );
    }};
}

macro_rules! every_inner {
    ($outer:ident; $($inner:ident),*) => {
        $( pair!($outer, $inner); )*
    };
}

macro_rules! every_pair {
    ($($outer:ident),*) => {
        $( every_inner!($outer; logging, metrics, panic_recovery, timeout, auth, rate_limit, validation, cache); )*
    };
}

#[tokio::test]
async fn every_pair_of_layers_stacks_in_both_orders() {
    every_pair!(
        logging,
        metrics,
        panic_recovery,
        timeout,
        auth,
        rate_limit,
        validation,
        cache
    );
}
