//! Arbitrary bearer tokens through the auth layer.
//!
//! Input: byte 0 picks the shape; the rest is the material.
//! - 0: the rest is the whole `authorization` value;
//! - 1: a valid token with the rest XORed into it (near-valid tokens: a flipped signature,
//!   header or payload byte);
//! - 2: the rest, split at the first 0xff, is a header and a payload, base64url-encoded and
//!   signed with the layer's own secret: the claims and header parsers run past the signature.
//!
//! Whatever arrives, the answer is HTTP 200 with OK or UNAUTHENTICATED, nothing panics, and a
//! call is admitted only when its signed claims carry a non-empty `sub` and an `exp` in the
//! future.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tonic_blueprint_auth::{AuthLayer, JwtVerifier};
use tonic_blueprint_testkit::pb::TestRequest;
use tonic_blueprint_testkit::{TestService, unary_http_request};
use tower::{Layer, ServiceExt};

const SECRET: &[u8] = b"fuzz-secret-0123456789-abcdefghij";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn valid_token() -> &'static String {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let claims = serde_json::json!({ "sub": "fuzz", "exp": now() + 86_400 });
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET).expect("key"),
        )
        .expect("sign")
    })
}

/// `header.payload.signature` with an HS256 signature over the given parts.
fn signed(header: &[u8], payload: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let key = EncodingKey::from_secret(SECRET).expect("key");
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("sign");
    format!("{message}.{signature}")
}

/// Whether signed `payload` claims would make a caller: a non-empty `sub`, an `exp` ahead.
fn admissible(payload: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(claims)) = serde_json::from_slice(payload) else {
        return false;
    };
    let sub_ok = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .is_some_and(|s| !s.is_empty());
    let exp_ok = claims
        .get("exp")
        .and_then(|e| e.as_f64())
        .is_some_and(|e| e + 30.0 >= now() as f64);
    sub_ok && exp_ok
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let (value, may_pass) = match shape % 3 {
        0 => (rest.to_vec(), true),
        1 => {
            let mut token = valid_token().clone().into_bytes();
            for (i, b) in rest.iter().enumerate() {
                let at = i % token.len();
                token[at] ^= b;
            }
            let mut value = b"Bearer ".to_vec();
            value.extend_from_slice(&token);
            (value, true)
        }
        _ => {
            let split = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
            let (header, payload) = rest.split_at(split);
            let payload = payload.get(1..).unwrap_or_default();
            let may_pass = admissible(payload);
            (format!("Bearer {}", signed(header, payload)).into_bytes(), may_pass)
        }
    };
    let Ok(value) = http::HeaderValue::from_bytes(&value) else {
        return;
    };
    let service = AuthLayer::new()
        .jwt(JwtVerifier::new().secret(SECRET))
        .layer(TestService::default().into_server());
    let mut request = unary_http_request(&TestRequest::echo("x"));
    request.headers_mut().insert("authorization", value);
    let response = runtime()
        .block_on(service.oneshot(request))
        .expect("the layer never fails");
    assert_eq!(response.status(), http::StatusCode::OK);
    match response.headers().get("grpc-status").map(|v| v.as_bytes()) {
        // Admitted: the handler answers in the body, with its status in the trailers.
        None => assert!(may_pass, "admitted a token whose claims make no caller"),
        Some(b"16") => {}
        Some(other) => panic!("unexpected grpc-status {other:?}"),
    }
});
