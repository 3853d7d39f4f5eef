//! Invalidation: by request, by method, and by the tags handlers attach to responses.
//!
//! A handler tags its response with the `x-cache-tags` response metadata
//! (comma-separated, such as `payment:42,user:7`); the layer removes that metadata before the
//! response leaves and indexes the entry under each tag, and under `method:<path>`. A
//! mutating handler then calls [`CacheInvalidator::invalidate_tag`] before it answers, so the
//! caller's next read misses.

use crate::layer::Shared;
use crate::store::StoreError;
use http::HeaderMap;
use std::sync::Arc;
use tonic_blueprint_core::RpcIdentity;

/// The response metadata a handler lists its entry's tags in.
pub const TAGS_HEADER: &str = "x-cache-tags";
/// [`TAGS_HEADER`] as a header name: looked up without parsing the name each time.
const TAGS: http::HeaderName = http::HeaderName::from_static(TAGS_HEADER);
/// Tags kept per entry; further ones are ignored.
pub const MAX_TAGS_PER_ENTRY: usize = 16;
const MAX_TAG_LEN: usize = 128;

/// Removes the tags a handler attached, and returns them with the method's own tag.
pub(crate) fn take_tags(headers: &mut HeaderMap, id: &RpcIdentity) -> Vec<String> {
    let mut tags = vec![method_tag(id.path())];
    for value in headers.get_all(TAGS) {
        let Ok(text) = value.to_str() else { continue };
        tags.extend(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty() && t.len() <= MAX_TAG_LEN)
                .map(str::to_owned),
        );
    }
    headers.remove(TAGS);
    tags.truncate(MAX_TAGS_PER_ENTRY + 1);
    tags
}

fn method_tag(path: &str) -> String {
    format!("method:{path}")
}

/// Invalidates entries of a [`ResponseCacheLayer`](crate::ResponseCacheLayer); clone it into
/// the handlers that change data.
#[derive(Clone)]
pub struct CacheInvalidator {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for CacheInvalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheInvalidator").finish_non_exhaustive()
    }
}

impl CacheInvalidator {
    /// Removes every entry tagged `tag`; returns how many it named.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<usize, StoreError> {
        let removed = self.shared.store.invalidate_tag(tag).await?;
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
        self.shared
            .store
            .delete(self.shared.key(&id, message, metadata, caller))
            .await?;
        self.count_deletes(1);
        Ok(())
    }

    fn count_deletes(&self, n: usize) {
        metrics::counter!(tonic_blueprint_core::names::CACHE_DELETES).increment(n as u64);
    }
}
