//! The auth layer over a real socket: every refusal with its status, trailers-only, and the
//! identity the handler side receives.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tonic::Code;
use tonic_blueprint_auth::{Access, ApiKeys, AuthLayer, JwtVerifier};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{RawResponse, TestServer, UNARY};

const CLIENT_STREAM: &str = "/blueprint.test.v1.TestService/ClientStream";

fn layer() -> AuthLayer {
    AuthLayer::new()
        .jwt(
            JwtVerifier::new()
                .secret(SECRET)
                .issuer("https://issuer.test")
                .audience("blueprint-tests"),
        )
        .api_keys(ApiKeys::new().key("k-reports-0123456789", "reports-job", ["reports"]))
        .method_access(
            CLIENT_STREAM[1..].parse().expect("key"),
            Access::scopes(["upload"]),
        )
}

fn good_claims(sub: &str) -> serde_json::Value {
    let mut claims = claims(sub);
    claims["iss"] = json!("https://issuer.test");
    claims["aud"] = json!("blueprint-tests");
    claims
}

async fn call(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let response = server
        .raw()
        .call(path, &[TestRequest::echo("x")], headers)
        .await
        .expect("call");
    assert_eq!(response.status, http::StatusCode::OK, "never an HTTP error");
    response
}

fn assert_refused(response: &RawResponse, code: Code, message: &str) {
    assert_eq!(
        response.grpc_status(),
        Some(code),
        "{}",
        response.all_text()
    );
    assert_eq!(response.grpc_message().as_deref(), Some(message));
    assert!(response.is_trailers_only(), "a refusal is trailers-only");
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_identity() {
    let (server, seen) = server(layer()).await;
    let token = hs256(&good_claims("alice"));
    let response = call(&server, UNARY, &[("authorization", &bearer(&token))]).await;
    assert_eq!(response.grpc_status(), Some(Code::Ok));
    assert_eq!(*seen.lock().unwrap(), vec![Some("alice".to_owned())]);
}

#[tokio::test]
async fn calls_without_a_valid_token_are_refused_before_the_handler() {
    let (server, seen) = server(layer()).await;

    let missing = call(&server, UNARY, &[]).await;
    assert_refused(&missing, Code::Unauthenticated, "missing credentials");

    let mut expired = good_claims("alice");
    expired["exp"] = json!(now() - 3600);
    let expired = hs256(&expired);
    let response = call(&server, UNARY, &[("authorization", &bearer(&expired))]).await;
    assert_refused(&response, Code::Unauthenticated, "expired credentials");

    let mut other_audience = good_claims("alice");
    other_audience["aud"] = json!("another-service");
    let token = hs256(&other_audience);
    let response = call(&server, UNARY, &[("authorization", &bearer(&token))]).await;
    assert_refused(&response, Code::Unauthenticated, "invalid credentials");

    let mut other_issuer = good_claims("alice");
    other_issuer["iss"] = json!("https://evil.test");
    let token = hs256(&other_issuer);
    let response = call(&server, UNARY, &[("authorization", &bearer(&token))]).await;
    assert_refused(&response, Code::Unauthenticated, "invalid credentials");

    let wrong_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good_claims("alice"),
        &EncodingKey::from_secret(b"not-the-secret").expect("key"),
    )
    .expect("sign");
    let response = call(&server, UNARY, &[("authorization", &bearer(&wrong_key))]).await;
    assert_refused(&response, Code::Unauthenticated, "invalid credentials");

    // `alg: none`, unsigned: the classic forgery.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(good_claims("mallory").to_string()),
    );
    let response = call(&server, UNARY, &[("authorization", &bearer(&none))]).await;
    assert_refused(&response, Code::Unauthenticated, "invalid credentials");

    // `exp` is required.
    let mut no_exp = good_claims("alice");
    no_exp.as_object_mut().unwrap().remove("exp");
    let response = call(
        &server,
        UNARY,
        &[("authorization", &bearer(&hs256(&no_exp)))],
    )
    .await;
    assert_refused(&response, Code::Unauthenticated, "invalid credentials");

    let mut not_yet = good_claims("alice");
    not_yet["nbf"] = json!(now() + 3600);
    let response = call(
        &server,
        UNARY,
        &[("authorization", &bearer(&hs256(&not_yet)))],
    )
    .await;
    assert_refused(&response, Code::Unauthenticated, "invalid credentials");

    for garbage in [
        "Bearer",
        "Bearer not.a.jwt",
        "Basic YWxpY2U6cHc=",
        "Bearer a.b",
    ] {
        let response = call(&server, UNARY, &[("authorization", garbage)]).await;
        assert_refused(&response, Code::Unauthenticated, "invalid credentials");
    }
    let huge = format!("Bearer {}", "a".repeat(10_000));
    let response = call(&server, UNARY, &[("authorization", &huge)]).await;
    assert_refused(&response, Code::Unauthenticated, "invalid credentials");

    assert!(
        seen.lock().unwrap().is_empty(),
        "no refused call reached the handler"
    );
}

#[tokio::test]
async fn a_self_declared_user_header_is_not_an_identity() {
    let (server, seen) = server(layer()).await;
    let response = call(&server, UNARY, &[("x-user-id", "alice")]).await;
    assert_refused(&response, Code::Unauthenticated, "missing credentials");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_method_requiring_a_scope_refuses_a_caller_without_it() {
    let (server, seen) = server(layer()).await;
    let plain = hs256(&good_claims("alice"));
    let response = call(
        &server,
        CLIENT_STREAM,
        &[("authorization", &bearer(&plain))],
    )
    .await;
    assert_refused(&response, Code::PermissionDenied, "permission denied");

    let mut scoped = good_claims("bob");
    scoped["scope"] = json!("read upload");
    let scoped = hs256(&scoped);
    let response = call(
        &server,
        CLIENT_STREAM,
        &[("authorization", &bearer(&scoped))],
    )
    .await;
    assert_eq!(response.grpc_status(), Some(Code::Ok));
    assert_eq!(*seen.lock().unwrap(), vec![Some("bob".to_owned())]);
}

#[tokio::test]
async fn api_keys_prove_their_owner_and_unknown_keys_are_refused() {
    let (server, seen) = server(layer()).await;
    let response = call(&server, UNARY, &[("x-api-key", "k-reports-0123456789")]).await;
    assert_eq!(response.grpc_status(), Some(Code::Ok));
    let response = call(&server, UNARY, &[("x-api-key", "k-reports-0123456788")]).await;
    assert_refused(&response, Code::Unauthenticated, "invalid credentials");
    assert_eq!(*seen.lock().unwrap(), vec![Some("reports-job".to_owned())]);
}

#[tokio::test]
async fn anonymous_methods_pass_without_a_credential_but_not_with_a_bad_one() {
    let auth = layer().method_access(UNARY[1..].parse().expect("key"), Access::Anonymous);
    let (server, seen) = server(auth).await;
    let response = call(&server, UNARY, &[]).await;
    assert_eq!(response.grpc_status(), Some(Code::Ok));
    let response = call(
        &server,
        UNARY,
        &[("authorization", "Bearer forged.token.here")],
    )
    .await;
    assert_refused(&response, Code::Unauthenticated, "invalid credentials");
    assert_eq!(*seen.lock().unwrap(), vec![None]);
}

#[tokio::test]
async fn refusals_speak_the_callers_language() {
    let (server, _) = server(layer()).await;
    // grpc-message stays English (for developers); the caller's language is in a
    // LocalizedMessage detail. English callers get no details.
    let response = call(&server, UNARY, &[("grpc-accept-language", "es")]).await;
    assert_refused(&response, Code::Unauthenticated, "missing credentials");
    assert_eq!(
        response.localized_message(),
        Some(("es".into(), "faltan las credenciales".into()))
    );
    let response = call(&server, UNARY, &[]).await;
    assert_refused(&response, Code::Unauthenticated, "missing credentials");
    assert_eq!(response.localized_message(), None);
}

#[tokio::test]
async fn health_checks_are_public_by_default() {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let service = tonic_blueprint_testkit::TestService::default();
    let routes = tonic::service::Routes::new(service.clone().into_server()).add_service(health);
    let server = TestServer::start_routes(
        tonic::transport::Server::builder().layer(layer()),
        routes,
        service,
    )
    .await;
    let channel = tonic::transport::Channel::from_shared(server.uri())
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = client
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health is public")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // The test service next to it still needs a token.
    let response = call(&server, UNARY, &[]).await;
    assert_refused(&response, Code::Unauthenticated, "missing credentials");
}
