//! The two-tier store's invalidations broadcast over NATS (feature `nats`).

use crate::broadcast::{InvalidationBroadcast, decode_keys, encode_keys};
use crate::redis_store::TwoTierStore;
use crate::store::{StoreError, StoreFuture};
use futures_util::StreamExt;
use std::hash::{BuildHasher, Hasher};

/// The header naming the replica that sent an invalidation, so it skips its own.
const ORIGIN: &str = "Cache-Origin";

/// Counter of invalidation messages applied from other replicas.
pub const INVALIDATIONS_RECEIVED: &str = "grpc_server_cache_invalidations_received_total";

#[derive(Debug)]
struct NatsBroadcast {
    client: async_nats::Client,
    subject: async_nats::Subject,
    origin: String,
}

impl InvalidationBroadcast for NatsBroadcast {
    fn announce(&self, keys: &[u64]) -> StoreFuture<'_, ()> {
        let payload = encode_keys(keys);
        Box::pin(async move {
            // On the request path: while disconnected, fail now rather than queue and wait
            // (other replicas' local copies then live out their short TTL).
            if self.client.connection_state() != async_nats::connection::State::Connected {
                return Err(StoreError("NATS is not connected".to_owned()));
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(ORIGIN, self.origin.as_str());
            self.client
                .publish_with_headers(self.subject.clone(), headers, payload.into())
                .await
                .map_err(|e| StoreError(format!("NATS publish: {e}")))?;
            // Out of this process before the handler answers its caller.
            self.client
                .flush()
                .await
                .map_err(|e| StoreError(format!("NATS flush: {e}")))
        })
    }
}

impl TwoTierStore {
    /// Broadcasts this store's invalidations on `subject` and applies those of other replicas
    /// (every replica of a service uses the same subject, such as
    /// `payments.cache.invalidated`).
    ///
    /// Returns once the subscription is registered with the server. A background task drops
    /// the announced keys from this replica's local tier; it ends when the NATS connection
    /// closes. Core NATS is at-most-once: a replica that is disconnected when an invalidation
    /// is sent keeps its local copy until the local TTL, which bounds the damage.
    pub async fn broadcast_over_nats(
        self,
        client: async_nats::Client,
        subject: impl Into<String>,
    ) -> Result<Self, StoreError> {
        let subject: async_nats::Subject = subject.into().into();
        let origin = format!(
            "{:016x}",
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        );
        let mut subscriber = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| StoreError(format!("NATS subscribe: {e}")))?;
        client
            .flush()
            .await
            .map_err(|e| StoreError(format!("NATS flush: {e}")))?;
        let receiver = self.clone();
        let own = origin.clone();
        tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let from_self = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(ORIGIN))
                    .is_some_and(|o| o.as_str() == own);
                if from_self {
                    continue;
                }
                match decode_keys(&message.payload) {
                    Ok(keys) => {
                        receiver.drop_local(&keys).await;
                        metrics::counter!(INVALIDATIONS_RECEIVED).increment(1);
                    }
                    Err(e) => tracing::warn!(error = %e, "ignored a cache invalidation message"),
                }
            }
        });
        Ok(self.with_broadcast(NatsBroadcast {
            client,
            subject,
            origin,
        }))
    }
}
