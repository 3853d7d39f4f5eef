//! `grpc-timeout` and the per-call [`Deadline`].
//!
//! A client states its deadline as `grpc-timeout`: at most 8 ASCII digits and one unit
//! (`H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds).
//! A malformed value is treated as absent, as tonic and grpc-java do: the server's own policy
//! still bounds the call.
//!
//! The effective deadline of a call is the earlier of the server policy and the client's
//! timeout. The layer that computes it stores a [`Deadline`] in the request extensions, where
//! handlers and helpers (a database statement timeout, an outgoing call) read what is left.
//!
//! ```
//! use std::time::Duration;
//! use tonic_blueprint_core::{encode_grpc_timeout, parse_grpc_timeout};
//!
//! assert_eq!(parse_grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
//! assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
//! assert_eq!(parse_grpc_timeout(b"123456789S"), None); // nine digits
//! assert_eq!(parse_grpc_timeout(b"10s"), None);        // `s` is not a unit
//! assert_eq!(encode_grpc_timeout(Duration::from_millis(1500)), "1500000u");
//! ```

use http::HeaderValue;
use std::time::Duration;
use tokio::time::Instant;

/// The name of the header a client states its timeout in.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// Parses a `grpc-timeout` value; `None` when it is malformed.
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 8 digits: fits in u64 with room for any unit below.
    let n = digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Encodes a duration as a `grpc-timeout` value, in the finest unit that fits 8 digits
/// (rounding up, so the callee never gets more time than the caller has).
pub fn encode_grpc_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per, unit) in units {
        let value = nanos.div_ceil(per);
        if value <= MAX {
            return HeaderValue::from_str(&format!("{value}{unit}"))
                .unwrap_or(HeaderValue::from_static("99999999H"));
        }
    }
    HeaderValue::from_static("99999999H")
}

/// Reads the client's `grpc-timeout` from request headers; malformed or absent gives `None`.
pub fn client_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(crate::headers::GRPC_TIMEOUT)
        .and_then(|v| parse_grpc_timeout(v.as_bytes()))
}

/// Which side set the effective deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlineSource {
    /// The client's `grpc-timeout` was the shorter.
    Client,
    /// The server's policy was the shorter (or the client sent none).
    Server,
}

/// The effective deadline of a call, stored in the request extensions.
///
/// Handlers read it through `request.extensions().get::<Deadline>()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    expires_at: Instant,
    timeout: Duration,
    source: DeadlineSource,
}

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration, source: DeadlineSource) -> Self {
        let now = Instant::now();
        Self {
            expires_at: now.checked_add(timeout).unwrap_or_else(far_future),
            timeout,
            source,
        }
    }

    /// The earlier of the server policy and the client timeout, from now; `None` when neither
    /// is set. On a tie the server is named as the source.
    pub fn effective(server: Option<Duration>, client: Option<Duration>) -> Option<Self> {
        match (server, client) {
            (None, None) => None,
            (Some(s), None) => Some(Self::after(s, DeadlineSource::Server)),
            (None, Some(c)) => Some(Self::after(c, DeadlineSource::Client)),
            (Some(s), Some(c)) if c < s => Some(Self::after(c, DeadlineSource::Client)),
            (Some(s), Some(_)) => Some(Self::after(s, DeadlineSource::Server)),
        }
    }

    /// The deadline stored in a request's extensions, if a layer set one.
    pub fn from_request<B>(request: &http::Request<B>) -> Option<Self> {
        request.extensions().get::<Self>().copied()
    }

    /// When the call expires.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// The whole timeout the call was given.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Which side set it.
    pub fn source(&self) -> DeadlineSource {
        self.source
    }

    /// Time left; zero once expired.
    pub fn remaining(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.expires_at
    }

    /// The remaining time as a `grpc-timeout` value, to pass the deadline on to a call this
    /// handler makes.
    pub fn to_grpc_timeout(&self) -> HeaderValue {
        encode_grpc_timeout(self.remaining())
    }
}

fn far_future() -> Instant {
    // About 30 years, the same bound tokio uses for "never".
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        let cases: [(&[u8], Duration); 7] = [
            (b"1H", Duration::from_secs(3600)),
            (b"2M", Duration::from_secs(120)),
            (b"3S", Duration::from_secs(3)),
            (b"4m", Duration::from_millis(4)),
            (b"5u", Duration::from_micros(5)),
            (b"6n", Duration::from_nanos(6)),
            (b"99999999H", Duration::from_secs(99_999_999 * 3600)),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_grpc_timeout(value), Some(expected));
        }
    }

    #[test]
    fn malformed_values_are_none() {
        for value in [
            &b""[..],
            b"m",
            b"10",
            b"10s",
            b"10 m",
            b" 10m",
            b"-1m",
            b"1.5S",
            b"123456789m",
            b"0x10m",
            "１m".as_bytes(),
        ] {
            assert_eq!(parse_grpc_timeout(value), None, "{value:?}");
        }
        assert_eq!(parse_grpc_timeout(b"00000000m"), Some(Duration::ZERO));
    }

    #[test]
    fn encoding_round_trips_and_never_adds_time() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_millis(50),
            Duration::from_secs(30),
            Duration::from_secs(86_400 * 365),
            Duration::from_nanos(123_456_789_123),
        ] {
            let encoded = encode_grpc_timeout(d);
            let back = parse_grpc_timeout(encoded.as_bytes()).unwrap();
            assert!(back >= d, "{d:?} -> {encoded:?} -> {back:?}");
            assert!(encoded.len() <= 9);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn effective_deadline_is_the_earlier_one() {
        let s = Some(Duration::from_secs(30));
        let c = Some(Duration::from_millis(50));
        let d = Deadline::effective(s, c).unwrap();
        assert_eq!(d.source(), DeadlineSource::Client);
        assert_eq!(d.timeout(), Duration::from_millis(50));
        let d = Deadline::effective(s, Some(Duration::from_secs(60))).unwrap();
        assert_eq!(d.source(), DeadlineSource::Server);
        assert_eq!(Deadline::effective(None, None), None);

        let d = Deadline::effective(None, c).unwrap();
        tokio::time::advance(Duration::from_millis(20)).await;
        assert_eq!(d.remaining(), Duration::from_millis(30));
        assert!(!d.is_expired());
        tokio::time::advance(Duration::from_millis(30)).await;
        assert!(d.is_expired());
        assert_eq!(d.remaining(), Duration::ZERO);
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let d = Deadline::after(Duration::MAX, DeadlineSource::Server);
            assert!(d.remaining() > Duration::from_secs(86_400 * 365));
        });
    }
}
