//! Trailers-only gRPC error responses.
//!
//! A layer that refuses a call answers `Ok(response)` with HTTP 200,
//! `content-type: application/grpc`, `grpc-status`, a percent-encoded `grpc-message` and,
//! when present, `grpc-status-details-bin`, and an empty body. Never `Err` (tonic would reset
//! the stream unless the error is a `Status`) and never an HTTP 4xx/5xx (clients read 429 and
//! 503 as UNAVAILABLE and retry).
//!
//! Message and details are capped so that the headers stay far below the 16 KiB header-list
//! limit common to gRPC clients: [`MAX_MESSAGE_BYTES`] of message (percent-encoding can triple
//! it) and [`MAX_DETAILS_BYTES`] of details (base64 adds a third).

use http::HeaderMap;
use tonic::{Code, Status};

/// The longest `grpc-message` a rejection carries, in bytes of UTF-8 before encoding.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// The largest `grpc-status-details-bin` a rejection carries, in bytes before base64.
///
/// Details above it are dropped whole, since cut protobuf bytes would not decode. A layer
/// with large details (such as a long list of field violations) trims them to fit first.
pub const MAX_DETAILS_BYTES: usize = 4096;

const ELLIPSIS: &str = "...";

/// A trailers-only response for `status`, with the body's default (empty) value.
///
/// ```
/// use tonic_blueprint_core::reject;
///
/// let response: http::Response<()> = reject(tonic::Status::deadline_exceeded("too slow"));
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["content-type"], "application/grpc");
/// assert_eq!(response.headers()["grpc-status"], "4");
/// assert_eq!(response.headers()["grpc-message"], "too%20slow");
/// ```
pub fn reject<B: Default>(status: Status) -> http::Response<B> {
    cap_status(status).into_http()
}

/// The trailers that end a stream with `status` (capped like [`reject`]).
///
/// Use this when a layer must end a response whose headers were already sent.
pub fn status_trailers(status: Status) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    let status = cap_status(status);
    if status.add_header(&mut trailers).is_err() {
        // Unreachable for a capped status (the message is percent-encoded and the details
        // base64), but a header error must never lose the status itself.
        trailers.clear();
        trailers.insert("grpc-status", (status.code() as i32).into());
    }
    trailers
}

/// `status` with its message cut to [`MAX_MESSAGE_BYTES`] (at a character boundary, marked
/// with `...`) and its details dropped when above [`MAX_DETAILS_BYTES`] — or when the message
/// was cut, since the `google.rpc.Status` in the details must carry the same message as the
/// headers.
///
/// The code and metadata are kept. A status within both caps is returned unchanged.
pub fn cap_status(status: Status) -> Status {
    let long_message = status.message().len() > MAX_MESSAGE_BYTES;
    let big_details = status.details().len() > MAX_DETAILS_BYTES;
    if !long_message && !big_details {
        return status;
    }
    let message = if long_message {
        cap_message(status.message())
    } else {
        status.message().to_owned()
    };
    let details = if big_details || long_message {
        bytes::Bytes::new()
    } else {
        bytes::Bytes::copy_from_slice(status.details())
    };
    let code: Code = status.code();
    Status::with_details_and_metadata(code, message, details, status.metadata().clone())
}

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] bytes at a character boundary.
pub fn cap_message(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE_BYTES - ELLIPSIS.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejection_is_trailers_only_http_200() {
        let response: http::Response<()> = reject(Status::resource_exhausted("slow down"));
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "8");
        assert_eq!(response.headers()["grpc-message"], "slow%20down");
        assert!(!response.headers().contains_key("grpc-status-details-bin"));
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let message = "é".repeat(MAX_MESSAGE_BYTES);
        let capped = cap_status(Status::internal(message));
        assert!(capped.message().len() <= MAX_MESSAGE_BYTES);
        assert!(capped.message().ends_with(ELLIPSIS));
        assert_eq!(capped.code(), Code::Internal);
    }

    #[test]
    fn oversized_details_are_dropped_whole_and_small_ones_kept() {
        let big = Status::with_details(Code::InvalidArgument, "bad", vec![7u8; 5000].into());
        let capped = cap_status(big);
        assert!(capped.details().is_empty());
        assert_eq!(capped.message(), "bad");

        let small = Status::with_details(Code::InvalidArgument, "bad", vec![7u8; 10].into());
        let response: http::Response<()> = reject(small);
        assert!(response.headers().contains_key("grpc-status-details-bin"));
    }

    #[test]
    fn cutting_the_message_drops_details_that_would_contradict_it() {
        let status = Status::with_details(
            Code::InvalidArgument,
            "x".repeat(5000),
            vec![1u8; 10].into(),
        );
        let capped = cap_status(status);
        assert!(capped.message().len() <= MAX_MESSAGE_BYTES);
        assert!(capped.details().is_empty());
    }

    #[test]
    fn worst_case_headers_stay_far_below_16_kib() {
        // Every byte of the message needs percent-encoding, the details are at the cap.
        let status = Status::with_details(
            Code::InvalidArgument,
            "\u{1}".repeat(10_000),
            vec![0xff; MAX_DETAILS_BYTES].into(),
        );
        let response: http::Response<()> = reject(status);
        let size: usize = response
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        assert!(size < 10 * 1024, "{size} bytes of headers");
    }

    #[test]
    fn trailers_carry_the_status() {
        let trailers = status_trailers(Status::deadline_exceeded("late"));
        assert_eq!(trailers["grpc-status"], "4");
        assert_eq!(trailers["grpc-message"], "late");
    }
}
