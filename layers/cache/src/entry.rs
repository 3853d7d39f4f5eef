//! A stored response: its metadata, message frames and trailers, in a compact binary form.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

const MAGIC: &[u8; 4] = b"TBC1";

/// Headers never stored: they describe one transfer, not the response.
const SKIPPED: [&str; 4] = ["content-length", "date", "x-cache", "x-request-id"];

/// A unary gRPC response as stored: response metadata, the body (5-byte-prefixed message
/// frames) and the trailers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedResponse {
    /// Response headers (initial metadata).
    pub headers: HeaderMap,
    /// The message frames, exactly as the handler sent them.
    pub body: Bytes,
    /// The trailers (`grpc-status: 0` and any trailing metadata).
    pub trailers: HeaderMap,
}

impl CachedResponse {
    /// The stored form: a magic tag, then length-prefixed headers, body and trailers.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.body.len() + 256);
        out.put_slice(MAGIC);
        put_map(&mut out, &self.headers);
        out.put_u32(self.body.len() as u32);
        out.put_slice(&self.body);
        put_map(&mut out, &self.trailers);
        out.freeze()
    }

    /// Reads the stored form; `None` when it is not one (a foreign or damaged value).
    pub fn decode(mut input: Bytes) -> Option<Self> {
        if input.len() < MAGIC.len() || &input[..MAGIC.len()] != MAGIC {
            return None;
        }
        input.advance(MAGIC.len());
        let headers = get_map(&mut input)?;
        let len = get_u32(&mut input)? as usize;
        if input.len() < len {
            return None;
        }
        let body = input.split_to(len);
        let trailers = get_map(&mut input)?;
        input.is_empty().then_some(Self {
            headers,
            body,
            trailers,
        })
    }
}

fn put_map(out: &mut BytesMut, map: &HeaderMap) {
    let kept: Vec<_> = map
        .iter()
        .filter(|(name, _)| !SKIPPED.contains(&name.as_str()))
        .collect();
    out.put_u16(kept.len() as u16);
    for (name, value) in kept {
        out.put_u16(name.as_str().len() as u16);
        out.put_slice(name.as_str().as_bytes());
        out.put_u32(value.len() as u32);
        out.put_slice(value.as_bytes());
    }
}

fn get_u32(input: &mut Bytes) -> Option<u32> {
    (input.len() >= 4).then(|| input.get_u32())
}

fn get_map(input: &mut Bytes) -> Option<HeaderMap> {
    if input.len() < 2 {
        return None;
    }
    let count = input.get_u16();
    let mut map = HeaderMap::with_capacity(count as usize);
    for _ in 0..count {
        if input.len() < 2 {
            return None;
        }
        let name_len = input.get_u16() as usize;
        if input.len() < name_len {
            return None;
        }
        let name = HeaderName::from_bytes(&input.split_to(name_len)).ok()?;
        let value_len = get_u32(input)? as usize;
        if input.len() < value_len {
            return None;
        }
        let value = HeaderValue::from_maybe_shared(input.split_to(value_len)).ok()?;
        map.append(name, value);
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("x-custom", HeaderValue::from_static("v"));
        headers.insert("date", HeaderValue::from_static("today"));
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let entry = CachedResponse {
            headers,
            body: Bytes::from_static(b"\0\0\0\0\x02hi"),
            trailers,
        };
        let encoded = entry.encode();
        let decoded = CachedResponse::decode(encoded.clone()).unwrap();
        assert_eq!(decoded.body, entry.body);
        assert_eq!(decoded.trailers, entry.trailers);
        assert_eq!(decoded.headers.len(), 2, "date is not stored");
        for cut in 0..encoded.len() {
            assert!(
                CachedResponse::decode(encoded.slice(..cut)).is_none(),
                "{cut}"
            );
        }
        assert!(CachedResponse::decode(Bytes::from_static(b"garbage")).is_none());
    }
}
