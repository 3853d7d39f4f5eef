//! Passing a request body on as tonic's body type without re-checking it.
//!
//! Every layer hands its inner service a `tonic::body::Body`. `Body::new` returns a body that
//! already is one as it is, but asks the body whether it has ended first: on hyper's request
//! body that takes the HTTP/2 stream's lock, once per layer per call. [`tonic_body`] checks the
//! type first.

use bytes::Bytes;

/// `body` as a `tonic::body::Body`: as it is when it already is one, else through
/// `tonic::body::Body::new`.
///
/// ```
/// use tonic_blueprint_core::tonic_body;
///
/// let body = tonic_body(http_body_util::Full::new(bytes::Bytes::from_static(b"hi")));
/// let again = tonic_body(body);
/// # drop(again);
/// ```
pub fn tonic_body<B>(body: B) -> tonic::body::Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    let mut slot = Some(body);
    if let Some(tonic) =
        (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<tonic::body::Body>>()
        && let Some(body) = tonic.take()
    {
        return body;
    }
    match slot {
        Some(body) => tonic::body::Body::new(body),
        None => tonic::body::Body::empty(),
    }
}
