//! Hands the decoded request to prost-protovalidate without a deep copy.
//!
//! `Validator::validate(&message)` begins with `message.transcode_to_dynamic()`, which for a
//! `DynamicMessage` clones every field: for a ten-field request, a dozen allocations and the
//! copies, on every call. When nothing else reads the message after the engine, a
//! [`Handover`] gives the engine the decoded message itself the first time it asks, and
//! decodes the original bytes again if it ever asks twice, so the verdict never depends on
//! how the engine uses the message.

use bytes::{Buf, BufMut, Bytes};
use prost::DecodeError;
use prost::encoding::{DecodeContext, WireType};
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage};
use std::sync::{Mutex, PoisonError};

/// A decoded message and the bytes it was decoded from, for the engine to take once.
#[derive(Debug)]
pub(crate) struct Handover {
    descriptor: MessageDescriptor,
    bytes: Bytes,
    message: Mutex<Option<DynamicMessage>>,
}

impl Handover {
    /// `message`, decoded from `bytes` as a `descriptor`.
    pub(crate) fn new(
        descriptor: MessageDescriptor,
        bytes: Bytes,
        message: DynamicMessage,
    ) -> Self {
        Self {
            descriptor,
            bytes,
            message: Mutex::new(Some(message)),
        }
    }

    fn take(&self) -> Option<DynamicMessage> {
        self.message
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The message decoded again from its bytes.
    fn decoded(&self) -> DynamicMessage {
        decode(&self.descriptor, &self.bytes)
    }

    fn message_mut(&mut self) -> &mut DynamicMessage {
        let (descriptor, bytes) = (&self.descriptor, &self.bytes);
        self.message
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| decode(descriptor, bytes))
    }
}

/// `bytes` as a `descriptor`; they decoded once, so they decode again (an empty message only
/// keeps this panic-free).
fn decode(descriptor: &MessageDescriptor, bytes: &Bytes) -> DynamicMessage {
    DynamicMessage::decode(descriptor.clone(), bytes.clone())
        .unwrap_or_else(|_| DynamicMessage::new(descriptor.clone()))
}

impl ReflectMessage for Handover {
    fn descriptor(&self) -> MessageDescriptor {
        self.descriptor.clone()
    }

    fn transcode_to_dynamic(&self) -> DynamicMessage
    where
        Self: Sized,
    {
        self.take().unwrap_or_else(|| self.decoded())
    }
}

/// The message's own encoding is the bytes it came from; changes go to the decoded message.
impl prost::Message for Handover {
    fn encode_raw(&self, buf: &mut impl BufMut)
    where
        Self: Sized,
    {
        match &*self.message.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(message) => message.encode_raw(buf),
            None => buf.put_slice(&self.bytes),
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError>
    where
        Self: Sized,
    {
        self.message_mut().merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        match &*self.message.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(message) => message.encoded_len(),
            None => self.bytes.len(),
        }
    }

    fn clear(&mut self) {
        self.message_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// `message D { int64 seconds = 1; }`
    fn descriptor() -> MessageDescriptor {
        let set = prost_types::FileDescriptorSet {
            file: vec![prost_types::FileDescriptorProto {
                name: Some("d.proto".into()),
                package: Some("t".into()),
                message_type: vec![prost_types::DescriptorProto {
                    name: Some("D".into()),
                    field: vec![prost_types::FieldDescriptorProto {
                        name: Some("seconds".into()),
                        number: Some(1),
                        r#type: Some(prost_types::field_descriptor_proto::Type::Int64 as i32),
                        label: Some(prost_types::field_descriptor_proto::Label::Optional as i32),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        prost_reflect::DescriptorPool::decode(set.encode_to_vec().as_slice())
            .expect("pool")
            .get_message_by_name("t.D")
            .expect("descriptor")
    }

    #[test]
    fn the_engine_gets_the_message_every_time_it_asks() {
        let descriptor = descriptor();
        let bytes = Bytes::from_static(&[0x08, 0x2a]); // seconds = 42
        let message = DynamicMessage::decode(descriptor.clone(), bytes.clone()).expect("decode");
        let handover = Handover::new(descriptor, bytes.clone(), message.clone());
        assert_eq!(handover.encode_to_vec(), message.encode_to_vec());
        assert_eq!(handover.transcode_to_dynamic(), message, "handed over");
        assert_eq!(handover.transcode_to_dynamic(), message, "decoded again");
        assert_eq!(handover.encode_to_vec(), bytes.to_vec());
        assert_eq!(handover.encoded_len(), bytes.len());
    }
}
