//! The JSON line format, as a tracing-subscriber [`Layer`].
//!
//! The same shape as `tracing_subscriber::fmt().json().flatten_event(true)
//! .with_current_span(true).with_span_list(false)`: `timestamp`, `level`, the event's fields
//! at the top level, `target`, and the current span's fields (plus its `name`) under `span`.
//! A span without a `trace_id` of its own inside one that has it (a handler's `#[instrument]`
//! span inside the call's `grpc.request`) shows the nearest such ancestor's `trace_id` and
//! `span_id` too, so every line of a call carries its trace.
//!
//! Why not that formatter (or json-subscriber's): both collect the event's fields into a
//! `serde_json` map, and tracing-subscriber's also re-parses the current span's stored fields,
//! for every line. This writes each field straight to the line and splices the span's fields,
//! written once when the span was created.
//!
//! Why a `Layer` of its own rather than `fmt::Layer` with custom formatters: `fmt::Layer`
//! writes through `&mut dyn fmt::Write`, one dynamic call per piece (about ninety a call in the
//! preset stack), and grows each span's field string from empty; this writes into a plain
//! `String` (BENCHMARKS.md has what each costs).

use super::field_keys::Keys;
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Where finished lines go (each with its trailing newline).
pub(crate) trait LineSink: Send + Sync + 'static {
    fn write_line(&self, line: &[u8]);
}

/// The JSON lines layer.
pub(crate) struct JsonLayer<W> {
    sink: W,
}

impl<W: LineSink> JsonLayer<W> {
    pub(crate) fn new(sink: W) -> Self {
        Self { sink }
    }
}

/// A span's fields as the inside of a JSON object (`"a":1,"b":"x"`), ready to splice.
struct SpanFields(String);

/// The `trace_id` and `span_id` entries (`"trace_id":"…","span_id":"…"`) a span without its
/// own takes from the nearest ancestor that has them.
struct TraceIds(String);

const TRACE_ID: &str = "trace_id";
const SPAN_ID: &str = "span_id";

/// The `trace_id` and `span_id` entries of a span's fields, when it has a trace id.
fn trace_ids(fields: &str) -> Option<String> {
    let mut trace = None;
    let mut span = None;
    for (key, entry) in entries(fields) {
        match key.trim_matches('"') {
            TRACE_ID => trace = Some(entry),
            SPAN_ID => span = Some(entry),
            _ => {}
        }
    }
    let trace = trace?;
    Some(match span {
        Some(span) => format!("{trace},{span}"),
        None => trace.to_owned(),
    })
}

/// A line buffer that grew past this (one huge event) is not kept for the next line.
const KEEP_LINE_CAPACITY: usize = 64 * 1024;

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: LineSink,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = super::span_buffers::take();
        let keys = Keys::of(attrs.metadata());
        attrs.record(&mut FieldWriter::new(&mut fields, true, keys));
        // A span without trace ids of its own inside one that has them (a handler's own
        // span inside the call's): its lines carry the call's, as every line of a call must.
        let inherited = if attrs.metadata().fields().field(TRACE_ID).is_some() {
            None
        } else {
            span.parent().and_then(|parent| {
                let extensions = parent.extensions();
                if let Some(TraceIds(ids)) = extensions.get::<TraceIds>() {
                    return Some(TraceIds(ids.clone()));
                }
                extensions
                    .get::<SpanFields>()
                    .and_then(|SpanFields(fields)| trace_ids(fields))
                    .map(TraceIds)
            })
        };
        let mut extensions = span.extensions_mut();
        extensions.insert(SpanFields(fields));
        if let Some(ids) = inherited {
            extensions.insert(ids);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(SpanFields(fields)) = span.extensions_mut().remove::<SpanFields>()
        {
            super::span_buffers::give(fields);
        }
    }

    /// A field recorded again replaces its earlier value, as with tracing-subscriber's JSON.
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut added = String::new();
        let keys = Keys::of(span.metadata());
        values.record(&mut FieldWriter::new(&mut added, true, keys));
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(current) => current.0 = merge(&current.0, &added),
            None => extensions.insert(SpanFields(added)),
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                format_line(event, &ctx, &mut line);
                self.sink.write_line(line.as_bytes());
                if line.capacity() > KEEP_LINE_CAPACITY {
                    *line = String::new();
                }
            }
            // An event logged while formatting one (a field's Debug logging): its own buffer.
            Err(_) => {
                let mut line = String::new();
                format_line(event, &ctx, &mut line);
                self.sink.write_line(line.as_bytes());
            }
        });
    }
}

fn format_line<S>(event: &Event<'_>, ctx: &Context<'_, S>, line: &mut String)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let meta = event.metadata();
    line.push_str("{\"timestamp\":\"");
    write_timestamp(line, std::time::SystemTime::now());
    line.push_str("\",\"level\":\"");
    line.push_str(meta.level().as_str());
    line.push('"');
    event.record(&mut FieldWriter::new(line, false, Keys::of(meta)));
    line.push_str(",\"target\":");
    push_str_value(line, meta.target());
    if let Some(span) = ctx.event_span(event) {
        line.push_str(",\"span\":{");
        let extensions = span.extensions();
        if let Some(SpanFields(fields)) = extensions.get::<SpanFields>()
            && !fields.is_empty()
        {
            line.push_str(fields);
            line.push(',');
        }
        if let Some(TraceIds(ids)) = extensions.get::<TraceIds>() {
            line.push_str(ids);
            line.push(',');
        }
        line.push_str("\"name\":");
        push_str_value(line, span.name());
        line.push('}');
    }
    line.push_str("}\n");
}

/// `current` with the entries of `added`, a key in both taking `added`'s value.
fn merge(current: &str, added: &str) -> String {
    let new_keys: Vec<&str> = entries(added).map(|(key, _)| key).collect();
    let mut merged = String::with_capacity(current.len() + added.len() + 1);
    for (key, entry) in entries(current) {
        if !new_keys.contains(&key) {
            merged.push_str(entry);
            merged.push(',');
        }
    }
    merged.push_str(added);
    if merged.ends_with(',') {
        merged.pop();
    }
    merged
}

/// The `(key, "key":value)` entries of text written by [`FieldWriter`]: keys and string
/// values are JSON strings, other values are bare tokens without commas.
fn entries(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let bytes = text.as_bytes();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let key_end = string_end(bytes, start);
        let value_start = key_end + 1; // past the ':'
        let end = if bytes.get(value_start) == Some(&b'"') {
            string_end(bytes, value_start)
        } else {
            bytes[value_start..]
                .iter()
                .position(|&b| b == b',')
                .map_or(bytes.len(), |n| value_start + n)
        }
        .min(bytes.len());
        let entry = (
            text.get(start..key_end).unwrap_or_default(),
            text.get(start..end).unwrap_or_default(),
        );
        start = end + 1; // past the ','
        Some(entry)
    })
}

/// The index just past the JSON string that opens at `open`.
fn string_end(bytes: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Writes `"name":value` for each field, each but the `first` after a comma.
struct FieldWriter<'a> {
    out: &'a mut String,
    first: bool,
    /// The callsite's keys, written once.
    keys: Keys,
}

impl<'a> FieldWriter<'a> {
    fn new(out: &'a mut String, first: bool, keys: Keys) -> Self {
        Self { out, first, keys }
    }

    fn key(&mut self, field: &Field) {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        match self.keys.get(field) {
            Some(key) => self.out.push_str(key),
            // Not in the callsite's table (a field of another callsite, or the thread's
            // tables already gone as it exits): written as it comes.
            None => super::field_keys::push_key(self.out, field.name()),
        }
    }

    /// A value through its `Display` or `Debug` text, as a JSON string.
    fn text(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.key(field);
        self.out.push('"');
        // Writing to a String cannot fail.
        let _ = Escaped(self.out).write_fmt(value);
        self.out.push('"');
    }

    fn integer(&mut self, field: &Field, value: impl itoa::Integer) {
        self.key(field);
        self.out.push_str(itoa::Buffer::new().format(value));
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_str_value(self.out, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, format_args!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.integer(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.integer(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.integer(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.integer(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    /// The shortest text that reads back as `value` (ryu, as serde_json writes it), without a
    /// trailing `.0`: `1500`, `0.476`.
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        // JSON has no NaN or infinity; serde_json writes them as null too.
        if !value.is_finite() {
            self.out.push_str("null");
            return;
        }
        if push_thousandths(self.out, value) {
            return;
        }
        let mut buffer = ryu::Buffer::new();
        let text = buffer.format_finite(value);
        self.out.push_str(text.strip_suffix(".0").unwrap_or(text));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, format_args!("{value}"));
    }
}

/// Writes `value` when it is a whole number of thousandths (the `*.time_ms` fields: whole
/// microseconds over 1000), from the integer, and says whether it did. The text is ryu's:
/// `value` is the double nearest to `k / 1000`, and below 10^15 thousandths no shorter
/// decimal reads back as the same double, so the shortest text is `k / 1000` itself. Four
/// times cheaper than ryu, on every call's finishing line.
fn push_thousandths(out: &mut String, value: f64) -> bool {
    const LIMIT: f64 = 1e15;
    if !value.is_sign_positive() {
        return false;
    }
    let thousandths = (value * 1000.0).round();
    if !(thousandths < LIMIT && thousandths / 1000.0 == value) {
        return false;
    }
    // Exact: a whole number below 10^15.
    let thousandths = thousandths as u64;
    let mut digits = itoa::Buffer::new();
    out.push_str(digits.format(thousandths / 1000));
    let fraction = thousandths % 1000;
    if fraction != 0 {
        // Three digits, the trailing zeros left out (`.5`, not `.500`).
        let digits = [fraction / 100, fraction / 10 % 10, fraction % 10];
        let kept = if fraction.is_multiple_of(100) {
            1
        } else if fraction.is_multiple_of(10) {
            2
        } else {
            3
        };
        out.push('.');
        for digit in &digits[..kept] {
            out.push(char::from(b'0' + *digit as u8));
        }
    }
    true
}

/// `now` in RFC 3339, UTC, with microseconds, as tracing-subscriber writes it
/// (`2026-11-25T23:35:49.123456Z`). The part up to the second is formatted once a second
/// per thread rather than derived from the calendar for every line (0.3 µs a line).
fn write_timestamp(out: &mut String, now: std::time::SystemTime) {
    use std::time::{Duration, UNIX_EPOCH};
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let Ok(since_epoch) = now.duration_since(UNIX_EPOCH) else {
        let _ = write!(out, "{}", humantime::format_rfc3339_micros(UNIX_EPOCH));
        return;
    };
    let seconds = since_epoch.as_secs();
    let mut micros = since_epoch.subsec_micros();
    let mut fraction = *b".000000Z";
    for digit in fraction[1..7].iter_mut().rev() {
        // A digit: always below 10.
        *digit = b'0' + u8::try_from(micros % 10).unwrap_or(0);
        micros /= 10;
    }
    let fraction = std::str::from_utf8(&fraction).unwrap_or(".000000Z");
    SECOND.with(|cell| {
        let Ok(mut cached) = cell.try_borrow_mut() else {
            let _ = write!(out, "{}", humantime::format_rfc3339_micros(now));
            return;
        };
        if cached.0 != seconds {
            let whole = UNIX_EPOCH + Duration::from_secs(seconds);
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            cached.1 = text.trim_end_matches('Z').to_owned();
            cached.0 = seconds;
        }
        out.push_str(&cached.1);
        out.push_str(fraction);
    });
}

fn push_str_value(out: &mut String, value: &str) {
    out.push('"');
    push_escaped(out, value);
    out.push('"');
}

/// Whether `s` holds a byte a JSON string must escape, eight bytes at a time: most strings
/// are short keys and values that need no escaping, and a byte-wise scan cost more than the
/// rest of the line (about forty strings a call).
#[inline]
fn needs_escaping(s: &str) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Whether any byte of `x` is below `n` (n <= 0x80): exact as a yes/no answer.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH != 0;
    let special = |chunk: [u8; 8]| {
        let x = u64::from_ne_bytes(chunk);
        below(x, 0x20)
            || below(x ^ (ONES * u64::from(b'"')), 1)
            || below(x ^ (ONES * u64::from(b'\\')), 1)
    };
    let bytes = s.as_bytes();
    if bytes.len() < 8 {
        // Byte by byte: padding a short string to a word took a `memcpy` call.
        return bytes
            .iter()
            .any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\');
    }
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        if <[u8; 8]>::try_from(chunk).is_ok_and(special) {
            return true;
        }
    }
    // The last eight bytes, overlapping what was checked, instead of a byte-wise tail.
    !chunks.remainder().is_empty()
        && bytes
            .get(bytes.len() - 8..)
            .and_then(|tail| <[u8; 8]>::try_from(tail).ok())
            .is_none_or(special)
}

/// `s` as the inside of a JSON string. The check inlines at each of the forty-odd strings a
/// call writes; the escaping itself, almost never needed, stays out of line.
#[inline]
pub(crate) fn push_escaped(out: &mut String, s: &str) {
    if needs_escaping(s) {
        push_escaped_slow(out, s);
    } else {
        out.push_str(s);
    }
}

#[cold]
#[inline(never)]
fn push_escaped_slow(out: &mut String, s: &str) {
    let mut clean = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[clean..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        clean = i + 1;
    }
    out.push_str(&s[clean..]);
}

/// Escapes what is written to it as the inside of a JSON string.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex, PoisonError};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl LineSink for Buffer {
        fn write_line(&self, line: &[u8]) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(line);
        }
    }

    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        use tracing_subscriber::layer::SubscriberExt;
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[test]
    fn an_event_in_a_span_has_the_stock_json_shape() {
        let lines = lines(|| {
            let span = tracing::info_span!("grpc.request", grpc.method = "Get", request_id = "r-1");
            let _entered = span.enter();
            tracing::info!(
                grpc.code = "OK",
                grpc.time_ms = 1.5,
                sent = 3u64,
                "finished call"
            );
        });
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "finished call");
        assert_eq!(line["grpc.code"], "OK");
        assert_eq!(line["grpc.time_ms"], 1.5);
        assert_eq!(line["sent"], 3);
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["span"]["name"], "grpc.request");
        assert_eq!(line["span"]["grpc.method"], "Get");
        assert_eq!(line["span"]["request_id"], "r-1");
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    #[test]
    fn the_word_wise_check_finds_every_byte_to_escape_at_every_position() {
        for len in 0..20 {
            let clean = "a".repeat(len);
            assert!(!needs_escaping(&clean), "{clean:?}");
            for at in 0..len {
                for special in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
                    let mut text: Vec<char> = clean.chars().collect();
                    text[at] = special;
                    let text: String = text.into_iter().collect();
                    assert!(needs_escaping(&text), "{text:?}");
                }
            }
        }
        assert!(!needs_escaping("blueprint.test.v1.TestService ~\u{7f}é"));
    }

    #[test]
    fn strings_are_escaped_and_odd_values_stay_valid_json() {
        let lines = lines(|| {
            let error = std::io::Error::other("bad \"thing\"");
            tracing::warn!(
                text = "a \"quote\", a \\ backslash,\n a newline and \u{1} a control",
                nan = f64::NAN,
                big = u128::MAX,
                error = &error as &(dyn std::error::Error + 'static),
                "{}",
                "tab\there"
            );
            let span = tracing::info_span!("empty");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(
            lines[0]["text"],
            "a \"quote\", a \\ backslash,\n a newline and \u{1} a control"
        );
        assert!(lines[0]["nan"].is_null());
        assert!(lines[0]["big"].is_number());
        assert_eq!(lines[0]["error"], "bad \"thing\"");
        assert_eq!(lines[0]["message"], "tab\there");
        assert!(lines[0].get("span").is_none());
        assert_eq!(lines[1]["span"]["name"], "empty");
    }

    #[test]
    fn timestamps_match_tracing_subscribers_format() {
        use std::time::{Duration, UNIX_EPOCH};
        let text = |t| {
            let mut out = String::new();
            write_timestamp(&mut out, t);
            out
        };
        let t = UNIX_EPOCH + Duration::from_micros(1_795_650_949_000_042);
        assert_eq!(text(t), "2026-11-25T23:55:49.000042Z");
        // Same second from the cache, then the next second.
        assert_eq!(
            text(t + Duration::from_micros(999_000)),
            "2026-11-25T23:55:49.999042Z"
        );
        assert_eq!(
            text(t + Duration::from_secs(1)),
            "2026-11-25T23:55:50.000042Z"
        );
        let now = std::time::SystemTime::now();
        assert_eq!(
            text(now),
            humantime::format_rfc3339_micros(now).to_string(),
            "as humantime writes it"
        );
    }

    #[test]
    fn span_fields_recorded_later_replace_or_join_the_first_ones() {
        let lines = lines(|| {
            let span = tracing::info_span!(
                "call",
                tricky = "a \"quoted\", comma, \\ and \"key\":\"x\"",
                code = tracing::field::Empty,
                n = 1u64,
            );
            let _entered = span.enter();
            tracing::info!("before");
            span.record("code", "OK");
            span.record("n", 2u64);
            tracing::info!("after");
        });
        assert_eq!(
            lines[0]["span"]["tricky"],
            "a \"quoted\", comma, \\ and \"key\":\"x\""
        );
        assert_eq!(lines[0]["span"]["n"], 1);
        assert!(lines[0]["span"].get("code").is_none());
        assert_eq!(
            lines[1]["span"]["tricky"],
            "a \"quoted\", comma, \\ and \"key\":\"x\""
        );
        assert_eq!(lines[1]["span"]["code"], "OK");
        assert_eq!(lines[1]["span"]["n"], 2);
        assert_eq!(lines[1]["span"]["name"], "call");
    }

    #[test]
    fn thousandths_are_written_as_ryu_writes_them() {
        let ryu_text = |value: f64| {
            let mut buffer = ryu::Buffer::new();
            let text = buffer.format_finite(value).to_owned();
            text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
        };
        let large = [
            999_999_999_999_999u64,
            123_456_789_012_345,
            10u64.pow(14) + 7,
        ];
        for micros in (0..200_000u64)
            .chain((0..2_000).map(|i| i * 7_919_113))
            .chain(large)
        {
            let value = micros as f64 / 1000.0;
            let mut out = String::new();
            assert!(push_thousandths(&mut out, value), "{micros}");
            assert_eq!(out, ryu_text(value), "{micros}");
        }
        // Not thousandths, negative or past the limit: left to ryu.
        for value in [0.0001, 1.0 / 3.0, -1.5, -0.0, 1e15, 2.5e20] {
            assert!(!push_thousandths(&mut String::new(), value), "{value}");
        }
    }

    #[test]
    fn keys_are_escaped_once_and_stay_right_on_every_line_of_a_callsite() {
        let lines = lines(|| {
            for n in 0..3u64 {
                let span =
                    tracing::info_span!("keyed", "we\"ird\\key" = n, later = tracing::field::Empty);
                let _entered = span.enter();
                span.record("later", n);
                tracing::info!("tab\tkey" = n, plain = "v", "line {n}");
            }
        });
        assert_eq!(lines.len(), 3);
        for (n, line) in lines.iter().enumerate() {
            assert_eq!(line["tab\tkey"], n);
            assert_eq!(line["plain"], "v");
            assert_eq!(line["message"], format!("line {n}"));
            assert_eq!(line["span"]["we\"ird\\key"], n);
            assert_eq!(line["span"]["later"], n);
        }
    }

    #[test]
    fn spans_inside_a_traced_span_carry_its_trace_ids() {
        let lines = lines(|| {
            let call = tracing::info_span!(
                "grpc.request",
                request_id = "r-3",
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                span_id = "00f067aa0ba902b7",
            );
            let _call = call.enter();
            let handler = tracing::info_span!("handler", step = 1u64);
            let _handler = handler.enter();
            let deeper = tracing::info_span!("deeper");
            let _deeper = deeper.enter();
            tracing::info!("deep inside the call");
            let own =
                tracing::info_span!("consumer", trace_id = "ffffffffffffffffffffffffffffffff");
            let _own = own.enter();
            tracing::info!("a trace of its own");
        });
        let deep = &lines[0]["span"];
        assert_eq!(deep["name"], "deeper");
        assert_eq!(deep["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(deep["span_id"], "00f067aa0ba902b7");
        assert!(
            deep.get("request_id").is_none(),
            "only the trace ids are inherited"
        );
        let own = &lines[1]["span"];
        assert_eq!(own["trace_id"], "ffffffffffffffffffffffffffffffff");
        assert!(own.get("span_id").is_none());
    }

    #[test]
    fn an_explicit_parent_wins_over_the_current_span() {
        let lines = lines(|| {
            let call = tracing::info_span!("call", request_id = "r-2");
            let other = tracing::info_span!("other");
            let _entered = other.enter();
            tracing::info!(parent: &call, "for the call");
            tracing::info!(parent: None, "no span at all");
            tracing::info!("in the current span");
        });
        assert_eq!(lines[0]["span"]["name"], "call");
        assert_eq!(lines[0]["span"]["request_id"], "r-2");
        assert!(lines[1].get("span").is_none());
        assert_eq!(lines[2]["span"]["name"], "other");
    }
}
