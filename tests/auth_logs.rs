//! What the logs show of verified callers: `enduser.id` on the call's lines, never the token;
//! health checks at debug. Captured as JSON from the global subscriber.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use tonic::transport::Server;
use tonic_blueprint::auth::{AuthLayer, JwtVerifier};
use tonic_blueprint::logging::RequestLoggingLayer;
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{Captured, TestServer, TestService, UNARY};
use tower::ServiceBuilder;

const SECRET: &[u8] = b"log-test-secret-0123456789-abcdef";

fn logs() -> &'static Captured {
    Captured::global_json(tracing::Level::TRACE)
}

fn finished(request_id: &str) -> Value {
    let lines: Vec<Value> = logs()
        .text()
        .lines()
        .filter(|l| l.contains(request_id) && l.contains("finished call"))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    assert_eq!(lines.len(), 1, "one finishing event for {request_id}");
    lines.into_iter().next().expect("one line")
}

fn token(sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({ "sub": sub, "exp": now + 600 }),
        &EncodingKey::from_secret(SECRET).expect("key"),
    )
    .expect("sign")
}

async fn server() -> TestServer {
    logs();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let stack = ServiceBuilder::new()
        .layer(RequestLoggingLayer::new())
        .layer(AuthLayer::new().jwt(JwtVerifier::new().secret(SECRET)));
    let service = TestService::default();
    let routes = tonic::service::Routes::new(service.clone().into_server()).add_service(health);
    TestServer::start_routes(Server::builder().layer(stack), routes, service).await
}

#[tokio::test]
async fn the_verified_subject_is_logged_as_enduser_id_and_the_token_never() {
    let server = server().await;
    let token = token("alice");
    let authorization = format!("Bearer {token}");
    let response = server
        .raw()
        .call(
            UNARY,
            &[TestRequest::echo("x")],
            &[
                ("authorization", authorization.as_str()),
                ("x-request-id", "auth-log-ok-1"),
            ],
        )
        .await
        .expect("call");
    assert_eq!(response.grpc_status(), Some(tonic::Code::Ok));
    let line = finished("auth-log-ok-1");
    assert_eq!(line["span"]["enduser.id"], "alice", "{line}");

    let refused = server
        .raw()
        .call(
            UNARY,
            &[TestRequest::echo("x")],
            &[
                ("authorization", "Bearer forged.token.value"),
                ("x-request-id", "auth-log-refused-1"),
            ],
        )
        .await
        .expect("call");
    assert_eq!(refused.grpc_status(), Some(tonic::Code::Unauthenticated));
    let line = finished("auth-log-refused-1");
    assert_eq!(line["grpc.code"], "Unauthenticated", "{line}");
    assert!(line["span"].get("enduser.id").is_none(), "{line}");

    let all = logs().text();
    assert!(!all.contains(&token), "a token was logged");
    assert!(!all.contains("forged.token.value"), "a token was logged");
}

#[tokio::test]
async fn health_checks_are_logged_at_debug() {
    let server = server().await;
    let channel = tonic::transport::Channel::from_shared(server.uri())
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "auth-log-health-1".parse().expect("id"));
    client.check(request).await.expect("health is public");
    let line = finished("auth-log-health-1");
    assert_eq!(line["level"], "DEBUG", "{line}");
}
