//! Cross-replica invalidation: what one replica removes, the others drop from their local tier.

use crate::store::{StoreError, StoreFuture};

/// Announces the hashed keys this replica invalidated to every other replica.
///
/// The two-tier store calls it after removing the shared entries; the receiving side calls
/// `TwoTierStore::drop_local` with the keys. `broadcast_over_nats` (feature `nats`) is the
/// ready-made implementation.
pub trait InvalidationBroadcast: Send + Sync + 'static {
    /// Sends `keys`; returns once the message has left this process.
    fn announce(&self, keys: &[u64]) -> StoreFuture<'_, ()>;
}

/// Keys on the wire: 8 bytes each, big-endian.
pub fn encode_keys(keys: &[u64]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.to_be_bytes()).collect()
}

/// The keys of a message, or an error when its length is not a multiple of 8.
pub fn decode_keys(bytes: &[u8]) -> Result<Vec<u64>, StoreError> {
    let chunks = bytes.chunks_exact(8);
    if !chunks.remainder().is_empty() {
        return Err(StoreError(format!(
            "invalidation message of {} bytes is not a list of 8-byte keys",
            bytes.len()
        )));
    }
    Ok(chunks
        .map(|c| {
            let mut key = [0u8; 8];
            key.copy_from_slice(c);
            u64::from_be_bytes(key)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_torn_messages_are_refused() {
        let keys = [0, 1, u64::MAX, 0x0123_4567_89ab_cdef];
        assert_eq!(decode_keys(&encode_keys(&keys)).expect("decode"), keys);
        assert!(decode_keys(&[1, 2, 3]).is_err());
        assert!(decode_keys(&[]).expect("empty").is_empty());
    }
}
