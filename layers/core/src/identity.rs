//! Which RPC a request is: `/pkg.Service/Method`, parsed once.
//!
//! The first layer that asks parses the path and stores the [`RpcIdentity`] in the request
//! extensions; every later layer (and the handler) reads it back. The identity shares the
//! path's buffer, so getting one costs no allocation.

use crate::observer::CallObserver;
use http::uri::PathAndQuery;
use std::fmt;

/// A map keyed by method path or service name, as every layer looks one up per call.
///
/// foldhash with a seed per map rather than SipHash: paths come from clients, so the hash
/// stays seeded, and it costs a fraction of SipHash on the request path.
pub type PathMap<V> = std::collections::HashMap<Box<str>, V, foldhash::fast::RandomState>;

/// The label used for the service and method of a path that is not `/pkg.Service/Method`.
///
/// Every malformed path folds into this one value so a scanner sending random paths can never
/// blow up metric cardinality.
pub const UNKNOWN: &str = "unknown";

/// The service and method of a gRPC call.
///
/// ```
/// use tonic_blueprint_core::RpcIdentity;
///
/// let id = RpcIdentity::parse("/payments.v1.PaymentService/GetPayment").unwrap();
/// assert_eq!(id.service(), "payments.v1.PaymentService");
/// assert_eq!(id.method(), "GetPayment");
/// assert_eq!(id.to_string(), "payments.v1.PaymentService/GetPayment");
/// assert!(RpcIdentity::parse("/not-grpc").is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RpcIdentity {
    /// `/pkg.Service/Method`, or empty for the unknown identity.
    path: PathAndQuery,
    /// Index of the `/` between service and method.
    split: usize,
}

impl RpcIdentity {
    /// Parses `/pkg.Service/Method` (a query string, if any, is ignored).
    ///
    /// Returns `None` unless the path has exactly two non-empty segments.
    pub fn parse(path: &str) -> Option<Self> {
        let path = PathAndQuery::try_from(path).ok()?;
        Self::from_path(&path)
    }

    fn from_path(path: &PathAndQuery) -> Option<Self> {
        let p = path.path();
        let rest = p.strip_prefix('/')?;
        let slash = rest.find('/')?;
        let (service, method) = (&rest[..slash], &rest[slash + 1..]);
        if service.is_empty() || method.is_empty() || method.contains('/') {
            return None;
        }
        // Keep only the path (no query) so `service()`/`method()` slice one buffer.
        let path = if path.query().is_some() {
            PathAndQuery::try_from(p).ok()?
        } else {
            path.clone()
        };
        Some(Self {
            path,
            split: slash + 1,
        })
    }

    /// The identity every malformed path maps to: service and method are both [`UNKNOWN`].
    pub fn unknown() -> Self {
        Self {
            path: PathAndQuery::from_static("/"),
            split: 0,
        }
    }

    /// Whether this is the [`unknown`](Self::unknown) identity.
    pub fn is_unknown(&self) -> bool {
        self.split == 0
    }

    /// The identity a layer already stored for the call: noted in the call's
    /// [`CallObserver`], or in the request extensions.
    ///
    /// The observer is looked at first: under a watching layer (the preset's logging and
    /// metrics) that is where the identity is, and each layer's lookup costs one search of
    /// the extensions instead of two. Both places hold the identity of the same path.
    fn stored(extensions: &http::Extensions) -> Option<&Self> {
        extensions
            .get::<CallObserver>()
            .and_then(CallObserver::identity)
            .or_else(|| extensions.get::<Self>())
    }

    /// The identity of a request: the one a layer already stored, else parsed from its URI
    /// (without storing it).
    pub fn from_request<B>(request: &http::Request<B>) -> Option<Self> {
        if let Some(id) = Self::stored(request.extensions()) {
            return Some(id.clone());
        }
        request.uri().path_and_query().and_then(Self::from_path)
    }

    /// The identity of a request, stored for the layers below: noted in the call's
    /// [`CallObserver`] when a layer started one, else in the request extensions.
    ///
    /// A path that is not `/pkg.Service/Method` yields [`RpcIdentity::unknown`].
    pub fn get_or_insert<B>(request: &mut http::Request<B>) -> Self {
        if let Some(id) = Self::stored(request.extensions()) {
            return id.clone();
        }
        let id = request
            .uri()
            .path_and_query()
            .and_then(Self::from_path)
            .unwrap_or_else(Self::unknown);
        match request.extensions().get::<CallObserver>() {
            Some(observer) => observer.note_identity(id.clone()),
            None => {
                request.extensions_mut().insert(id.clone());
            }
        }
        id
    }

    /// The fully qualified service name, such as `payments.v1.PaymentService`.
    pub fn service(&self) -> &str {
        if self.is_unknown() {
            return UNKNOWN;
        }
        &self.path.path()[1..self.split]
    }

    /// The method name, such as `GetPayment`.
    pub fn method(&self) -> &str {
        if self.is_unknown() {
            return UNKNOWN;
        }
        &self.path.path()[self.split + 1..]
    }

    /// The request path, `/pkg.Service/Method` (`/` for the unknown identity).
    pub fn path(&self) -> &str {
        self.path.path()
    }
}

impl fmt::Display for RpcIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service(), self.method())
    }
}

impl fmt::Debug for RpcIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcIdentity")
            .field("service", &self.service())
            .field("method", &self.method())
            .finish()
    }
}

/// The shape of an RPC, as go-grpc-prometheus labels it (`grpc_type`).
///
/// The HTTP/2 request does not say whether a call streams, so the kind comes from the
/// service descriptors or from configuration. A layer that knows it notes it in the call's
/// [`CallObserver`]; a layer further in finds it with
/// [`RpcKind::of`], which also honours an `RpcKind` you insert in the request extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RpcKind {
    /// One request, one response.
    Unary,
    /// A stream of requests, one response.
    ClientStreaming,
    /// One request, a stream of responses.
    ServerStreaming,
    /// Streams both ways.
    BidiStreaming,
    /// Not known from descriptors or configuration.
    #[default]
    Unknown,
}

impl RpcKind {
    /// The kind from the two `stream` flags of a method descriptor.
    pub fn from_streaming(client_streaming: bool, server_streaming: bool) -> Self {
        match (client_streaming, server_streaming) {
            (false, false) => Self::Unary,
            (true, false) => Self::ClientStreaming,
            (false, true) => Self::ServerStreaming,
            (true, true) => Self::BidiStreaming,
        }
    }

    /// The kind of the call of `extensions`: an `RpcKind` in them, else the kind noted in
    /// the call's [`CallObserver`], else `Unknown`.
    pub fn of(extensions: &http::Extensions) -> Self {
        if let Some(kind) = extensions.get::<Self>() {
            return *kind;
        }
        extensions
            .get::<crate::observer::CallObserver>()
            .map_or(Self::Unknown, crate::observer::CallObserver::kind)
    }

    pub(crate) fn from_u8(n: u8) -> Self {
        [
            Self::Unary,
            Self::ClientStreaming,
            Self::ServerStreaming,
            Self::BidiStreaming,
        ]
        .get(usize::from(n))
        .copied()
        .unwrap_or(Self::Unknown)
    }

    /// The go-grpc-prometheus label value: `unary`, `client_stream`, `server_stream`,
    /// `bidi_stream` (or `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStreaming => "client_stream",
            Self::ServerStreaming => "server_stream",
            Self::BidiStreaming => "bidi_stream",
            Self::Unknown => UNKNOWN,
        }
    }
}

impl fmt::Display for RpcKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_and_method() {
        let id = RpcIdentity::parse("/a.b.C/D?x=1").unwrap();
        assert_eq!((id.service(), id.method()), ("a.b.C", "D"));
        assert_eq!(id.path(), "/a.b.C/D");
    }

    #[test]
    fn rejects_malformed_paths() {
        for path in ["", "/", "//", "/a", "/a/", "//b", "/a/b/c", "a/b"] {
            assert!(RpcIdentity::parse(path).is_none(), "{path:?}");
        }
    }

    #[test]
    fn malformed_paths_fold_into_unknown() {
        let mut request = http::Request::builder().uri("/x/y/z").body(()).unwrap();
        let id = RpcIdentity::get_or_insert(&mut request);
        assert!(id.is_unknown());
        assert_eq!((id.service(), id.method()), (UNKNOWN, UNKNOWN));
        assert_eq!(request.extensions().get::<RpcIdentity>(), Some(&id));
    }

    #[test]
    fn stored_identity_wins_over_the_uri() {
        let mut request = http::Request::builder().uri("/a.B/C").body(()).unwrap();
        let first = RpcIdentity::get_or_insert(&mut request);
        *request.uri_mut() = http::Uri::from_static("/other.S/M");
        assert_eq!(RpcIdentity::from_request(&request), Some(first));
    }

    #[test]
    fn kind_labels_match_go_grpc_prometheus() {
        assert_eq!(RpcKind::from_streaming(false, false).as_str(), "unary");
        assert_eq!(
            RpcKind::from_streaming(true, false).as_str(),
            "client_stream"
        );
        assert_eq!(
            RpcKind::from_streaming(false, true).as_str(),
            "server_stream"
        );
        assert_eq!(RpcKind::from_streaming(true, true).as_str(), "bidi_stream");
    }
}
