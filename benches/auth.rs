//! What the auth layer adds per call, against the bare service in the same run.
//!
//! A unary 64-byte echo through the generated tonic service as a tower `Service`: bare, then
//! behind the [`AuthLayer`] with a bearer token signed with HS256 (a secret) and with ES256 (a
//! key already fetched, as from a JWKS), and with an API key. The keys are decoded once.
//! `*_full` rows verify the token in full on every call (signature, `exp`, `iss`, `aud`: the
//! token cache off, what the first call of a token costs); `*_cached` rows are a client
//! sending the same token again (the default).
//!
//! Run: `cargo bench --bench auth`. Compare rows of one run only; the goal is under 2 µs
//! added for HS256.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic_blueprint::auth::{ApiKeys, AuthLayer, DecodingKey, JwtVerifier};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{TestService, unary_http_request};
use tower::{Layer, Service, ServiceExt};

const SECRET: &[u8] = b"bench-secret-0123456789-abcdefghij";

fn request(header: Option<(&'static str, &str)>) -> http::Request<tonic::body::Body> {
    let mut request = unary_http_request(&TestRequest::echo(vec![7u8; 64]));
    if let Some((name, value)) = header {
        request
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    request
}

async fn call<S, B>(svc: &S, request: http::Request<tonic::body::Body>) -> Bytes
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = svc.clone().oneshot(request).await.expect("call");
    response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
}

fn claims() -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    serde_json::json!({
        "sub": "user-1", "exp": now + 3600, "iss": "https://issuer.bench",
        "aud": "bench", "scope": "payments:read payments:write",
    })
}

fn verifier() -> JwtVerifier {
    JwtVerifier::new()
        .issuer("https://issuer.bench")
        .audience("bench")
}

fn auth(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bare = TestService::default().into_server();

    let hs256 = format!(
        "Bearer {}",
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(SECRET).expect("key"),
        )
        .expect("sign")
    );
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let es_key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("pem");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".to_owned());
    let es256 = format!(
        "Bearer {}",
        jsonwebtoken::encode(&header, &claims(), &es_key).expect("sign")
    );
    let es_public = DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes()).expect("public");

    let no_cache = |v: JwtVerifier| v.token_cache(0, std::time::Duration::ZERO);
    let with_hs = AuthLayer::new()
        .jwt(no_cache(verifier().secret(SECRET)))
        .layer(bare.clone());
    let with_es = AuthLayer::new()
        .jwt(no_cache(verifier().key(es_public.clone(), Some("k1"))))
        .layer(bare.clone());
    let with_hs_cached = AuthLayer::new()
        .jwt(verifier().secret(SECRET))
        .layer(bare.clone());
    let with_es_cached = AuthLayer::new()
        .jwt(verifier().key(es_public, Some("k1")))
        .layer(bare.clone());
    let with_key = AuthLayer::new()
        .api_keys(ApiKeys::new().key("k-bench-0123456789", "bench-job", ["read"]))
        .layer(bare.clone());

    // Every variant must answer OK, or the figures measure refusals.
    for (name, status) in [
        (
            "hs256",
            rt.block_on(
                with_hs
                    .clone()
                    .oneshot(request(Some(("authorization", &hs256)))),
            ),
        ),
        (
            "es256",
            rt.block_on(
                with_es
                    .clone()
                    .oneshot(request(Some(("authorization", &es256)))),
            ),
        ),
        (
            "api_key",
            rt.block_on(
                with_key
                    .clone()
                    .oneshot(request(Some(("x-api-key", "k-bench-0123456789")))),
            ),
        ),
    ] {
        let response = status.expect("call");
        assert!(
            !response.headers().contains_key("grpc-status"),
            "{name} was refused: {:?}",
            response.headers()
        );
    }

    let mut group = c.benchmark_group("auth");
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| call(&bare, request(None)))
    });
    group.bench_function("hs256_full", |b| {
        b.to_async(&rt)
            .iter(|| call(&with_hs, request(Some(("authorization", &hs256)))))
    });
    group.bench_function("es256_full", |b| {
        b.to_async(&rt)
            .iter(|| call(&with_es, request(Some(("authorization", &es256)))))
    });
    group.bench_function("hs256_cached", |b| {
        b.to_async(&rt)
            .iter(|| call(&with_hs_cached, request(Some(("authorization", &hs256)))))
    });
    group.bench_function("es256_cached", |b| {
        b.to_async(&rt)
            .iter(|| call(&with_es_cached, request(Some(("authorization", &es256)))))
    });
    group.bench_function("api_key", |b| {
        b.to_async(&rt).iter(|| {
            call(
                &with_key,
                request(Some(("x-api-key", "k-bench-0123456789"))),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
