//! From a frame's bytes to the message: decompression (gzip, deflate) with a size cap, and
//! the refusals of malformed frames (English, localized in a LocalizedMessage detail).

use crate::violation::plain;
use bytes::Bytes;
use http::HeaderMap;
use std::io::Read;
use tonic::{Code, Status};
use tonic_blueprint_core::catalogue::{self, Lang, Text};

/// How the request's messages are compressed (`grpc-encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Unsupported,
}

impl Encoding {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        match headers
            .get(tonic_blueprint_core::headers::GRPC_ENCODING)
            .map(|v| v.as_bytes())
        {
            None | Some(b"identity") => Encoding::Identity,
            Some(b"gzip") => Encoding::Gzip,
            Some(b"deflate") => Encoding::Deflate,
            Some(_) => Encoding::Unsupported,
        }
    }
}

/// The message bytes of a frame, decompressed when its flag says so; never more than `max`.
pub(crate) fn message_bytes(
    compressed: bool,
    bytes: Bytes,
    encoding: Encoding,
    max: usize,
    lang: Lang,
) -> Result<Bytes, Status> {
    if !compressed {
        return Ok(bytes);
    }
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(flate2::read::GzDecoder::new(&bytes[..])),
        Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(&bytes[..])),
        Encoding::Unsupported => {
            return Err(plain(Code::Unimplemented, Text::UnsupportedEncoding, lang));
        }
        // Flagged compressed without saying how.
        Encoding::Identity => {
            return Err(plain(Code::InvalidArgument, Text::InvalidFrameFlag, lang));
        }
    };
    let mut out = Vec::new();
    // One byte over the cap tells "too large" from "exactly at the cap" (no zip bomb gets
    // further than that).
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    match reader.take(limit).read_to_end(&mut out) {
        Ok(_) if out.len() > max => Err(too_large(max, lang)),
        Ok(_) => Ok(out.into()),
        Err(_) => Err(plain(Code::InvalidArgument, Text::UndecodableMessage, lang)),
    }
}

pub(crate) fn too_large(max: usize, lang: Lang) -> Status {
    catalogue::status(
        Code::ResourceExhausted,
        |lang: Lang| format!("{} ({max} bytes)", Text::MessageTooLarge.text(lang)),
        lang,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).expect("write");
        encoder.finish().expect("finish").into()
    }

    #[test]
    fn gzip_is_inflated_within_the_cap_and_bombs_are_refused() {
        let small = gzip(b"hello");
        assert_eq!(
            message_bytes(true, small, Encoding::Gzip, 10, Lang::En).expect("inflate"),
            Bytes::from_static(b"hello")
        );
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 4096);
        let err = message_bytes(true, bomb, Encoding::Gzip, 1024, Lang::En).expect_err("bomb");
        assert_eq!(err.code(), Code::ResourceExhausted);
        let garbage = Bytes::from_static(b"not gzip at all");
        let err = message_bytes(true, garbage, Encoding::Gzip, 1024, Lang::En).expect_err("bad");
        assert_eq!(err.code(), Code::InvalidArgument);
        let err = message_bytes(true, Bytes::new(), Encoding::Unsupported, 9, Lang::Es)
            .expect_err("snappy");
        assert_eq!(err.code(), Code::Unimplemented);
        assert_eq!(err.message(), Text::UnsupportedEncoding.text(Lang::En));
        let localized =
            tonic_types::StatusExt::get_details_localized_message(&err).expect("LocalizedMessage");
        assert_eq!(localized.locale, "es");
        assert_eq!(localized.message, Text::UnsupportedEncoding.text(Lang::Es));
    }
}
