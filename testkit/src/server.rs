//! A real tonic server on `127.0.0.1:0` serving the test service behind any layer stack.

use crate::pb::test_service_client::TestServiceClient;
use crate::raw::RawClient;
use crate::service::TestService;
use bytes::Bytes;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tower::{Layer, Service};

/// A running server. Dropping it stops the server.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    service: TestService,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl TestServer {
    /// Starts `builder` (for example `Server::builder().layer(stack)`) with the test service.
    pub async fn start<L, ResBody>(builder: Server<L>) -> Self
    where
        L: Layer<Routes> + Clone + Send + 'static,
        L::Service: Service<http::Request<Body>, Response = http::Response<ResBody>>
            + Clone
            + Send
            + 'static,
        <L::Service as Service<http::Request<Body>>>::Future: Send,
        <L::Service as Service<http::Request<Body>>>::Error: Into<crate::BoxError> + Send,
        ResBody: http_body::Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<crate::BoxError>,
    {
        let service = TestService::default();
        let routes = Routes::new(service.clone().into_server());
        Self::start_routes(builder, routes, service).await
    }

    /// Starts `builder` serving `routes` (build them with `Routes::new(svc).add_service(..)`
    /// for services other than the test service); `counts_from` is the test service whose
    /// counters [`TestServer::service`] returns.
    pub async fn start_routes<L, ResBody>(
        mut builder: Server<L>,
        routes: Routes,
        counts_from: TestService,
    ) -> Self
    where
        L: Layer<Routes> + Clone + Send + 'static,
        L::Service: Service<http::Request<Body>, Response = http::Response<ResBody>>
            + Clone
            + Send
            + 'static,
        <L::Service as Service<http::Request<Body>>>::Future: Send,
        <L::Service as Service<http::Request<Body>>>::Error: Into<crate::BoxError> + Send,
        ResBody: http_body::Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<crate::BoxError>,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (tx, rx) = oneshot::channel::<()>();
        let router = builder.add_routes(routes);
        let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            service: counts_from,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The test service's counters.
    pub fn service(&self) -> &TestService {
        &self.service
    }

    /// A connected tonic client.
    pub async fn client(&self) -> TestServiceClient<Channel> {
        let channel = Channel::from_shared(self.uri())
            .expect("valid uri")
            .connect()
            .await
            .expect("connect to the test server");
        TestServiceClient::new(channel)
    }

    /// A plain HTTP/2 client.
    pub fn raw(&self) -> RawClient {
        RawClient::new(self.addr)
    }

    /// Stops accepting, lets open calls finish, and returns the server's result.
    pub async fn shutdown(mut self) -> Result<(), tonic::transport::Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("server task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
