//! Bearer JWTs: the keys, the checks, and the identity a verified token proves.

use crate::failure::Failure;
use crate::jwks::Jwks;
use crate::token_cache::{TokenCache, unix_now};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tonic_blueprint_core::{AuthMethod, Identity};

/// The longest token read, in bytes; a longer one is invalid without being decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The most scopes a token may carry; more make it invalid.
pub const MAX_SCOPES: usize = 64;
/// Keys tried for a token without a `kid`, at most.
const MAX_KEYS_TRIED: usize = 8;

/// Every algorithm verified by default: HS256/384/512, RS256/384/512, PS256/384/512,
/// ES256/384 and EdDSA. `none` is never accepted.
pub const DEFAULT_ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A key and the `kid` it answers to (any token of its family when `None`).
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
}

impl Key {
    pub(crate) fn family(&self) -> AlgorithmFamily {
        self.key.family()
    }
}

/// Verifies bearer JWTs: signature, `exp` (required), `nbf`, and `iss` and `aud` when set.
///
/// Keys come from a secret or PEM given here, or from a [`Jwks`] fetched from a URL and
/// refreshed in the background. The token's `sub` becomes the [`Identity`]'s subject, its
/// `scope` (space-separated) or `scp` (a list) the scopes, and its `tenant` claim the tenant.
///
/// ```
/// use std::time::Duration;
/// use tonic_blueprint_auth::JwtVerifier;
///
/// let verifier = JwtVerifier::new()
///     .secret(b"a-long-random-secret")
///     .issuer("https://issuer.example")
///     .audience("payments")
///     .leeway(Duration::from_secs(30));
/// # let _ = verifier;
/// ```
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Vec<Key>,
    jwks: Option<Jwks>,
    algorithms: Vec<Algorithm>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    /// One prepared validation per allowed algorithm, rebuilt when a setting changes.
    validations: Arc<Vec<(Algorithm, Validation)>>,
    /// Tokens verified already, shared by every clone.
    cache: Arc<TokenCache>,
}

/// Verified tokens remembered by default.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 10_000;
/// The longest a verified token is remembered by default (never past its `exp`).
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("jwks", &self.jwks)
            .field("algorithms", &self.algorithms)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl Default for JwtVerifier {
    fn default() -> Self {
        Self::new()
    }
}

/// A key that could not be read.
#[derive(Debug)]
pub struct KeyError(jsonwebtoken::errors::Error);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the key cannot be read: {}", self.0)
    }
}

impl std::error::Error for KeyError {}

impl JwtVerifier {
    /// No key yet, every [default algorithm](DEFAULT_ALGORITHMS), no issuer or audience
    /// check, 30 s of leeway.
    pub fn new() -> Self {
        let mut verifier = Self {
            keys: Vec::new(),
            jwks: None,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(30),
            validations: Arc::default(),
            cache: Arc::new(TokenCache::new(
                DEFAULT_TOKEN_CACHE_CAPACITY,
                DEFAULT_TOKEN_CACHE_TTL,
            )),
        };
        verifier.prepare();
        verifier
    }

    fn prepare(&mut self) {
        let validations = self
            .algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = self.leeway.as_secs();
                v.validate_exp = true;
                v.validate_nbf = true;
                v.set_required_spec_claims(&["exp", "sub"]);
                match &self.audience {
                    Some(aud) => v.set_audience(&[aud]),
                    None => v.validate_aud = false,
                }
                if let Some(iss) = &self.issuer {
                    v.set_issuer(&[iss]);
                }
                (alg, v)
            })
            .collect();
        self.validations = Arc::new(validations);
    }

    /// An HMAC secret (HS256, HS384, HS512), for tokens without a `kid` or any `kid`.
    pub fn secret(mut self, secret: &[u8]) -> Self {
        // `from_secret` fails only for other key kinds; a secret always reads.
        if let Ok(key) = DecodingKey::from_secret(secret) {
            self.keys.push(Key { kid: None, key });
        }
        self
    }

    /// A public key in PEM (RSA, EC or Ed25519, as `alg` says), optionally for one `kid`.
    pub fn pem(mut self, alg: Algorithm, pem: &[u8], kid: Option<&str>) -> Result<Self, KeyError> {
        let key = match alg.family() {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
            AlgorithmFamily::Hmac => DecodingKey::from_secret(pem),
        }
        .map_err(KeyError)?;
        self.keys.push(Key {
            kid: kid.map(str::to_owned),
            key,
        });
        Ok(self)
    }

    /// A key already decoded, optionally for one `kid`.
    pub fn key(mut self, key: DecodingKey, kid: Option<&str>) -> Self {
        self.keys.push(Key {
            kid: kid.map(str::to_owned),
            key,
        });
        self
    }

    /// Keys from a JWKS (see [`Jwks::fetch`]): a token whose `kid` is unknown triggers at
    /// most one early refresh per interval.
    pub fn jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = Some(jwks);
        self
    }

    /// Only these algorithms (default [`DEFAULT_ALGORITHMS`]).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self.prepare();
        self
    }

    /// The `iss` every token must carry.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self.prepare();
        self
    }

    /// The `aud` every token must carry (one of its values, when it is a list).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self.prepare();
        self
    }

    /// How much clock skew `exp` and `nbf` tolerate (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self.prepare();
        self
    }

    /// How many verified tokens are remembered, and for how long at most (default
    /// [`DEFAULT_TOKEN_CACHE_CAPACITY`] for [`DEFAULT_TOKEN_CACHE_TTL`]; never past a token's
    /// `exp`). A token signed by a key that leaves the key set stays accepted for up to the
    /// TTL; a zero capacity or TTL verifies every call in full.
    pub fn token_cache(mut self, capacity: usize, ttl: Duration) -> Self {
        self.cache = Arc::new(TokenCache::new(capacity, ttl));
        self
    }

    /// Whether any key source is set.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty() || self.jwks.is_some()
    }

    pub(crate) fn jwks_source(&self) -> Option<&Jwks> {
        self.jwks.as_ref()
    }

    /// Verifies `token` and returns the caller it proves.
    ///
    /// [`Verdict::UnknownKey`] means the token names a `kid` no key has, while a JWKS could
    /// learn it: the caller may refresh the JWKS and try once more.
    pub(crate) fn verify(&self, token: &str) -> Verdict {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Verdict::Failed(Failure::Invalid);
        }
        let now = unix_now();
        if let Some(identity) = self.cache.get(token, now) {
            return Verdict::Verified(identity);
        }
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Verdict::Failed(Failure::Invalid);
        };
        let Some(validation) = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .map(|(_, v)| v)
        else {
            return Verdict::Failed(Failure::Invalid);
        };
        let family = header.alg.family();
        let jwks_keys = self.jwks.as_ref().map(Jwks::keys);
        let jwks_keys = jwks_keys.as_deref().map(Vec::as_slice).unwrap_or_default();
        let candidates = self.keys.iter().chain(jwks_keys).filter(|k| {
            k.family() == family
                && match (&header.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    // A key without a kid serves every token of its family; a token without
                    // a kid may be checked against any key of its family.
                    (_, None) | (None, _) => true,
                }
        });
        let mut tried = 0;
        for key in candidates.take(MAX_KEYS_TRIED) {
            tried += 1;
            match jsonwebtoken::decode::<Claims>(token, &key.key, validation) {
                Ok(data) => {
                    let expires = data.claims.exp.saturating_add(self.leeway.as_secs());
                    let verdict = data.claims.identity();
                    if let Verdict::Verified(identity) = &verdict {
                        self.cache.insert(token, identity, expires, now);
                    }
                    return verdict;
                }
                Err(e) => match e.kind() {
                    ErrorKind::InvalidSignature => continue,
                    ErrorKind::ExpiredSignature => return Verdict::Failed(Failure::Expired),
                    _ => return Verdict::Failed(Failure::Invalid),
                },
            }
        }
        if tried == 0 && header.kid.is_some() && self.jwks.is_some() {
            return Verdict::UnknownKey;
        }
        Verdict::Failed(Failure::Invalid)
    }
}

/// What a token verification found.
#[derive(Debug)]
pub(crate) enum Verdict {
    Verified(Identity),
    Failed(Failure),
    UnknownKey,
}

/// The claims read beyond the ones jsonwebtoken checks.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Checked by jsonwebtoken already; kept to bound how long the token is remembered.
    #[serde(deserialize_with = "seconds")]
    exp: u64,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<ScopeList>,
    #[serde(default)]
    tenant: Option<String>,
}

/// A NumericDate (seconds, possibly fractional) as whole seconds.
fn seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    Ok(if value.is_finite() && value > 0.0 {
        value as u64
    } else {
        0
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeList {
    One(String),
    Many(Vec<String>),
}

impl Claims {
    fn identity(&self) -> Verdict {
        if self.sub.is_empty() {
            return Verdict::Failed(Failure::Invalid);
        }
        let mut scopes: Vec<String> = Vec::new();
        if let Some(scope) = &self.scope {
            scopes.extend(scope.split_ascii_whitespace().map(str::to_owned));
        }
        match &self.scp {
            Some(ScopeList::One(s)) => scopes.extend(s.split_ascii_whitespace().map(str::to_owned)),
            Some(ScopeList::Many(list)) => scopes.extend(list.iter().cloned()),
            None => {}
        }
        if scopes.len() > MAX_SCOPES {
            return Verdict::Failed(Failure::Invalid);
        }
        let mut identity = Identity::new(self.sub.as_str(), AuthMethod::Jwt).with_scopes(scopes);
        if let Some(tenant) = self.tenant.as_deref().filter(|t| !t.is_empty()) {
            identity = identity.with_tenant(tenant);
        }
        Verdict::Verified(identity)
    }
}
