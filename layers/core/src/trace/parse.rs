//! The strict parsers of `traceparent`, `tracestate` and `baggage`.
//!
//! A value that breaks its grammar is ignored as a whole, as W3C Trace Context requires: the
//! call then starts a new trace (or carries no tracestate, no baggage). Nothing in these
//! headers is trusted to change anything but the trace a call belongs to.

use super::ids::{SpanId, TraceId, parse_hex};
use http::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent` (W3C Trace Context).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` (W3C Trace Context).
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// `baggage` (W3C Baggage).
pub const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// The longest `tracestate` kept (the 512 characters W3C asks every vendor to propagate).
pub const MAX_TRACESTATE_LEN: usize = 512;
/// The most `tracestate` entries (W3C's limit).
pub const MAX_TRACESTATE_ENTRIES: usize = 32;
/// The longest `baggage` accepted; a longer one is ignored whole.
pub const MAX_BAGGAGE_LEN: usize = 8192;
/// The most `baggage` entries accepted; more and the header is ignored whole.
pub const MAX_BAGGAGE_ENTRIES: usize = 64;

/// The caller's span, from a valid `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span, the parent of the one this side starts.
    pub parent_id: SpanId,
    /// The caller's sampled flag: it may have recorded its span.
    pub sampled: bool,
}

impl TraceParent {
    /// The `traceparent` of `headers`, if there is exactly one and it is valid.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        parse_traceparent(value.as_bytes())
    }
}

/// Parses a `traceparent` value strictly: `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, the ids
/// not all zeros, version `ff` refused. A later version is read by its first 55 characters
/// when a `-` or the end follows them, as the specification asks.
///
/// ```
/// use tonic_blueprint_core::trace::parse_traceparent;
///
/// let parent = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(parent.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!(parent.sampled);
/// assert!(parse_traceparent(b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none());
/// assert!(parse_traceparent(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// assert!(parse_traceparent(b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none());
/// ```
pub fn parse_traceparent(value: &[u8]) -> Option<TraceParent> {
    const LEN: usize = 55;
    let head = value.get(..LEN)?;
    let [version] = parse_hex::<1>(head.get(..2)?)?;
    match version {
        0xff => return None,
        0 if value.len() != LEN => return None,
        _ if value.len() > LEN && value[LEN] != b'-' => return None,
        _ => {}
    }
    if head[2] != b'-' || head[35] != b'-' || head[52] != b'-' {
        return None;
    }
    let trace_id = TraceId::from_bytes(parse_hex::<16>(&head[3..35])?)?;
    let parent_id = SpanId::from_bytes(parse_hex::<8>(&head[36..52])?)?;
    let [flags] = parse_hex::<1>(&head[53..55])?;
    Some(TraceParent {
        trace_id,
        parent_id,
        sampled: flags & 0x01 != 0,
    })
}

/// The `tracestate` of `headers` (several headers joined, as one list), checked entry by
/// entry: `None` when absent, empty, or when any entry or the list breaks the grammar (more
/// than 32 entries, a key twice, a bad key or value). Past [`MAX_TRACESTATE_LEN`] entries
/// longer than 128 characters go first, then entries from the end, as the specification
/// suggests.
pub fn parse_tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all(TRACESTATE) {
        let text = value.to_str().ok()?;
        for entry in text.split(',') {
            let entry = entry.trim_matches([' ', '\t']);
            if entry.is_empty() {
                continue;
            }
            let (key, value) = entry.split_once('=')?;
            if !tracestate_key(key) || !tracestate_value(value) {
                return None;
            }
            if entries
                .iter()
                .any(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
            {
                return None;
            }
            entries.push(entry);
        }
    }
    if entries.is_empty() || entries.len() > MAX_TRACESTATE_ENTRIES {
        return None;
    }
    let joined_len = |entries: &[&str]| {
        entries.iter().map(|e| e.len()).sum::<usize>() + entries.len().saturating_sub(1)
    };
    if joined_len(&entries) > MAX_TRACESTATE_LEN {
        entries.retain(|e| e.len() <= 128);
        while joined_len(&entries) > MAX_TRACESTATE_LEN {
            entries.pop();
        }
    }
    if entries.is_empty() {
        return None;
    }
    HeaderValue::from_str(&entries.join(",")).ok()
}

fn tracestate_key(key: &str) -> bool {
    fn rest(b: u8) -> bool {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
    }
    let bytes = key.as_bytes();
    match key.split_once('@') {
        None => {
            bytes.first().is_some_and(u8::is_ascii_lowercase)
                && bytes.len() <= 256
                && bytes.iter().all(|b| rest(*b))
        }
        Some((tenant, system)) => {
            let (tenant, system) = (tenant.as_bytes(), system.as_bytes());
            tenant
                .first()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && tenant.len() <= 241
                && tenant.iter().all(|b| rest(*b))
                && system.first().is_some_and(u8::is_ascii_lowercase)
                && system.len() <= 14
                && system.iter().all(|b| rest(*b))
        }
    }
}

fn tracestate_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 256
        && bytes.last() != Some(&b' ')
        && bytes
            .iter()
            .all(|b| matches!(b, 0x20..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e))
}

/// The `baggage` of `headers` (several headers joined, as one list), checked against W3C
/// Baggage: `None` when absent, or when any entry breaks the grammar or there are more than
/// [`MAX_BAGGAGE_ENTRIES`] entries or [`MAX_BAGGAGE_LEN`] bytes: then the header is ignored
/// whole.
pub fn parse_baggage(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers.get_all(BAGGAGE).iter();
    let first = values.next()?;
    let rest: Vec<&HeaderValue> = values.collect();
    let combined;
    let value = if rest.is_empty() {
        first
    } else {
        let mut text = first.as_bytes().to_vec();
        for more in rest {
            text.push(b',');
            text.extend_from_slice(more.as_bytes());
        }
        combined = HeaderValue::from_bytes(&text).ok()?;
        &combined
    };
    let text = value.to_str().ok()?;
    if text.len() > MAX_BAGGAGE_LEN {
        return None;
    }
    let mut count = 0;
    for member in text.split(',') {
        count += 1;
        if count > MAX_BAGGAGE_ENTRIES || !baggage_member(member) {
            return None;
        }
    }
    Some(value.clone())
}

fn baggage_member(member: &str) -> bool {
    let mut parts = member.split(';');
    let Some((key, value)) = parts.next().and_then(|kv| kv.split_once('=')) else {
        return false;
    };
    if !token(trim_ows(key)) || !trim_ows(value).bytes().all(baggage_octet) {
        return false;
    }
    parts.all(|property| match property.split_once('=') {
        Some((key, value)) => token(trim_ows(key)) && trim_ows(value).bytes().all(baggage_octet),
        None => token(trim_ows(property)),
    })
}

fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// An RFC 9110 token.
fn token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

fn baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// The value of `key` in a valid baggage list, percent-decoded (invalid UTF-8 replaced).
pub(crate) fn baggage_value(baggage: &str, key: &str) -> Option<String> {
    baggage.split(',').find_map(|member| {
        let (k, rest) = member.split(';').next()?.split_once('=')?;
        (trim_ows(k) == key).then(|| percent_decode(trim_ows(rest)))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some([byte]) = bytes.get(i + 1..i + 3).and_then(parse_hex_any_case)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_hex_any_case(pair: &[u8]) -> Option<[u8; 1]> {
    let lower: Vec<u8> = pair.iter().map(u8::to_ascii_lowercase).collect();
    parse_hex::<1>(&lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                (*name).clone(),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[test]
    fn traceparent_accepts_only_the_exact_grammar() {
        let parent = parse_traceparent(VALID.as_bytes()).expect("valid");
        assert_eq!(parent.parent_id.to_string(), "00f067aa0ba902b7");
        assert!(parent.sampled);
        let unsampled = parse_traceparent(VALID.replace("-01", "-00").as_bytes()).expect("valid");
        assert!(!unsampled.sampled);
        for bad in [
            "",
            "00",
            &VALID[..54],
            &format!("{VALID}-"), // version 00 has exactly 55 characters
            &VALID.replace("00-4bf", "0-04bf"), // misplaced dash
            &VALID.replace("00f067aa0ba902b7", "0000000000000000"),
            &VALID.replace("-01", "-1x"),
            &VALID.replace("4bf9", "4BF9"),
            &VALID.replacen("00", "ff", 1),
            &VALID.replacen("00", "0g", 1),
            &VALID.replace('-', "_"),
            &format!(" {}", &VALID[1..]),
        ] {
            assert!(parse_traceparent(bad.as_bytes()).is_none(), "{bad:?}");
        }
        // A later version: its first 55 characters, then a dash or the end.
        assert!(parse_traceparent(VALID.replacen("00", "01", 1).as_bytes()).is_some());
        assert!(
            parse_traceparent(format!("{}-extra", VALID.replacen("00", "01", 1)).as_bytes())
                .is_some()
        );
        assert!(
            parse_traceparent(format!("{}extra", VALID.replacen("00", "01", 1)).as_bytes())
                .is_none()
        );
    }

    #[test]
    fn two_traceparents_are_none() {
        let map = headers(&[(&TRACEPARENT, VALID), (&TRACEPARENT, VALID)]);
        assert!(TraceParent::from_headers(&map).is_none());
        let map = headers(&[(&TRACEPARENT, VALID)]);
        assert!(TraceParent::from_headers(&map).is_some());
    }

    #[test]
    fn tracestate_is_checked_entry_by_entry() {
        let name = TRACESTATE;
        let state = |values: &[&str]| {
            let pairs: Vec<_> = values.iter().map(|v| (&name, *v)).collect();
            parse_tracestate(&headers(&pairs)).map(|v| v.to_str().expect("text").to_owned())
        };
        assert_eq!(
            state(&["rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE"]).as_deref(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        assert_eq!(state(&["a=1", "b=2"]).as_deref(), Some("a=1,b=2"));
        assert_eq!(
            state(&["tenant@vendor=x,,b=2"]).as_deref(),
            Some("tenant@vendor=x,b=2")
        );
        for bad in [
            "Upper=1",
            "a=1,a=2",
            "a=",
            "a=b=c",
            "a=b\tc",
            "@v=1",
            "t@=1",
            "t@Vendor=1",
            "noequals",
            "",
        ] {
            assert!(state(&[bad]).is_none(), "{bad:?}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(state(&[&many.join(",")]).is_none());
        // Past 512 characters: the long entries go first, then entries from the end.
        let long = format!("long={}", "x".repeat(200));
        let short: Vec<String> = (0..30)
            .map(|i| format!("k{i:02}={}", "y".repeat(12)))
            .collect();
        let kept = state(&[&format!("{long},{}", short.join(","))]).expect("kept");
        assert!(kept.len() <= MAX_TRACESTATE_LEN, "{}", kept.len());
        assert!(kept.starts_with("k00="), "{kept}");
        assert!(!kept.contains("long="));
    }

    #[test]
    fn baggage_is_checked_and_read() {
        let bag = |value: &str| parse_baggage(&headers(&[(&BAGGAGE, value)]));
        let valid = bag("userId=alice, tier = gold;ttl=60, note=a%20b%2Cc;flag").expect("valid");
        let text = valid.to_str().expect("text");
        assert_eq!(baggage_value(text, "userId").as_deref(), Some("alice"));
        assert_eq!(baggage_value(text, "tier").as_deref(), Some("gold"));
        assert_eq!(baggage_value(text, "note").as_deref(), Some("a b,c"));
        assert_eq!(baggage_value(text, "missing"), None);
        for bad in [
            "novalue",
            "k=v v",
            "k=\"quoted\"",
            "k=a\\b",
            "(k)=v",
            "k=v;(p)",
            "k=v,",
        ] {
            assert!(bag(bad).is_none(), "{bad:?}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("k{i}=v")).collect();
        assert!(bag(&many.join(",")).is_none());
        assert!(bag(&format!("k={}", "v".repeat(MAX_BAGGAGE_LEN))).is_none());
        let two = parse_baggage(&headers(&[(&BAGGAGE, "a=1"), (&BAGGAGE, "b=2")])).expect("two");
        assert_eq!(two, "a=1,b=2");
    }
}
