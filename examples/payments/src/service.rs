//! The `PaymentService` handlers. Authentication, validation, rate limits, deadlines,
//! caching, metrics and logs come from the preset stack in front; what is left here is the
//! business logic and who may see what.
//!
//! The caller is the verified [`Identity`]'s subject (the token's `sub`): a user reads,
//! lists, watches and creates only their own payments. Another user's payment is NOT_FOUND,
//! word for word as a missing one (its existence is not given away); listing, watching or
//! paying for another user is PERMISSION_DENIED.
//!
//! `CreatePayment` is idempotent with an [`IDEMPOTENCY_KEY`] metadata: one payment per user
//! and key, whatever the number of retries, concurrent or not (see [`Store::create`]).
//!
//! Errors follow Google's error model: `grpc-message` in English, the caller's language in a
//! `google.rpc.LocalizedMessage` detail, built with the kit's catalogue from the service's own
//! messages ([`crate::messages`]) and the kit's texts.
//!
//! `ListPayments` pages newest first in the store's sequence, not by id (a UUID v7 carries
//! the creating replica's clock, which may be off); its page token is the sequence to
//! continue below.
//!
//! `WatchPayments` streams the caller's payments in the store's sequence, resumable with
//! `after_sequence`, within the watcher limits (see [`crate::hub`]).

use crate::announce::Announcer;
use crate::hub::Hub;
use crate::messages;
use crate::pb::payment_service_server::PaymentService;
use crate::pb::{
    CreatePaymentRequest, GetPaymentRequest, ListPaymentsRequest, ListPaymentsResponse, Payment,
    WatchPaymentsRequest,
};
use crate::store::{Created, Event, NewPayment, Store};
use futures_util::stream::BoxStream;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};
use tonic_blueprint::cache::CacheInvalidator;
use tonic_blueprint::core::catalogue::{self, Lang, Text};
use tonic_blueprint::core::{Identity, RequestId};
use tonic_blueprint::db::request_deadline;

/// The page size when the request leaves it 0.
pub const DEFAULT_PAGE_SIZE: usize = 20;

/// The largest page: a larger `page_size` (which the validation layer refuses anyway) gets
/// this many.
pub const MAX_PAGE_SIZE: usize = 100;

/// The metadata that makes `CreatePayment` idempotent: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`]
/// printable ASCII characters (`!` to `~`, no spaces), chosen by the client per intended
/// payment (a UUID does) and sent again with every retry of it.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The longest [`IDEMPOTENCY_KEY`] accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// The service.
#[derive(Clone, Debug)]
pub struct Payments {
    store: Store,
    announcer: Announcer,
    hub: Hub,
    cache: Option<CacheInvalidator>,
}

impl Payments {
    /// Handlers over `store`, announcing through `announcer`, watchers on `hub`, dropping
    /// cached pages through `cache` (the preset stack's cache layer).
    pub fn new(
        store: Store,
        announcer: Announcer,
        hub: Hub,
        cache: Option<CacheInvalidator>,
    ) -> Self {
        Self {
            store,
            announcer,
            hub,
            cache,
        }
    }
}

/// The cache tag of a user's pages.
fn user_tag(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// Tags the response's cache entry.
fn tagged<T>(message: T, tags: &str) -> Response<T> {
    let mut response = Response::new(message);
    if let Ok(value) = tags.parse() {
        response.metadata_mut().insert("x-cache-tags", value);
    }
    response
}

/// The caller's language, read only when an error needs it.
fn lang(metadata: &MetadataMap) -> Lang {
    Lang::from_headers(metadata.as_ref())
}

/// The verified caller's user id.
fn caller<T>(request: &Request<T>) -> Result<String, Status> {
    Ok(Identity::require(request)?.subject().to_owned())
}

/// PERMISSION_DENIED unless `user_id` is the caller's own.
fn own(caller: &str, user_id: &str, metadata: &MetadataMap) -> Result<(), Status> {
    if caller == user_id {
        return Ok(());
    }
    Err(catalogue::status(
        Code::PermissionDenied,
        Text::PermissionDenied,
        lang(metadata),
    ))
}

/// NOT_FOUND, the same for a missing payment and for another user's.
fn payment_not_found(metadata: &MetadataMap) -> Status {
    catalogue::status(Code::NotFound, messages::PAYMENT_NOT_FOUND, lang(metadata))
}

/// The `next_page_token` of a page ending with the payment of sequence `sequence`: the next
/// page starts below it. Opaque to clients (they only pass it back).
fn page_token(sequence: u64) -> String {
    sequence.to_string()
}

/// The sequence a `page_token` continues below; `None` when it is not one
/// [`page_token`] makes (1 to `i64::MAX`, digits only).
fn parse_page_token(token: &str) -> Option<u64> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sequence = token.parse::<i64>().ok().filter(|&s| s > 0)?;
    u64::try_from(sequence).ok()
}

/// The call's [`IDEMPOTENCY_KEY`], if any; INVALID_ARGUMENT when it is sent more than once or
/// is not 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] printable ASCII characters.
pub fn idempotency_key(metadata: &MetadataMap) -> Result<Option<String>, Status> {
    let mut values = metadata.as_ref().get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    let valid = values.next().is_none()
        && (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&bytes.len())
        && bytes.iter().all(|b| (0x21..=0x7e).contains(b));
    match std::str::from_utf8(bytes) {
        Ok(key) if valid => Ok(Some(key.to_owned())),
        _ => Err(catalogue::status(
            Code::InvalidArgument,
            messages::INVALID_IDEMPOTENCY_KEY,
            lang(metadata),
        )),
    }
}

#[tonic::async_trait]
impl PaymentService for Payments {
    async fn create_payment(
        &self,
        request: Request<CreatePaymentRequest>,
    ) -> Result<Response<Payment>, Status> {
        let caller = caller(&request)?;
        let deadline = request_deadline(&request);
        let request_id = RequestId::of(&request).cloned();
        let (metadata, _, body) = request.into_parts();
        own(&caller, &body.user_id, &metadata)?;
        let idempotency_key = idempotency_key(&metadata)?;
        let user_id = body.user_id.clone();
        // With events on, the payment enters the outbox; the relay retries what the
        // announcement below does not get acknowledged.
        let event = if self.announcer.publishes() {
            Event::Due
        } else {
            Event::NotDue
        };
        let created = self
            .store
            .create(
                NewPayment {
                    user_id: body.user_id,
                    amount_cents: body.amount_cents,
                    currency: body.currency,
                    description: body.description,
                    request_id: request_id
                        .as_ref()
                        .map(|id| id.as_str().to_owned())
                        .unwrap_or_default(),
                    idempotency_key,
                },
                event,
                deadline.as_ref(),
            )
            .await?;
        let payment = match created {
            Created::New(payment) => payment,
            // A retry: the first call invalidated the pages and announced the payment (or
            // left it to the relay); nothing changed since.
            Created::Replayed(payment) => return Ok(Response::new(payment)),
            Created::KeyReused => {
                return Err(catalogue::status(
                    Code::AlreadyExists,
                    messages::IDEMPOTENCY_KEY_REUSED,
                    lang(&metadata),
                ));
            }
            Created::Contended => {
                return Err(catalogue::status(
                    Code::Aborted,
                    Text::ConcurrentChange,
                    lang(&metadata),
                ));
            }
        };
        // This replica's watchers see it at once; the others through the event (or their
        // next poll of the table).
        self.hub.ring();
        // The user's cached pages no longer hold every payment: drop them before answering,
        // so the caller's next ListPayments misses. A cache outage must not fail the call;
        // the entries then expire with their TTL.
        if let Some(cache) = &self.cache
            && let Err(e) = cache.invalidate_tag(&user_tag(&user_id)).await
        {
            tracing::warn!(error = %e, "cached pages not invalidated");
        }
        self.announcer.announce(&payment, request_id).await;
        Ok(Response::new(payment))
    }

    async fn get_payment(
        &self,
        request: Request<GetPaymentRequest>,
    ) -> Result<Response<Payment>, Status> {
        let caller = caller(&request)?;
        let deadline = request_deadline(&request);
        let (metadata, _, body) = request.into_parts();
        let id = body.id;
        match self.store.get(&id, deadline.as_ref()).await? {
            Some(payment) if payment.user_id == caller => {
                Ok(tagged(payment, &format!("payment:{id}")))
            }
            // Someone else's payment is as absent as a missing one.
            _ => Err(payment_not_found(&metadata)),
        }
    }

    async fn list_payments(
        &self,
        request: Request<ListPaymentsRequest>,
    ) -> Result<Response<ListPaymentsResponse>, Status> {
        let caller = caller(&request)?;
        let deadline = request_deadline(&request);
        let (metadata, _, body) = request.into_parts();
        own(&caller, &body.user_id, &metadata)?;
        let before = match body.page_token.as_str() {
            "" => None,
            token => Some(parse_page_token(token).ok_or_else(|| {
                catalogue::status(
                    Code::InvalidArgument,
                    messages::INVALID_PAGE_TOKEN,
                    lang(&metadata),
                )
            })?),
        };
        let size = match usize::try_from(body.page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) => n.min(MAX_PAGE_SIZE),
            Err(_) => {
                return Err(catalogue::status(
                    Code::InvalidArgument,
                    messages::INVALID_PAGE_SIZE,
                    lang(&metadata),
                ));
            }
        };
        // One more than the page: whether there is a next page.
        let mut payments = self
            .store
            .list(&body.user_id, before, size + 1, deadline.as_ref())
            .await?;
        let next_page_token = if payments.len() > size {
            payments.truncate(size);
            payments
                .last()
                .map(|p| page_token(p.sequence))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(tagged(
            ListPaymentsResponse {
                payments,
                next_page_token,
            },
            &user_tag(&body.user_id),
        ))
    }

    type WatchPaymentsStream = BoxStream<'static, Result<Payment, Status>>;

    async fn watch_payments(
        &self,
        request: Request<WatchPaymentsRequest>,
    ) -> Result<Response<Self::WatchPaymentsStream>, Status> {
        let caller = caller(&request)?;
        let deadline = request_deadline(&request);
        let (metadata, _, body) = request.into_parts();
        own(&caller, &body.user_id, &metadata)?;
        let watch = self
            .hub
            .watch(body.user_id, body.after_sequence, deadline, lang(&metadata))?;
        Ok(Response::new(Box::pin(watch)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_token_reads_back_and_nothing_else_is_one() {
        for sequence in [1, 42, 9_223_372_036_854_775_807] {
            assert_eq!(parse_page_token(&page_token(sequence)), Some(sequence));
        }
        for token in [
            "",
            "0",
            "-1",
            "+5",
            " 5",
            "9223372036854775808",
            "01a21472-d403-7769-9be7-c5ffb25e32fe",
        ] {
            assert_eq!(parse_page_token(token), None, "{token:?}");
        }
    }
}
