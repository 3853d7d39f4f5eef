//! The validated test service: handlers that count what reaches them.

use crate::pb::validated_service_server::{ValidatedService, ValidatedServiceServer};
use crate::pb::{Address, CreateRequest, CreateResponse, Kind, create_request};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// Path of `Create` (unary).
pub const CREATE: &str = "/blueprint.test.v1.ValidatedService/Create";
/// Path of `Upload` (client streaming).
pub const UPLOAD: &str = "/blueprint.test.v1.ValidatedService/Upload";
/// Path of `Chat` (bidi).
pub const CHAT: &str = "/blueprint.test.v1.ValidatedService/Chat";

/// The handlers of `ValidatedService`; clones share the counters.
#[derive(Clone, Debug, Default)]
pub struct ValidatedTestService {
    calls: Arc<AtomicU64>,
    messages: Arc<AtomicU64>,
}

impl ValidatedTestService {
    /// Calls whose handler ran.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Messages the handlers received.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::SeqCst)
    }

    /// The tonic service.
    pub fn into_server(self) -> ValidatedServiceServer<Self> {
        ValidatedServiceServer::new(self)
    }
}

impl CreateRequest {
    /// A request that passes every rule.
    pub fn valid() -> Self {
        Self {
            user_id: "user-7".into(),
            amount_cents: 1250,
            currency: "EUR".into(),
            description: "coffee".into(),
            tags: vec!["food".into()],
            address: Some(Address {
                city: "Madrid".into(),
                country: "ES".into(),
            }),
            kind: Kind::Card as i32,
            method: Some(create_request::Method::Card("4242".into())),
            email: "a@example.com".into(),
        }
    }
}

type ChatStream = Pin<Box<dyn Stream<Item = Result<CreateResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ValidatedService for ValidatedTestService {
    async fn create(
        &self,
        request: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.messages.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(CreateResponse {
            user_id: request.into_inner().user_id,
            received: 1,
        }))
    }

    async fn upload(
        &self,
        request: Request<Streaming<CreateRequest>>,
    ) -> Result<Response<CreateResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut stream = request.into_inner();
        let mut received = 0;
        let mut user_id = String::new();
        while let Some(message) = stream.message().await? {
            self.messages.fetch_add(1, Ordering::SeqCst);
            received += 1;
            user_id = message.user_id;
        }
        Ok(Response::new(CreateResponse { user_id, received }))
    }

    type ChatStream = ChatStream;

    async fn chat(
        &self,
        request: Request<Streaming<CreateRequest>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let messages = self.messages.clone();
        let stream = request.into_inner().map(move |message| {
            let message = message?;
            messages.fetch_add(1, Ordering::SeqCst);
            Ok(CreateResponse {
                user_id: message.user_id,
                received: 1,
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
