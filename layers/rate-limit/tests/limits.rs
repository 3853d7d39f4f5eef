//! The RateLimit layer (in-process) on a real tonic server over a real socket.

use prost::Message;
use std::time::Duration;
use tonic::Code;
use tonic::transport::Server;
use tonic_blueprint_rate_limit::{KeySource, Quota, REFUSED_MESSAGE, RateLimitLayer};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{BIDI, CLIENT_STREAM, RawResponse, SERVER_STREAM, TestServer, UNARY};
use tonic_types::StatusExt;

/// A method policy key.
fn key(key: &str) -> tonic_blueprint_core::MethodKey {
    key.parse().expect("a valid key")
}

fn by_user(quota: Quota) -> RateLimitLayer {
    RateLimitLayer::new(quota).key(KeySource::Metadata("x-user-id".parse().expect("name")))
}

async fn call(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let response = server
        .raw()
        .call(path, &[TestRequest::echo("x")], headers)
        .await
        .expect("call");
    assert_eq!(
        response.status,
        http::StatusCode::OK,
        "never an HTTP error: {response:?}"
    );
    response
}

#[tokio::test]
async fn the_call_past_the_quota_is_refused_with_every_detail_while_another_key_is_not() {
    let server = TestServer::start(
        Server::builder().layer(by_user(Quota::per_minute(3)).expose_remaining(true)),
    )
    .await;
    let alice = [("x-user-id", "alice")];
    for remaining in ["2", "1", "0"] {
        let response = call(&server, UNARY, &alice).await;
        assert_eq!(response.grpc_status(), Some(Code::Ok));
        assert_eq!(
            response.headers["ratelimit"],
            format!("\"default\";r={remaining}").as_str()
        );
    }
    let refused = call(&server, UNARY, &alice).await;
    assert!(refused.is_trailers_only(), "{refused:?}");
    assert_eq!(refused.grpc_status(), Some(Code::ResourceExhausted));
    let message = refused.grpc_message().expect("message");
    assert!(message.starts_with(REFUSED_MESSAGE), "{message}");
    assert!(!message.contains("alice"), "the key is never named");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    // Strict windows free room when the oldest counted sub-window leaves the span of eleven
    // tenths of the window: between 60 and 66 s for a one-minute quota.
    assert!((1..=66).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.headers["ratelimit-policy"], "\"default\";q=3;w=60");
    assert!(
        refused.headers["ratelimit"]
            .to_str()
            .expect("text")
            .starts_with("\"default\";r=0;t=")
    );

    // google.rpc.Status in the details: code and message equal the headers (Go clients check).
    let metadata = tonic::metadata::MetadataMap::from_headers(refused.headers.clone());
    let details = metadata
        .get_bin("grpc-status-details-bin")
        .expect("details header")
        .to_bytes()
        .expect("base64");
    let status = tonic_types::Status::decode(details).expect("google.rpc.Status");
    assert_eq!(status.code, Code::ResourceExhausted as i32);
    assert_eq!(status.message, message);

    // Through tonic's client: RetryInfo and QuotaFailure.
    let mut client = server.client().await;
    let mut request = tonic::Request::new(TestRequest::echo("x"));
    request
        .metadata_mut()
        .insert("x-user-id", "alice".parse().expect("value"));
    let status = client.unary(request).await.expect_err("refused");
    let details = status.get_error_details();
    let delay = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(66),
        "{delay:?}"
    );
    let violations = &details.quota_failure().expect("QuotaFailure").violations;
    assert_eq!(violations.len(), 1);
    assert!(
        violations[0].description.contains("100") || violations[0].description.contains("3 per")
    );

    // Another caller has a quota of its own.
    assert_eq!(
        call(&server, UNARY, &[("x-user-id", "bob")])
            .await
            .grpc_status(),
        Some(Code::Ok)
    );
    assert_eq!(
        server.service().counts().started(),
        4,
        "refused calls never reach the handler"
    );
}

#[tokio::test]
async fn admitted_calls_carry_no_remaining_quota_by_default_but_refusals_do() {
    let server = TestServer::start(Server::builder().layer(by_user(Quota::per_minute(1)))).await;
    let bob = [("x-user-id", "bob")];
    let admitted = call(&server, UNARY, &bob).await;
    assert_eq!(admitted.grpc_status(), Some(Code::Ok));
    assert!(
        !admitted.headers.contains_key("ratelimit"),
        "{:?}",
        admitted.headers
    );
    let refused = call(&server, UNARY, &bob).await;
    assert_eq!(refused.grpc_status(), Some(Code::ResourceExhausted));
    assert!(refused.headers.contains_key("ratelimit"), "{refused:?}");
}

#[tokio::test]
async fn per_method_and_per_service_overrides() {
    // The service's methods share 3 calls a minute, Unary has 2 of its own, ClientStream
    // none at all; another service keeps the default.
    let layer = by_user(Quota::per_minute(100))
        .quota(key("blueprint.test.v1.TestService/*"), Quota::per_minute(3))
        .quota(
            key("blueprint.test.v1.TestService/Unary"),
            Quota::per_minute(2),
        )
        .quota(
            key("blueprint.test.v1.TestService/ClientStream"),
            Quota::refuse_all(),
        );
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let user = [("x-user-id", "carol")];
    let status = |path| {
        let server = &server;
        async move { call(server, path, &user).await.grpc_status() }
    };
    assert_eq!(status(UNARY).await, Some(Code::Ok));
    assert_eq!(status(UNARY).await, Some(Code::Ok));
    assert_eq!(status(UNARY).await, Some(Code::ResourceExhausted));
    // The per-service quota, untouched by Unary's own.
    assert_eq!(status(SERVER_STREAM).await, Some(Code::Ok));
    assert_eq!(status(BIDI).await, Some(Code::Ok));
    assert_eq!(status(SERVER_STREAM).await, Some(Code::Ok));
    assert_eq!(status(BIDI).await, Some(Code::ResourceExhausted));
    // A zero quota refuses the method.
    assert_eq!(status(CLIENT_STREAM).await, Some(Code::ResourceExhausted));
    // Paths of other services get the default quota.
    let other = call(&server, "/other.v1.Other/Get", &user).await;
    assert_eq!(
        other.grpc_status(),
        Some(Code::Unimplemented),
        "admitted, then unknown"
    );
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_key() {
    let server =
        TestServer::start(Server::builder().layer(RateLimitLayer::new(Quota::per_minute(2)))).await;
    let mut codes = Vec::new();
    for fake in ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"] {
        let response = call(
            &server,
            UNARY,
            &[("x-forwarded-for", fake), ("x-real-ip", fake)],
        )
        .await;
        codes.push(response.grpc_status());
    }
    assert_eq!(
        codes,
        [
            Some(Code::Ok),
            Some(Code::Ok),
            Some(Code::ResourceExhausted),
            Some(Code::ResourceExhausted)
        ]
    );

    // From a trusted proxy, the forwarded client is the key.
    let layer = RateLimitLayer::new(Quota::per_minute(2))
        .trusted_proxies(["127.0.0.0/8".parse().expect("net")]);
    let server = TestServer::start(Server::builder().layer(layer)).await;
    for client in ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"] {
        let response = call(
            &server,
            UNARY,
            &[("x-forwarded-for", &format!("{client}, 127.0.0.9"))],
        )
        .await;
        assert_eq!(response.grpc_status(), Some(Code::Ok), "{client}");
    }
    let third = call(&server, UNARY, &[("x-forwarded-for", "1.1.1.1")]).await;
    assert_eq!(third.grpc_status(), Some(Code::Ok));
    let fourth = call(&server, UNARY, &[("x-forwarded-for", "1.1.1.1")]).await;
    assert_eq!(fourth.grpc_status(), Some(Code::ResourceExhausted));
}

#[tokio::test]
async fn retry_info_has_sub_second_precision() {
    let server = TestServer::start(
        Server::builder().layer(by_user(Quota::new(1, Duration::from_millis(400)))),
    )
    .await;
    let mut client = server.client().await;
    let request = || {
        let mut r = tonic::Request::new(TestRequest::echo("x"));
        r.metadata_mut()
            .insert("x-user-id", "dave".parse().expect("value"));
        r
    };
    client.unary(request()).await.expect("first call");
    let status = client.unary(request()).await.expect_err("second call");
    let delay = status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        delay > Duration::ZERO && delay < Duration::from_millis(500),
        "{delay:?}"
    );
    assert_ne!(delay.subsec_nanos(), 0);
}

#[tokio::test]
async fn a_call_without_its_key_falls_back_to_the_client_ip() {
    let server = TestServer::start(Server::builder().layer(by_user(Quota::per_minute(1)))).await;
    assert_eq!(
        call(&server, UNARY, &[]).await.grpc_status(),
        Some(Code::Ok)
    );
    assert_eq!(
        call(&server, UNARY, &[]).await.grpc_status(),
        Some(Code::ResourceExhausted)
    );
    // A keyed caller is not affected by the anonymous caller's use.
    assert_eq!(
        call(&server, UNARY, &[("x-user-id", "erin")])
            .await
            .grpc_status(),
        Some(Code::Ok)
    );
}

#[tokio::test]
async fn streams_pass_through_when_admitted() {
    let server = TestServer::start(Server::builder().layer(by_user(Quota::per_minute(10)))).await;
    let mut client = server.client().await;
    let mut stream = client
        .server_stream(TestRequest::echo("s").count(4))
        .await
        .expect("stream")
        .into_inner();
    let mut n = 0;
    while stream.message().await.expect("message").is_some() {
        n += 1;
    }
    assert_eq!(n, 4);
}

#[tokio::test]
async fn forwarded_entries_with_ports_count_and_garbage_falls_back_to_the_peer() {
    let layer = RateLimitLayer::new(Quota::per_minute(1))
        .trusted_proxies(["127.0.0.0/8".parse().expect("net")]);
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let code = |xff: &'static str| {
        let server = &server;
        async move {
            call(server, UNARY, &[("x-forwarded-for", xff)])
                .await
                .grpc_status()
        }
    };
    // A port on the forwarded address does not hide it: both are 9.9.9.9.
    assert_eq!(code("9.9.9.9:4711").await, Some(Code::Ok));
    assert_eq!(code("9.9.9.9").await, Some(Code::ResourceExhausted));
    // An entry that does not parse ends the walk at the peer: the spoofed left part is
    // ignored and both calls count against the peer.
    assert_eq!(code("1.1.1.1, not-an-ip").await, Some(Code::Ok));
    assert_eq!(
        code("2.2.2.2, not-an-ip").await,
        Some(Code::ResourceExhausted)
    );
    // IPv6 clients count per /64.
    assert_eq!(code("[2001:db8:1:2::1]:443").await, Some(Code::Ok));
    assert_eq!(
        code("2001:db8:1:2::ffff").await,
        Some(Code::ResourceExhausted)
    );
    assert_eq!(code("2001:db8:1:3::1").await, Some(Code::Ok));
}

#[tokio::test]
async fn a_closed_method_is_refused_without_a_retry_hint() {
    let layer = RateLimitLayer::new(Quota::per_minute(100)).quota(
        key("blueprint.test.v1.TestService/Unary"),
        Quota::refuse_all(),
    );
    let server = TestServer::start(Server::builder().layer(layer)).await;
    let refused = call(&server, UNARY, &[]).await;
    assert_eq!(refused.grpc_status(), Some(Code::ResourceExhausted));
    assert!(refused.is_trailers_only());
    assert!(!refused.headers.contains_key("retry-after"));
    let mut client = server.client().await;
    let status = client
        .unary(TestRequest::echo("x"))
        .await
        .expect_err("closed");
    assert!(status.get_error_details().retry_info().is_none());
    assert_eq!(server.service().counts().started(), 0);
    let spanish = call(&server, UNARY, &[("grpc-accept-language", "es")]).await;
    assert_eq!(
        spanish.grpc_message().as_deref(),
        Some("rate limit exceeded; this method accepts no calls")
    );
    assert_eq!(
        spanish.localized_message(),
        Some((
            "es".into(),
            "límite de peticiones excedido; este método no acepta llamadas".into()
        ))
    );
}

#[tokio::test]
async fn a_refusal_speaks_the_callers_language() {
    let server =
        TestServer::start(Server::builder().layer(by_user("1/min".parse().expect("quota")))).await;
    let spanish = [("x-user-id", "ana"), ("accept-language", "es-AR, en;q=0.5")];
    assert_eq!(
        call(&server, UNARY, &spanish).await.grpc_status(),
        Some(Code::Ok)
    );
    let refused = call(&server, UNARY, &spanish).await;
    assert_eq!(refused.grpc_status(), Some(Code::ResourceExhausted));
    // grpc-message and QuotaFailure's description are English (for developers); the
    // caller's language is in a LocalizedMessage detail next to RetryInfo and QuotaFailure.
    let message = refused.grpc_message().unwrap_or_default();
    assert!(
        message.starts_with("rate limit exceeded; retry in "),
        "{message}"
    );
    let (locale, localized) = refused.localized_message().expect("LocalizedMessage");
    assert_eq!(locale, "es");
    assert!(
        localized.starts_with("límite de peticiones excedido; reintente en "),
        "{localized}"
    );
    // The same wait in both.
    assert_eq!(
        message.rsplit(' ').next(),
        localized.rsplit(' ').next(),
        "{message} / {localized}"
    );
    let status = refused.status().expect("status");
    let details = status.get_error_details();
    assert!(details.retry_info().is_some(), "RetryInfo");
    let quota = details.quota_failure().expect("QuotaFailure");
    assert!(
        quota.violations[0].description.starts_with("quota used up"),
        "{quota:?}"
    );
}

/// A caller who writes a fresh `x-user-id` on every call gets no fresh quota when the layer
/// keys on the verified identity: without one, every call counts against its address.
#[tokio::test]
async fn a_fresh_self_declared_user_id_per_call_gets_no_fresh_quota() {
    let server = TestServer::start(
        Server::builder().layer(RateLimitLayer::new(Quota::per_minute(5)).key(KeySource::Identity)),
    )
    .await;
    let mut admitted = 0;
    for i in 0..60 {
        let user = format!("user-{i}");
        let response = call(&server, UNARY, &[("x-user-id", user.as_str())]).await;
        if response.grpc_status() == Some(Code::Ok) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5, "one quota for the address, whatever it claims");
}

/// A flood of made-up keys from one address fills the limiter; past its capacity, new keys
/// count against their own address, so callers from elsewhere are not locked out and known
/// callers keep their quota.
#[tokio::test]
async fn a_key_flood_from_one_address_does_not_lock_out_new_callers_elsewhere() {
    let capacity = 100;
    let server = TestServer::start(
        Server::builder().layer(by_user(Quota::per_minute(5)).capacity(capacity)),
    )
    .await;
    let from = |ip: &str| {
        tonic_blueprint_testkit::RawClient::from_local_address(
            server.addr(),
            Some(ip.parse().expect("ip")),
        )
    };
    let code = |client: tonic_blueprint_testkit::RawClient, user: String| async move {
        client
            .call(
                UNARY,
                &[TestRequest::echo("x")],
                &[("x-user-id", user.as_str())],
            )
            .await
            .expect("call")
            .grpc_status()
    };
    let alice = from("127.0.0.3");
    assert_eq!(code(alice.clone(), "alice".into()).await, Some(Code::Ok));

    // Enough calls for the limiter to notice it is full (it checks every 1,024 calls).
    let attacker = from("127.0.0.2");
    let flood = 2 * tonic_blueprint_rate_limit::SWEEP_EVERY as usize;
    let mut admitted_late = 0;
    for i in 0..flood {
        let status = code(attacker.clone(), format!("random-{i}")).await;
        if i >= flood - 50 && status == Some(Code::Ok) {
            admitted_late += 1;
        }
    }
    assert_eq!(
        admitted_late, 0,
        "once full, the attacker's new keys share its address's quota, long used up"
    );

    // A new caller from another address is admitted, and so is a known one.
    let newcomer = from("127.0.0.4");
    assert_eq!(code(newcomer, "newcomer".into()).await, Some(Code::Ok));
    assert_eq!(code(alice, "alice".into()).await, Some(Code::Ok));
}
