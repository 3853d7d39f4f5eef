//! What the validation layer's integration tests share: the validated test service on a real
//! tonic server behind a layer.

use tonic::service::Routes;
use tonic::transport::Server;
use tonic_blueprint_testkit::{
    TestServer, TestService, VALIDATED_DESCRIPTOR_SET, ValidatedTestService,
};
use tonic_blueprint_validation::RequestValidationLayer;

/// The validated test service on 127.0.0.1 behind `layer`, and the service (for its counts).
pub(crate) async fn serve(layer: RequestValidationLayer) -> (TestServer, ValidatedTestService) {
    let service = ValidatedTestService::default();
    let routes = Routes::new(service.clone().into_server());
    let server = TestServer::start_routes(
        Server::builder().layer(layer),
        routes,
        TestService::default(),
    )
    .await;
    (server, service)
}

/// The layer for the validated test service's descriptors, every check on the engine.
pub(crate) fn layer() -> RequestValidationLayer {
    RequestValidationLayer::from_descriptors(VALIDATED_DESCRIPTOR_SET).expect("layer")
}
