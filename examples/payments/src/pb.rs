//! The generated `payments.v1` messages, client and server.
#![allow(missing_docs, unreachable_pub, clippy::all)]

tonic::include_proto!("payments.v1");

/// The encoded file descriptor set of `payments.proto` and its imports, `buf.validate`
/// annotations kept: what the server's validation, cache and reflection read.
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/payments_descriptor.bin"));
