//! The `PaymentService` handlers. Validation, rate limits, deadlines, caching, metrics and
//! logs come from the preset stack in front; what is left here is the business logic.

use crate::announce::Announcer;
use crate::hub::Hub;
use crate::pb::payment_service_server::PaymentService;
use crate::pb::{
    CreatePaymentRequest, GetPaymentRequest, ListPaymentsRequest, ListPaymentsResponse, Payment,
    WatchPaymentsRequest,
};
use crate::store::{NewPayment, Store};
use futures_util::stream::BoxStream;
use tonic::{Request, Response, Status};
use tonic_blueprint::cache::CacheInvalidator;
use tonic_blueprint::core::RequestId;
use tonic_blueprint::core::catalogue::Lang;
use tonic_blueprint::db::request_deadline;

/// The page size when the request leaves it 0.
pub const DEFAULT_PAGE_SIZE: i64 = 20;

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
fn lang(metadata: &tonic::metadata::MetadataMap) -> Lang {
    Lang::from_headers(metadata.as_ref())
}

#[tonic::async_trait]
impl PaymentService for Payments {
    async fn create_payment(
        &self,
        request: Request<CreatePaymentRequest>,
    ) -> Result<Response<Payment>, Status> {
        let deadline = request_deadline(&request);
        let request_id = request.extensions().get::<RequestId>().cloned();
        let body = request.into_inner();
        let user_id = body.user_id.clone();
        let payment = self
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
                },
                !self.announcer.publishes(),
                deadline.as_ref(),
            )
            .await?;
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
        let deadline = request_deadline(&request);
        let (metadata, _, body) = request.into_parts();
        let id = body.id;
        match self.store.get(&id, deadline.as_ref()).await? {
            Some(payment) => Ok(tagged(payment, &format!("payment:{id}"))),
            None => Err(Status::not_found(match lang(&metadata) {
                Lang::Es => "pago no encontrado",
                _ => "payment not found",
            })),
        }
    }

    async fn list_payments(
        &self,
        request: Request<ListPaymentsRequest>,
    ) -> Result<Response<ListPaymentsResponse>, Status> {
        let deadline = request_deadline(&request);
        let (metadata, _, body) = request.into_parts();
        let before = match body.page_token.as_str() {
            "" => None,
            token => match uuid::Uuid::try_parse(token) {
                Ok(id) => Some(id.hyphenated().to_string()),
                Err(_) => {
                    return Err(Status::invalid_argument(match lang(&metadata) {
                        Lang::Es => {
                            "page_token no válido: usa next_page_token de la página anterior"
                        }
                        _ => "invalid page_token: pass the previous page's next_page_token",
                    }));
                }
            },
        };
        let size = match i64::from(body.page_size) {
            0 => DEFAULT_PAGE_SIZE,
            n => n,
        };
        // One more than the page: whether there is a next page.
        let mut payments = self
            .store
            .list(
                &body.user_id,
                before.as_deref(),
                size + 1,
                deadline.as_ref(),
            )
            .await?;
        let next_page_token = if payments.len() as i64 > size {
            payments.truncate(size as usize);
            payments.last().map(|p| p.id.clone()).unwrap_or_default()
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
        let user_id = request.into_inner().user_id;
        Ok(Response::new(Box::pin(
            self.hub.watch(user_id, self.store.clone()),
        )))
    }
}
