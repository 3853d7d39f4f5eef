//! Invalidation: by request, by method, and by the tags handlers attach to responses.
//!
//! A handler tags its response with the `x-cache-tags` response metadata (comma-separated,
//! such as `payment:42,user:7`); the layer removes that metadata before the response leaves
//! and indexes the entry under each tag, and under `method:<path>`. A mutating handler then
//! calls [`CacheInvalidator::invalidate_tag`] before it answers, so the caller's next read
//! misses.
//!
//! A tag is any UTF-8 text. In the metadata each tag is percent-encoded (`%2C` for a comma,
//! UTF-8 bytes as `%XX`): [`tags_header`] writes the value, and plain tags such as
//! `user:7` need no encoding. A response whose tags cannot be read (not UTF-8 once decoded,
//! or more than [`MAX_TAGS_PER_ENTRY`]) is served but not stored, so an invalidation of a
//! tag can never miss an entry that carries it.

use crate::layer::Shared;
use crate::store::StoreError;
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use tonic_blueprint_core::{Deadline, RpcIdentity};

/// The response metadata a handler lists its entry's tags in.
pub const TAGS_HEADER: &str = "x-cache-tags";
/// [`TAGS_HEADER`] as a header name: looked up without parsing the name each time.
const TAGS: http::HeaderName = http::HeaderName::from_static(TAGS_HEADER);
/// The label naming the operation on the invalidator's failures counted in
/// `grpc_server_cache_errors_total` (`invalidate_tag`, `invalidate_request`).
pub const LABEL_OPERATION: &str = "cache_operation";
/// Tags an entry may carry; a response with more is served but not stored.
pub const MAX_TAGS_PER_ENTRY: usize = 16;

/// The `x-cache-tags` value naming `tags`: each percent-encoded (`,` `%`, spaces, controls
/// and non-ASCII), joined by commas. Empty tags are skipped.
///
/// ```
/// use tonic_blueprint_cache::tags_header;
/// assert_eq!(tags_header(["user:7", "a,b", "café"]).to_str().unwrap(), "user:7,a%2Cb,caf%C3%A9");
/// ```
pub fn tags_header<I, T>(tags: I) -> HeaderValue
where
    I: IntoIterator<Item = T>,
    T: AsRef<str>,
{
    let mut out = String::new();
    for tag in tags {
        let tag = tag.as_ref();
        if tag.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        for byte in tag.bytes() {
            if byte.is_ascii_graphic() && byte != b',' && byte != b'%' {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    // Visible ASCII only: always a valid header value.
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// One tag as written in the metadata: percent-decoded; `None` when not UTF-8.
fn decode_tag(text: &[u8]) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (text[i], text.get(i + 1), text.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                bytes.push(((hex(h)? << 4) | hex(l)?) as u8);
                i += 3;
            }
            (b, ..) => {
                bytes.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(bytes).ok()
}

/// Removes the tags a handler attached, and returns them with the method's own tag; `None`
/// when they cannot all be read (the response must then not be stored).
pub(crate) fn take_tags(headers: &mut HeaderMap, id: &RpcIdentity) -> Option<Vec<String>> {
    let mut tags = vec![method_tag(id.path())];
    let mut readable = true;
    for value in headers.get_all(TAGS) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() {
                continue;
            }
            match decode_tag(part) {
                Some(tag) if !tags.contains(&tag) => tags.push(tag),
                Some(_) => {}
                None => readable = false,
            }
        }
    }
    headers.remove(TAGS);
    (readable && tags.len() <= MAX_TAGS_PER_ENTRY + 1).then_some(tags)
}

fn method_tag(path: &str) -> String {
    format!("method:{path}")
}

/// How long a store operation may take: `timeout`, and never past nine tenths of what is left
/// of the call's `deadline` (the rest is the handler's, to answer).
pub(crate) fn budget(timeout: Duration, deadline: Option<&Deadline>) -> Duration {
    match deadline {
        Some(deadline) => {
            let left = deadline.remaining();
            timeout.min(left - left / 10)
        }
        None => timeout,
    }
}

/// Invalidates entries of a [`ResponseCacheLayer`](crate::ResponseCacheLayer); clone it into
/// the handlers that change data.
///
/// Each operation is bounded: it fails with a [`StoreError`] once the layer's
/// [`invalidation_timeout`](crate::ResponseCacheLayer::invalidation_timeout) (default
/// 100 ms) has passed, or sooner when the call's deadline is near
/// ([`CacheInvalidator::with_deadline`]). A handler logs the error and answers: the entries
/// then expire with their TTL.
#[derive(Clone)]
pub struct CacheInvalidator {
    pub(crate) shared: Arc<Shared>,
    pub(crate) deadline: Option<Deadline>,
}

impl std::fmt::Debug for CacheInvalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheInvalidator")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl CacheInvalidator {
    /// The same invalidator, bounded by the call's deadline as well (the `Deadline` in the
    /// request extensions, when a Timeout layer put one there).
    pub fn with_deadline(&self, deadline: Option<Deadline>) -> Self {
        Self {
            shared: self.shared.clone(),
            deadline,
        }
    }

    /// Runs an invalidation within its bound; a failure is counted in
    /// `grpc_server_cache_errors_total{cache_operation="<name>"}`.
    async fn bounded<T>(
        &self,
        name: &'static str,
        operation: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = budget(self.shared.invalidation_timeout, self.deadline.as_ref());
        let result = tokio::time::timeout(limit, operation)
            .await
            .unwrap_or_else(|_| Err(StoreError(format!("no answer within {limit:?}"))));
        if result.is_err() {
            metrics::counter!(
                tonic_blueprint_core::names::CACHE_ERRORS,
                LABEL_OPERATION => name
            )
            .increment(1);
        }
        result
    }

    /// Removes every entry tagged `tag`; returns how many it named.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<usize, StoreError> {
        let removed = self
            .bounded("invalidate_tag", self.shared.store.invalidate_tag(tag))
            .await?;
        self.count_deletes(removed);
        Ok(removed)
    }

    /// Removes every entry of a method (`pkg.Service/Method`).
    pub async fn invalidate_method(&self, method: &str) -> Result<usize, StoreError> {
        let path = format!("/{}", method.trim_start_matches('/'));
        self.invalidate_tag(&method_tag(&path)).await
    }

    /// Removes the entry of one request: the method, the encoded request message, the
    /// verified caller it was cached for (if any) and the request metadata (only the vary keys
    /// matter).
    pub async fn invalidate_request(
        &self,
        method: &str,
        message: &[u8],
        metadata: &HeaderMap,
        caller: Option<&tonic_blueprint_core::Identity>,
    ) -> Result<(), StoreError> {
        let path = format!("/{}", method.trim_start_matches('/'));
        let id = RpcIdentity::parse(&path)
            .ok_or_else(|| StoreError(format!("{method:?} is not pkg.Service/Method")))?;
        let key = self.shared.key(&id, message, metadata, caller);
        self.bounded("invalidate_request", self.shared.store.delete(key))
            .await?;
        self.count_deletes(1);
        Ok(())
    }

    fn count_deletes(&self, n: usize) {
        metrics::counter!(tonic_blueprint_core::names::CACHE_DELETES).increment(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &'static [u8]) -> Option<Vec<String>> {
        let mut headers = HeaderMap::new();
        headers.insert(TAGS, HeaderValue::from_bytes(value).expect("value"));
        let id = RpcIdentity::parse("/p.S/M").expect("path");
        take_tags(&mut headers, &id).map(|tags| tags[1..].to_vec())
    }

    #[test]
    fn any_utf8_tag_survives_the_metadata() {
        let tags = ["user:7", "a,b", "café", "50%", " spaced ", "x%2Cy"];
        let value = tags_header(tags);
        let mut headers = HeaderMap::new();
        headers.insert(TAGS, value);
        let id = RpcIdentity::parse("/p.S/M").expect("path");
        let read = take_tags(&mut headers, &id).expect("readable");
        assert_eq!(read[0], "method:/p.S/M");
        assert_eq!(&read[1..], &tags);
        assert!(headers.is_empty(), "the metadata never leaves");
    }

    #[test]
    fn plain_and_raw_utf8_metadata_reads_as_written() {
        assert_eq!(
            read(b"payment:42, user:7").expect("tags"),
            ["payment:42", "user:7"]
        );
        assert_eq!(read("usuario:é".as_bytes()).expect("tags"), ["usuario:é"]);
        assert_eq!(read(b"100%").expect("tags"), ["100%"]);
        assert!(
            read(b"bad:%FF").is_none(),
            "not UTF-8: the entry is not stored"
        );
        let many: String = (0..=MAX_TAGS_PER_ENTRY).map(|i| format!("t{i},")).collect();
        let many: &'static str = Box::leak(many.into_boxed_str());
        assert!(read(many.as_bytes()).is_none(), "too many tags: not stored");
    }
}
