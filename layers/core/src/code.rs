//! gRPC status code names as Go prints them.
//!
//! Grafana dashboards and alerts built for go-grpc-prometheus match on these exact strings
//! (`OK`, `Canceled`, `DeadlineExceeded`, ...). tonic's `Debug` output differs (`Ok`,
//! `Cancelled`), so the mapping is explicit.

use tonic::Code;

/// The Go spelling of a status code, for metric labels and log fields.
///
/// ```
/// use tonic_blueprint_core::code_label;
/// assert_eq!(code_label(tonic::Code::Ok), "OK");
/// assert_eq!(code_label(tonic::Code::Cancelled), "Canceled");
/// ```
pub fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The gRPC code a client derives from a non-200 HTTP status
/// ([gRPC's HTTP to gRPC status mapping](https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md)).
pub fn code_from_http_status(status: http::StatusCode) -> Code {
    match status.as_u16() {
        200 => Code::Ok,
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502..=504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// Reads `grpc-status` from a header map (response headers or trailers).
///
/// `None` when the header is absent; [`Code::Unknown`] when it is present but not a number.
pub fn code_from_headers(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get(crate::headers::GRPC_STATUS)?;
    let code = std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
        .map(Code::from_i32)
        .unwrap_or(Code::Unknown);
    Some(code)
}

/// The status code of the first `tonic::Status` in an error's source chain, if any.
pub fn code_from_error(err: &(dyn std::error::Error + 'static)) -> Option<Code> {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(status) = e.downcast_ref::<tonic::Status>() {
            return Some(status.code());
        }
        source = e.source();
    }
    None
}

/// The code a service's error of any type stands for, for layers that keep the inner error
/// type: a [`BoxError`](crate::BoxError) or a `tonic::Status` by [`code_from_error`], anything
/// else (or a chain without a status) `Internal`.
///
/// ```
/// use tonic_blueprint_core::{BoxError, code::code_from_error_of};
///
/// let boxed: BoxError = Box::new(tonic::Status::unavailable("down"));
/// assert_eq!(code_from_error_of(&boxed), tonic::Code::Unavailable);
/// assert_eq!(code_from_error_of(&std::io::Error::other("x")), tonic::Code::Internal);
/// ```
pub fn code_from_error_of<E: 'static>(err: &E) -> Code {
    let any: &dyn std::any::Any = err;
    let found = if let Some(boxed) = any.downcast_ref::<crate::BoxError>() {
        code_from_error(boxed.as_ref())
    } else {
        any.downcast_ref::<tonic::Status>().map(tonic::Status::code)
    };
    found.unwrap_or(Code::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_the_go_spelling() {
        let labels: Vec<_> = (0..=16).map(|i| code_label(Code::from_i32(i))).collect();
        assert_eq!(
            labels,
            [
                "OK",
                "Canceled",
                "Unknown",
                "InvalidArgument",
                "DeadlineExceeded",
                "NotFound",
                "AlreadyExists",
                "PermissionDenied",
                "ResourceExhausted",
                "FailedPrecondition",
                "Aborted",
                "OutOfRange",
                "Unimplemented",
                "Internal",
                "Unavailable",
                "DataLoss",
                "Unauthenticated"
            ]
        );
    }

    #[test]
    fn http_statuses_map_like_grpc_clients_do() {
        assert_eq!(
            code_from_http_status(http::StatusCode::TOO_MANY_REQUESTS),
            Code::Unavailable
        );
        assert_eq!(
            code_from_http_status(http::StatusCode::NOT_FOUND),
            Code::Unimplemented
        );
        assert_eq!(
            code_from_http_status(http::StatusCode::INTERNAL_SERVER_ERROR),
            Code::Unknown
        );
    }

    #[test]
    fn grpc_status_header_is_read() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(code_from_headers(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("4"));
        assert_eq!(code_from_headers(&headers), Some(Code::DeadlineExceeded));
        headers.insert("grpc-status", http::HeaderValue::from_static("x"));
        assert_eq!(code_from_headers(&headers), Some(Code::Unknown));
    }
}
