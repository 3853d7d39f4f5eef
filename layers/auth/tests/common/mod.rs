//! What the auth tests share: tokens, keys, a JWKS served over a real socket, and a server
//! whose handler side records the identity it was given.

#![allow(dead_code, unreachable_pub)]

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic_blueprint_auth::{AuthLayer, Identity};
use tonic_blueprint_testkit::TestServer;
use tower::ServiceBuilder;

pub const SECRET: &[u8] = b"test-secret-0123456789-abcdefghij";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Claims for `sub`, valid for an hour.
pub fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": now() + 3600, "iat": now() })
}

pub fn hs256(claims: &Value) -> String {
    sign(
        Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET).expect("key"),
    )
}

pub fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An ES256 key pair: the signing key and its public JWK under `kid`.
pub fn es256_key(kid: &str) -> (EncodingKey, Jwk) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("pem");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    (key, jwk)
}

pub fn es256(kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    sign(header, claims, key)
}

/// A JWKS document served over HTTP/1.1 on a real socket; the set and the status can change
/// mid-test, and every fetch is counted.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    keys: Arc<Mutex<Vec<Jwk>>>,
    status: Arc<AtomicU16>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    pub async fn start(keys: Vec<Jwk>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let server = Self {
            addr: listener.local_addr().expect("addr"),
            keys: Arc::new(Mutex::new(keys)),
            status: Arc::new(AtomicU16::new(200)),
            fetches: Arc::default(),
        };
        let state = server.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    let status = state.status.load(Ordering::SeqCst);
                    let body = serde_json::to_string(&JwkSet {
                        keys: state.keys.lock().expect("keys").clone(),
                    })
                    .expect("json");
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        server
    }

    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    pub fn set_keys(&self, keys: Vec<Jwk>) {
        *self.keys.lock().expect("keys") = keys;
    }

    pub fn fail_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// The subjects the handler side saw, call by call (`None`: no identity).
pub type Seen = Arc<Mutex<Vec<Option<String>>>>;

/// The test service behind `auth`, with a layer below it recording the identity each call
/// reached the handler with.
pub async fn server(auth: AuthLayer) -> (TestServer, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let stack = ServiceBuilder::new().layer(auth).map_request(
        move |request: http::Request<tonic::body::Body>| {
            let subject = Identity::from_http(&request).map(|id| id.subject().to_owned());
            record.lock().expect("seen").push(subject);
            request
        },
    );
    (
        TestServer::start(Server::builder().layer(stack)).await,
        seen,
    )
}
