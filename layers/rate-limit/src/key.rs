//! Who a call counts against.

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::Arc;

/// An identity an authentication layer stored in the request extensions, for
/// [`KeySource::Identity`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallerIdentity(pub String);

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
    /// A metadata value such as `x-user-id` or `x-api-key` (hashed, never stored raw).
    Metadata(HeaderName),
    /// The [`CallerIdentity`] an authentication layer put in the request extensions.
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

/// The hashed key of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CallKey(pub(crate) u64);

impl KeyConfig {
    pub(crate) fn key<B>(&self, request: &http::Request<B>) -> CallKey {
        let client_ip = self.client_ip(request);
        let (kind, value): (&[u8], Option<Vec<u8>>) = match &self.source {
            KeySource::Metadata(name) => (
                b"m",
                request
                    .headers()
                    .get(name)
                    .filter(|v| !v.is_empty())
                    .map(|v| v.as_bytes().to_vec()),
            ),
            KeySource::Identity => (
                b"i",
                request
                    .extensions()
                    .get::<CallerIdentity>()
                    .map(|c| c.0.as_bytes().to_vec()),
            ),
            KeySource::ClientIp => (b"p", None),
            KeySource::Global => return self.hash(b"g", b""),
            KeySource::Custom(f) => (
                b"c",
                f(&KeyRequest {
                    headers: request.headers(),
                    extensions: request.extensions(),
                    client_ip,
                })
                .map(String::into_bytes),
            ),
        };
        match value {
            Some(value) => self.hash(kind, &value),
            None if self.fallback_to_ip || matches!(self.source, KeySource::ClientIp) => {
                match client_ip {
                    Some(IpAddr::V4(ip)) => self.hash(b"p", &ip.octets()),
                    Some(IpAddr::V6(ip)) => self.hash(b"p", &ip.octets()),
                    None => self.hash(b"a", b""),
                }
            }
            None => self.hash(b"a", b""),
        }
    }

    fn hash(&self, kind: &[u8], value: &[u8]) -> CallKey {
        let mut hasher = SipHasher13::new_with_keys(self.secret.0, self.secret.1);
        hasher.write(kind);
        hasher.write_u8(0xff);
        hasher.write(value);
        CallKey(hasher.finish())
    }

    /// The peer's IP, or, when the peer is a trusted proxy, the client it forwards for: the
    /// right-most `x-forwarded-for` address that is not itself a trusted proxy, else
    /// `x-real-ip`.
    pub(crate) fn client_ip<B>(&self, request: &http::Request<B>) -> Option<IpAddr> {
        let peer = request
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|info| info.remote_addr())
            .map(|addr| addr.ip())?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| part.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        if let Some(client) = forwarded.iter().rev().find(|ip| !self.is_trusted(**ip)) {
            return Some(*client);
        }
        request
            .headers()
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .or(Some(peer))
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}
