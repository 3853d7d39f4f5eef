//! A plain HTTP/2 gRPC client that shows what is on the wire.
//!
//! tonic's client turns a non-200 HTTP status into a `Status`, hides whether a response was
//! trailers-only, and applies the request's `grpc-timeout` locally as well (answering
//! CANCELLED itself when it fires first). Tests of what the *server* sends use this client.

use crate::BoxError;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use tonic::Code;

/// A plain HTTP/2 client for one server.
#[derive(Debug, Clone)]
pub struct RawClient {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Everything a response carried.
#[derive(Debug)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The messages of the body, without their 5-byte prefixes.
    pub messages: Vec<Bytes>,
    /// The trailers, if the body ended with some.
    pub trailers: Option<HeaderMap>,
}

impl RawClient {
    /// A client for `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self::from_local_address(addr, None)
    }

    /// A client for `addr` whose connections leave from `local` (such as `127.0.0.2`): a
    /// second caller address on one machine.
    pub fn from_local_address(addr: SocketAddr, local: Option<std::net::IpAddr>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_local_address(local);
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Self { addr, client }
    }

    /// Sends `messages` (all at once, then the end of the request stream) to `path` with the
    /// gRPC headers and `headers`, and reads the whole response.
    ///
    /// Header values are sent as given, so malformed ones can be tested.
    pub async fn call<M: prost::Message>(
        &self,
        path: &str,
        messages: &[M],
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, BoxError> {
        let mut body = BytesMut::new();
        for message in messages {
            let encoded = message.encode_to_vec();
            body.put_u8(0);
            body.put_u32(u32::try_from(encoded.len())?);
            body.put_slice(&encoded);
        }
        self.call_bytes(path, body.freeze(), headers).await
    }

    /// Sends `body` exactly as given (for malformed frames).
    pub async fn call_bytes(
        &self,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, BoxError> {
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_bytes(value.as_bytes())?);
        }
        let response = self.client.request(request.body(Full::new(body))?).await?;
        let (parts, body) = response.into_parts();
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned();
        let data = collected.to_bytes();
        Ok(RawResponse {
            status: parts.status,
            headers: parts.headers,
            messages: split_messages(data)?,
            trailers,
        })
    }
}

fn split_messages(mut data: Bytes) -> Result<Vec<Bytes>, BoxError> {
    let mut messages = Vec::new();
    while !data.is_empty() {
        if data.len() < 5 {
            return Err("response body ends inside a frame prefix".into());
        }
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        if data.len() < 5 + len {
            return Err("response body ends inside a message".into());
        }
        let frame = data.split_to(5 + len);
        messages.push(frame.slice(5..));
    }
    Ok(messages)
}

impl RawResponse {
    /// The gRPC status with its message and details: from the headers of a trailers-only
    /// response, else from the trailers.
    pub fn status(&self) -> Option<tonic::Status> {
        if self.is_trailers_only() {
            tonic::Status::from_header_map(&self.headers)
        } else {
            self.trailers
                .as_ref()
                .and_then(tonic::Status::from_header_map)
        }
    }

    /// The status's `google.rpc.LocalizedMessage` (from `grpc-status-details-bin`) as
    /// `(locale, message)`, or `None` when the details hold none.
    ///
    /// # Panics
    /// When the details are not a `google.rpc.Status` with the code and message of the
    /// `grpc-status` and `grpc-message` headers (gRPC clients check they agree).
    pub fn localized_message(&self) -> Option<(String, String)> {
        use tonic_blueprint_core::catalogue::tonic_types::{StatusExt, pb};
        let status = self.status()?;
        if status.details().is_empty() {
            return None;
        }
        let inner: pb::Status =
            prost::Message::decode(status.details()).expect("details are a google.rpc.Status");
        assert_eq!(inner.code, status.code() as i32, "details' code");
        assert_eq!(inner.message, status.message(), "details' message");
        let localized = status
            .check_error_details()
            .expect("details decode")
            .localized_message()
            .cloned()?;
        Some((localized.locale, localized.message))
    }

    /// A response header as text, or `""` when absent or not text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Whether the status came in the headers with no body and no trailers.
    pub fn is_trailers_only(&self) -> bool {
        self.headers.contains_key("grpc-status") && self.messages.is_empty()
    }

    fn status_headers(&self) -> Option<&HeaderMap> {
        if self.headers.contains_key("grpc-status") {
            Some(&self.headers)
        } else {
            self.trailers.as_ref()
        }
    }

    /// The gRPC status code, from the headers (trailers-only) or the trailers.
    pub fn grpc_status(&self) -> Option<Code> {
        let value = self.status_headers()?.get("grpc-status")?;
        let code: i32 = value.to_str().ok()?.parse().ok()?;
        Some(Code::from_i32(code))
    }

    /// The percent-decoded `grpc-message`, if any.
    pub fn grpc_message(&self) -> Option<String> {
        let value = self.status_headers()?.get("grpc-message")?;
        let decoded = percent_encoding::percent_decode(value.as_bytes()).decode_utf8_lossy();
        Some(decoded.into_owned())
    }

    /// Every header and trailer value as text, for "this never appears anywhere" checks.
    pub fn all_text(&self) -> String {
        let mut text = String::new();
        for map in std::iter::once(&self.headers).chain(self.trailers.iter()) {
            for (name, value) in map {
                text.push_str(name.as_str());
                text.push_str(": ");
                text.push_str(&String::from_utf8_lossy(value.as_bytes()));
                text.push('\n');
            }
        }
        for message in &self.messages {
            text.push_str(&String::from_utf8_lossy(message));
        }
        text
    }

    /// The messages decoded as `M`.
    pub fn decode<M: prost::Message + Default>(&self) -> Result<Vec<M>, prost::DecodeError> {
        self.messages.iter().map(|m| M::decode(m.clone())).collect()
    }
}
