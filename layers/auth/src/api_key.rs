//! API keys: stored as SHA-256 hashes, compared in constant time, each mapped to a caller.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic_blueprint_core::{AuthMethod, Identity};

/// The longest API key read, in bytes; a longer value is invalid without being hashed.
pub const MAX_API_KEY_BYTES: usize = 512;

/// A set of API keys, each naming the caller it proves.
///
/// Only the SHA-256 hash of each key is kept. A presented key is hashed and compared with
/// every stored hash in constant time, so neither the time taken nor the order of the keys
/// tells an attacker anything about a key.
///
/// ```
/// use tonic_blueprint_auth::ApiKeys;
///
/// let keys = ApiKeys::new()
///     .key("k-alice-0123456789", "alice", ["payments:read"])
///     .hashed(ApiKeys::hash("k-reports-9876543210"), "reports-job", Vec::<String>::new());
/// assert_eq!(keys.verify(b"k-alice-0123456789").unwrap().subject(), "alice");
/// assert!(keys.verify(b"k-alice-0123456788").is_none());
/// ```
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], Identity)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// The SHA-256 hash of `key`, the form to keep in configuration instead of the key.
    pub fn hash(key: &str) -> [u8; 32] {
        Sha256::digest(key.as_bytes()).into()
    }

    /// Adds `key` (hashed at once) proving `subject` with `scopes`.
    pub fn key<I, S>(self, key: &str, subject: &str, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.hashed(Self::hash(key), subject, scopes)
    }

    /// Adds a key by its SHA-256 hash.
    pub fn hashed<I, S>(mut self, hash: [u8; 32], subject: &str, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        let identity = Identity::new(subject, AuthMethod::ApiKey).with_scopes(scopes);
        self.keys.push((hash, identity));
        self
    }

    /// Adds a key with a full identity (a tenant, say); its method becomes
    /// [`AuthMethod::ApiKey`] whatever it was.
    pub fn identity(mut self, key: &str, identity: Identity) -> Self {
        let mut rebuilt = Identity::new(identity.subject(), AuthMethod::ApiKey)
            .with_scopes(identity.scopes().map(Box::<str>::from).collect::<Vec<_>>());
        if let Some(tenant) = identity.tenant() {
            rebuilt = rebuilt.with_tenant(tenant);
        }
        self.keys.push((Self::hash(key), rebuilt));
        self
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller `presented` proves, if it is one of the keys.
    pub fn verify(&self, presented: &[u8]) -> Option<&Identity> {
        if presented.is_empty() || presented.len() > MAX_API_KEY_BYTES {
            return None;
        }
        let hash: [u8; 32] = Sha256::digest(presented).into();
        // Every stored hash is compared, match or not: the time does not depend on which.
        let mut found = None;
        for (stored, identity) in &self.keys {
            if bool::from(stored.ct_eq(&hash)) {
                found = Some(identity);
            }
        }
        found
    }
}
