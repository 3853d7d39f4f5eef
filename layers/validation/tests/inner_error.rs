//! The inner service's error type is kept: a validated call whose handler fails with an error
//! of its own type gets that very error back, on the checked path (a unary message read and
//! checked first) and on the path with nothing to check.

use tonic_blueprint_testkit::pb::{CreateRequest, TestRequest};
use tonic_blueprint_testkit::{CREATE, VALIDATED_DESCRIPTOR_SET, grpc_http_request};
use tonic_blueprint_validation::RequestValidationLayer;
use tower::{Layer, ServiceExt, service_fn};

#[derive(Debug, PartialEq)]
struct StoreDown(&'static str);

#[tokio::test]
async fn the_handlers_own_error_comes_back_unchanged() {
    let layer = RequestValidationLayer::from_descriptors(VALIDATED_DESCRIPTOR_SET).expect("layer");
    let failing = service_fn(|_: http::Request<tonic::body::Body>| async {
        Err::<http::Response<tonic::body::Body>, StoreDown>(StoreDown("the store is down"))
    });
    let service = layer.layer(failing);

    let checked = grpc_http_request(CREATE, &CreateRequest::valid());
    let Err(error) = service.clone().oneshot(checked).await else {
        panic!("the handler's error was answered instead");
    };
    assert_eq!(error, StoreDown("the store is down"));

    // A method without rules: the request goes straight through.
    let unchecked = tonic_blueprint_testkit::unary_http_request(&TestRequest::default());
    let Err(error) = service.oneshot(unchecked).await else {
        panic!("the handler's error was answered instead");
    };
    assert_eq!(error, StoreDown("the store is down"));
}
