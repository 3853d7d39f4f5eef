//! Who a call counts against.

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::Arc;
use tonic_blueprint_core::Identity;

/// What a custom key function sees of a request.
#[derive(Debug)]
#[non_exhaustive]
pub struct KeyRequest<'a> {
    /// The request metadata.
    pub headers: &'a HeaderMap,
    /// The request extensions.
    pub extensions: &'a http::Extensions,
    /// The client's IP (after trusted-proxy resolution).
    pub client_ip: Option<IpAddr>,
}

type KeyFn = dyn Fn(&KeyRequest<'_>) -> Option<String> + Send + Sync;

/// Where a call's rate-limit key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// A metadata value such as `x-user-id` (hashed, never stored raw). The caller writes
    /// it: use it only when a trusted gateway in front sets it and strips it from callers, or
    /// a client gets a fresh quota per value.
    Metadata(HeaderName),
    /// The verified [`Identity`] (subject and tenant) an authentication layer put in the
    /// request extensions.
    Identity,
    /// The client's IP: the peer address, or the forwarded address when the peer is a trusted
    /// proxy.
    ClientIp,
    /// One key for every call: a global quota.
    Global,
    /// A function of the request.
    Custom(Arc<KeyFn>),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Metadata(name) => f.debug_tuple("Metadata").field(name).finish(),
            Self::Identity => f.write_str("Identity"),
            Self::ClientIp => f.write_str("ClientIp"),
            Self::Global => f.write_str("Global"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// How keys are found and hashed.
#[derive(Clone, Debug)]
pub(crate) struct KeyConfig {
    pub(crate) source: KeySource,
    /// Fall back to the client IP when the source finds nothing (else: one shared
    /// "anonymous" key).
    pub(crate) fallback_to_ip: bool,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) secret: (u64, u64),
}

/// The hashed keys of a call: its own, and the one it counts against instead when the
/// limiter is full and its own key is new (its client IP's, or the /64 prefix's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CallKey {
    pub(crate) own: u64,
    pub(crate) overflow: u64,
}

/// A secret no one else knows: random per process (std's hash keys are seeded from the
/// operating system's random source).
pub(crate) fn random_secret() -> (u64, u64) {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    (state.hash_one(0x6b30_u64), state.hash_one(0x6b31_u64))
}

/// The two SipHash keys of a configured secret text (the same text gives the same keys on
/// every replica).
pub(crate) fn secret_from_text(text: &str) -> (u64, u64) {
    let half = |salt: u64| {
        let mut hasher = SipHasher13::new_with_keys(salt, !salt);
        hasher.write(text.as_bytes());
        hasher.finish()
    };
    (half(0x7274_6c6b_6579_3031), half(0x7274_6c6b_6579_3032))
}

impl KeyConfig {
    pub(crate) fn key<B>(&self, request: &http::Request<B>) -> CallKey {
        let ip = self.client_ip(request);
        let overflow = self.ip_key(b"o", ip);
        let own = self.own_key(request, ip);
        CallKey { own, overflow }
    }

    fn ip_key(&self, kind: &[u8], ip: Option<IpAddr>) -> u64 {
        match ip {
            Some(IpAddr::V4(ip)) => self.hash(kind, &ip.octets()),
            // One key per /64: a single IPv6 allocation holds 2^64 addresses to rotate through.
            Some(IpAddr::V6(ip)) => self.hash(kind, &ip.octets()[..8]),
            None => self.hash(b"a", b""),
        }
    }

    fn own_key<B>(&self, request: &http::Request<B>, ip: Option<IpAddr>) -> u64 {
        let found = match &self.source {
            KeySource::Metadata(name) => request
                .headers()
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| self.hash(b"m", v.as_bytes())),
            KeySource::Identity => request.extensions().get::<Identity>().map(|caller| {
                let mut hasher = self.hasher(b"i");
                hasher.write(caller.subject().as_bytes());
                hasher.write_u8(0xff);
                if let Some(tenant) = caller.tenant() {
                    hasher.write(tenant.as_bytes());
                }
                hasher.finish()
            }),
            KeySource::ClientIp => None,
            KeySource::Global => return self.hash(b"g", b""),
            KeySource::Custom(f) => f(&KeyRequest {
                headers: request.headers(),
                extensions: request.extensions(),
                client_ip: ip,
            })
            .map(|value| self.hash(b"c", value.as_bytes())),
        };
        if let Some(key) = found {
            return key;
        }
        if !self.fallback_to_ip && !matches!(self.source, KeySource::ClientIp) {
            return self.hash(b"a", b"");
        }
        self.ip_key(b"p", ip)
    }

    fn hasher(&self, kind: &[u8]) -> SipHasher13 {
        let mut hasher = SipHasher13::new_with_keys(self.secret.0, self.secret.1);
        hasher.write(kind);
        hasher.write_u8(0xff);
        hasher
    }

    fn hash(&self, kind: &[u8], value: &[u8]) -> u64 {
        let mut hasher = self.hasher(kind);
        hasher.write(value);
        hasher.finish()
    }

    /// The peer's IP, or, when the peer is a trusted proxy, the client it forwards for.
    ///
    /// `x-forwarded-for` is read from the right: trusted proxies are skipped and the first
    /// other entry is the client. An entry that does not parse (after stripping a port) ends
    /// the walk at the peer: what lies left of it cannot be trusted. Without
    /// `x-forwarded-for`, `x-real-ip` is used.
    pub(crate) fn client_ip<B>(&self, request: &http::Request<B>) -> Option<IpAddr> {
        let peer = tonic_blueprint_core::connection::peer_addr(request.extensions())
            .map(|addr| addr.ip())?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let mut forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .peekable();
        if forwarded.peek().is_some() {
            let mut hops: Vec<&str> = Vec::new();
            for value in forwarded {
                let Ok(text) = value.to_str() else {
                    return Some(peer);
                };
                hops.extend(text.split(','));
            }
            for hop in hops.iter().rev() {
                match parse_hop(hop) {
                    Some(ip) if self.is_trusted(ip) => continue,
                    Some(ip) => return Some(ip),
                    None => return Some(peer),
                }
            }
            return Some(peer);
        }
        request
            .headers()
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_hop)
            .or(Some(peer))
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// An address from a forwarding header: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or
/// `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
}
