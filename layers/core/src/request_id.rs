//! The request id every log line and event of a call carries.
//!
//! The RequestLogging layer takes a client's `x-request-id` (when printable and at most
//! [`MAX_LEN`] characters) or generates one, and stores it here; handlers, the database and
//! NATS helpers read it back to carry it on.

use http::HeaderValue;
use std::fmt;

/// The metadata key of the request id.
pub const HEADER: &str = "x-request-id";
/// The longest request id accepted from a client.
pub const MAX_LEN: usize = 128;

/// A call's request id, in the request extensions.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A client-supplied id, if it is 1 to [`MAX_LEN`] printable ASCII characters.
    ///
    /// ```
    /// use tonic_blueprint_core::RequestId;
    /// assert!(RequestId::accept(&"abc-123".parse().unwrap()).is_some());
    /// assert!(RequestId::accept(&"a b".parse().unwrap()).is_none());
    /// assert!(RequestId::accept(&"x".repeat(129).parse().unwrap()).is_none());
    /// ```
    pub fn accept(value: &HeaderValue) -> Option<Self> {
        acceptable(value.as_bytes()).then(|| Self(value.clone()))
    }

    /// An id from a string the server generated (for example a UUID).
    ///
    /// Returns `None` when it is not an acceptable id.
    pub fn from_generated(id: &str) -> Option<Self> {
        acceptable(id.as_bytes())
            .then(|| HeaderValue::from_str(id).ok().map(Self))
            .flatten()
    }

    /// An id the server generated, kept in `owner` (for example a `[u8; 36]` holding a UUID):
    /// one allocation for the id and every copy of it (the request header, the extension, the
    /// echoed response header), none to convert.
    ///
    /// ```
    /// use tonic_blueprint_core::RequestId;
    /// let id = RequestId::from_generated_owned(*b"0190b2c4-5d1e-7f00-8abc-0123456789ab").unwrap();
    /// assert_eq!(id.as_str(), "0190b2c4-5d1e-7f00-8abc-0123456789ab");
    /// assert!(RequestId::from_generated_owned(*b"with space").is_none());
    /// ```
    pub fn from_generated_owned<T>(owner: T) -> Option<Self>
    where
        T: AsRef<[u8]> + Send + 'static,
    {
        if !acceptable(owner.as_ref()) {
            return None;
        }
        HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(owner))
            .ok()
            .map(Self)
    }

    /// An id from a constant. The caller guarantees it is printable ASCII.
    pub const fn from_static(id: &'static str) -> Self {
        Self(HeaderValue::from_static(id))
    }

    /// The id stored in a request's extensions, if any.
    pub fn from_request<B>(request: &http::Request<B>) -> Option<Self> {
        Self::from_extensions(request.extensions()).cloned()
    }

    /// The id in these extensions, if any: the call's ([`CurrentCall`](crate::CurrentCall),
    /// where the RequestLogging layer keeps it with the trace context), or one stored on
    /// its own (the layer without trace context, or another layer).
    pub fn from_extensions(extensions: &http::Extensions) -> Option<&Self> {
        extensions.get::<Self>().or_else(|| {
            crate::CurrentCall::from_extensions(extensions).and_then(crate::CurrentCall::request_id)
        })
    }

    /// The id of a handler's request, if any.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Self> {
        Self::from_extensions(request.extensions())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever accepted (so UTF-8, checked on ASCII's fast path).
        std::str::from_utf8(self.0.as_bytes()).unwrap_or_default()
    }

    /// The id as a header value, to echo or pass on.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// 1 to [`MAX_LEN`] printable ASCII characters. One pass without early exit (the compiler
/// vectorizes it): almost every id is acceptable.
fn acceptable(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes
            .iter()
            .fold(true, |ok, &b| ok & (0x21..=0x7e).contains(&b))
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.as_str())
    }
}
