//! Trace and span ids: random, never all zeros, written as lowercase hex.

use std::fmt;

/// A 16-byte trace id, shared by every span of one trace. Never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

/// An 8-byte span id, unique within its trace. Never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(u64);

impl TraceId {
    /// A new random id (a fast non-cryptographic generator: ids need to be unique, not
    /// secret).
    pub fn random() -> Self {
        loop {
            let id = fastrand::u128(..);
            if id != 0 {
                return Self(id);
            }
        }
    }

    /// The id of these bytes (big-endian, as written in `traceparent`); `None` for all zeros.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        Some(u128::from_be_bytes(bytes))
            .filter(|id| *id != 0)
            .map(Self)
    }

    /// The id from 32 lowercase hex digits; `None` when malformed or all zeros.
    pub fn from_hex(hex: &str) -> Option<Self> {
        parse_hex::<16>(hex.as_bytes()).and_then(Self::from_bytes)
    }

    /// Its bytes, big-endian.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Its 32 lowercase hex digits, without an allocation.
    pub fn to_hex(self) -> Hex<32> {
        Hex::new(&self.to_bytes())
    }
}

impl SpanId {
    /// A new random id.
    pub fn random() -> Self {
        loop {
            let id = fastrand::u64(..);
            if id != 0 {
                return Self(id);
            }
        }
    }

    /// The id of these bytes (big-endian); `None` for all zeros.
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        Some(u64::from_be_bytes(bytes))
            .filter(|id| *id != 0)
            .map(Self)
    }

    /// The id from 16 lowercase hex digits; `None` when malformed or all zeros.
    pub fn from_hex(hex: &str) -> Option<Self> {
        parse_hex::<8>(hex.as_bytes()).and_then(Self::from_bytes)
    }

    /// Its bytes, big-endian.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Its 16 lowercase hex digits, without an allocation.
    pub fn to_hex(self) -> Hex<16> {
        Hex::new(&self.to_bytes())
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// `N` lowercase hex digits on the stack (an id's text).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex<const N: usize>([u8; N]);

const DIGITS: &[u8; 16] = b"0123456789abcdef";

impl<const N: usize> Hex<N> {
    fn new(bytes: &[u8]) -> Self {
        let mut out = [b'0'; N];
        for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        Self(out)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The digits as bytes.
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `2 * N` lowercase hex digits as `N` bytes; uppercase is refused, as W3C Trace Context
/// requires.
pub(crate) fn parse_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_zero_and_uppercase() {
        let id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("valid");
        assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceId::from_bytes(id.to_bytes()), Some(id));
        assert!(TraceId::from_hex("00000000000000000000000000000000").is_none());
        assert!(TraceId::from_hex("4BF92F3577B34DA6A3CE929D0E0E4736").is_none());
        assert!(TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e473").is_none());
        let span = SpanId::from_hex("00f067aa0ba902b7").expect("valid");
        assert_eq!(span.to_hex().as_str(), "00f067aa0ba902b7");
        assert!(SpanId::from_hex("0000000000000000").is_none());
        assert!(SpanId::from_hex("00f067aa0ba902bg").is_none());
    }

    #[test]
    fn random_ids_differ_and_are_never_zero() {
        let a = TraceId::random();
        let b = TraceId::random();
        assert_ne!(a, b);
        assert_ne!(a.to_bytes(), [0; 16]);
        assert_ne!(SpanId::random(), SpanId::random());
    }
}
