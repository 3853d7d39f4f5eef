//! Bearer tokens for the example's own client and tests: HS256 JWTs signed with the shared
//! secret the server verifies (`AUTH_JWT_SECRET`, [`DEV_SECRET`] unless set).
//!
//! The server side is the kit's auth layer in the preset stack, not this module. A real
//! deployment gets its tokens from an identity provider instead, and the service verifies
//! them against its JWKS (`AUTH_JWKS_URL`, `AUTH_ISSUER`, `AUTH_AUDIENCE`).
//!
//! ```
//! use payments_example::token::{DEV_SECRET, authorize, mint};
//! use std::time::Duration;
//!
//! let token = mint(DEV_SECRET, "user-1", Duration::from_secs(3600)).expect("token");
//! let mut request = tonic::Request::new(());
//! authorize(&mut request, &token);
//! assert!(request.metadata().get("authorization").is_some());
//! ```

use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The service's default `AUTH_JWT_SECRET`: fine on a laptop, never in production (the
/// service logs a warning when it runs with it).
pub const DEV_SECRET: &str = "dev-secret";

/// The claims the server requires: who calls and until when.
#[derive(Clone, Debug, Serialize)]
pub struct Claims<'a> {
    /// The user id: the caller of every handler.
    pub sub: &'a str,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// A token for `user`, signed with `secret`, valid for `ttl` from now.
pub fn mint(
    secret: &str,
    user: &str,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    mint_claims(
        secret,
        &Claims {
            sub: user,
            exp: (now + ttl).as_secs(),
        },
    )
}

/// A token carrying `claims` as they are (an expired one for a test, say).
pub fn mint_claims<C: Serialize>(
    secret: &str,
    claims: &C,
) -> Result<String, jsonwebtoken::errors::Error> {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())?;
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key)
}

/// Puts `authorization: Bearer <token>` on `request` (a token that is not valid metadata
/// text is left out, and the server answers UNAUTHENTICATED).
pub fn authorize<T>(request: &mut tonic::Request<T>, token: &str) {
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
}
