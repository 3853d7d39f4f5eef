//! The test service: echo, sleep, panic or fail on request, for all four RPC kinds.

use crate::pb::test_service_server::{self, TestServiceServer};
use crate::pb::{Action, TestRequest, TestResponse};
use futures_util::{Stream, StreamExt, stream};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tonic::{Request, Response, Status, Streaming};
use tonic_blueprint_core::Deadline;

/// Text every test panic carries. It must never reach a client.
pub const PANIC_TEXT: &str = "secret panic detail: db password=hunter2";

type ResponseStream = Pin<Box<dyn Stream<Item = Result<TestResponse, Status>> + Send>>;

/// How many handler calls started, ran to their end, or were dropped before it.
#[derive(Debug, Default)]
pub struct HandlerCounts {
    started: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    changed: Notify,
}

impl HandlerCounts {
    /// Calls whose handler started.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    /// Calls whose handler ran to its end (its last response produced).
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// Calls whose handler (or response stream) was dropped before its end: cancelled by the
    /// client or a layer, or unwound by a panic.
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` handlers were cancelled, or `limit` passes; returns the count.
    pub async fn wait_cancelled(&self, n: u64, limit: Duration) -> u64 {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if self.cancelled() >= n {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.cancelled()
    }

    /// Waits until at least `n` handlers started, or `limit` passes; returns the count.
    pub async fn wait_started(&self, n: u64, limit: Duration) -> u64 {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                if self.started() >= n {
                    return;
                }
                changed.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        self.started()
    }

    fn start(self: &Arc<Self>) -> CallGuard {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        CallGuard {
            counts: self.clone(),
            done: false,
        }
    }
}

/// Counts a handler as completed, or as cancelled when dropped first.
#[derive(Debug)]
struct CallGuard {
    counts: Arc<HandlerCounts>,
    done: bool,
}

impl CallGuard {
    fn complete(mut self) {
        self.done = true;
        self.counts.completed.fetch_add(1, Ordering::SeqCst);
        self.counts.changed.notify_waiters();
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.done {
            self.counts.cancelled.fetch_add(1, Ordering::SeqCst);
            self.counts.changed.notify_waiters();
        }
    }
}

/// The test service. Clones share their [`HandlerCounts`].
#[derive(Debug, Clone, Default)]
pub struct TestService {
    counts: Arc<HandlerCounts>,
}

impl TestService {
    /// The service's counters.
    pub fn counts(&self) -> &HandlerCounts {
        &self.counts
    }

    /// The generated tonic server around this service.
    pub fn into_server(self) -> TestServiceServer<Self> {
        TestServiceServer::new(self)
    }
}

fn deadline_ms<T>(request: &Request<T>) -> i64 {
    request
        .extensions()
        .get::<Deadline>()
        .map_or(-1, |d| d.remaining().as_millis() as i64)
}

async fn sleep_and_act(request: &TestRequest) -> Result<(), Status> {
    if request.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(u64::from(request.sleep_ms))).await;
    }
    act(request)
}

fn act(request: &TestRequest) -> Result<(), Status> {
    match Action::try_from(request.action).unwrap_or_default() {
        Action::EchoUnspecified => Ok(()),
        Action::Panic => panic!("{PANIC_TEXT}"),
        Action::Fail => Err(Status::new(
            tonic::Code::from_i32(request.fail_code),
            request.fail_message.clone(),
        )),
    }
}

#[tonic::async_trait]
impl test_service_server::TestService for TestService {
    async fn unary(&self, request: Request<TestRequest>) -> Result<Response<TestResponse>, Status> {
        let guard = self.counts.start();
        let deadline_remaining_ms = deadline_ms(&request);
        let request = request.into_inner();
        let outcome = sleep_and_act(&request).await;
        guard.complete();
        outcome?;
        let mut response = Response::new(TestResponse {
            payload: request.payload,
            index: 0,
            deadline_remaining_ms,
        });
        for (key, value) in &request.response_metadata {
            if let (Ok(key), Ok(value)) = (
                key.parse::<tonic::metadata::MetadataKey<tonic::metadata::Ascii>>(),
                value.parse(),
            ) {
                response.metadata_mut().insert(key, value);
            }
        }
        Ok(response)
    }

    type ServerStreamStream = ResponseStream;

    async fn server_stream(
        &self,
        request: Request<TestRequest>,
    ) -> Result<Response<ResponseStream>, Status> {
        let guard = self.counts.start();
        let deadline_remaining_ms = deadline_ms(&request);
        let request = request.into_inner();
        let acts = request.action != Action::EchoUnspecified as i32;
        if acts
            && !request.mid_stream
            && let Err(status) = sleep_and_act(&request).await
        {
            guard.complete();
            return Err(status);
        }
        let count = match (request.response_count.max(1), acts && request.mid_stream) {
            (n, true) => n.max(2),
            (n, false) => n,
        };
        // `unfold` runs inside the response body's poll: a panic here is a mid-stream panic.
        let responses = stream::unfold(
            (0u32, Some((request, guard))),
            move |(i, state)| async move {
                let (request, guard) = state?;
                if i == count {
                    guard.complete();
                    return None;
                }
                if request.sleep_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(u64::from(request.sleep_ms))).await;
                }
                if i == 1
                    && request.mid_stream
                    && let Err(status) = act(&request)
                {
                    guard.complete();
                    return Some((Err(status), (i + 1, None)));
                }
                let response = TestResponse {
                    payload: request.payload.clone(),
                    index: i,
                    deadline_remaining_ms,
                };
                Some((Ok(response), (i + 1, Some((request, guard)))))
            },
        );
        Ok(Response::new(Box::pin(responses)))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<TestRequest>>,
    ) -> Result<Response<TestResponse>, Status> {
        let guard = self.counts.start();
        let deadline_remaining_ms = deadline_ms(&request);
        let mut inbound = request.into_inner();
        let mut payload = Vec::new();
        let mut index = 0;
        let outcome = async {
            while let Some(message) = inbound.message().await? {
                sleep_and_act(&message).await?;
                payload.extend_from_slice(&message.payload);
                index += 1;
            }
            Ok::<_, Status>(())
        }
        .await;
        guard.complete();
        outcome?;
        Ok(Response::new(TestResponse {
            payload,
            index,
            deadline_remaining_ms,
        }))
    }

    type BidiStream = ResponseStream;

    async fn bidi(
        &self,
        request: Request<Streaming<TestRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let guard = self.counts.start();
        let deadline_remaining_ms = deadline_ms(&request);
        let inbound = request.into_inner();
        let responses = stream::unfold(
            (0u32, Some((inbound, guard))),
            move |(i, state)| async move {
                let (mut inbound, guard) = state?;
                let message = match inbound.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => {
                        guard.complete();
                        return None;
                    }
                    Err(status) => return Some((Err(status), (i, None))),
                };
                if let Err(status) = sleep_and_act(&message).await {
                    guard.complete();
                    return Some((Err(status), (i, None)));
                }
                let response = TestResponse {
                    payload: message.payload,
                    index: i,
                    deadline_remaining_ms,
                };
                Some((Ok(response), (i + 1, Some((inbound, guard)))))
            },
        );
        Ok(Response::new(responses.boxed()))
    }
}
